"""SendGrid's Event Webhook over real HTTP: signatures, idempotence, and the effect of every event type.

Two key pairs are used: SendGrid's own published test vector (from sendgrid-python's
``test/unit/test_eventwebhook.py``), and a P-256 pair generated here to sign posts of our own. Every
post is signed, as SendGrid signs them (unsigned posts are refused; see test_webhook_hardening.py).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import func, select, update

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Delivery, Event, Issue, SendBatch
from newsletter.sending import ledger, schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.tracking.provider_events import store_events
from newsletter.transports.base import OutcomeUnknown
from newsletter.web.sendgrid_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, public_key, signature_is_valid
from subscribers.lists import ensure_list
from subscribers.models import ConsentEvent, Contact, Subscription, Suppression
from subscribers.suppression import address_hash
from tests.liveserver import LiveServer
from tests.sendkit import ScriptedTransport, add_audience, make_issue, raises
from tests.webhook_signer import Signer

NOW = datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc)
URL = "/webhooks/sendgrid"

# SendGrid's published vector: the exact bytes it signed, trailing CRLF included.
SG_PUBLIC_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaIN"
                 "XvVpiglSI8eNEc6wEA3F+g==")
SG_SIGNATURE = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
SG_TIMESTAMP = "1600112502"
SG_PAYLOAD = (
    b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address",'
    b'"sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",'
    b'"sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",'
    b'"smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'
)


# Helpers ----------------------------------------------------------------------------------------


SIGNER = Signer()  # one key pair for the module: generating one costs more than a test


@pytest.fixture
def signer() -> Signer:
    return SIGNER


@pytest.fixture
def live_server(live_server: LiveServer) -> LiveServer:
    """The live server verifying signatures with our key (the router reads app.state.settings)."""
    live_server.app.state.settings = live_server.settings.model_copy(  # type: ignore[attr-defined]
        update={"sendgrid_webhook_public_key": SecretStr(SIGNER.public)})
    return live_server


@pytest.fixture
def signed_server(live_server: LiveServer) -> LiveServer:
    return live_server


def post(server: LiveServer, body: bytes | list[Any], headers: dict[str, str] | None = None) -> httpx.Response:
    """A post signed as SendGrid signs it, unless ``headers`` are given."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = SIGNER.headers(raw) if headers is None else headers
    return httpx.post(server.url + URL, content=raw, headers={"Content-Type": "application/json", **headers},
                      timeout=30)


def send_issue(db: Database, settings: Settings, count: int, transport: ScriptedTransport | None = None,
               start: int = 0) -> tuple[int, list[int]]:
    """An issue sent to ``count`` readers; returns its id and its delivery ids (in contact order)."""
    issue_id = make_issue(db, settings)
    add_audience(db, count, start=start)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), NOW)
    Dispatcher(settings, db, transport or ScriptedTransport(), sleep=lambda _: None, clock=lambda: NOW).run_until_idle()
    with db.session() as s:
        ids = list(s.scalars(select(Delivery.id).where(Delivery.issue_id == issue_id).order_by(Delivery.contact_id)))
    return issue_id, ids


def ev(kind: str, delivery_id: int | None, email: str = "", **extra: Any) -> dict[str, Any]:
    """One SendGrid event as it arrives: custom args top-level, plus what SendGrid always adds."""
    event: dict[str, Any] = {"event": kind, "sg_event_id": secrets.token_urlsafe(16), "timestamp": 1796317200,
                             "email": email, "sg_message_id": "msg-1.filterdrecv-5645d9c87f-2x7bq-1-0",
                             "smtp-id": "<msg-1@ismtpd0001p1las1.sendgrid.net>", "ip": "203.0.113.9",
                             "useragent": "Mozilla/5.0 (iPhone)", "category": ["issue-1"], **extra}
    if delivery_id is not None:
        event["delivery_id"] = str(delivery_id)
    return event


def status(db: Database, delivery_id: int) -> str:
    with db.session() as s:
        return s.get(Delivery, delivery_id).status


def contact_of(db: Database, email: str) -> Contact:
    with db.session() as s:
        return s.scalar(select(Contact).where(Contact.email == email))


