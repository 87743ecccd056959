"""The automation pages of the staff app over HTTP against the real app on uvicorn: a feed's
automation and the digest set by form (POST with CSRF), errors beside their fields with what was
typed kept, each change audited once, the approval rule, and what the feeds and home pages show."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from newsletter.automations.configure import Wanted, digest_automation, feed_automation, set_feed_automation
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.due import run_round
from newsletter.models import Automation, Feed
from newsletter.posts import service as post_service
from newsletter.posts.blocks import Block, ParsedPost
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from tests.liveserver import LiveServer, serving
from tests.staffkit import Login, make_user, post_form, signed_in

FEED_PAGE = "/staff/posts/feeds/1/automation"


@pytest.fixture
def feed(db: Database) -> int:
    with db.session() as s:
        found, _ = post_service.add_feed(s, "https://clinic.example/feed")
        return found.id


@pytest.fixture
def marketing(db: Database) -> Login:
    return make_user(db, "mia@clinic.example", Role.MARKETING)


@pytest.fixture
def http(live_server: LiveServer, marketing: Login, feed: int) -> Iterator[httpx.Client]:
    with signed_in(live_server, marketing) as c:
        yield c


def error_of(html: str, field_id: str) -> str:
    tag = re.search(rf'<(?:input|select)[^>]*\bid="{field_id}"[^>]*>', html, re.S)
    assert tag and 'aria-invalid="true"' in tag.group(0) and f"{field_id}-error" in tag.group(0), field_id
    found = re.search(rf'<p class="error" id="{field_id}-error">(.*?)</p>', html, re.S)
    assert found, field_id
    return found.group(1)


def audits(db: Database) -> list[tuple[str | None, str | None]]:
    with db.session() as s:
        return [tuple(r) for r in s.execute(select(AuditEntry.target, AuditEntry.detail)
                                            .where(AuditEntry.action == "automation_set").order_by(AuditEntry.id))]


def test_bad_values_come_back_beside_their_fields_and_nothing_is_stored(http: httpx.Client, db: Database) -> None:
    typed = {"mode": "review", "slot": "tue 9", "layout": "digest", "list": "nosuch", "segment": "",
             "subject_template": "New: {title.__class__}", "preheader_template": "{excerpt"}
    answer = post_form(http, FEED_PAGE, FEED_PAGE, typed)
    assert answer.status_code == 400
    html = answer.text
    assert "not a time" in error_of(html, "slot")
    assert "full or teaser" in error_of(html, "layout")
    assert "no list" in error_of(html, "list")
    assert "{title.__class__}" in error_of(html, "subject_template")
    assert "stray brace" in error_of(html, "preheader_template")
    assert 'value="tue 9"' in html and 'value="New: {title.__class__}"' in html  # what was typed is kept
    assert re.search(r'<option value="review" selected>', html)
    with db.session() as s:
        assert s.scalar(select(Automation.id)) is None
    assert audits(db) == []


def test_a_feed_automation_and_the_digest_are_saved_audited_and_shown(http: httpx.Client, db: Database) -> None:
    answer = post_form(http, FEED_PAGE, FEED_PAGE, {
        "mode": "review", "slot": "mon,thu 08:30", "layout": "teaser", "list": "", "segment": "",
        "subject_template": "New this week: {title}", "preheader_template": ""})
    assert answer.status_code == 303 and answer.headers["location"] == "/staff/posts/feeds"
    with db.session() as s:
        saved = feed_automation(s, 1)
        assert (saved.mode, saved.slot_days, saved.slot_time, saved.layout, saved.subject_template) == (
            "review", "mon,thu", "08:30", "teaser", "New this week: {title}")
    assert audits(db) == [("automation 1", "feed 1: review, mon,thu 08:30")]
    feeds = http.get("/staff/posts/feeds").text
    assert "Review" in feeds and "Mon, Thu at 08:30" in feeds and "next slot" in feeds

    answer = post_form(http, "/staff/posts/digest", "/staff/posts/digest", {
        "mode": "draft", "slot": "mon 08:00", "every": "month", "list": "", "segment": "",
        "subject_template": "", "preheader_template": ""})
    assert answer.status_code == 303
    with db.session() as s:
        assert (digest_automation(s, None).every, digest_automation(s, None).layout) == ("month", "digest")
    assert "every month" in http.get("/staff/posts/feeds").text
    assert http.get("/staff/posts/feeds/99/automation").status_code == 404


def test_without_a_token_nothing_changes(http: httpx.Client, db: Database) -> None:
    answer = http.post(FEED_PAGE, data={"mode": "send", "slot": "tue 09:00"})
    assert answer.status_code == 403
    with db.session() as s:
        assert s.scalar(select(Automation.id)) is None


def test_with_approval_on_only_an_admin_may_let_an_automation_send(settings: Settings, db: Database,
                                                                   feed: int, marketing: Login) -> None:
    strict = settings.model_copy(update={"issue_approval": True})
    admin = make_user(db, "ana@clinic.example", Role.ADMIN)
    form = {"mode": "send", "slot": "tue 09:00", "layout": "full", "list": "", "segment": "",
            "subject_template": "", "preheader_template": ""}
    with serving(strict, db) as live:
        with signed_in(live, marketing) as c:
            answer = post_form(c, FEED_PAGE, FEED_PAGE, form)
            assert answer.status_code == 400 and "only an admin" in error_of(answer.text, "mode")
        with signed_in(live, admin) as c:
            assert post_form(c, FEED_PAGE, FEED_PAGE, form).status_code == 303


def test_the_home_page_tells_staff_of_drafts_an_automation_made(http: httpx.Client, db: Database,
                                                                settings: Settings) -> None:
    now = datetime(2027, 1, 3, 12, tzinfo=UTC)
    with db.session() as s:
        set_feed_automation(s, settings, 1, Wanted(mode="draft"), now=datetime(2027, 1, 1, tzinfo=UTC))
    with db.session() as s:
        made = post_service.store_post(s, ParsedPost(title="Walking in winter", published_at=datetime(
            2027, 1, 2, tzinfo=UTC), blocks=[Block("paragraph", html="A short walk each day helps.")]),
            feed=s.get(Feed, 1), entry_key="w1")
        assert made.created
    with db.session() as s:
        assert run_round(s, settings, now).automations.made == [1]
    home = http.get("/staff/").text
    assert "Automations need you" in home and "made draft issue 1" in home
    assert 'href="/staff/issues/1"' in home
