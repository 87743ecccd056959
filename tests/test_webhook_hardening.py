"""The webhooks against an attacker, over real HTTP: unsigned SendGrid posts are refused unless the
development setting says otherwise, a stranger's address is never kept in plain text, hostile bodies
get a clear 400 (never a 500) and store nothing, and both webhooks read bodies under one cap."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from newsletter.config import Settings, get_settings
from newsletter.database import Database, upgrade
from newsletter.models import Event, Issue
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.web.sendgrid_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from subscribers.leads import add_lead
from subscribers.models import Booking, Contact, Subscription, Suppression
from subscribers.suppression import address_hash, is_suppressed
from tests.conftest import postgres_schema
from tests.liveserver import LiveServer, serving
from tests.sendkit import ScriptedTransport, add_audience, make_issue
from tests.webhook_kit import SIGNER, post_bookings, post_sendgrid, snapshot, webhook_server

NOW = datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc)
STRANGER = "stranger@example.net"


def sent_to(db: Database, settings: Settings, count: int) -> None:
    """An issue sent to ``count`` confirmed subscribers, reader0@example.org and on."""
    issue_id = make_issue(db, settings)
    add_audience(db, count)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), NOW)
    Dispatcher(settings, db, ScriptedTransport(), sleep=lambda _: None, clock=lambda: NOW).run_until_idle()


def event(kind: str, email: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"event": kind, "email": email, "sg_event_id": f"attack-{n}", "timestamp": 1796317200,
            "sg_message_id": "msg-1.filter", **extra}


ATTACK = [event("spamreport", "reader0@example.org", 1),
          event("bounce", "reader1@example.org", 2, type="bounce", reason="550 no such user"),
          event("unsubscribe", STRANGER, 3)]


def standing(db: Database) -> list[tuple[str, str, list[str]]]:
    with db.session() as s:
        return [(c.email, c.status, sorted(sub.status for sub in s.scalars(
            select(Subscription).where(Subscription.contact_id == c.id))))
            for c in s.scalars(select(Contact).order_by(Contact.id))]


# Unsigned posts --------------------------------------------------------------------------------------


def test_an_unsigned_post_is_refused_by_default_and_changes_nobody(live_server: LiveServer, db: Database,
                                                                   settings: Settings) -> None:
    """The outside attack: with no verification key set, an unsigned post was stored (200, stored 3)."""
    sent_to(db, settings, 2)
    before = snapshot(db)
    answer = httpx.post(live_server.url + "/webhooks/sendgrid", json=ATTACK, timeout=30)
    assert answer.status_code == 403
    detail = answer.json()["detail"]
    assert "unsigned" in detail and "SENDGRID_WEBHOOK_PUBLIC_KEY" in detail and "Event Webhook" in detail
    assert snapshot(db) == before
    assert standing(db) == [("reader0@example.org", "active", ["confirmed"]),
                            ("reader1@example.org", "active", ["confirmed"])]
    with db.session() as s:
        assert not is_suppressed(s, STRANGER)


def test_the_development_setting_lets_unsigned_posts_in_and_warns_once_at_start(
        settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NEWSLETTER_ALLOW_UNSIGNED_WEBHOOKS", "true")
    get_settings.cache_clear()
    development = get_settings()
    with caplog.at_level(logging.WARNING, logger="newsletter.webhooks.sendgrid"):
        with serving(development, db) as server:
            started = [r.getMessage() for r in caplog.records]
            first = httpx.post(server.url + "/webhooks/sendgrid", json=[event("processed", "", 1)], timeout=30)
            second = httpx.post(server.url + "/webhooks/sendgrid", json=[event("processed", "", 2)], timeout=30)
    assert (first.status_code, second.status_code) == (200, 200) and first.json()["stored"] == 1
    assert len(started) == 1 and "NEWSLETTER_ALLOW_UNSIGNED_WEBHOOKS" in started[0]
    assert "development only" in started[0]
    assert [r.getMessage() for r in caplog.records if "without a signature" in r.getMessage()] == started
    # With a key set as well, the key wins: an unsigned post is refused.
    with webhook_server(development, db) as server:
        assert post_sendgrid(server, json.dumps([event("processed", "", 3)]).encode(), signed=False).status_code == 403


def test_no_warning_when_unsigned_posts_are_refused(settings: Settings, db: Database,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="newsletter.webhooks.sendgrid"):
        with serving(settings, db):
            pass
    assert not [r for r in caplog.records if "without a signature" in r.getMessage()]


# Addresses that are not ours ------------------------------------------------------------------------


def test_an_unknown_address_is_suppressed_by_its_salted_hash_only(settings: Settings, db: Database) -> None:
    sent_to(db, settings, 2)
    with webhook_server(settings, db) as server:
        answer = post_sendgrid(server, json.dumps(ATTACK + [
            event("bounce", "Other.Stranger@Example.NET", 4, type="bounce", reason="550 unknown"),
            event("spamreport", "not an address", 5)]).encode())
    assert answer.status_code == 200 and answer.json()["stored"] == 5
    with db.session() as s:
        rows = {row.email_hash: (row.email, row.reason) for row in s.scalars(select(Suppression))}
        assert rows == {
            address_hash(s, "reader0@example.org"): ("reader0@example.org", "spam_complaint"),  # our contacts
            address_hash(s, "reader1@example.org"): ("reader1@example.org", "hard_bounce"),
            address_hash(s, STRANGER): (None, "unsubscribed"),  # strangers: the hash alone
            address_hash(s, "Other.Stranger@example.net"): (None, "hard_bounce"),
        }
        assert is_suppressed(s, STRANGER) and is_suppressed(s, "other.stranger@example.net")
        stored = json.dumps([[str(v) for v in row] for row in s.execute(select(Suppression.__table__))]).lower()
    assert "stranger" not in stored and "not an address" not in stored


# Hostile bodies --------------------------------------------------------------------------------------

DEEP = 100_000
SENDGRID_HOSTILE: dict[str, bytes] = {
    "arrays nested 100,000 deep": b"[" * DEEP + b"]" * DEEP,
    "objects nested inside an event": b'[{"event":"dropped","sg_event_id":"d1","timestamp":1796317200,"reason":'
                                      + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}]",
    "a 5000-digit number": b'[{"event":"processed","sg_event_id":"n1","timestamp":' + b"9" * 5000 + b"}]",
    "a number beyond a double": b'[{"event":"processed","sg_event_id":"n2","timestamp":1e999}]',
    "NaN": b'[{"event":"processed","sg_event_id":"n3","timestamp":NaN}]',
    "Infinity": b'[{"event":"processed","sg_event_id":"n4","timestamp":-Infinity}]',
    "bytes that are not UTF-8": b'[{"event":"dropped","sg_event_id":"u1","timestamp":1796317200,"reason":"\xff\xfe"}]',
    "a lone surrogate": b'[{"event":"dropped","sg_event_id":"u2","timestamp":1796317200,"email":"reader0@example.org",'
                        b'"delivery_id":"1","reason":"Bounced \\ud800 Address"}]',
    "a byte-order mark": b"\xef\xbb\xbf[]",
    "trailing data": b"[] []",
    "an object, not an array": b'{"event":"processed"}',
    "nothing": b"",
}
BOOKING = {"email": "jo@example.org", "external_id": "cal-1", "booked_for": "2026-12-01T10:00:00Z"}
BOOKINGS_HOSTILE: dict[str, bytes] = {
    "arrays nested 100,000 deep": b"[" * DEEP + b"]" * DEEP,
    "objects nested in a field": b'{"email":"jo@example.org","external_id":"c","name":' + b'{"a":' * 5000 + b"1"
                                 + b"}" * 5000 + b"}",
    "a 5000-digit number": b'{"email":"jo@example.org","external_id":' + b"9" * 5000 + b"}",
    "NaN": b'{"email":"jo@example.org","external_id":"c","booked_for":NaN}',
    "bytes that are not UTF-8": b'{"email":"jo@example.org","external_id":"\xff"}',
    "a lone surrogate in the address": b'{"email":"jo\\udc00@example.org","external_id":"c"}',
    "a time past the year 9999 in UTC": json.dumps({**BOOKING, "booked_for": "9999-12-31T23:59:59-14:00"}).encode(),
    "a time before the year 1 in UTC": json.dumps({**BOOKING, "booked_for": "0001-01-01T00:00:00+14:00"}).encode(),
    "a control character in the external id": json.dumps({**BOOKING, "external_id": "cal\u00001"}).encode(),
    "the email as a list": json.dumps({**BOOKING, "email": ["jo@example.org"]}).encode(),
    "the email as null": json.dumps({**BOOKING, "email": None}).encode(),
    "the external id as a number": json.dumps({**BOOKING, "external_id": 7}).encode(),
    "booked_for as a number": json.dumps({**BOOKING, "booked_for": 1796317200}).encode(),
    "booked_for as an object": json.dumps({**BOOKING, "booked_for": {"at": "now"}}).encode(),
    "an array, not an object": json.dumps([BOOKING]).encode(),
    "nothing": b"",
}


@pytest.fixture
def hooked(settings: Settings, db: Database) -> Iterator[LiveServer]:
    sent_to(db, settings, 1)
    with db.session() as s:
        add_lead(s, "jo@example.org", default_timezone="UTC", source="web_form", consent_method="form", origin="api")
    with webhook_server(settings, db) as server:
        yield server


def one_line(text: str) -> bool:
    return bool(text.strip()) and "\n" not in text and "Traceback" not in text


@pytest.mark.parametrize("case", SENDGRID_HOSTILE)
def test_hostile_sendgrid_bodies_get_a_clear_400_and_store_nothing(case: str, hooked: LiveServer,
                                                                   db: Database) -> None:
    before = snapshot(db)
    answer = post_sendgrid(hooked, SENDGRID_HOSTILE[case])  # signed: the parser is reached
    assert answer.status_code == 400, (case, answer.text[:300])
    assert one_line(answer.json()["detail"]), case
    assert snapshot(db) == before


@pytest.mark.parametrize("case", BOOKINGS_HOSTILE)
def test_hostile_booking_bodies_get_a_clear_400_and_store_nothing(case: str, hooked: LiveServer,
                                                                  db: Database) -> None:
    before = snapshot(db)
    answer = post_bookings(hooked, BOOKINGS_HOSTILE[case])
    assert answer.status_code == 400, (case, answer.text[:300])
    assert one_line(answer.json()["error"]), case
    assert snapshot(db) == before


def test_a_signature_header_that_is_not_ascii_is_refused_not_a_crash(hooked: LiveServer, db: Database) -> None:
    body = json.dumps(BOOKING).encode()
    before = snapshot(db)
    answer = httpx.post(hooked.url + "/webhooks/bookings", content=body,
                        headers=[(b"X-Signature", b"sha256=\xe9\xe9")], timeout=30)
    assert answer.status_code == 403 and answer.json() == {"error": "bad or missing X-Signature"}
    stamp = SIGNER.headers(b"[]")[TIMESTAMP_HEADER].encode()
    sendgrid = httpx.post(hooked.url + "/webhooks/sendgrid", content=b"[]", timeout=30,
                          headers=[(SIGNATURE_HEADER.encode(), b"\xe9\xe9=="), (TIMESTAMP_HEADER.encode(), stamp)])
    assert sendgrid.status_code == 403
    assert snapshot(db) == before


def test_a_sound_booking_still_goes_through(hooked: LiveServer, db: Database) -> None:
    answer = post_bookings(hooked, json.dumps(BOOKING).encode())
    assert answer.status_code == 201 and answer.json()["created"] is True


@pytest.mark.postgres
def test_control_characters_never_reach_postgresql(settings: Settings) -> None:
    """PostgreSQL refuses NUL in text: a reason or URL loses its control characters (and is stored);
    an external id with one is refused. Neither is a 500."""
    with postgres_schema() as url:
        db = Database(url)
        upgrade(db.engine)
        try:
            with db.session() as s:
                add_lead(s, "jo@example.org", default_timezone="UTC", source="web_form", consent_method="form",
                         origin="api")
            with webhook_server(settings, db) as server:
                body = json.dumps([
                    event("dropped", "x@example.org", 1, reason="Bounced\u0000 Address\r\n"),
                    event("click", "x@example.org", 2, url="https://clinic.example/\u0000a\u001fb")]).encode()
                stored = post_sendgrid(server, body)
                before = snapshot(db)
                booking = post_bookings(server, json.dumps({**BOOKING, "external_id": "cal\u00001"}).encode())
            assert stored.status_code == 200 and stored.json()["stored"] == 2, stored.text
            with db.session() as s:
                assert [(e.reason, e.url) for e in s.scalars(select(Event).order_by(Event.id))] == [
                    ("Bounced Address", None), (None, "https://clinic.example/ab")]
            assert booking.status_code == 400 and "external id" in booking.json()["error"]
            assert snapshot(db) == before
            with db.session() as s:
                assert s.scalars(select(Booking)).all() == []
        finally:
            db.engine.dispose()


# One capped reader for both webhooks ---------------------------------------------------------------


def test_both_webhooks_refuse_an_oversized_body_the_same_way(settings: Settings, db: Database) -> None:
    limit = 2000
    with webhook_server(settings, db, webhook_max_bytes=limit) as server:
        big = b"[" + b" " * limit + b"]"

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted while reading
            for start in range(0, len(big), 500):
                yield big[start:start + 500]

        answers = []
        for path, headers in (("/webhooks/sendgrid", SIGNER.headers(big)),
                              ("/webhooks/bookings", {"X-Signature": "sha256=" + "0" * 64})):
            answers.append(httpx.post(server.url + path, content=big, headers=headers, timeout=30))
            answers.append(httpx.post(server.url + path, content=chunked(), headers=headers, timeout=30))
    assert [a.status_code for a in answers] == [413] * 4
    details = {(a.json().get("detail") or a.json().get("error")) for a in answers}
    assert details == {f"the body is larger than {limit} bytes"}