def suppression(db: Database, email: str) -> str | None:
    with db.session() as s:
        return s.scalar(select(Suppression.reason).where(Suppression.email_hash == address_hash(s, email)))


def events(db: Database) -> list[Event]:
    with db.session() as s:
        return list(s.scalars(select(Event).order_by(Event.id)))


def subscription_states(db: Database, email: str) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(Subscription.status).join(Contact).where(Contact.email == email)))


def provider_withdrawals(db: Database, email: str) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(ConsentEvent).join(Contact).where(
            Contact.email == email, ConsentEvent.action == "withdrawn", ConsentEvent.method == "provider")) or 0


# SendGrid's published vector ----------------------------------------------------------------------


def test_sendgrid_published_vector_verifies_and_one_byte_change_fails() -> None:
    key = public_key(SG_PUBLIC_KEY)
    assert EventWebhook().verify_signature(SG_PAYLOAD.decode(), SG_SIGNATURE, SG_TIMESTAMP, key) is True
    assert signature_is_valid(SG_PAYLOAD, SG_SIGNATURE, SG_TIMESTAMP, key)
    changed = SG_PAYLOAD.replace(b"Bounced Address", b"Bounced Addresz")
    assert len(changed) == len(SG_PAYLOAD) and sum(a != b for a, b in zip(changed, SG_PAYLOAD)) == 1
    assert not signature_is_valid(changed, SG_SIGNATURE, SG_TIMESTAMP, key)
    assert not signature_is_valid(SG_PAYLOAD.rstrip(b"\r\n"), SG_SIGNATURE, SG_TIMESTAMP, key)  # CRLF is signed
    assert not signature_is_valid(SG_PAYLOAD, SG_SIGNATURE, "1600112503", key)  # so is the timestamp
    assert not signature_is_valid(SG_PAYLOAD, "not base64!", SG_TIMESTAMP, key)
    assert not signature_is_valid(b"\xff" + SG_PAYLOAD, SG_SIGNATURE, SG_TIMESTAMP, key)  # not UTF-8


def test_sendgrid_published_vector_through_the_endpoint(live_server: LiveServer, db: Database) -> None:
    # The vector is from 2020: widen the age window for this post only, to check the whole path.
    live_server.app.state.settings = live_server.settings.model_copy(update={  # type: ignore[attr-defined]
        "sendgrid_webhook_public_key": SecretStr(SG_PUBLIC_KEY), "webhook_max_age_seconds": 10**10})
    headers = {SIGNATURE_HEADER: SG_SIGNATURE, TIMESTAMP_HEADER: SG_TIMESTAMP}
    tampered = post(live_server, SG_PAYLOAD.replace(b'"dropped"', b'"droppef"'), headers)
    assert tampered.status_code == 403 and events(db) == []
    answer = post(live_server, SG_PAYLOAD, headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"stored": 1, "duplicates": 0, "unmatched": 1, "rejected": []}
    [stored] = events(db)
    assert (stored.type, stored.reason, stored.delivery_id) == ("dropped", "Bounced Address", None)
    assert suppression(db, "hello@world.com") == "hard_bounce"  # the address is ours to never mail


# Signatures over HTTP ---------------------------------------------------------------------------


def test_good_signature_is_stored(signed_server: LiveServer, signer: Signer, db: Database, settings: Settings) -> None:
    _, ids = send_issue(db, settings, 1)
    body = json.dumps([ev("delivered", ids[0], "reader0@example.org")]).encode()
    answer = post(signed_server, body, signer.headers(body))
    assert answer.status_code == 200 and answer.json()["stored"] == 1
    assert status(db, ids[0]) == "delivered"


