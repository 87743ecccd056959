"""Outgoing webhooks to the clinic's CRM, against a receiver on loopback that checks each signature
with README's own example: every event type produced by the real service call, delivered once;
retried after 500s and timeouts; a slow receiver never given the same event twice at once; a dead
endpoint disabled after the retry window (an injected clock, no sleeping) and the admins told.
SQLite always; PostgreSQL too when NEWSLETTER_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.errors import InputError
from newsletter.models import Delivery, Event
from newsletter.outgoing_webhooks import endpoints
from newsletter.outgoing_webhooks.events import SUBSCRIBABLE
from newsletter.outgoing_webhooks.models import WebhookDelivery, WebhookEndpoint
from newsletter.outgoing_webhooks.sender import WebhookSender, lease_for
from newsletter.staff.audit import AuditAction, CLI
from newsletter.staff.models import AuditEntry
from newsletter.tracking.provider_events import store_events
from newsletter.transports.memory import MemoryTransport
from subscribers import leads
from subscribers.consent import Proof, unsubscribe
from subscribers.db import utcnow
from subscribers.models import Contact
from subscribers.states import DeliveryStatus, WebhookDeliveryStatus, WebhookEndpointState
from tests.sendkit import make_issue
from tests.staffkit import make_user
from tests.webhook_receiver import Receiver, serve_receiver

EMAIL, NAME, PHONE = "dana.lead@example.org", "Dana Lead", "+15551234567"


class Clock:
    """The senders' time, moved by the test (no sleeping through a retry window)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue("db" if request.param == "sqlite" else "postgres_db")


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_hosts": "127.0.0.1", "webhook_timeout": 5.0})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as state:
        yield state


def register(db: Database, settings: Settings, receiver: Receiver, types: tuple[str, ...] | list[str] = SUBSCRIBABLE) -> int:
    with db.session() as session:
        endpoint, secret = endpoints.register(session, settings, receiver.url, list(types), actor=CLI)
        receiver.secret = secret
        return endpoint.id


def sender(db: Database, settings: Settings, clock: Clock, worker: str = "test/webhooks", **kw: Any) -> WebhookSender:
    return WebhookSender(settings, db, worker=worker, clock=clock, **kw)


def add_lead(db: Database, settings: Settings, email: str = EMAIL) -> tuple[int, int]:
    with db.session() as session:
        lead = leads.add_lead(session, email, default_timezone=settings.default_timezone, source="web_form",
                              consent_method="form", origin="staff", name=NAME, phone=PHONE).lead
        return lead.id, lead.contact_id


def deliveries(db: Database) -> list[WebhookDelivery]:
    with db.session() as session:
        rows = list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        session.expunge_all()
        return rows


# Every event type, each from its real service call ----------------------------------------------


def test_each_event_type_is_delivered_once_signed_and_without_personal_data(
        database: Database, hook_settings: Settings, receiver: Receiver) -> None:
    register(database, hook_settings, receiver)
    lead_id, contact_id = add_lead(database, hook_settings)  # lead.created
    issue_id = make_issue(database, hook_settings)
    with database.session() as session:
        lead = session.get(leads.Lead, lead_id)
        leads.change_stage(session, lead, "contacted", by="staff")  # lead.stage_changed
        booking = leads.record_booking(session, lead, booked_for=utcnow() + timedelta(days=3), origin="staff",
                                       external_id="cal-991").booking  # booking.created (+ stage booked)
        booking_id = booking.id
        delivery = Delivery(issue_id=issue_id, contact_id=contact_id, status=DeliveryStatus.SUBMITTED, due_at=utcnow())
        session.add(delivery)
        session.flush()
        delivery_id = delivery.id
    now = utcnow()
    with database.session() as session:  # a person's click, then a hard bounce, as SendGrid reports them
        store_events(session, [
            {"event": "click", "sg_event_id": "click-1", "timestamp": now.timestamp(), "email": EMAIL,
             "delivery_id": str(delivery_id), "url": "https://example.org/walk"},
            {"event": "bounce", "type": "bounce", "sg_event_id": "bounce-1", "timestamp": now.timestamp(),
             "email": EMAIL, "delivery_id": str(delivery_id), "reason": f"550 {EMAIL} does not exist"},
        ], now=now)
    with database.session() as session:  # contact.unsubscribed (every list)
        unsubscribe(session, session.get(Contact, contact_id), None, Proof("one_click"))

    clock = Clock()
    clock.advance(seconds=30)  # clicks are sent once a scanner's burst could no longer relabel them
    hooks = sender(database, hook_settings, clock)
    assert hooks.run_until_idle() == 7
    assert sorted(receiver.types()) == sorted([
        "lead.created", "lead.stage_changed", "lead.stage_changed", "booking.created", "email.clicked",
        "contact.bounced", "contact.unsubscribed"])
    assert all(r.signed for r in receiver.received), "every request verifies with README's code"
    assert len(set(receiver.delivered_ids())) == 7 and all(i.startswith("evt_") for i in receiver.delivered_ids())
    by_type = {r.type: r.payload for r in receiver.received}
    assert by_type["lead.created"]["data"] == {"lead_id": lead_id, "contact_id": contact_id, "stage": "new",
                                               "from_stage": None, "changed_by": "staff"}
    assert by_type["booking.created"]["data"]["booking_id"] == booking_id
    assert by_type["email.clicked"]["data"]["delivery_id"] == delivery_id
    assert by_type["email.clicked"]["data"]["lead_id"] == lead_id
    assert by_type["contact.bounced"]["data"]["contact_id"] == contact_id
    assert by_type["contact.unsubscribed"]["data"]["list_id"] is None
    for r in receiver.received:
        assert r.payload["id"] == r.event_id
        text = r.body.decode()
        for personal in (EMAIL, NAME, PHONE, "example.org/walk", "Small steps"):
            assert personal not in text

    # Delivered once: more rounds (and a later capture) send nothing again.
    clock.advance(hours=2)
    assert hooks.run_until_idle() == 0
    assert sender(database, hook_settings, clock, worker="other/webhooks").run_until_idle() == 0
    assert len(receiver.received) == 7
    assert {d.status for d in deliveries(database)} == {WebhookDeliveryStatus.DELIVERED}


