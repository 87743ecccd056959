"""The REST API (/api/v1) as a program calls it: the real app served by uvicorn on loopback, httpx as the
client, on SQLite and on PostgreSQL. Every endpoint with a valid token, no token, a revoked token, a
token without the scope and bad input; the idempotent booking; consent and double opt-in; paging;
the problem answers. Every answer is checked against the OpenAPI description the app serves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import ConfirmationEmail
from newsletter.staff.models import ApiToken, AuditEntry
from subscribers.models import Booking, ConsentEvent, Contact, Lead, Subscription
from tests.apikit import ALL_SCOPES, API, Described, bearer, described, make_token
from tests.contactskit import BACKENDS, serve_on
from tests.liveserver import LiveServer, serving
from tests.sendkit import make_issue


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, settings: Settings) -> Iterator[LiveServer]:
    yield from serve_on(request, settings)


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _count(db: Database, model: Any) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _problem(api: Described, answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    api.check(answer)
    body = answer.json()
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert body["code"] == code and body["title"] and body["detail"], body
    return body


# What each endpoint is called with: (method, path, scope, a valid call's body or query, the status it
# answers, bad input, what the bad input is answered, the field named). ``{contact}``, ``{lead}`` and
# ``{issue}`` are filled in as the walk makes them.
ENDPOINTS: list[tuple[str, str, str, dict[str, Any] | None, int, dict[str, Any] | None, int, str | None]] = [
    ("POST", "/contacts", "contacts:write", {"email": "ana@example.org", "name": "Ana Lopez", "tags": ["api"]}, 201,
     {"email": "ana@example.org", "name": "x" * 201}, 422, "name"),
    ("POST", "/contacts/{contact}/subscriptions", "contacts:write", {"list": "newsletter"}, 200,
     {"list": "no-such-list"}, 422, "list"),
    ("POST", "/contacts/{contact}/unsubscribe", "contacts:write", {"list": "newsletter"}, 200, {}, 422, "list"),
    ("POST", "/leads", "leads:write", {"email": "ben@example.org", "name": "Ben", "phone": "+1 415 555 0100",
                                       "utm": {"source": "newsletter"}}, 201,
     {"email": "ben@example.org", "source": "psychic"}, 422, "source"),
    ("PUT", "/leads/{lead}/stage", "leads:write", {"stage": "contacted"}, 200, {"stage": "cured"}, 422, "stage"),
    ("POST", "/bookings", "bookings:write",
     {"lead_id": "{lead}", "external_id": "cal-1", "booked_for": "2026-12-10T10:00:00-08:00"}, 201,
     {"lead_id": "{lead}", "external_id": "cal-2", "booked_for": "2026-12-10T10:00:00"}, 422, "booked_for"),
    ("GET", "/issues", "issues:read", {}, 200, {"limit": "0"}, 422, "limit"),
    ("GET", "/issues/{issue}/results", "reports:read", {}, 200, None, 404, None),
    ("GET", "/reports/funnel", "reports:read", {"source": "web_form"}, 200, {"since": "yesterday"}, 422, "since"),
    ("GET", "/reports/follow-up", "reports:read", {"days": "30"}, 200, {"days": "0"}, 422, "days"),
]


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str):
        for name, number in ids.items():
            if value == "{" + name + "}":
                return number
            value = value.replace("{" + name + "}", str(number))
        return value
    if isinstance(value, dict):
        return {key: _fill(item, ids) for key, item in value.items()}
    return value


def _call(http: httpx.Client, method: str, path: str, data: dict[str, Any] | None, secret: str | None) -> httpx.Response:
    if method == "GET":
        return http.request(method, API + path, params=data or {}, headers=bearer(secret))
    return http.request(method, API + path, json=data if data is not None else {}, headers=bearer(secret))


def test_every_endpoint_with_every_kind_of_caller(server: LiveServer, http: httpx.Client) -> None:
    api = described(http)
    db = server.db
    _, full = make_token(db, ALL_SCOPES, "integration")
    full_id = next(t for t in _tokens(db) if t.name == "integration").id
    _, revoked = make_token(db, ALL_SCOPES, "old", revoked=True)
    without = {scope: make_token(db, [s for s in ALL_SCOPES if s != scope], f"no {scope}")[1] for scope in ALL_SCOPES}
    ids = {"issue": make_issue(db, server.settings, "Walking in winter")}

    for method, template, scope, good, good_status, bad, bad_status, field in ENDPOINTS:
        path = _fill(template, ids)
        good, bad = _fill(good, ids), _fill(bad, ids)
        stored = (_count(db, Contact), _count(db, Lead), _count(db, Booking))

        missing = _problem(api, _call(http, method, path, good, None), 401, "missing_token")
        assert "Authorization: Bearer" in missing["detail"]
        assert _call(http, method, path, good, None).headers["www-authenticate"].startswith("Bearer")
        answer = _call(http, method, path, good, revoked)
        _problem(api, answer, 401, "invalid_token")
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
        answer = _call(http, method, path, good, without[scope])
        body = _problem(api, answer, 403, "insufficient_scope")
        assert scope in body["detail"] and f'scope="{scope}"' in answer.headers["www-authenticate"]

        if bad is not None:
            body = _problem(api, _call(http, method, path, bad, full), bad_status,
                            "validation" if bad_status == 422 else "not_found")
            assert [e["field"] for e in body["errors"]] == [field], body
            assert field in body["detail"]
        else:  # an id that names nothing
            _problem(api, _call(http, method, path.replace(str(ids["issue"]), "999999"), good, full), 404, "not_found")
        # Nothing was stored by any refused call.
        assert (_count(db, Contact), _count(db, Lead), _count(db, Booking)) == stored, f"{method} {path}"

        answer = api.check(_call(http, method, path, good, full))
        assert answer.status_code == good_status, (method, path, answer.text)
        if template == "/contacts":
            ids["contact"] = answer.json()["id"]
            assert answer.json()["created"] is True
        if template == "/leads":
            ids["lead"] = answer.json()["id"]

    with db.session() as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.actor == f"api token {full_id}")
                                 .order_by(AuditEntry.id)))
        assert [e.action for e in entries] == ["contact_added", "subscribed", "unsubscribed", "lead_added",
                                               "lead_stage_changed", "booking_recorded"]
        assert all("@" not in (e.target or "") + (e.detail or "") for e in entries)  # never a contact's data
        assert entries[0].target == f"contact {ids['contact']}" and entries[4].target == f"lead {ids['lead']}"
        lead = s.scalar(select(Lead).where(Lead.contact_id == ids["lead"]))
        assert lead.stage == "booked" and lead.contact_consent_method == "api"
        assert [c.by for c in lead.stage_changes] == ["api", "api", "booking"]
        assert s.get(ApiToken, full_id).last_used_at is not None


def _tokens(db: Database) -> list[ApiToken]:
    with db.session() as s:
        rows = list(s.scalars(select(ApiToken)))
        s.expunge_all()
        return rows


def test_the_same_booking_twice_is_one_booking(server: LiveServer, http: httpx.Client) -> None:
    api = described(http)
    token_id, secret = make_token(server.db, ["bookings:write", "leads:write"])
    call = {"email": "Cara@Example.org", "external_id": "cal-77", "booked_for": "2026-12-10T18:00:00Z"}
    first = api.check(http.post(f"{API}/bookings", json=call, headers=bearer(secret)))
    again = api.check(http.post(f"{API}/bookings", json=call, headers=bearer(secret)))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and again.json()["created"] is False
    assert first.json()["booked_for"].startswith("2026-12-10T18:00:00")
    assert _count(server.db, Booking) == 1
    with server.db.session() as s:  # someone who booked without enquiring became a lead, booked
        lead = s.scalar(select(Lead))
        assert lead.stage == "booked" and lead.contact_id == first.json()["lead_id"]
        recorded = s.scalars(select(AuditEntry.target).where(AuditEntry.action == "booking_recorded")).all()
        assert recorded == [f"lead {lead.contact_id}"]  # once, for the booking made

    # The same external id for another lead is refused, and changes nothing.
    other = api.check(http.post(f"{API}/leads", json={"email": "dan@example.org"}, headers=bearer(secret))).json()
    taken = http.post(f"{API}/bookings", json={"lead_id": other["id"], "external_id": "cal-77"}, headers=bearer(secret))
    assert _problem(api, taken, 422, "validation")["detail"].startswith("external id 'cal-77' is already used")
    neither = http.post(f"{API}/bookings", json={"external_id": "cal-78"}, headers=bearer(secret))
    assert _problem(api, neither, 422, "validation")["errors"] == [
        {"field": "lead_id", "message": "name the lead: lead_id (its contact id) or email"}]
    nobody = http.post(f"{API}/bookings", json={"lead_id": 424242, "external_id": "cal-79"}, headers=bearer(secret))
    _problem(api, nobody, 404, "not_found")
    assert _count(server.db, Booking) == 1


def test_double_opt_in_unless_the_caller_proves_consent_with_the_scope_to(server: LiveServer,
                                                                          http: httpx.Client) -> None:
    api = described(http)
    _, plain = make_token(server.db, ["contacts:write"])
    proof_id, proving = make_token(server.db, ["contacts:write", "contacts:consent"], "crm")
    consent = {"proof": "ticked the newsletter box on the intake form, 2026-12-01", "text": "Send me the newsletter.",
               "version": "intake-3"}

    pending = api.check(http.post(f"{API}/contacts", json={"email": "eve@example.org", "lists": ["newsletter"]},
                                  headers=bearer(plain))).json()
    assert pending["subscriptions"] == [{"list": "newsletter", "state": "pending", "confirmation_queued": True}]
    assert _count(server.db, ConfirmationEmail) == 1

    refused = http.post(f"{API}/contacts", json={"email": "fay@example.org", "lists": ["newsletter"],
                                                 "consent": consent}, headers=bearer(plain))
    assert "contacts:consent" in _problem(api, refused, 403, "insufficient_scope")["detail"]
    assert _count(server.db, Contact) == 1  # fay was not stored

    confirmed = api.check(http.post(f"{API}/contacts", json={"email": "fay@example.org", "lists": ["newsletter"],
                                                             "consent": consent}, headers=bearer(proving)))
    assert confirmed.status_code == 201
    assert confirmed.json()["subscriptions"] == [{"list": "newsletter", "state": "confirmed",
                                                  "confirmation_queued": False}]
    assert _count(server.db, ConfirmationEmail) == 1  # no email for a subscription proven by the caller
    with server.db.session() as s:
        events = list(s.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == confirmed.json()["id"])
                                .order_by(ConsentEvent.id)))
        assert [(e.action, e.method, e.form_id) for e in events] == [
            ("requested", "api", f"api token {proof_id}"), ("confirmed", "api", f"api token {proof_id}")]
        assert events[0].note == consent["proof"] and events[0].consent_text_hash

    # Subscribing again changes nothing; leaving every list suppresses the address, and a later
    # create of the same address answers 200 with the contact, suppressed.
    again = api.check(http.post(f"{API}/contacts/{confirmed.json()['id']}/subscriptions", json={},
                                headers=bearer(plain))).json()
    assert again == {"list": "newsletter", "state": "already", "confirmation_queued": False}
    gone = api.check(http.post(f"{API}/contacts/{confirmed.json()['id']}/unsubscribe", json={"all_lists": True},
                               headers=bearer(plain))).json()
    assert gone == {"id": confirmed.json()["id"], "changed": True}
    after = api.check(http.post(f"{API}/contacts", json={"email": "FAY@example.org", "lists": ["newsletter"]},
                                headers=bearer(plain)))
    assert after.status_code == 200
    assert after.json()["suppressed"] is True and after.json()["subscriptions"][0]["state"] == "suppressed"
    with server.db.session() as s:
        sub = s.scalar(select(Subscription).where(Subscription.contact_id == confirmed.json()["id"]))
        assert sub.status == "unsubscribed"
    missing = http.post(f"{API}/contacts/424242/unsubscribe", json={"all_lists": True}, headers=bearer(plain))
    _problem(api, missing, 404, "not_found")


def test_bad_requests_get_problem_details(settings: Settings, db: Database) -> None:
    with serving(settings, db) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        api = described(http)
        _, secret = make_token(db, ALL_SCOPES)
        headers = {**bearer(secret), "content-type": "application/json"}

        body = _problem(api, http.post(f"{API}/contacts", content=b'{"email": ', headers=headers), 400,
                        "malformed_json")
        assert "not valid JSON" in body["detail"]
        body = _problem(api, http.post(f"{API}/contacts", json={"email": "ana\u0000@example.org"},
                                       headers=bearer(secret)), 422, "validation")
        assert body["errors"] == [{"field": "email", "message": "must not contain NUL characters"}]
        body = _problem(api, http.post(f"{API}/contacts", content=b'{"email": "a@example.org", "name": "\\ud800"}',
                                       headers=headers), 422, "validation")
        assert body["errors"][0]["field"] == "name"
        body = _problem(api, http.post(f"{API}/contacts", json={"email": "a@example.org", "nmae": "Ana"},
                                       headers=bearer(secret)), 422, "validation")
        assert body["errors"][0]["field"] == "nmae"  # a misspelt field is named, not ignored
        body = _problem(api, http.post(f"{API}/contacts", json={"email": "a@example.org",
                                                               "custom_fields": {"clinic": "x" * 2001}},
                                       headers=bearer(secret)), 422, "validation")
        assert body["errors"][0]["field"] == "custom_fields.clinic"
        body = _problem(api, http.post(f"{API}/leads", json={"email": "not an address"}, headers=bearer(secret)),
                        422, "validation")
        assert "address" in body["detail"]
        body = _problem(api, http.post(f"{API}/leads", json={"email": "b@example.org", "phone": "call me maybe"},
                                       headers=bearer(secret)), 422, "validation")
        assert body["detail"].startswith("phone")
        body = _problem(api, http.post(f"{API}/bookings", json={"email": "c@example.org", "external_id": "x",
                                                               "booked_for": "9999-12-31T23:00:00-05:00"},
                                       headers=bearer(secret)), 422, "validation")
        assert body["errors"] == [{"field": "booked_for", "message": "must be within the years 1 to 9999 in UTC"}]
        body = _problem(api, http.put(f"{API}/leads/3000000000/stage", json={"stage": "lost"}, headers=bearer(secret)),
                        422, "validation")
        assert body["errors"][0]["field"] == "lead_id"
        assert _count(db, Contact) == 0  # nothing half stored

        # Too large: declared, and sent without a length (chunked).
        big = b'{"email": "' + b"a" * 70_000 + b'"}'
        _problem(api, http.post(f"{API}/contacts", content=big, headers=headers), 413, "too_large")
        _problem(api, http.post(f"{API}/contacts", content=iter([big[:40_000], big[40_000:]]), headers=headers),
                 413, "too_large")
        # Paths and methods the API does not have.
        _problem(api, http.get(f"{API}/patients", headers=bearer(secret)), 404, "not_found")
        answer = http.delete(f"{API}/issues", headers=bearer(secret))
        _problem(api, answer, 405, "method_not_allowed")
        assert "GET" in answer.headers["allow"]
        _problem(api, http.get(f"{API}/issues", params={"cursor": "made-up"}, headers=bearer(secret)), 422,
                 "validation")
        # A secret of the right shape that is no token, and a header that is not Bearer.
        _problem(api, http.get(f"{API}/issues", headers=bearer("nlt_" + "A" * 43)), 401, "invalid_token")
        _problem(api, http.get(f"{API}/issues", headers={"Authorization": "Basic YTpi"}), 401, "missing_token")


def test_issues_are_paged_by_cursor(settings: Settings, db: Database) -> None:
    made = [make_issue(db, settings, f"Issue {n}") for n in range(5)]
    with serving(settings, db) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        api = described(http)
        _, secret = make_token(db, ["issues:read"])
        seen, cursor, pages = [], None, 0
        while True:
            answer = api.check(http.get(f"{API}/issues", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                                        headers=bearer(secret))).json()
            seen += [issue["id"] for issue in answer["issues"]]
            pages += 1
            cursor = answer["next"]
            if cursor is None:
                break
        assert seen == sorted(made, reverse=True) and pages == 3
        assert answer["issues"][0]["status"] == "draft" and answer["issues"][0]["label"] == "draft"


def test_each_token_is_rate_limited(settings: Settings, db: Database) -> None:
    limited = settings.model_copy(update={"api_rate_per_minute": 3})
    with serving(limited, db) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        api = described(http)
        _, first = make_token(db, ["issues:read"], "first")
        _, second = make_token(db, ["issues:read"], "second")
        for _ in range(3):
            api.check(http.get(f"{API}/issues", headers=bearer(first)))
        answer = http.get(f"{API}/issues", headers=bearer(first))
        body = _problem(api, answer, 429, "rate_limited")
        assert 1 <= int(answer.headers["retry-after"]) <= 60 and "3 calls in a minute" in body["detail"]
        assert api.check(http.get(f"{API}/issues", headers=bearer(second))).status_code == 200  # per token


def test_a_revoked_token_is_refused_at_once_and_its_use_is_noted(settings: Settings, db: Database) -> None:
    from newsletter import api_tokens

    with serving(settings, db) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        token_id, secret = make_token(db, ["issues:read"])
        assert http.get(f"{API}/issues", headers=bearer(secret)).status_code == 200
        with db.session() as s:
            used = s.get(ApiToken, token_id).last_used_at
            assert used is not None
        assert http.get(f"{API}/issues", headers=bearer(secret)).status_code == 200
        with db.session() as s:
            assert s.get(ApiToken, token_id).last_used_at == used  # written at most once a minute
            api_tokens.revoke(s, s.get(ApiToken, token_id), actor="cli")
        assert http.get(f"{API}/issues", headers=bearer(secret)).status_code == 401


def test_reports_with_figures_and_the_follow_up_list_paged(server: LiveServer, http: httpx.Client) -> None:
    from datetime import timedelta

    from subscribers.db import utcnow
    from tests.leadskit import booking_click, opened, web_lead

    api = described(http)
    _, secret = make_token(server.db, ["reports:read", "issues:read"])
    now = utcnow()
    ana, ben, cal = (web_lead(server.db, f"{n}@example.org", n.title()) for n in ("ana", "ben", "cal"))
    booking_click(server.db, ana, "Sleep and mood", at=now - timedelta(hours=1))
    opened(server.db, ben, "Moving more", at=now - timedelta(hours=2))
    booking_click(server.db, cal, "Winter walks", at=now - timedelta(hours=3))

    seen, cursor = [], None
    for _ in range(3):
        page = api.check(http.get(f"{API}/reports/follow-up", headers=bearer(secret),
                                  params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        assert page["total"] == 3
        seen += [(lead["name"], lead["reason"]["kind"]) for lead in page["leads"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert [name for name, _ in seen] == ["Ana", "Ben", "Cal"]  # most recent activity first, each once
    assert seen[1][1] != seen[0][1]  # an open and a booking click are told apart

    issues = api.check(http.get(f"{API}/issues", headers=bearer(secret))).json()
    sleep = next(i for i in issues["issues"] if i["subject"] == "Sleep and mood")
    results = api.check(http.get(f"{API}/issues/{sleep['id']}/results", headers=bearer(secret))).json()
    assert (results["delivered"], results["unique_opens"], results["unique_clicks"]) == (1, 1, 1)
    assert results["top_links"][0]["is_booking"] is True
    assert [(r["language"], r["default"], r["unique_clicks"]) for r in results["by_language"]] == [("en", True, 1)]

    funnel = api.check(http.get(f"{API}/reports/funnel", headers=bearer(secret),
                                params={"since": (now - timedelta(days=1)).isoformat()})).json()
    assert (funnel["total"]["leads"], funnel["total"]["emailed"], funnel["total"]["engaged"]) == (3, 3, 3)
    assert list(funnel["by_source"]) == ["web_form"]
    # A cursor of another list is refused, naming the parameter.
    wrong = http.get(f"{API}/reports/follow-up", params={"cursor": issues["next"] or "aXNzdWVzOjU"},
                     headers=bearer(secret))
    assert _problem(api, wrong, 422, "validation")["errors"][0]["field"] == "cursor"


def test_the_same_booking_sent_at_once_is_still_one_booking(server: LiveServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.leadskit import web_lead

    lead = web_lead(server.db, "gil@example.org", "Gil")
    _, secret = make_token(server.db, ["bookings:write"])
    call = {"lead_id": lead, "external_id": "cal-race", "booked_for": "2026-12-12T09:00:00+00:00"}

    def book(_: int) -> tuple[int, int]:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answer = http.post(f"{API}/bookings", json=call, headers=bearer(secret))
            return answer.status_code, answer.json()["id"]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(book, range(4)))
    assert sorted(status for status, _ in answers) == [200, 200, 200, 201]
    assert len({booking for _, booking in answers}) == 1
    assert _count(server.db, Booking) == 1


def test_a_locked_database_is_answered_503_with_retry_after_and_nothing_changed(settings: Settings, db: Database) -> None:
    """SQLite held by another writer past the busy timeout (here half a second): the call says so and
    may be retried; nothing half stored."""
    import sqlite3

    assert settings.database_url is not None and settings.database_url.startswith("sqlite:///")
    _, secret = make_token(db, ["leads:write"])
    impatient = Database(settings.database_url + "?timeout=0.5")
    with serving(settings, impatient) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        api = described(http)
        holder = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process writing
            answer = http.post(f"{API}/leads", json={"email": "hal@example.org"}, headers=bearer(secret))
            body = _problem(api, answer, 503, "unavailable")
            assert answer.headers["retry-after"] == "5" and "nothing was changed" in body["detail"]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert _count(db, Lead) == 0
        assert api.check(http.post(f"{API}/leads", json={"email": "hal@example.org"},
                                   headers=bearer(secret))).status_code == 201
    impatient.engine.dispose()