def test_refused_signatures_store_nothing(signed_server: LiveServer, signer: Signer, db: Database,
                                          settings: Settings) -> None:
    _, ids = send_issue(db, settings, 1)
    body = json.dumps([ev("spamreport", ids[0], "reader0@example.org")]).encode()
    good = signer.headers(body)
    other = Signer().headers(body)
    now = int(time.time())
    cases = {
        "wrong key": other,
        "body changed by one byte": (body.replace(b"spamreport", b"spamreporT"), good),
        "stale timestamp": signer.headers(body, now - 400),
        "timestamp in the future": signer.headers(body, now + 400),
        "timestamp not a number": {**good, TIMESTAMP_HEADER: "yesterday"},
        "signature garbage": {**good, SIGNATURE_HEADER: "%%%"},
        "no signature header": {k: v for k, v in good.items() if k != SIGNATURE_HEADER},
        "no timestamp header": {k: v for k, v in good.items() if k != TIMESTAMP_HEADER},
        "no headers": {},
    }
    for name, case in cases.items():
        sent_body, headers = case if isinstance(case, tuple) else (body, case)
        answer = post(signed_server, sent_body, headers)
        assert answer.status_code == 403, name
        assert "detail" in answer.json(), name
    assert events(db) == []
    assert status(db, ids[0]) == "submitted" and suppression(db, "reader0@example.org") is None
    assert contact_of(db, "reader0@example.org").status == "active"


def test_a_timestamp_inside_the_window_is_accepted(signed_server: LiveServer, signer: Signer, db: Database) -> None:
    body = json.dumps([ev("processed", None)]).encode()
    answer = post(signed_server, body, signer.headers(body, int(time.time()) - 250))
    assert answer.status_code == 200 and answer.json()["stored"] == 1


def test_an_unusable_key_is_a_server_error_so_sendgrid_retries(live_server: LiveServer, signer: Signer,
                                                               db: Database) -> None:
    live_server.app.state.settings = live_server.settings.model_copy(  # type: ignore[attr-defined]
        update={"sendgrid_webhook_public_key": SecretStr("bm90IGEga2V5")})
    body = json.dumps([ev("processed", None)]).encode()
    answer = post(live_server, body, signer.headers(body))
    assert answer.status_code == 500 and "SENDGRID_WEBHOOK_PUBLIC_KEY" in answer.json()["detail"]
    assert "bm90IGEga2V5" not in answer.text and events(db) == []


# Idempotence ------------------------------------------------------------------------------------


def test_duplicate_and_replayed_posts_count_once(signed_server: LiveServer, signer: Signer, db: Database,
                                                 settings: Settings) -> None:
    _, ids = send_issue(db, settings, 3)
    batch = [ev("delivered", ids[0]), ev("spamreport", ids[1], "reader1@example.org"),
             ev("bounce", ids[2], "reader2@example.org", type="bounce", reason="550 5.1.1 no such user")]
    body = json.dumps(batch).encode()
    headers = signer.headers(body)
    first = post(signed_server, body, headers)
    replayed = post(signed_server, body, headers)  # the same bytes and headers again
    retried = post(signed_server, body, signer.headers(body))  # SendGrid's retry, signed afresh
    assert first.json() == {"stored": 3, "duplicates": 0, "unmatched": 0, "rejected": []}
    assert replayed.json() == retried.json() == {"stored": 0, "duplicates": 3, "unmatched": 0, "rejected": []}
    assert len(events(db)) == 3
    assert provider_withdrawals(db, "reader1@example.org") == 2  # the list and the contact, once each
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Suppression)) == 2
    # The same event twice inside one post counts once too.
    twice = ev("open", ids[0])
    body = json.dumps([twice, twice]).encode()
    assert post(signed_server, body, signer.headers(body)).json() == {
        "stored": 1, "duplicates": 1, "unmatched": 0, "rejected": []}


def test_effects_never_apply_twice(db: Database, settings: Settings) -> None:
    """A retry must not re-apply an effect that staff have since undone."""
    _, ids = send_issue(db, settings, 1)
    bounce = ev("bounce", ids[0], "reader0@example.org", type="bounce", reason="550 mailbox unavailable")
    with db.session() as s:
        assert store_events(s, [bounce], now=NOW).stored == 1
    with db.session() as s:  # staff fix the address's standing by hand
        s.execute(update(Contact).values(status="active"))
        s.execute(Suppression.__table__.delete())
    with db.session() as s:
        report = store_events(s, [bounce], now=NOW)
    assert (report.stored, report.duplicates) == (0, 1)
    assert contact_of(db, "reader0@example.org").status == "active" and suppression(db, "reader0@example.org") is None


