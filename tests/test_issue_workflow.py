"""The issue workflow the staff app drives: an intro note, editing before sending, approval, test
emails that are never counted, and previews whose links count nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from newsletter import issues as issue_service
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.errors import InputError
from newsletter.models import Delivery, Event, Issue, Link, TestEmail
from newsletter.reports.email_stats import issue_report
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.sending.test_emails import parse_addresses, queue_test_emails
from newsletter.tracking.first_party import Request as TrackingRequest, record_click, record_open
from newsletter.urls import TEST_TOKEN, pixel_key
from subscribers.states import ConfirmationStatus, IssueStatus
from tests.sendkit import ScriptedTransport, add_audience, make_issue

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
BROWSER = TrackingRequest(method="GET", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", ip="198.51.100.7")


def test_the_intro_note_is_in_both_parts_above_the_post_and_escaped(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    with db.session() as s:
        issue = issue_service.get_issue(s, issue_id)
        issue_service.edit_issue(s, settings, issue, intro="A note from Dr <Lee>:\n  winter hours\n\nSee you soon.")
        assert issue.intro == "A note from Dr <Lee>: winter hours\n\nSee you soon."
        assert "A note from Dr &lt;Lee&gt;: winter hours" in issue.html and "<Lee>" not in issue.html
        assert issue.html.index("winter hours") < issue.html.index("Walk a little")
        assert "A note from Dr <Lee>: winter hours\n\nSee you soon." in issue.text
        assert issue.text.index("See you soon.") < issue.text.index("Walk a little")


def test_editing_checks_every_value_before_storing_any(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    with db.session() as s:
        issue = issue_service.get_issue(s, issue_id)
        with pytest.raises(InputError, match="subject is 301 characters"):
            issue_service.edit_issue(s, settings, issue, subject="x" * 301, preheader="New preheader")
        assert issue.preheader == "Habits for the week, one small step at a time"
        with pytest.raises(InputError, match="subject is empty"):
            issue_service.edit_issue(s, settings, issue, subject="   ")
        issue_service.edit_issue(s, settings, issue, subject="Winter  walks", preheader="Short days, good habits")
        assert (issue.subject, issue.preheader) == ("Winter walks", "Short days, good habits")
        assert "Short days, good habits" in issue.html  # compiled again


def test_an_issue_cannot_be_edited_once_it_is_sending(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 2)
    with db.session() as s:
        issue = issue_service.get_issue(s, issue_id)
        schedule.start_now(s, settings, issue, NOW)
        with pytest.raises(InputError, match=f"issue {issue_id} is sending: it can be edited only before sending"):
            issue_service.edit_issue(s, settings, issue, subject="Too late")


def test_approval_holds_an_issue_until_an_admin_approves_it(db: Database, settings: Settings) -> None:
    settings = settings.model_copy(update={"issue_approval": True})
    issue_id = make_issue(db, settings)
    add_audience(db, 3)
    assert schedule.approval_needed(settings, is_admin=False) and not schedule.approval_needed(settings, is_admin=True)
    with db.session() as s:
        issue = issue_service.get_issue(s, issue_id)
        schedule.schedule_issue(s, settings, issue, at=NOW + timedelta(hours=1), now=NOW, zone="UTC",
                                needs_approval=schedule.approval_needed(settings, is_admin=False))
        assert issue.status == IssueStatus.AWAITING_APPROVAL
    with db.session() as s:  # its time comes and goes: nothing is queued
        assert schedule.due_work(s, NOW + timedelta(hours=2), settings).started == []
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
        issue = issue_service.get_issue(s, issue_id)
        schedule.approve(issue, approved_by="user 1", now=NOW + timedelta(hours=2))
        assert (issue.status, issue.approved_by) == (IssueStatus.SCHEDULED, "user 1")
        with pytest.raises(InputError, match="only an issue awaiting approval can be approved"):
            schedule.approve(issue, approved_by="user 1", now=NOW)
    with db.session() as s:  # late: it goes on the next round
        assert schedule.due_work(s, NOW + timedelta(hours=2, minutes=1), settings).started == [issue_id]
        assert s.scalar(select(func.count()).select_from(Delivery)) == 3


def test_an_issue_awaiting_approval_can_be_cancelled_or_rescheduled(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    with db.session() as s:
        issue = issue_service.get_issue(s, issue_id)
        schedule.schedule_issue(s, settings, issue, at=NOW + timedelta(hours=1), now=NOW, zone="UTC", needs_approval=True)
        schedule.schedule_issue(s, settings, issue, at=NOW + timedelta(hours=3), now=NOW, zone="UTC", needs_approval=True)
        assert issue.status == IssueStatus.AWAITING_APPROVAL and issue.scheduled_at == NOW + timedelta(hours=3)
        schedule.cancel(issue)
        assert issue.status == IssueStatus.DRAFT


def test_addresses_for_a_test_are_checked_one_by_one(settings: Settings) -> None:
    assert parse_addresses("a@clinic.example, B@Clinic.example;a@clinic.example\nc@clinic.example", 5) == [
        "a@clinic.example", "B@clinic.example", "c@clinic.example"]  # the domain is lower-cased, the local part kept
    with pytest.raises(InputError, match="'not-an-address' is not a valid email address"):
        parse_addresses("a@clinic.example, not-an-address", 5)
    with pytest.raises(InputError, match="at most 2 addresses; 3 were given"):
        parse_addresses("a@x.example b@x.example c@x.example", 2)
    with pytest.raises(InputError, match="at least one address"):
        parse_addresses(" ,; ", 5)


def test_a_test_email_is_sent_marked_as_a_test_and_never_counted(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    with db.session() as s:
        issue = issue_service.get_issue(s, issue_id)
        rows = queue_test_emails(s, settings, issue, "editor@clinic.example", requested_by="user 2", now=NOW)
        row_id = rows[0].id
    transport = ScriptedTransport()
    sent_batches = []
    transport.script.append(lambda batch: sent_batches.append(batch))
    assert Dispatcher(settings, db, transport, clock=lambda: NOW).run_until_idle().one_offs == 1
    (batch,) = sent_batches
    assert batch.email.subject == "[Test] Small steps for steadier days" and batch.categories == ["test"]
    assert transport.delivered == ["editor@clinic.example"]
    assert batch.recipients[0].values.track == TEST_TOKEN and "/u/test" in batch.recipients[0].values.unsubscribe_url
    with db.session() as s:
        row = s.get(TestEmail, row_id)
        assert (row.status, row.sent_at) == (ConfirmationStatus.SENT, NOW)
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
        link = s.scalars(select(Link).where(Link.issue_id == issue_id)).first()
        # Its links work and count nothing, even once the issue has gone out under anonymous tracking.
        s.get(Issue, issue_id).tracking = "anonymous"
        assert record_click(s, settings, TEST_TOKEN, str(link.id), BROWSER, NOW) == link.url
        assert record_open(s, settings, TEST_TOKEN, pixel_key(issue_id, None), BROWSER, NOW) is False
        assert s.scalar(select(func.count()).select_from(Event)) == 0
        report = issue_report(s, issue_id)
        assert report.stats.sent == 0


def test_the_preview_links_carry_the_test_token(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    with db.session() as s:
        preview = issue_service.preview_parts(issue_service.get_issue(s, issue_id), settings)
    assert f"/c/{TEST_TOKEN}/" in preview.html and "%%" not in preview.html and "%%" not in preview.text
    assert f"/u/{TEST_TOKEN}" in preview.html


def test_editing_a_post_recompiles_its_unsent_issues_only(db: Database, settings: Settings) -> None:
    draft_id = make_issue(db, settings)
    add_audience(db, 1)
    with db.session() as s:
        post_id = issue_service.get_issue(s, draft_id).post_id
        sent = issue_service.create_issue(s, settings, post_id, "Already out", "x")
        schedule.start_now(s, settings, sent, NOW)
        sent_html = sent.html
    with db.session() as s:
        with pytest.raises(InputError, match="title holds a control character"):
            issue_service.edit_post(s, settings, post_id, title="Bad\x07title", excerpt="kept?", labels=("title", "excerpt"))
        assert issue_service.get_issue(s, draft_id).post.excerpt != "kept?"
        drafts = issue_service.edit_post(s, settings, post_id, title="Small steps, steady days", excerpt="")
        assert [i.id for i in drafts] == [draft_id]
        assert "Small steps, steady days" in issue_service.get_issue(s, draft_id).html
        assert issue_service.get_issue(s, sent.id).html == sent_html
        assert issue_service.get_issue(s, draft_id).post.excerpt == ""


def test_the_live_audience_count_is_what_enqueueing_adds(db: Database, settings: Settings) -> None:
    from newsletter.sending.audience import audience_size
    from subscribers.lists import get_list
    from subscribers.suppression import SuppressionReason, suppress

    issue_id = make_issue(db, settings)
    add_audience(db, 5)
    with db.session() as s:
        suppress(s, "reader0@example.org", SuppressionReason.MANUAL)
    with db.session() as s:
        newsletter = get_list(s, "newsletter")
        assert audience_size(s, newsletter.id) == 4
        added = schedule.start_now(s, settings, issue_service.get_issue(s, issue_id), NOW)
        assert added == 4


def test_pasted_or_uploaded_content_is_imported_under_the_size_limit(db: Database, settings: Settings) -> None:
    from newsletter.posts import service as post_service

    small = settings.model_copy(update={"max_post_bytes": 100})
    with pytest.raises(InputError, match=r"notes.md: is 101 bytes; posts are limited to 100 \(NEWSLETTER_MAX_POST_BYTES\)"):
        post_service.given_bytes("notes.md", b"x" * 101, small)
    raw = post_service.given_bytes("pasted text", "# Winter walks\n\nShort days, *good* habits.\n".encode(), settings)
    with db.session() as s:
        post = post_service.import_post(s, raw, "markdown").post
        assert post.title == "Winter walks" and post.excerpt.startswith("Short days")
    with pytest.raises(InputError, match="pasted text: is empty"):
        post_service.parse(post_service.given_bytes("pasted text", b"  \n", settings), "text")