def test_the_sending_worker_delivers_events_in_its_own_thread(
        db: Database, hook_settings: Settings, receiver: Receiver) -> None:
    """What ``serve`` and ``worker`` run: a web request only records the lead; the worker sends the event."""
    from newsletter.sending.worker import run_worker

    register(db, hook_settings, receiver, ["lead.created"])
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(hook_settings, db, MemoryTransport(hook_settings), stop))
    thread.start()
    try:
        add_lead(db, hook_settings)
        assert receiver.arrived.wait(30), "the worker's webhook thread sends the event"
    finally:
        stop.set()
        thread.join(30)
    assert receiver.types() == ["lead.created"] and receiver.received[0].signed
    [row] = deliveries(db)
    assert row.status == "delivered"


def test_history_and_unchosen_types_are_not_sent(db: Database, hook_settings: Settings, receiver: Receiver) -> None:
    add_lead(db, hook_settings, "before@example.org")  # before any endpoint: history is not sent
    register(db, hook_settings, receiver, ["booking.created"])
    add_lead(db, hook_settings)
    clock = Clock()
    assert sender(db, hook_settings, clock).run_until_idle() == 0
    assert receiver.received == []


def test_a_click_is_sent_once_settled_and_a_machine_click_never(
        db: Database, hook_settings: Settings, receiver: Receiver) -> None:
    register(db, hook_settings, receiver, ["email.clicked"])
    _, contact_id = add_lead(db, hook_settings)
    issue_id = make_issue(db, hook_settings)
    now = utcnow()
    with db.session() as session:
        delivery = Delivery(issue_id=issue_id, contact_id=contact_id, status=DeliveryStatus.SUBMITTED, due_at=now)
        session.add(delivery)
        session.flush()
        # What the first-party click endpoint stores for a link scanner's burst (tracking.first_party).
        session.add(Event(delivery_id=delivery.id, contact_id=contact_id, issue_id=issue_id, type="click",
                          machine=True, reason="clicked every link at once", source="first_party", occurred_at=now))
        session.flush()
        delivery_id = delivery.id
    with db.session() as session:
        store_events(session, [{"event": "click", "sg_event_id": "human-1", "timestamp": now.timestamp(),
                                "delivery_id": str(delivery_id), "url": "https://example.org/sleep"}], now=now)
    clock = Clock()
    hooks = sender(db, hook_settings, clock)
    assert hooks.run_until_idle() == 0, "a burst could still relabel it"
    clock.advance(seconds=30)
    assert hooks.run_until_idle() == 1
    assert receiver.types() == ["email.clicked"] and receiver.received[0].payload["data"]["delivery_id"] == delivery_id


# Retries ----------------------------------------------------------------------------------------