def test_a_batch_larger_than_one_statement_holds(db: Database) -> None:
    """SQLite binds at most 32,766 values per statement: 3000 events are inserted in pages, once."""
    batch = [ev("processed", None) for _ in range(3000)]
    with db.session() as s:
        first = store_events(s, batch, now=NOW)
    with db.session() as s:
        again = store_events(s, batch[::-1], now=NOW)
    assert (first.stored, first.unmatched, again.stored, again.duplicates) == (3000, 3000, 0, 3000)
    assert len(events(db)) == 3000


# Every event type ---------------------------------------------------------------------------------


def test_processed_resolves_a_batch_held_as_unknown(live_server: LiveServer, db: Database, settings: Settings) -> None:
    """SendGrid accepts a request whole: one "processed" event for one of its deliveries proves the
    batch was accepted, so every row of it is settled as submitted, the ones without events too."""
    transport = ScriptedTransport(script=[raises(OutcomeUnknown("no answer after the request was sent"))])
    _, ids = send_issue(db, settings, 3, transport)
    with db.session() as s:
        [(batch_id, rows, _, *_)] = ledger.unknown_batches(s)
    assert rows == 3 and {status(db, i) for i in ids} == {"unknown"}
    answer = post(live_server, [ev("processed", ids[0])])
    assert answer.json()["stored"] == 1
    assert [status(db, i) for i in ids] == ["submitted", "submitted", "submitted"]
    with db.session() as s:
        batch = s.get(SendBatch, batch_id)
        assert batch.status == "submitted" and "reported on 1 of its deliveries" in batch.evidence
        assert ledger.unknown_batches(s) == []
        assert all(d.submitted_at is not None and d.error is None
                   for d in s.scalars(select(Delivery).where(Delivery.id.in_(ids))))


def test_delivered_and_never_downgraded(live_server: LiveServer, db: Database, settings: Settings) -> None:
    _, ids = send_issue(db, settings, 2)
    post(live_server, [ev("delivered", ids[0]),
                       ev("bounce", ids[1], "reader1@example.org", type="bounce", reason="550 unknown user")])
    assert [status(db, i) for i in ids] == ["delivered", "bounced"]
    post(live_server, [ev("delivered", ids[1])])  # a late, out-of-order delivered event
    assert status(db, ids[1]) == "bounced"
    post(live_server, [ev("processed", ids[0])])  # and a late processed never undoes delivered
    assert status(db, ids[0]) == "delivered"


def test_deferred_keeps_the_state_and_stores_the_response(live_server: LiveServer, db: Database,
                                                          settings: Settings) -> None:
    _, ids = send_issue(db, settings, 1)
    answer = post(live_server, [ev("deferred", ids[0], "reader0@example.org", attempt="2",
                                   response="451 4.7.1 Greylisted for <reader0@example.org>, try later")])
    assert answer.json()["stored"] == 1 and status(db, ids[0]) == "submitted"
    [deferred] = events(db)
    assert deferred.type == "deferred" and deferred.reason == "451 4.7.1 Greylisted for <<address>>, try later"
    assert deferred.occurred_at == NOW  # SendGrid's epoch seconds, as UTC
    with db.session() as s:  # stored in the column's own format: range queries find it
        window = (Event.occurred_at >= NOW, Event.occurred_at < NOW + timedelta(seconds=1))
        assert s.scalar(select(func.count()).select_from(Event).where(*window)) == 1


def test_hard_bounce_suppresses_soft_bounce_only_stored(live_server: LiveServer, db: Database,
                                                       settings: Settings) -> None:
    _, ids = send_issue(db, settings, 2)
    post(live_server, [
        ev("bounce", ids[0], "reader0@example.org", type="bounce", status="5.1.1",
           reason="550 5.1.1 The email account reader0@example.org does not exist"),
        ev("bounce", ids[1], "reader1@example.org", type="blocked", status="4.0.0", reason="421 try again later"),
    ])
    assert [status(db, i) for i in ids] == ["bounced", "submitted"]
    assert suppression(db, "reader0@example.org") == "hard_bounce" and suppression(db, "reader1@example.org") is None
    assert contact_of(db, "reader0@example.org").status == "bounced"
    assert contact_of(db, "reader1@example.org").status == "active"
    assert subscription_states(db, "reader0@example.org") == ["confirmed"]  # bounced, not a withdrawal
    hard, soft = events(db)
    assert (hard.type, hard.reason) == ("bounce", "5.1.1 550 5.1.1 The email account <address> does not exist")
    assert (soft.type, soft.reason) == ("blocked", "4.0.0 421 try again later")


