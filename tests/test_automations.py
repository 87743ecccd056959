"""Feed and digest automations, driven through time with ``newsletter tick --at --poll``: a feed
served on loopback publishes posts over several weeks; each mode makes exactly the issues it should,
at the slots it should, with the approvals it needs. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.utils import format_datetime

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from newsletter import issues as issue_service
from newsletter.automations import slots, wording
from newsletter.automations.status import needs_attention
from newsletter.cli import app
from newsletter.compose.preflight import blocking
from newsletter.config import Settings, get_settings
from newsletter.database import Database, upgrade
from newsletter.due import run_round
from newsletter.errors import InputError
from newsletter.models import AutomationIssue, Delivery, Issue
from newsletter.posts import service as post_service
from subscribers.states import DeliveryStatus, IssueStatus
from tests.conftest import postgres_schema
from tests.sendkit import add_audience
from tests.webserver import Site

runner = CliRunner()
GMAIL_CLIP_BYTES = 102 * 1024
ZONES = ["Europe/Madrid", "America/Los_Angeles"]  # 09:00 there is 08:00 and 17:00 UTC in January


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def rss(*items: tuple[str, str, datetime]) -> str:
    """An RSS document of (guid, title, published) items, newest first as blogs list them."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://clinic.example/{guid}</link>"
        f"<pubDate>{format_datetime(when)}</pubDate><description>{title}: a short walk through the week's "
        f"practical ideas for rest, routines and getting outside.</description></item>"
        for guid, title, when in sorted(items, key=lambda i: i[2], reverse=True))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Clinic blog</title>{body}</channel></rss>'


def at(day: int, hour: int = 12, month: int = 1) -> datetime:
    return datetime(2027, month, day, hour, tzinfo=UTC)


def tick(when: datetime, *extra: str) -> str:
    return cli("tick", "--poll", "--at", when.isoformat(), *extra)


def issues_of(db: Database) -> list[Issue]:
    with db.session() as s:
        return list(s.scalars(select(Issue).order_by(Issue.id)))


def sent_to(db: Database, issue_id: int) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.SUBMITTED))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, loopback_allowed: Settings,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A migrated database the CLI uses too: SQLite, and PostgreSQL (a schema of this test's own)."""
    if request.param == "sqlite":
        db = Database.from_settings(loopback_allowed)
        upgrade(db.engine)
        yield db
        return
    with postgres_schema() as url:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
        get_settings.cache_clear()
        db = Database(url)
        try:
            upgrade(db.engine)
            yield db
        finally:
            db.engine.dispose()


# --- send mode --------------------------------------------------------------------------------------


def test_send_mode_makes_one_issue_per_new_post_at_each_slot(any_db: Database, site: Site) -> None:
    db = any_db
    add_audience(db, 2, zones=ZONES)
    old = ("old", "Last year's notes", datetime(2026, 12, 20, 9, tzinfo=UTC))
    first = ("first", "Walking in winter", at(2, 9))
    url = site.add("/feed", rss(old, first), "application/rss+xml")
    assert "2 new post(s)" in cli("feeds", "add", url)
    out = cli("feeds", "automate", "1", "--mode", "send", "--slot", "tue 09:00", "--start", "2027-01-01 00:00")
    assert "send" in out and "next slot" in out

    tick(at(3))  # Sunday: the post published after the start becomes an issue for Tuesday's slot
    tick(at(3, 13))  # the same round again, and a feed polled twice: nothing more
    made = issues_of(db)
    assert [(i.subject, i.status, i.local_send_time) for i in made] == [
        ("Walking in winter", IssueStatus.SCHEDULED, "2027-01-05T09:00")]  # the old post is never sent

    tick(at(5, 8, 1).replace(minute=30))  # 08:30 UTC: 09:30 in Madrid, 00:30 in Los Angeles
    assert sent_to(db, made[0].id) == 1
    tick(at(5, 17).replace(minute=30))  # 09:30 in Los Angeles
    assert sent_to(db, made[0].id) == 2

    # The feed edits the first post (same guid) and publishes a second one.
    second = ("second", "Sleep and screens", at(6, 9))
    site.add("/feed", rss(old, ("first", "Walking in winter, revised", at(2, 9)), second), "application/rss+xml")
    tick(at(7))
    tick(at(7, 14))
    made = issues_of(db)
    assert [(i.subject, i.local_send_time) for i in made] == [
        ("Walking in winter", "2027-01-05T09:00"), ("Sleep and screens", "2027-01-12T09:00")]
    tick(at(12, 18))
    assert sent_to(db, made[1].id) == 2
    assert sent_to(db, made[0].id) == 2  # nobody got the first one twice
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AutomationIssue)) == 2


