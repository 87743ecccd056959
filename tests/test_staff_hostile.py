"""Hostile input against the staff pages on a real server, SQLite and PostgreSQL: what an insider or
a crafted request can send that a form never would (ids that are not ids, NUL characters, the last
code points, timestamps at the edge of the calendar), each answered with a page that says what was
wrong (400 or 404), never a 500, and nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from newsletter.config import Settings
from newsletter.staff.roles import Role
from subscribers.db import _following
from subscribers.suppression import is_suppressed
from tests.contactskit import BACKENDS, seed_person, serve_on
from tests.leadskit import web_lead
from tests.liveserver import LiveServer
from tests.staffkit import Login, csrf_of, make_user, sign_in

NOT_IDS = ["²", "٣", "999999999999", "99999999999999999999", "0", "-1", "1.5", "abc"]


@pytest.fixture(params=BACKENDS)
def any_server(request: pytest.FixtureRequest, settings: Settings) -> Iterator[LiveServer]:
    yield from serve_on(request, settings)


@contextmanager
def signed_in(server: LiveServer, role: Role) -> Iterator[httpx.Client]:
    login: Login = make_user(server.db, f"{role.value}@clinic.example", role)
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as c:
        sign_in(c, login)
        yield c


def test_lead_ids_that_are_not_ids_are_404(any_server: LiveServer) -> None:
    """"²" is a digit to ``str.isdigit`` but not to ``int``; 999999999999 overflows PostgreSQL's integer."""
    web_lead(any_server.db, "lee@example.org", "Lee")
    with signed_in(any_server, Role.CLINIC) as c:
        token = csrf_of(c.get("/staff/leads").text)
        for value in NOT_IDS:
            assert c.get(f"/staff/leads/{value}").status_code == 404, value
            assert c.get("/staff/leads", params={"stage": "new", "after": value}).status_code == 404, value
            for action, data in (("stage", {"stage": "contacted"}), ("bookings", {"date": "2030-01-01", "time": "10:00"})):
                answer = c.post(f"/staff/leads/{value}/{action}", data={**data, "csrf_token": token})
                assert answer.status_code == 404, (value, action)


def test_following_prefix_skips_surrogates_and_the_last_code_point() -> None:
    assert _following("ab") == "ac"
    assert _following("a\ud7ff") == "a\ue000"
    assert _following("a\U0010ffff") == "b"
    assert _following("\U0010ffff\U0010ffff") is None


@pytest.mark.parametrize("term", ["\U0010ffff", "a\ud7ff", "ana\U0010ffff", "%_\\"])
def test_search_by_the_last_code_points(any_server: LiveServer, term: str) -> None:
    seed_person(any_server.db, any_server.settings, "ana@example.org", name="Ana", suppressed=False)
    with signed_in(any_server, Role.MARKETING) as c:
        answer = c.post("/staff/contacts/search", data={"q": term, "csrf_token": csrf_of(c.get("/staff/contacts").text)})
        assert answer.status_code == 200
        assert "ana@example.org" not in answer.text  # nothing starts with these


def test_nul_in_a_filter_or_a_field_is_refused_by_name(any_server: LiveServer) -> None:
    seeded = seed_person(any_server.db, any_server.settings, "ana@example.org", name="Ana", suppressed=False)
    with signed_in(any_server, Role.MARKETING) as c:
        for key in ("list", "tag", "segment"):
            answer = c.get("/staff/contacts", params={key: "a\x00b"})
            assert answer.status_code == 400 and f"“{key}” holds a NUL character" in answer.text
        token = csrf_of(c.get("/staff/contacts").text)
        posts = [("/staff/contacts/search", {"q": "a", "list": "news\x00letter"}, "list"),
                 ("/staff/contacts/new", {"email": "n@example.org", "lists": "news\x00letter"}, "lists"),
                 ("/staff/contacts/export", {"segment": "x\x00"}, "segment"),
                 ("/staff/segments/new", {"name": "vip\x00", "rows": "1", "kind-0": "tag", "op-0": "is",
                                          "value-0": "vip", "action": "save"}, "name"),
                 (f"/staff/contacts/{seeded.contact_id}/suppress", {"reason": "manual", "note": "by\x00phone"}, "note")]
        for path, data, field in posts:
            answer = c.post(path, data={**data, "csrf_token": token})
            assert answer.status_code == 400, (path, answer.status_code)
            assert f"“{field}” holds a NUL character" in answer.text and "Nothing was changed" in answer.text
    with any_server.db.session() as s:
        assert not is_suppressed(s, "ana@example.org")


def test_a_timeline_cursor_past_the_calendar(any_server: LiveServer) -> None:
    seeded = seed_person(any_server.db, any_server.settings, "ana@example.org", name="Ana")
    with signed_in(any_server, Role.MARKETING) as c:
        for older in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "nonsense"):
            answer = c.get(f"/staff/contacts/{seeded.contact_id}", params={"older": older})
            assert answer.status_code == 200, older