def test_dropped_suppresses_only_when_the_reason_is_about_the_address(live_server: LiveServer, db: Database,
                                                                     settings: Settings) -> None:
    _, ids = send_issue(db, settings, 4)
    post(live_server, [
        ev("dropped", ids[0], "reader0@example.org", reason="Bounced Address"),
        ev("dropped", ids[1], "reader1@example.org", reason="Spam Reporting Address"),
        ev("dropped", ids[2], "reader2@example.org", reason="Unsubscribed Address"),
        ev("dropped", ids[3], "reader3@example.org", reason="Spam Content (if spam checker app enabled)"),
    ])
    assert {status(db, i) for i in ids} == {"dropped"}
    assert [suppression(db, f"reader{n}@example.org") for n in range(4)] == [
        "hard_bounce", "spam_complaint", "unsubscribed", None]
    assert [contact_of(db, f"reader{n}@example.org").status for n in range(4)] == [
        "bounced", "complained", "unsubscribed", "active"]
    assert subscription_states(db, "reader3@example.org") == ["confirmed"]


def test_spamreport_suppresses_and_unsubscribes_with_provider_consent(live_server: LiveServer, db: Database,
                                                                      settings: Settings) -> None:
    _, ids = send_issue(db, settings, 2)
    answer = post(live_server, [ev("spamreport", ids[0], "reader0@example.org")])
    assert answer.json() == {"stored": 1, "duplicates": 0, "unmatched": 0, "rejected": []}
    assert suppression(db, "reader0@example.org") == "spam_complaint"
    assert contact_of(db, "reader0@example.org").status == "complained"
    assert subscription_states(db, "reader0@example.org") == ["unsubscribed"]
    with db.session() as s:
        history = s.execute(select(ConsentEvent.action, ConsentEvent.method, ConsentEvent.list_id).join(Contact)
                            .where(Contact.email == "reader0@example.org").order_by(ConsentEvent.id)).all()
    assert [(a, m) for a, m, _ in history] == [("withdrawn", "provider"), ("withdrawn", "provider")]
    assert {list_id is None for *_, list_id in history} == {True, False}  # the list, then every list
    assert contact_of(db, "reader1@example.org").status == "active"  # nobody else


@pytest.mark.parametrize("kind", ["unsubscribe", "group_unsubscribe"])
def test_unsubscribe_events_leave_every_list(kind: str, live_server: LiveServer, db: Database,
                                             settings: Settings) -> None:
    _, ids = send_issue(db, settings, 2)
    with db.session() as s:  # reader0 is on a second list too
        second = ensure_list(s, "events")
        contact_id = s.scalar(select(Contact.id).where(Contact.email == "reader0@example.org"))
        s.add(Subscription(contact_id=contact_id, list_id=second.id, status="confirmed"))
    extra = {"asm_group_id": 42} if kind == "group_unsubscribe" else {}
    post(live_server, [ev(kind, ids[0], "reader0@example.org", **extra)])
    assert subscription_states(db, "reader0@example.org") == ["unsubscribed", "unsubscribed"]
    assert contact_of(db, "reader0@example.org").status == "unsubscribed"
    assert suppression(db, "reader0@example.org") == "unsubscribed"
    assert provider_withdrawals(db, "reader0@example.org") == 3  # two lists and the contact
    assert subscription_states(db, "reader1@example.org") == ["confirmed"]
    assert status(db, ids[0]) == "submitted"  # the email itself was sent


def test_opens_labelled_machine_or_human_and_clicks_keep_their_url(live_server: LiveServer, db: Database,
                                                                   settings: Settings) -> None:
    _, ids = send_issue(db, settings, 2)
    post(live_server, [
        ev("open", ids[0], "reader0@example.org", sg_machine_open=True),
        ev("open", ids[1], "reader1@example.org", sg_machine_open=False),
        ev("click", ids[1], "reader1@example.org", url="https://clinic.example/book?ref=reader1%40example.org&x=1",
           url_offset={"index": 0, "type": "html"}),
    ])
    machine, human, click = events(db)
    assert (machine.type, machine.machine, machine.reason) == ("open", True, "sg_machine_open")
    assert machine.delivery_id == ids[0]
    assert (human.type, human.machine, human.delivery_id) == ("open", False, ids[1])
    assert (click.type, click.machine, click.url) == ("click", False, "https://clinic.example/book?ref=<address>&x=1")
    assert {status(db, i) for i in ids} == {"submitted"}  # engagement does not change the ledger