# --- review then send, draft ------------------------------------------------------------------------


def test_review_waits_for_approval_and_moves_to_the_next_slot_when_unapproved(any_db: Database, site: Site) -> None:
    db = any_db
    add_audience(db, 2, zones=ZONES)
    url = site.add("/feed", rss(("a", "Morning light", at(2, 9))), "application/rss+xml")
    cli("feeds", "add", url)
    cli("feeds", "automate", "1", "--mode", "review", "--slot", "tue 09:00", "--start", "2027-01-01 00:00",
        "--subject-template", "New this week: {title}")
    tick(at(3))
    [issue] = issues_of(db)
    assert (issue.subject, issue.status, issue.local_send_time) == (
        "New this week: Morning light", IssueStatus.AWAITING_APPROVAL, "2027-01-05T09:00")

    tick(at(5, 18))  # the slot came and went unapproved: nothing sent, it waits for the next slot
    [issue] = issues_of(db)
    assert (issue.status, issue.local_send_time) == (IssueStatus.AWAITING_APPROVAL, "2027-01-12T09:00")
    assert sent_to(db, issue.id) == 0
    with db.session() as s:
        notices = [n.text for n in needs_attention(s, at(6))]
    assert any(f"Issue {issue.id}" in n and "missed 1 slot" in n for n in notices), notices
    listed = json.loads(cli("feeds", "list", "--json"))
    assert listed[0]["automation"] == "review" and listed[0]["awaiting_approval"] == [issue.id]

    cli("issues", "approve", str(issue.id))
    tick(at(12, 18))
    assert sent_to(db, issue.id) == 2
    assert len(issues_of(db)) == 1


def test_draft_mode_makes_drafts_staff_are_told_of_and_sends_nothing(any_db: Database, site: Site) -> None:
    db = any_db
    add_audience(db, 1, zones=ZONES[:1])
    url = site.add("/feed", rss(("a", "Gentle stretches", at(2, 9))), "application/rss+xml")
    cli("feeds", "add", url)
    cli("feeds", "automate", "1", "--mode", "draft", "--layout", "teaser", "--start", "2027-01-01 00:00")
    tick(at(3))
    tick(at(20))
    [issue] = issues_of(db)
    assert (issue.status, issue.layout, issue.scheduled_at) == (IssueStatus.DRAFT, "teaser", None)
    assert sent_to(db, issue.id) == 0
    with db.session() as s:
        assert any(f"draft issue {issue.id}" in n.text for n in needs_attention(s, at(20)))


# --- faults -------------------------------------------------------------------------------------------


def test_a_failing_feed_is_reported_and_blocks_no_other(any_db: Database, site: Site) -> None:
    db = any_db
    add_audience(db, 1, zones=ZONES[:1])
    broken = site.add("/broken", rss(("b0", "Before it broke", datetime(2026, 12, 31, 9, tzinfo=UTC))), "application/rss+xml")
    good = site.add("/good", rss(), "application/rss+xml")
    cli("feeds", "add", broken)
    cli("feeds", "add", good)
    for feed in ("1", "2"):
        cli("feeds", "automate", feed, "--mode", "send", "--start", "2027-01-01 00:00")
    site.add("/broken", "gone", "text/plain", status=500)
    site.add("/good", rss(("g1", "Steady routines", at(2, 9))), "application/rss+xml")
    tick(at(3))
    tick(at(4))
    rows = {row["id"]: row for row in json.loads(cli("feeds", "list", "--json"))}
    assert rows[1]["consecutive_failures"] == 2
    assert rows[1]["failing_since"].startswith("2027-01-03T12:00")
    assert "500" in rows[1]["last_error"]
    assert (rows[2]["consecutive_failures"], rows[2]["automation"]) == (0, "send")
    assert [i.subject for i in issues_of(db)] == ["Steady routines"]  # the good feed's post went on
    with db.session() as s:
        assert any("Feed 1 has failed 2 poll(s)" in n.text for n in needs_attention(s, at(4)))
    site.add("/broken", rss(("b0", "Before it broke", datetime(2026, 12, 31, 9, tzinfo=UTC))), "application/rss+xml")
    tick(at(5))
    rows = {row["id"]: row for row in json.loads(cli("feeds", "list", "--json"))}
    assert (rows[1]["consecutive_failures"], rows[1]["failing_since"], rows[1]["last_error"]) == (0, None, None)