def test_a_500_is_retried_with_backoff_then_delivered_once(
        database: Database, hook_settings: Settings, receiver: Receiver) -> None:
    register(database, hook_settings, receiver, ["lead.created"])
    add_lead(database, hook_settings)
    receiver.script = [500, 503]
    clock = Clock()
    hooks = sender(database, hook_settings, clock)
    assert hooks.run_until_idle() == 1
    [row] = deliveries(database)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("pending", 1, 500, "HTTP 500")
    assert timedelta(seconds=15) <= row.next_attempt_at - clock.now <= timedelta(seconds=45)
    assert hooks.run_until_idle() == 0, "not before its backoff"
    clock.advance(minutes=1)
    hooks.run_until_idle()
    clock.advance(minutes=5)
    hooks.run_until_idle()
    [row] = deliveries(database)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 200)
    assert len(set(receiver.delivered_ids())) == 1 and len(receiver.received) == 3
    clock.advance(hours=3)
    assert hooks.run_until_idle() == 0 and len(receiver.received) == 3


def test_a_timeout_is_retried_with_the_same_event_id(
        db: Database, hook_settings: Settings, receiver: Receiver) -> None:
    settings = hook_settings.model_copy(update={"webhook_timeout": 0.5})
    register(db, settings, receiver, ["lead.created"])
    add_lead(db, settings)
    receiver.script = [(2.0, 200)]  # answers after the timeout
    clock = Clock()
    hooks = sender(db, settings, clock)
    hooks.run_once()
    [row] = deliveries(db)
    assert row.status == "pending" and row.last_error == "no answer within 0.5 seconds"
    clock.advance(hours=1)
    hooks.run_once()
    [row] = deliveries(db)
    assert row.status == "delivered" and row.attempts == 2
    first, second = receiver.received
    assert first.event_id == second.event_id and first.body == second.body  # the receiver deduplicates by it


def test_a_slow_receiver_is_never_sent_the_same_event_twice_at_once(
        database: Database, hook_settings: Settings, receiver: Receiver) -> None:
    register(database, hook_settings, receiver, ["lead.created"])
    add_lead(database, hook_settings)
    release = threading.Event()
    receiver.script = [release]  # holds the request until released (within the 5 s timeout)
    clock = Clock()
    first = sender(database, hook_settings, clock, worker="a/webhooks")
    second = sender(database, hook_settings, clock, worker="b/webhooks")
    thread = threading.Thread(target=first.run_once)
    thread.start()
    try:
        assert receiver.arrived.wait(10)
        assert lease_for(hook_settings) > timedelta(seconds=3 * hook_settings.webhook_timeout)
        clock.advance(seconds=lease_for(hook_settings).total_seconds() - 1)  # the claim still holds it
        assert second.run_once() is False
        assert len(receiver.received) == 1
    finally:
        release.set()
        thread.join(30)
    [row] = deliveries(database)
    assert row.status == "delivered" and row.attempts == 1
    clock.advance(days=1)
    assert second.run_until_idle() == 0 and first.run_until_idle() == 0
    assert len(receiver.received) == 1 and receiver.most_in_flight == 1


def test_a_dispatcher_that_died_mid_request_leaves_the_event_due_again_after_its_lease(
        db: Database, hook_settings: Settings, receiver: Receiver) -> None:
    register(db, hook_settings, receiver, ["lead.created"])
    add_lead(db, hook_settings)
    clock = Clock()
    hooks = sender(db, hook_settings, clock)
    with db.session() as session:  # what a claim leaves behind when its process is killed
        from newsletter.outgoing_webhooks import events
        events.capture(session, clock.now, retry_window=hooks.window)
    with db.session() as session:
        assert hooks._claim(session, clock.now) is not None
    assert hooks.run_once() is False, "still leased"
    clock.advance(seconds=lease_for(hook_settings).total_seconds() + 1)
    assert hooks.run_once() is True
    [row] = deliveries(db)
    assert row.status == "delivered" and row.attempts == 2 and len(receiver.received) == 1


# A dead endpoint --------------------------------------------------------------------------------