def test_opens_of_an_anonymously_tracked_issue_keep_only_the_issue(live_server: LiveServer, db: Database,
                                                                   settings: Settings) -> None:
    issue_id, ids = send_issue(db, settings, 1)
    with db.session() as s:
        s.get(Issue, issue_id).tracking = "anonymous"
    post(live_server, [ev("open", ids[0], "reader0@example.org"), ev("delivered", ids[0])])
    opened, delivered = events(db)
    assert (opened.issue_id, opened.delivery_id, opened.contact_id) == (issue_id, None, None)
    assert delivered.delivery_id == ids[0]  # delivery events are the ledger's, whatever the tracking


# Matching ---------------------------------------------------------------------------------------


def test_sg_message_id_fallback_needs_the_recipients_address(live_server: LiveServer, db: Database,
                                                            settings: Settings) -> None:
    """Every recipient of a request shares its X-Message-Id: the address tells them apart."""
    issue_id, ids = send_issue(db, settings, 3)
    with db.session() as s:
        message_ids = set(s.scalars(select(Delivery.provider_message_id).where(Delivery.issue_id == issue_id)))
    assert message_ids == {"msg-1"}  # one request, one id for all three
    answer = post(live_server, [
        ev("delivered", None, "Reader1@Example.org", sg_message_id="msg-1.filterdrecv-p3mdw1-1-5F5FC76C-9.0"),
        ev("delivered", None, "stranger@example.org", sg_message_id="msg-1.filterdrecv-p3mdw1-2-5F5FC76C-9.1"),
        ev("delivered", None, "reader2@example.org", sg_message_id="msg-9.filterdrecv-p3mdw1-3-5F5FC76C-9.2"),
        {**ev("delivered", None, "reader0@example.org", sg_message_id="msg-1.filter-x"), "delivery_id": "12ab"},
    ])
    assert answer.json()["stored"] == 4 and answer.json()["unmatched"] == 2
    assert [status(db, i) for i in ids] == ["delivered", "delivered", "submitted"]
    matched = [(e.delivery_id, e.contact_id is not None, e.issue_id) for e in events(db)]
    assert matched == [(ids[1], True, issue_id), (None, False, None), (None, False, None), (ids[0], True, issue_id)]


def test_an_unknown_delivery_id_is_stored_unmatched(live_server: LiveServer, db: Database) -> None:
    answer = post(live_server, [ev("delivered", 999_999, "x@example.org", sg_message_id="nope.filter")])
    assert answer.json() == {"stored": 1, "duplicates": 0, "unmatched": 1, "rejected": []}


# Bad input --------------------------------------------------------------------------------------


def test_malformed_bodies_get_400_and_store_nothing(live_server: LiveServer, db: Database) -> None:
    not_json = post(live_server, b'[{"event": "open",')
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["detail"]
    assert "line 1" in not_json.json()["detail"]
    for body in (b'{"event": "open"}', b'"open"', b"42", b"null"):
        answer = post(live_server, body)
        assert answer.status_code == 400 and "JSON array" in answer.json()["detail"], body
    assert post(live_server, b"\xff\xfe\x00garbage").status_code == 400
    assert post(live_server, b"[]").json() == {"stored": 0, "duplicates": 0, "unmatched": 0, "rejected": []}
    assert events(db) == []