@pytest.mark.postgres
def test_two_schedulers_and_a_restart_make_one_issue_per_post(loopback_allowed: Settings, site: Site) -> None:
    """Two rounds at once on PostgreSQL, each in its own transaction, after an import; then a
    "restarted" process (a new engine) runs the round again: one issue per post."""
    with postgres_schema() as url:
        db = Database(url)
        upgrade(db.engine)
        try:
            add_audience(db, 1, zones=ZONES[:1])
            feed_url = site.add("/feed", rss(*[(f"p{n}", f"Week note {n}", at(2 + n, 9)) for n in range(3)]),
                                "application/rss+xml")
            from newsletter.automations.configure import Wanted, set_feed_automation
            with db.session() as s:
                feed, _ = post_service.add_feed(s, feed_url)
                set_feed_automation(s, loopback_allowed, feed.id, Wanted(mode="send"), now=at(1))
            post_service.poll_all(db, loopback_allowed, at(6))
            barrier = threading.Barrier(2)
            errors: list[BaseException] = []
            made: list[int] = []

            def one_round() -> None:
                try:
                    with db.session() as s:
                        barrier.wait(10)
                        made.extend(run_round(s, loopback_allowed, at(6)).automations.made)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=one_round) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not errors
            assert len(made) == 3  # between them the two rounds made each issue once
            restarted = Database(url)
            with restarted.session() as s:
                assert run_round(s, loopback_allowed, at(6, 13)).automations.made == []
            restarted.engine.dispose()
            with db.session() as s:
                issues = list(s.scalars(select(Issue).order_by(Issue.id)))
                assert sorted(i.subject for i in issues) == ["Week note 0", "Week note 1", "Week note 2"]
                assert s.scalar(select(func.count()).select_from(AutomationIssue)) == 3
        finally:
            db.engine.dispose()


# --- digests ------------------------------------------------------------------------------------------


def test_weekly_digest_of_three_posts_then_skipped_when_nothing_is_new(any_db: Database, site: Site,
                                                                       loopback_allowed: Settings) -> None:
    db = any_db
    add_audience(db, 2, zones=ZONES)
    posts = [(f"d{n}", title, at(2 + n, 9)) for n, title in enumerate(
        ("Winter walks", "Meals that keep you going", "A calmer evening routine"))]
    url = site.add("/feed", rss(*posts), "application/rss+xml")
    cli("feeds", "add", url)
    out = cli("digests", "automate", "--mode", "send", "--every", "week", "--slot", "mon 08:00",
              "--start", "2027-01-01 00:00")
    assert "next slot" in out
    tick(at(5))  # Tuesday: next Monday's digest is made a day before its slot begins
    assert issues_of(db) == []
    tick(at(10, 12))  # Sunday noon: within a day of Monday 08:00 in the first zone
    tick(at(10, 13))
    [digest] = issues_of(db)
    assert (digest.layout, digest.local_send_time) == ("digest", "2027-01-11T08:00")
    with db.session() as s:
        issue = s.get(Issue, digest.id)
        assert [e.post.title for e in issue.digest_entries] == [t for _, t, _ in posts]
        assert not blocking(issue_service.preflight(issue, loopback_allowed))
        assert len(issue.html.encode()) < GMAIL_CLIP_BYTES
    tick(at(11, 18))
    assert sent_to(db, digest.id) == 2

    tick(at(17, 13))  # the next week: no new post, so no digest
    assert len(issues_of(db)) == 1
    with db.session() as s:
        notes = list(s.scalars(select(AutomationIssue.note).order_by(AutomationIssue.id)))
    assert notes == [None, "nothing new since the last digest: skipped"]