def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_the_admins_are_told(
        database: Database, hook_settings: Settings, receiver: Receiver) -> None:
    make_user(database, "admin@clinic.example")
    endpoint_id = register(database, hook_settings, receiver, ["lead.created"])
    add_lead(database, hook_settings)
    receiver.script = [500] * 100
    transport = MemoryTransport(hook_settings)
    clock = Clock()
    hooks = sender(database, hook_settings, clock, transport=transport)
    hooks.run_until_idle()
    for _ in range(12):  # every attempt fails, through the day
        clock.advance(hours=2)
        hooks.run_until_idle()
    clock.advance(minutes=30)
    hooks.run_until_idle()
    with database.session() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint.state == WebhookEndpointState.DISABLED
        assert endpoint.disabled_reason == "every attempt failed for 24 hours"
        statuses = set(session.scalars(select(WebhookDelivery.status)))
        audit = session.scalars(select(AuditEntry.actor).where(
            AuditEntry.action == AuditAction.WEBHOOK_DISABLED)).all()
    assert statuses == {WebhookDeliveryStatus.FAILED}
    assert audit == ["system"]
    [notice] = transport.sent
    assert notice["To"] == "admin@clinic.example"
    assert f"webhook endpoint {endpoint_id} was disabled" in notice["Subject"]
    body = notice.get_body(("plain",)).get_content()
    assert "127.0.0.1" in body and receiver.url not in body and EMAIL not in body

    # Nothing is sent to a disabled endpoint; an admin enables it again, for events from then on.
    tried = len(receiver.received)
    add_lead(database, hook_settings, "later@example.org")
    clock.advance(hours=1)
    assert hooks.run_until_idle() == 0 and len(receiver.received) == tried
    with database.session() as session:
        assert endpoints.enable(session, endpoints.by_id(session, endpoint_id), actor=CLI)
    receiver.script = []
    add_lead(database, hook_settings, "again@example.org")
    clock.now = utcnow() + timedelta(seconds=1)
    assert hooks.run_until_idle() == 1 and receiver.received[-1].signed


def test_a_test_event_goes_to_its_endpoint_only(db: Database, hook_settings: Settings) -> None:
    with serve_receiver() as one, serve_receiver() as two:
        first = register(db, hook_settings, one, ["lead.created"])
        register(db, hook_settings, two, ["lead.created"])
        with db.session() as session:
            endpoints.queue_test(session, hook_settings, endpoints.by_id(session, first), actor=CLI)
        assert sender(db, hook_settings, Clock()).run_until_idle() == 1
        assert one.types() == ["webhook.test"] and one.received[0].signed and two.received == []


def test_an_https_endpoint_gets_events_only_with_a_certificate_that_checks(
        db: Database, hook_settings: Settings) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    with serve_receiver(tls=server_context) as receiver:
        assert receiver.url.startswith("https://")
        register(db, hook_settings, receiver, ["lead.created"])
        add_lead(db, hook_settings)
        clock = Clock()
        sender(db, hook_settings, clock).run_once()  # the system's CAs: this certificate is not trusted
        [row] = deliveries(db)
        assert row.status == "pending" and row.last_error == "could not connect (ConnectError)"
        clock.advance(hours=1)
        assert sender(db, hook_settings, clock, verify=trusted).run_once()
        [row] = deliveries(db)
        assert row.status == "delivered" and receiver.received[-1].signed


def test_the_delivery_log_pages_newest_first(db: Database, hook_settings: Settings, receiver: Receiver) -> None:
    endpoint_id = register(db, hook_settings, receiver, ["lead.created"])
    with db.session() as session:
        endpoint = endpoints.by_id(session, endpoint_id)
        queued = [endpoints.queue_test(session, hook_settings, endpoint, actor=CLI).event_id for _ in range(5)]
    with db.session() as session:
        endpoint = endpoints.by_id(session, endpoint_id)
        first = endpoints.delivery_log(session, endpoint, per_page=2)
        second = endpoints.delivery_log(session, endpoint, before=first.older, per_page=2)
        third = endpoints.delivery_log(session, endpoint, before=second.older, per_page=2)
        seen = [d.event.event_id for page in (first, second, third) for d in page.rows]
    assert seen == queued[::-1] and third.older is None


# Registration and the addresses a request may reach --------------------------------------------


@pytest.mark.parametrize("url, message", [
    ("http://crm.example/hook", "is not an https:// URL"),
    ("https://10.1.2.3/hook", "10.1.2.3 is a private or special-purpose address"),
    ("https://169.254.169.254/latest", "link-local"),
    ("https://[::1]/hook", "loopback"),
    ("https://user:pw@crm.example/hook", "no user name or password"),
    ("ftp://crm.example/hook", "is not an https:// URL"),
    ("", "enter the endpoint's URL"),
])
def test_registration_refuses_urls_it_must_not_post_to(db: Database, settings: Settings, url: str, message: str) -> None:
    with db.session() as session, pytest.raises(InputError, match=message):
        endpoints.register(session, settings, url, ["lead.created"], actor=CLI)