def test_oversized_bodies_get_413(live_server: LiveServer, db: Database) -> None:
    limit = live_server.settings.webhook_max_bytes
    big = json.dumps([ev("processed", None, padding="x" * 1000) for _ in range(limit // 1000 + 1)]).encode()
    assert len(big) > limit
    answer = post(live_server, big)
    assert answer.status_code == 413 and str(limit) in answer.json()["detail"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: the cap is counted while reading
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    streamed = httpx.post(live_server.url + URL, content=chunked(), headers=SIGNER.headers(big))
    assert streamed.status_code == 413
    assert events(db) == []


def test_a_batch_with_bad_elements_stores_the_good_ones(live_server: LiveServer, db: Database,
                                                        settings: Settings) -> None:
    _, ids = send_issue(db, settings, 2)
    batch = [
        ev("delivered", ids[0]),
        "not an object",
        {"event": "delivered", "timestamp": 1796317200, "delivery_id": str(ids[1])},  # no sg_event_id
        ev("delivered", ids[1], timestamp="yesterday"),
        ev("teleported", ids[1]),
        {k: v for k, v in ev("open", ids[1]).items() if k != "event"},
        ev("delivered", ids[1], sg_event_id="x" * 101),
        ev("open", ids[1]),
    ]
    answer = post(live_server, batch)
    assert answer.status_code == 200
    assert answer.json()["stored"] == 2
    assert answer.json()["rejected"] == [
        {"index": 1, "reason": "not a JSON object"},
        {"index": 2, "reason": "'sg_event_id' is missing"},
        {"index": 3, "reason": "'timestamp' must be a number of seconds since 1970 (UTC)"},
        {"index": 4, "reason": "unknown event type 'teleported'"},
        {"index": 5, "reason": "'event' is missing"},
        {"index": 6, "reason": "'sg_event_id' must be at most 100 printable characters without spaces"},
    ]
    assert [e.type for e in events(db)] == ["delivered", "open"]
    assert [status(db, i) for i in ids] == ["delivered", "submitted"]


# Privacy ----------------------------------------------------------------------------------------


def test_no_address_ip_or_user_agent_in_any_events_row(live_server: LiveServer, db: Database,
                                                       settings: Settings) -> None:
    _, ids = send_issue(db, settings, 3)
    who = "reader0@example.org"
    post(live_server, [
        ev("processed", ids[0], who), ev("delivered", ids[0], who), ev("open", ids[0], who, sg_machine_open=True),
        ev("click", ids[0], who, url=f"mailto:{who}"),
        ev("deferred", ids[1], "reader1@example.org", response="450 <reader1@example.org>: mailbox busy"),
        ev("bounce", ids[1], "reader1@example.org", type="bounce", reason="550 reader1@EXAMPLE.org unknown"),
        ev("dropped", ids[2], "reader2@example.org", reason="Bounced Address reader2@example.org"),
        ev("spamreport", ids[2], "reader2@example.org"), ev("unsubscribe", ids[0], who),
        ev("group_unsubscribe", ids[0], who), ev("spamreport", None, "someone.else@example.net"),
    ])
    rows = events(db)
    assert len(rows) == 11
    for row in rows:
        text = json.dumps({c.name: str(getattr(row, c.name)) for c in Event.__table__.columns}).lower()
        assert "@" not in text and "example.org" not in text and "example.net" not in text
        assert "203.0.113.9" not in text and "mozilla" not in text
    assert suppression(db, "someone.else@example.net") == "spam_complaint"  # a stranger's complaint still counts
    with db.session() as s:  # by the salted hash alone: a stranger's address is not kept
        assert s.scalar(select(Suppression.email).where(
            Suppression.email_hash == address_hash(s, "someone.else@example.net"))) is None


# PostgreSQL ------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_concurrent_retries_store_and_apply_once(postgres_db: Database, settings: Settings) -> None:
    """Two posts of the same batch at the same moment: ON CONFLICT makes the second wait and insert nothing."""
    _, ids = send_issue(postgres_db, settings, 20)
    batch = [ev("delivered", i) for i in ids] + [ev("spamreport", ids[0], "reader0@example.org")]
    reports = []

    def store() -> None:
        with postgres_db.session() as s:
            reports.append(store_events(s, batch, now=NOW))

    threads = [threading.Thread(target=store) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.stored for r in reports) == [0, 21] and sorted(r.duplicates for r in reports) == [0, 21]
    assert {status(postgres_db, i) for i in ids} == {"delivered"}
    assert {e.occurred_at for e in events(postgres_db)} == {NOW}
    assert provider_withdrawals(postgres_db, "reader0@example.org") == 2
    assert suppression(postgres_db, "reader0@example.org") == "spam_complaint"