# --- slots and templates ------------------------------------------------------------------------------


def test_slots_read_and_fall_on_the_right_days() -> None:
    slot = slots.parse_slot("Tuesday 9:00")
    assert (slot.days_text, slot.time_text) == ("tue", "09:00")
    assert str(slots.parse_slot("thu,mon 08:30")) == "mon,thu 08:30"
    # Monday 2027-01-04 18:00 UTC: Tuesday 09:00 has not begun anywhere yet (UTC+14 reaches it at 19:00).
    assert slots.next_slot(slot, slots.WEEK, datetime(2027, 1, 4, 18, tzinfo=UTC)) == date(2027, 1, 5)
    assert slots.next_slot(slot, slots.WEEK, datetime(2027, 1, 4, 19, tzinfo=UTC)) == date(2027, 1, 12)
    monthly = slots.parse_slot("mon 08:00")
    assert slots.next_slot(monthly, slots.MONTH, datetime(2027, 1, 5, tzinfo=UTC)) == date(2027, 2, 1)
    assert slots.starts(date(2027, 1, 5), slot) == datetime(2027, 1, 4, 19, tzinfo=UTC)
    for bad in ("", "09:00", "tue", "tue 25:00", "someday 09:00", "tue 09:00:30"):
        with pytest.raises(InputError):
            slots.parse_slot(bad)


@pytest.mark.parametrize("template", ["{title.__class__}", "{title:>400}", "{title!r}", "{0}", "{email}",
                                      "New {", "{title", "x" * 301])
def test_templates_take_only_the_small_placeholder_set(template: str) -> None:
    with pytest.raises(InputError, match="subject template"):
        wording.check_template(template, "subject template")


def test_a_template_that_would_name_a_condition_gives_the_safe_suggestion(settings: Settings, db: Database) -> None:
    assert wording.check_template("  New this week:   {title} ({count}) ", "subject template") == \
        "New this week: {title} ({count})"
    with db.session() as s:
        from tests.sendkit import make_issue
        issue = s.get(Issue, make_issue(db, settings))
        post = issue.post
        assert wording.subject_for("New this week: {title}", post, settings) == "New this week: Small Steps"
        post.title = "Ketamine therapy for depression: what a first visit is like"
        subject = wording.subject_for("New this week: {title}", post, settings)
        assert "epression" not in subject and "etamine" not in subject