def test_registration_refuses_unknown_event_types_and_keeps_the_secret_sealed(
        db: Database, hook_settings: Settings, receiver: Receiver) -> None:
    with db.session() as session, pytest.raises(InputError, match="event type 'lead.deleted' does not exist"):
        endpoints.register(session, hook_settings, receiver.url, ["lead.deleted"], actor=CLI)
    endpoint_id = register(db, hook_settings, receiver, ["lead.created"])
    with db.session() as session:
        sealed = session.get(WebhookEndpoint, endpoint_id).sealed_secret
    assert receiver.secret.startswith("whsec_") and receiver.secret not in sealed


def test_an_address_allowed_no_longer_is_not_posted_to(db: Database, hook_settings: Settings, receiver: Receiver) -> None:
    register(db, hook_settings, receiver, ["lead.created"])
    add_lead(db, hook_settings)
    strict = hook_settings.model_copy(update={"webhook_allow_hosts": ""})
    sender(db, strict, Clock()).run_once()
    [row] = deliveries(db)
    assert receiver.received == [] and row.status == "pending"
    assert row.last_error.startswith("is not an https:// URL") or "not an https:// URL" in row.last_error
    assert receiver.url not in row.last_error


def test_a_secret_sealed_under_another_key_is_reported_not_sent(
        db: Database, hook_settings: Settings, receiver: Receiver) -> None:
    register(db, hook_settings, receiver, ["lead.created"])
    add_lead(db, hook_settings)
    from pydantic import SecretStr
    other = hook_settings.model_copy(update={"secret_key": SecretStr("x" * 48)})
    sender(db, other, Clock()).run_once()
    [row] = deliveries(db)
    assert receiver.received == [] and "cannot be opened with this NEWSLETTER_SECRET_KEY" in row.last_error


# The migration and the CLI --------------------------------------------------------------------


def test_the_migration_downgrades_and_upgrades_again(database: Database) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from newsletter.database import alembic_config, upgrade

    tables = {"webhook_endpoints", "webhook_events", "webhook_deliveries", "webhook_cursors"}
    command.downgrade(alembic_config(database.engine), "0020")  # to just before 0021, whatever came after
    assert not tables & set(inspect(database.engine).get_table_names())
    upgrade(database.engine)
    assert tables <= set(inspect(database.engine).get_table_names())


def test_the_cli_adds_lists_logs_disables_enables_and_removes(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                               receiver: Receiver) -> None:
    from typer.testing import CliRunner

    from newsletter.cli import app
    from newsletter.config import get_settings

    monkeypatch.setenv("NEWSLETTER_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    get_settings.cache_clear()
    run = CliRunner().invoke
    added = run(app, ["webhooks", "add", receiver.url, "--event", "lead.created", "--event", "booking.created"])
    assert added.exit_code == 0, added.output
    secrets = re.findall(r"whsec_[A-Za-z0-9_-]+", added.output)
    assert len(secrets) == 1, added.output
    receiver.secret = secrets[0]
    refused = run(app, ["webhooks", "add", "http://10.0.0.7/hook", "--event", "lead.created"])
    assert refused.exit_code == 2 and "is not an https:// URL" in refused.output
    assert run(app, ["leads", "add", EMAIL]).exit_code == 0
    assert run(app, ["webhooks", "test", "1"]).exit_code == 0
    assert run(app, ["tick"]).exit_code == 0  # a dispatcher round delivers them
    assert sorted(receiver.types()) == ["lead.created", "webhook.test"] and all(r.signed for r in receiver.received)
    log = run(app, ["webhooks", "log", "1", "--json"])
    assert log.exit_code == 0 and [row["status"] for row in json.loads(log.output)] == ["delivered"] * 2
    listed = run(app, ["webhooks", "list", "--json"])
    assert '"state": "enabled"' in listed.output and receiver.secret not in listed.output
    assert "disabled" in run(app, ["webhooks", "disable", "1"]).output
    assert "enabled" in run(app, ["webhooks", "enable", "1"]).output
    assert run(app, ["webhooks", "remove", "1"]).exit_code == 0
    missing = run(app, ["webhooks", "log", "1"])
    assert missing.exit_code == 1 and "webhook endpoint 1 does not exist" in missing.output
    db = Database.from_settings(get_settings())
    with db.session() as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("webhook_%"))
                                  .order_by(AuditEntry.id)).all()
    assert actions == ["webhook_added", "webhook_test_queued", "webhook_disabled", "webhook_enabled", "webhook_removed"]
