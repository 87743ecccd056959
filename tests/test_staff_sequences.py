"""The sequence pages over HTTP on a real server: roles (clinic staff may not open them), the list and
a sequence's figures, editing a step through the same validation and install as `sequences load`
(errors beside their field, values kept, nothing changed), health-word warnings, adding and removing
steps (what load refuses is refused with its message; enrolments move on), pause and resume, enrolling
by address (unknown address, already enrolled), the preview route, and one audit entry per change."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from html import unescape

import httpx
import pytest
from sqlalchemy import func, select, update

from newsletter.database import Database
from newsletter.models import Delivery, Enrollment, Sequence, SequenceStep, StepFigures
from newsletter.reports.snapshots import MAX_AGE, refresh_figures
from newsletter.sequences import service
from newsletter.sequences.definition import parse_definition
from newsletter.sequences.engine import process_due
from newsletter.staff.audit import AuditAction
from newsletter.staff.roles import Role
from subscribers.contacts import get_contact
from subscribers.db import utcnow
from subscribers.states import DeliveryStatus, EnrollmentState, SequenceStatus
from tests.liveserver import LiveServer
from tests.sendkit import add_audience
from tests.staffkit import csrf_of, make_user, post_form, signed_in
from tests.test_staff_issues import audit_rows, field_error, make_post

BASE = "/staff/sequences"


def install(server: LiveServer) -> dict[str, int]:
    """The shipped sequences (paused, as the demo installs them): name -> id."""
    with server.db.session() as s:
        service.install_shipped(s, server.settings, utcnow())
    with server.db.session() as s:
        return dict(s.execute(select(Sequence.name, Sequence.id)).all())  # type: ignore[arg-type]


def stored_steps(db: Database, sequence_id: int) -> list[tuple[str, bool]]:
    with db.session() as s:
        return [(k, a) for k, a in s.execute(select(SequenceStep.key, SequenceStep.active)
                                            .where(SequenceStep.sequence_id == sequence_id)
                                            .order_by(SequenceStep.active.desc(), SequenceStep.position))]


def definition_of(db: Database, sequence_id: int) -> dict:
    with db.session() as s:
        return s.get(Sequence, sequence_id).definition  # type: ignore[union-attr]


def step_form(db: Database, sequence_id: int, key: str, **changes: str) -> dict[str, str]:
    """The edit form of step ``key`` as it comes filled, with ``changes``."""
    step = parse_definition(definition_of(db, sequence_id), source="test").step(key)
    values = {"delay": "0" if not step.delay else f"{int(step.delay.total_seconds() // 86400)}d",
              "subject": step.subject, "preheader": step.preheader, "body": step.body or "",
              "condition": "", "condition_tag": ""}
    return {**values, **changes}


def as_new(server: LiveServer, role: Role) -> AbstractContextManager[httpx.Client]:
    """A client signed in as a new user of ``role``."""
    return signed_in(server, make_user(server.db, f"{role.value}@clinic.example", role))


@pytest.fixture
def marketing(live_server: LiveServer) -> Iterator[httpx.Client]:
    with as_new(live_server, Role.MARKETING) as c:
        yield c


@pytest.fixture
def welcome(live_server: LiveServer) -> int:
    return install(live_server)["Welcome"]


def test_clinic_staff_cannot_open_the_sequence_pages(live_server: LiveServer, welcome: int) -> None:
    pages = [BASE, f"{BASE}/{welcome}", f"{BASE}/{welcome}/steps/welcome", f"{BASE}/{welcome}/steps/welcome/preview.html",
             f"{BASE}/{welcome}/new-step"]
    forms = [f"{BASE}/{welcome}/pause", f"{BASE}/{welcome}/resume", f"{BASE}/{welcome}/enrol",
             f"{BASE}/{welcome}/steps/welcome", f"{BASE}/{welcome}/steps/welcome/remove", f"{BASE}/{welcome}/new-step"]
    with httpx.Client(base_url=live_server.url, follow_redirects=False, timeout=30) as anonymous:
        for path in pages + forms:
            answer = anonymous.get(path) if path in pages else anonymous.post(path, data={"csrf_token": "x"})
            assert answer.status_code == 303 and answer.headers["location"].startswith("/staff/sign-in"), path
    with as_new(live_server, Role.CLINIC) as clinic:
        assert 'href="/staff/sequences"' not in clinic.get("/staff/").text
        token = csrf_of(clinic.get("/staff/account").text)
        for path in pages:
            answer = clinic.get(path)
            assert answer.status_code == 403 and "not for your role" in answer.text, path
        for path in forms:
            assert clinic.post(path, data={"csrf_token": token, "email": "x@example.org"}).status_code == 403, path
    with as_new(live_server, Role.ADMIN) as admin:
        assert admin.get(BASE).status_code == 200
        assert 'href="/staff/sequences"' in admin.get("/staff/").text
    assert definition_of(live_server.db, welcome)["steps"][0]["subject"] == "Welcome, and thank you for joining us"
    with live_server.db.session() as s:
        assert s.get(Sequence, welcome).status == SequenceStatus.PAUSED  # type: ignore[union-attr]


def test_the_list_and_a_sequence_page_show_steps_and_figures(live_server: LiveServer, marketing: httpx.Client,
                                                             welcome: int) -> None:
    page = marketing.get(BASE)
    assert page.status_code == 200
    assert f'href="{BASE}/{welcome}">Welcome</a>' in page.text and "Consultation follow-up" in page.text
    assert "list confirmed: newsletter" in page.text and "paused" in page.text
    [contact] = add_audience(live_server.db, 1)
    with live_server.db.session() as s:
        service.enroll_contact(s, s.get(Sequence, welcome), "reader0@example.org", utcnow())  # type: ignore[arg-type]
    page = marketing.get(f"{BASE}/{welcome}")
    assert page.status_code == 200
    subjects = re.findall(rf'href="{BASE}/{welcome}/steps/([a-z-]+)">([^<]+)</a>', page.text)
    assert subjects == [("welcome", "Welcome, and thank you for joining us"),
                        ("reader-favorites", "A few reader favorites to start with"), ("reach-us", "How to reach us")]
    assert "at once after enrolment" in page.text and "5d after the previous step" in page.text
    assert re.search(r"<dt>Enrolled now</dt><dd>1</dd>", page.text)
    assert marketing.get(f"{BASE}/999999").status_code == 404 and marketing.get(f"{BASE}/x").status_code == 404
    assert marketing.get(f"{BASE}/{welcome}/steps/nope").status_code == 404


def test_editing_a_step_saves_it_recompiles_and_audits(live_server: LiveServer, marketing: httpx.Client,
                                                       welcome: int) -> None:
    add_audience(live_server.db, 1)
    with live_server.db.session() as s:
        service.enroll_contact(s, s.get(Sequence, welcome), "reader0@example.org", utcnow())  # type: ignore[arg-type]
    url = f"{BASE}/{welcome}/steps/welcome"
    page = marketing.get(url)
    assert "1 contact is waiting for this step." in page.text and "Saving makes the step's email again" in unescape(page.text)
    answer = post_form(marketing, url, url, step_form(live_server.db, welcome, "welcome",
                                                      subject="Welcome to the letter",
                                                      body="# Hello there\n\nA brand new first email.\n"))
    assert answer.status_code == 303 and answer.headers["location"] == url
    shown = marketing.get(url).text
    assert "Saved: changed welcome." in unescape(shown) and "1 contact waiting for this step will get this version" in shown
    assert definition_of(live_server.db, welcome)["steps"][0]["subject"] == "Welcome to the letter"
    preview = marketing.get(url + "/preview.html")
    assert "A brand new first email." in preview.text and "Hello there" in preview.text
    assert "default-src 'none'" in preview.headers["content-security-policy"]
    assert "A brand new first email." in shown  # the plain-text part
    [entry] = audit_rows(live_server.db, AuditAction.SEQUENCE_EDITED)
    assert entry.target == f"sequence {welcome}" and entry.detail == "step welcome: changed welcome"
    assert entry.actor == "marketing@clinic.example"


def test_validation_errors_are_shown_beside_their_field_and_nothing_changes(
        live_server: LiveServer, marketing: httpx.Client, welcome: int) -> None:
    url = f"{BASE}/{welcome}/steps/reader-favorites"
    before = definition_of(live_server.db, welcome)
    answer = post_form(marketing, url, url, step_form(live_server.db, welcome, "reader-favorites",
                                                      delay="5 days", subject="", body="  \n",
                                                      condition="has_tag", condition_tag=""))
    assert answer.status_code == 400
    assert field_error(answer.text, "delay") == "'5 days' is not a duration like 2d, 12h, 30m"
    assert field_error(answer.text, "subject") == "a step needs a subject"
    assert field_error(answer.text, "body") == "the body is empty"
    assert 'value="5 days"' in answer.text  # what was typed comes back
    answer = post_form(marketing, url, url, step_form(live_server.db, welcome, "reader-favorites", delay="20w0d",
                                                      subject="Hi %%first_name%%"))
    assert "placeholders" in field_error(answer.text, "subject")
    answer = post_form(marketing, url, url, step_form(live_server.db, welcome, "reader-favorites", delay="60w"))
    assert field_error(answer.text, "delay") == "'60w' is longer than a year; the longest delay is 52w"
    # The first step cannot depend on a previous one: load's message, beside the condition.
    first = f"{BASE}/{welcome}/steps/welcome"
    answer = post_form(marketing, first, first, step_form(live_server.db, welcome, "welcome", condition="opened_previous"))
    assert answer.status_code == 400
    assert field_error(answer.text, "condition") == "the first step has no previous step to have opened or clicked"
    answer = post_form(marketing, url, url, step_form(live_server.db, welcome, "reader-favorites",
                                                      condition="has_tag", condition_tag=""))
    assert answer.status_code == 400 and field_error(answer.text, "condition_tag")
    assert definition_of(live_server.db, welcome) == before
    assert audit_rows(live_server.db, AuditAction.SEQUENCE_EDITED) == []
    # Right, a condition on a tag is stored as load stores it.
    answer = post_form(marketing, url, url, step_form(live_server.db, welcome, "reader-favorites",
                                                      condition="has_tag", condition_tag="Readers"))
    assert answer.status_code == 303
    with live_server.db.session() as s:
        assert s.scalar(select(SequenceStep.condition).where(SequenceStep.key == "reader-favorites")) == {
            "has_tag": "readers"}
    assert "if they have the tag “readers”" in marketing.get(f"{BASE}/{welcome}").text


def test_health_words_are_warned_about_as_the_cli_does(live_server: LiveServer, marketing: httpx.Client,
                                                       welcome: int) -> None:
    url = f"{BASE}/{welcome}/steps/reach-us"
    answer = post_form(marketing, url, url, step_form(live_server.db, welcome, "reach-us",
                                                      subject="Ketamine therapy and you"))
    assert answer.status_code == 303  # a warning, not an error: staff decide
    page = unescape(marketing.get(url).text)
    assert "Warning: steps[2] (reach-us): the subject mentions 'ketamine'" in page
    assert page.count("it shows on lock screens and shared inboxes") == 2  # the message, and the warning kept on the page


def test_adding_and_removing_steps_follow_sequences_load(live_server: LiveServer, marketing: httpx.Client,
                                                         welcome: int) -> None:
    new = f"{BASE}/{welcome}/new-step"
    step = {"key": "check-in", "where": "after:welcome", "delay": "2d", "subject": "Checking in",
            "preheader": "", "body": "Just checking in.", "condition": "clicked_previous", "condition_tag": ""}
    answer = post_form(marketing, new, new, step)
    assert answer.status_code == 303 and answer.headers["location"] == f"{BASE}/{welcome}/steps/check-in"
    assert [k for k, active in stored_steps(live_server.db, welcome) if active] == [
        "welcome", "check-in", "reader-favorites", "reach-us"]
    with live_server.db.session() as s:
        assert s.scalar(select(SequenceStep.condition).where(SequenceStep.key == "check-in")) == {"clicked_previous": True}
    # The same key again: load's message, beside the key.
    answer = post_form(marketing, new, new, {**step, "where": ""})
    assert answer.status_code == 400
    assert "keys must be unique" in field_error(answer.text, "key") and 'value="Checking in"' in answer.text
    answer = post_form(marketing, new, new, {**step, "key": "Bad Key", "where": "start", "condition": ""})
    assert field_error(answer.text, "key") == "'Bad Key' is not a key: use lower-case letters, digits and dashes"
    answer = post_form(marketing, new, new, {**step, "key": "late", "where": "after:welcome", "reach_completed": "1"})
    assert field_error(answer.text, "reach_completed") == "only a step added at the end can reach contacts who had finished"
    answer = post_form(marketing, new, new, {**step, "key": "late", "where": "after:nope"})
    assert field_error(answer.text, "where") == "Choose where the step goes from the list."

    # A contact who had finished gets a step added at the end only when asked.
    [contact] = add_audience(live_server.db, 1)
    with live_server.db.session() as s:
        enrolment = service.enroll_contact(s, s.get(Sequence, welcome), "reader0@example.org", utcnow())  # type: ignore[arg-type]
        enrolment.state, enrolment.next_step_id, enrolment.finished_at = EnrollmentState.COMPLETED, None, utcnow()
    answer = post_form(marketing, new, new, {**step, "key": "one-more", "where": "", "condition": "",
                                             "reach_completed": "1"})
    assert answer.status_code == 303
    assert "1 contacts who had finished will get the new step" in unescape(marketing.get(answer.headers["location"]).text)
    with live_server.db.session() as s:
        assert s.scalar(select(Enrollment.state).where(Enrollment.contact_id == contact)) == EnrollmentState.ACTIVE

    # Removing a step that contacts wait for: kept inactive, they move on (as load does).
    remove = f"{BASE}/{welcome}/steps/one-more/remove"
    answer = post_form(marketing, f"{BASE}/{welcome}/steps/one-more", remove)
    assert answer.status_code == 303 and answer.headers["location"] == f"{BASE}/{welcome}"
    assert "The 1 contact waiting for it move on" in marketing.get(f"{BASE}/{welcome}").text
    assert ("one-more", False) in stored_steps(live_server.db, welcome)
    with live_server.db.session() as s:
        due = s.scalar(select(Enrollment.next_due_at).where(Enrollment.contact_id == contact))
        assert due is not None and due <= utcnow() + timedelta(seconds=1)
    entries = audit_rows(live_server.db, AuditAction.SEQUENCE_EDITED)
    assert [e.detail for e in entries] == [
        "step check-in: step check-in added; changed reader-favorites, reach-us",  # their position moved, as load says
        "step one-more: step one-more added; "
                                           "1 contacts who had finished will get the new step",
                                           "step one-more: removed one-more (never sent again)"]


def test_removing_what_load_refuses_is_refused_with_its_message(live_server: LiveServer, marketing: httpx.Client,
                                                               welcome: int) -> None:
    # The second step clicks the first: removing the first would leave it nothing to have clicked.
    new = f"{BASE}/{welcome}/new-step"
    post_form(marketing, new, new, {"key": "nudge", "where": "after:welcome", "delay": "1d", "subject": "A nudge",
                                    "body": "Hello.", "condition": "opened_previous"})
    before = definition_of(live_server.db, welcome)
    url = f"{BASE}/{welcome}/steps/welcome"
    answer = post_form(marketing, url, url + "/remove")
    assert answer.status_code == 400
    assert field_error_of_button(answer.text) == ("sequence 'Welcome': steps: steps[0].condition: the first step has no "
                                                  "previous step to have opened or clicked")
    assert definition_of(live_server.db, welcome) == before
    # The only step left cannot go: a sequence needs at least one.
    for key in ("nudge", "reader-favorites", "reach-us"):
        assert post_form(marketing, f"{BASE}/{welcome}/steps/{key}", f"{BASE}/{welcome}/steps/{key}/remove").status_code == 303
    answer = post_form(marketing, url, url + "/remove")
    assert field_error_of_button(answer.text) == "sequence 'Welcome': steps: a sequence needs at least one step"
    assert [k for k, active in stored_steps(live_server.db, welcome) if active] == ["welcome"]


def field_error_of_button(html: str) -> str:
    assert re.search(r'<button[^>]*id="remove-button"[^>]*aria-describedby="remove-hint remove-error"', html)
    match = re.search(r'<p class="error" id="remove-error">([^<]*)</p>', html)
    assert match
    return unescape(match.group(1))


def test_pause_and_resume_are_audited_and_a_repeat_changes_nothing(live_server: LiveServer, marketing: httpx.Client,
                                                                   welcome: int) -> None:
    page = f"{BASE}/{welcome}"
    assert "Resume the sequence" in marketing.get(page).text  # shipped paused
    answer = post_form(marketing, page, f"{page}/resume")
    assert answer.status_code == 303
    assert "resumed" in marketing.get(page).text
    with live_server.db.session() as s:
        assert s.get(Sequence, welcome).status == SequenceStatus.ACTIVE  # type: ignore[union-attr]
    answer = post_form(marketing, page, f"{page}/resume")  # a second click, from a page opened before
    assert answer.status_code == 409 and "is already active" in answer.text
    answer = post_form(marketing, page, f"{page}/pause")
    assert answer.status_code == 303
    with live_server.db.session() as s:
        assert s.get(Sequence, welcome).status == SequenceStatus.PAUSED  # type: ignore[union-attr]
    assert [e.target for e in audit_rows(live_server.db, AuditAction.RESUME)] == [f"sequence {welcome}"]
    assert [e.target for e in audit_rows(live_server.db, AuditAction.PAUSE)] == [f"sequence {welcome}"]


def test_enrolling_by_address(live_server: LiveServer, marketing: httpx.Client, welcome: int) -> None:
    page = f"{BASE}/{welcome}"
    answer = post_form(marketing, page, f"{page}/enrol", {"email": "nobody@example.org"})
    assert answer.status_code == 400
    assert field_error(answer.text, "email") == "No contact has that address."
    assert 'value="nobody@example.org"' in answer.text
    answer = post_form(marketing, page, f"{page}/enrol", {"email": "  "})
    assert field_error(answer.text, "email") == "Type the address of the contact to enrol."
    [contact] = add_audience(live_server.db, 1)
    answer = post_form(marketing, page, f"{page}/enrol", {"email": "Reader0@Example.org"})
    assert answer.status_code == 303 and "nobody" not in answer.headers["location"]
    assert "Enrolled. The first step is due" in marketing.get(page).text
    answer = post_form(marketing, page, f"{page}/enrol", {"email": "reader0@example.org"})
    assert field_error(answer.text, "email") == "This contact is already going through the sequence."
    with live_server.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Enrollment)) == 1
        assert get_contact(s, "reader0@example.org").id == contact
    [entry] = audit_rows(live_server.db, AuditAction.ENROLLED)
    assert entry.target == f"sequence {welcome}" and entry.detail == f"contact {contact}, by hand"
    assert "example.org" not in (entry.detail or "")


def test_step_figures_are_kept_and_refreshed(live_server: LiveServer, marketing: httpx.Client, welcome: int) -> None:
    """The pages read each step's kept figures (computed once, then refreshed with the issues' by the
    scheduler's minute job), so a visit never folds every delivery's events."""
    add_audience(live_server.db, 2)
    with live_server.db.session() as s:
        sequence = s.get(Sequence, welcome)
        sequence.status = SequenceStatus.ACTIVE  # type: ignore[union-attr]
        due = [service.enroll_contact(s, sequence, f"reader{n}@example.org", utcnow()).next_due_at  # type: ignore[arg-type]
               for n in range(2)]
    with live_server.db.session() as s:
        process_due(s, live_server.settings, max(d for d in due if d))
        # Queued for the step's send window, which may open later today: due now, for this test of figures.
        s.execute(update(Delivery).where(Delivery.status == DeliveryStatus.QUEUED)
                  .values(due_at=utcnow() - timedelta(seconds=1)))
    live_server.send_queued()
    first = marketing.get(f"{BASE}/{welcome}").text
    row = re.search(r'steps/welcome">.*?</tr>', first, re.S)
    assert row and re.findall(r'<td class="num">(\d+)</td>', row.group(0))[:2] == ["0", "2"]  # waiting, sent
    assert "Email figures as of" in first
    with live_server.db.session() as s:
        kept = s.scalars(select(StepFigures)).all()
        assert len(kept) == 3 and {k.figures["sent"] for k in kept} == {2, 0}
        step = s.scalar(select(SequenceStep.id).where(SequenceStep.key == "welcome"))
        s.execute(update(Delivery).where(Delivery.step_id == step).values(status=DeliveryStatus.FAILED))
    assert marketing.get(BASE).text.count('<td class="num">2</td>') >= 1  # still the kept figure
    with live_server.db.session() as s:
        every_step = s.scalar(select(func.count()).select_from(SequenceStep))  # the list read them all
        assert refresh_figures(s, utcnow() + MAX_AGE + timedelta(seconds=1)) == every_step
        assert s.get(StepFigures, step).figures["sent"] == 0  # type: ignore[union-attr]


def test_a_post_step_keeps_its_post_when_edited(live_server: LiveServer, marketing: httpx.Client) -> None:
    post_id = make_post(live_server)
    with live_server.db.session() as s:
        definition = parse_definition({"name": "Posts", "trigger": {"type": "manual"}, "steps": [
            {"key": "read", "delay": 0, "subject": "A read for you", "post": post_id}]}, source="test")
        sequence_id = service.load(s, live_server.settings, definition, utcnow()).sequence.id
    url = f"{BASE}/{sequence_id}/steps/read"
    page = marketing.get(url).text
    assert f"This step sends post {post_id}." in page and 'id="body"' not in page
    answer = post_form(marketing, url, url, {"delay": "1d", "subject": "A walk for you", "preheader": "",
                                             "condition": "", "condition_tag": ""})
    assert answer.status_code == 303
    [step] = definition_of(live_server.db, sequence_id)["steps"]
    assert step["post"] == post_id and step["body"] is None and step["subject"] == "A walk for you"
    assert "Why a Daily Walk Helps Your Mood" in marketing.get(url + "/preview.html").text