def test_bad_automation_settings_are_refused_naming_each_field(settings: Settings, db: Database) -> None:
    with db.session() as s:
        post_service.add_feed(s, "https://clinic.example/feed")
    out = cli("feeds", "automate", "1", "--mode", "sometimes", "--slot", "tue 9", "--layout", "digest",
              "--list", "nosuch", "--subject-template", "{body}", code=2)
    for words in ("Choose a mode", "not a time", "choose full or teaser", "no list 'nosuch'", "{body}"):
        assert words in " ".join(out.split()), out
    assert "error" in cli("feeds", "automate", "9", "--mode", "send", code=1)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AutomationIssue)) == 0


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_migration_goes_down_and_up_again(settings: Settings, dialect: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from newsletter.database import alembic_config, current_revision, head_revision

    def round_trip(db: Database) -> None:
        upgrade(db.engine)
        with db.session() as s:
            post_service.add_feed(s, "https://clinic.example/feed")
        command.downgrade(alembic_config(db.engine), "0023")
        assert "automations" not in inspect(db.engine).get_table_names()
        assert "failing_since" not in {c["name"] for c in inspect(db.engine).get_columns("feeds")}
        upgrade(db.engine)
        assert current_revision(db.engine) == head_revision(db.engine)
        with db.session() as s:
            assert [f.consecutive_failures for f in post_service.list_feeds(s)] == [0]

    if dialect == "sqlite":
        round_trip(Database.from_settings(settings))
        return
    with postgres_schema() as url:
        db = Database(url)
        try:
            round_trip(db)
        finally:
            db.engine.dispose()


def test_an_issue_the_preflight_stops_is_left_as_a_draft_and_staff_are_told(loopback_allowed: Settings,
                                                                            db: Database, site: Site) -> None:
    """A teaser needs the post's address; a feed entry without a link gives none: the issue is made
    once, stays a draft with the reason, and is not tried again each round."""
    add_audience(db, 1, zones=ZONES[:1])
    feed = ('<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title><item><guid isPermaLink="false">x1</guid>'
            f"<title>Quiet mornings</title><pubDate>{format_datetime(at(2, 9))}</pubDate><description>Three small "
            "habits for a calmer start to the day, tried by our team.</description></item></channel></rss>")
    cli("feeds", "add", site.add("/feed", feed, "application/rss+xml"))
    cli("feeds", "automate", "1", "--mode", "send", "--layout", "teaser", "--start", "2027-01-01 00:00")
    tick(at(3))
    tick(at(4))
    [issue] = issues_of(db)
    assert (issue.status, issue.scheduled_at) == (IssueStatus.DRAFT, None)
    [row] = json.loads(cli("feeds", "list", "--json"))
    assert row["last_problem"].startswith("left as a draft: the preflight failed")
    with db.session() as s:
        assert any("left as a draft" in n.text for n in needs_attention(s, at(4)))


def test_a_round_working_from_a_stale_view_is_stopped_by_the_unique_key(any_db: Database, site: Site) -> None:
    """What a second scheduler that read the posts before the first committed would do: make the
    issue of a post already made. The database's unique key refuses it; nothing else changes."""
    from newsletter.automations import runner
    from newsletter.models import Automation, Post

    db = any_db
    url = site.add("/feed", rss(("a", "Morning light", at(2, 9))), "application/rss+xml")
    cli("feeds", "add", url)
    cli("feeds", "automate", "1", "--mode", "send", "--start", "2027-01-01 00:00")
    tick(at(3))
    settings = get_settings()
    with db.session() as s:
        report = runner.AutomationReport()
        automation = s.scalar(select(Automation))
        post = s.scalar(select(Post).where(Post.title == "Morning light"))
        runner._make(s, settings, automation, at(3), report, posts=[post])
        assert report.made == [] and report.scheduled == []
    assert len(issues_of(db)) == 1


def test_a_monthly_digest_goes_on_the_first_such_weekday(loopback_allowed: Settings, db: Database,
                                                         site: Site) -> None:
    add_audience(db, 1, zones=ZONES[:1])
    url = site.add("/feed", rss(("m1", "Winter light", at(10, 9)), ("m2", "Rest days", at(20, 9))),
                   "application/rss+xml")
    cli("feeds", "add", url)
    cli("digests", "automate", "--mode", "review", "--every", "month", "--slot", "mon 08:00",
        "--start", "2027-01-01 00:00", "--subject-template", "{newsletter}: {count} posts this month")
    tick(at(25))
    assert issues_of(db) == []
    tick(at(31))  # Monday 1 February is the month's first Monday
    [digest] = issues_of(db)
    assert (digest.local_send_time, digest.status) == ("2027-02-01T08:00", IssueStatus.AWAITING_APPROVAL)
    assert digest.subject.endswith(": 2 posts this month")
    [row] = json.loads(cli("digests", "list", "--json"))
    assert (row["every"], row["awaiting_approval"]) == ("month", [digest.id])


def test_a_slot_follows_each_contacts_clock_across_a_daylight_saving_change(loopback_allowed: Settings,
                                                                            db: Database, site: Site) -> None:
    """Tuesday 16 March 2027: Los Angeles is already on summer time (09:00 is 16:00 UTC), Madrid not
    yet (09:00 is 08:00 UTC)."""
    add_audience(db, 2, zones=ZONES)
    cli("feeds", "add", site.add("/feed", rss(("s1", "Spring walks", at(12, 9, 3))), "application/rss+xml"))
    cli("feeds", "automate", "1", "--mode", "send", "--slot", "tue 09:00", "--start", "2027-03-01 00:00")
    tick(at(13, 12, 3))
    [issue] = issues_of(db)
    tick(datetime(2027, 3, 16, 15, 30, tzinfo=UTC))
    assert sent_to(db, issue.id) == 1
    tick(datetime(2027, 3, 16, 16, 30, tzinfo=UTC))
    assert sent_to(db, issue.id) == 2
