"""The whole send path through the SMTP transport to a real SMTP server on loopback (aiosmtpd):
STARTTLS required, AUTH over TLS, certificates verified against a throwaway CA."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from newsletter.config import Settings, SettingsError, get_settings
from newsletter.database import Database
from newsletter.models import Delivery, Issue, SendPause
from newsletter.sending import ledger, reconcile, schedule
from newsletter.sending.dispatch import Dispatcher, SendingStopped
from newsletter.transports import get_transport
from subscribers.db import utcnow
from subscribers.models import Contact, Suppression
from subscribers.suppression import reason_for
from tests.sendkit import add_audience, make_issue
from tests.smtp_server import PASSWORD, Certificates, Handler, SmtpServer

LATER = timedelta(hours=2)  # past any backoff of a deferred recipient


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("smtp-ca"))


@pytest.fixture
def server(certificates: Certificates) -> Iterator[SmtpServer]:
    with SmtpServer(certificates) as running:
        yield running


def smtp_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **more: str) -> Settings:
    for key, value in {**env, **more}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    configured = get_settings()
    assert configured.transport == "smtp"
    return configured


def start(db: Database, settings: Settings, issue_id: int) -> None:
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), datetime.now(timezone.utc))


def later() -> datetime:
    return utcnow() + LATER


def started_issue(db: Database, settings: Settings, audience: int) -> int:
    issue_id = make_issue(db, settings)
    add_audience(db, audience)
    start(db, settings, issue_id)
    return issue_id


def test_5000_recipients_one_refused_one_deferred_each_good_one_exactly_once(
        db: Database, settings: Settings, server: SmtpServer, certificates: Certificates,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = smtp_settings(monkeypatch, server.environment(certificates))
    issue_id = started_issue(db, settings, 5000)
    server.handler.refuse["reader77@example.org"] = "550 5.1.1 <reader77@example.org>: Recipient address rejected"
    server.handler.defer_once["reader1234@example.org"] = "451 4.7.1 <reader1234@example.org>: greylisted, try later"
    transport = get_transport(settings)
    now = utcnow() + timedelta(seconds=1)  # one moment for the whole first run: the deferred one's backoff lies ahead
    first = Dispatcher(settings, db, transport, clock=lambda: now).run_until_idle()
    assert first.submitted == 4998 and first.failed == 1 and first.deferred == 1
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 4998, "failed": 1, "queued": 1}
        assert s.get(Issue, issue_id).status == "sending"  # the deferred one is still on its way
        error = s.scalar(select(Delivery.error).where(Delivery.issue_id == issue_id, Delivery.status == "queued"))
    assert "451" in error and "reader1234" not in error
    second = Dispatcher(settings, db, transport, clock=later).run_until_idle()
    assert second.submitted == 1
    transport.close()

    counts = server.handler.counts()
    assert len(counts) == 4999 and set(counts.values()) == {1}  # every good recipient exactly once
    assert "reader77@example.org" not in counts and counts["reader1234@example.org"] == 1
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 4999, "failed": 1}
        assert s.get(Issue, issue_id).status == "sent"
        assert reason_for(s, "reader77@example.org") == "invalid_address"
        assert reason_for(s, "reader78@example.org") is None
        note = s.scalar(select(Suppression.note).where(Suppression.reason == "invalid_address"))
        failed = s.scalar(select(Delivery.error).where(Delivery.issue_id == issue_id, Delivery.status == "failed"))
        ids = dict(s.execute(select(Contact.email, Delivery.provider_message_id)
                             .join(Delivery, Delivery.contact_id == Contact.id).where(Delivery.issue_id == issue_id)).all())
    assert "550" in failed and "RCPT TO" in failed and "reader77" not in failed and "reader77" not in note
    # Each delivery keeps the queue id the server's final 250 named for its own message.
    by_recipient = {r.recipient: r for r in server.handler.received}
    assert all(ids[address] == received.queue_id for address, received in by_recipient.items())
    assert len(set(ids[a] for a in by_recipient)) == 4999

    message = by_recipient["reader42@example.org"].message()
    assert message["To"].addresses[0].addr_spec == "reader42@example.org"
    assert by_recipient["reader42@example.org"].sender == settings.from_email
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = str(message["List-Unsubscribe"])
    assert f"{settings.public_base_url}/u/" in unsubscribe and "mailto:" in unsubscribe
    html = message.get_body(("html",)).get_content()
    assert f"{settings.public_base_url}/c/" in html and "example.org/walk" not in html  # links are tracked
    # Personalised: the body's unsubscribe link is this reader's own, as in the header, and not another's.
    (own,) = re.findall(r"<(http[^>]+/u/[^>]+)>", unsubscribe)
    assert own in message.get_body(("plain",)).get_content()
    assert own not in str(by_recipient["reader43@example.org"].message()["List-Unsubscribe"])


def test_a_message_cut_off_after_its_final_dot_is_unknown_and_never_sent_again(
        db: Database, settings: Settings, server: SmtpServer, certificates: Certificates,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = smtp_settings(monkeypatch, server.environment(certificates))
    issue_id = started_issue(db, settings, 40)
    server.handler.drop_after_dot.add("reader5@example.org")
    transport = get_transport(settings)
    total = Dispatcher(settings, db, transport).run_until_idle()
    assert total.submitted == 39 and total.unknown == 1
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 39, "unknown": 1}
        ((batch_id, rows, error, *_),) = ledger.unknown_batches(s, issue_id)
        held = s.scalar(select(Contact.email).join(Delivery, Delivery.contact_id == Contact.id)
                        .where(Delivery.status == "unknown"))
    assert rows == 1 and held == "reader5@example.org"
    assert "no answer from the mail server after the message was sent" in error and "reader5" not in error
    # Later runs, recovery and reconciliation (no request log: the row waits for staff) never resend it.
    assert Dispatcher(settings, db, transport, clock=later).run_until_idle().handled == 0
    with db.session() as s:
        ledger.recover_expired(s, later())
    reconcile.reconcile(settings, db, later())
    assert Dispatcher(settings, db, transport, clock=later).run_until_idle().handled == 0
    transport.close()
    counts = server.handler.counts()
    assert len(counts) == 40 and set(counts.values()) == {1}
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 39, "unknown": 1}


def test_a_wrong_password_stops_sending_with_a_clear_message(
        db: Database, settings: Settings, server: SmtpServer, certificates: Certificates,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = smtp_settings(monkeypatch, server.environment(certificates, password="not the password at all"))
    issue_id = started_issue(db, settings, 5)
    with pytest.raises(SendingStopped, match="refused the user name or password"):
        Dispatcher(settings, db, get_transport(settings)).run_until_idle()
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"queued": 5}  # nothing marked failed that was never tried
        reason = s.scalar(select(SendPause.reason))
    assert "NEWSLETTER_SMTP_PASSWORD" in reason and "not the password" not in reason and PASSWORD not in reason
    assert server.handler.received == []


def test_a_certificate_that_does_not_verify_stops_sending(
        db: Database, settings: Settings, server: SmtpServer, certificates: Certificates,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = server.environment(certificates)
    del env["NEWSLETTER_SMTP_CA_FILE"]  # the throwaway CA is not trusted: its certificate must not be accepted
    settings = smtp_settings(monkeypatch, env)
    issue_id = started_issue(db, settings, 3)
    with pytest.raises(SendingStopped, match="certificate that does not verify"):
        Dispatcher(settings, db, get_transport(settings)).run_until_idle()
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"queued": 3}
    assert server.handler.received == []


# aiosmtpd counts only STARTTLS as TLS, and warns that AUTH is allowed without it: here the socket is TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_works(db: Database, settings: Settings, certificates: Certificates,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    with SmtpServer(certificates, security="tls") as server:
        settings = smtp_settings(monkeypatch, server.environment(certificates))
        issue_id = started_issue(db, settings, 30)
        transport = get_transport(settings)
        assert Dispatcher(settings, db, transport).run_until_idle().submitted == 30
        transport.close()
    assert len(server.handler.counts()) == 30 and set(server.handler.counts().values()) == {1}
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 30}


def test_a_server_without_pipelining_gets_one_command_at_a_time(
        db: Database, settings: Settings, certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = Handler(pipelining=False, refuse={"reader3@example.org": "553 5.1.3 bad address syntax"},
                      defer_once={"reader4@example.org": "452 4.2.2 mailbox full"})
    with SmtpServer(certificates, handler=handler) as server:
        settings = smtp_settings(monkeypatch, server.environment(certificates))
        issue_id = started_issue(db, settings, 30)
        transport = get_transport(settings)
        assert Dispatcher(settings, db, transport).run_until_idle().submitted == 28
        assert Dispatcher(settings, db, transport, clock=later).run_until_idle().submitted == 1
        transport.close()
    counts = handler.counts()
    assert len(counts) == 29 and set(counts.values()) == {1} and "reader3@example.org" not in counts
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 29, "failed": 1}
        assert reason_for(s, "reader3@example.org") == "invalid_address"


def test_pooled_connections_the_server_dropped_are_opened_again(
        db: Database, settings: Settings, server: SmtpServer, certificates: Certificates,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = smtp_settings(monkeypatch, server.environment(certificates))
    transport = get_transport(settings)
    first = started_issue(db, settings, 20)
    Dispatcher(settings, db, transport).run_until_idle()
    server.restart()  # every kept connection is dropped while idle
    second = make_issue(db, settings, "A second issue")
    start(db, settings, second)
    assert Dispatcher(settings, db, transport).run_until_idle().submitted == 20
    transport.close()
    with db.session() as s:
        assert ledger.status_counts(s, first) == ledger.status_counts(s, second) == {"submitted": 20}
    assert set(server.handler.counts().values()) == {2}  # each reader got each issue once


def test_clear_text_is_refused_unless_the_server_is_on_this_machine(
        db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "smtp")
    monkeypatch.setenv("NEWSLETTER_SMTP_SECURITY", "none")
    monkeypatch.setenv("NEWSLETTER_SMTP_HOST", "mail.example.org")
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match="NEWSLETTER_SMTP_SECURITY=none is refused") as refused:
        get_settings()
    assert "\n" not in str(refused.value)
    with SmtpServer(None, security="none", auth=False) as server:  # a relay on the same machine may be plain
        settings = smtp_settings(monkeypatch, server.environment(None), NEWSLETTER_SMTP_HOST="127.0.0.1")
        issue_id = started_issue(db, settings, 3)
        transport = get_transport(settings)
        assert Dispatcher(settings, db, transport).run_until_idle().submitted == 3
        transport.close()
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 3}


@pytest.mark.parametrize(("env", "named"), [
    ({"NEWSLETTER_SMTP_HOST": ""}, "NEWSLETTER_SMTP_HOST"),
    ({"NEWSLETTER_SMTP_HOST": "smtp://relay.example.org:587"}, "NEWSLETTER_SMTP_HOST"),
    ({"NEWSLETTER_SMTP_HOST": "relay.example.org", "NEWSLETTER_SMTP_USERNAME": "clinic"}, "NEWSLETTER_SMTP_PASSWORD"),
    ({"NEWSLETTER_SMTP_HOST": "relay.example.org", "NEWSLETTER_SMTP_SECURITY": "ssl"}, "NEWSLETTER_SMTP_SECURITY"),
    ({"NEWSLETTER_SMTP_HOST": "relay.example.org", "NEWSLETTER_SMTP_CA_FILE": "/no/such/ca.pem"},
     "NEWSLETTER_SMTP_CA_FILE"),
    ({"NEWSLETTER_SMTP_HOST": "relay.example.org", "NEWSLETTER_SMTP_CONNECTIONS": "0"},
     "NEWSLETTER_SMTP_CONNECTIONS"),
])
def test_a_misconfiguration_is_one_line_naming_the_setting(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                          env: dict[str, str], named: str) -> None:
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "smtp")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match=named) as refused:
        get_settings()
    assert "\n" not in str(refused.value)


def test_ports_follow_the_security(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "smtp")
    monkeypatch.setenv("NEWSLETTER_SMTP_HOST", "relay.example.org")
    for security, port in (("starttls", 587), ("tls", 465)):
        monkeypatch.setenv("NEWSLETTER_SMTP_SECURITY", security)
        get_settings.cache_clear()
        assert get_settings().smtp_port == port


def test_a_421_before_the_message_is_sent_again_on_a_new_connection_once(
        db: Database, settings: Settings, server: SmtpServer, certificates: Certificates,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = smtp_settings(monkeypatch, server.environment(certificates))
    issue_id = started_issue(db, settings, 30)
    server.handler.defer_once["reader9@example.org"] = "421 4.3.2 Service shutting down"
    transport = get_transport(settings)
    total = Dispatcher(settings, db, transport).run_until_idle()
    transport.close()
    assert total.submitted == 30 and total.unknown == 0
    counts = server.handler.counts()
    assert len(counts) == 30 and set(counts.values()) == {1}
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 30}


def test_a_server_that_cannot_be_reached_is_retried_then_the_batch_fails_without_addresses(
        db: Database, settings: Settings, certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    with SmtpServer(certificates) as stopped:  # a port where nothing listens once it is stopped
        env = stopped.environment(certificates)
    settings = smtp_settings(monkeypatch, env, NEWSLETTER_SEND_RETRIES="1")
    issue_id = started_issue(db, settings, 4)
    waits: list[float] = []
    Dispatcher(settings, db, get_transport(settings), sleep=waits.append).run_until_idle()
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"failed": 4}
        errors = set(s.scalars(select(Delivery.error).where(Delivery.issue_id == issue_id)))
    (error,) = errors
    assert "gave up after 2 attempts" in error and "could not be reached" in error and "@" not in error
    assert len(waits) == 1  # one backoff before the one retry


@pytest.mark.postgres
def test_each_recipients_outcome_is_recorded_on_postgresql(
        postgres_db: Database, settings: Settings, server: SmtpServer, certificates: Certificates,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = postgres_db
    settings = smtp_settings(monkeypatch, server.environment(certificates))
    issue_id = started_issue(db, settings, 40)
    server.handler.refuse["reader3@example.org"] = "551 5.1.6 user not local"
    server.handler.defer_once["reader4@example.org"] = "450 4.2.1 mailbox busy"
    server.handler.drop_after_dot.add("reader5@example.org")
    transport = get_transport(settings)
    now = utcnow() + timedelta(seconds=1)
    Dispatcher(settings, db, transport, clock=lambda: now).run_until_idle()
    Dispatcher(settings, db, transport, clock=later).run_until_idle()
    transport.close()
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 38, "failed": 1, "unknown": 1}
        assert reason_for(s, "reader3@example.org") == "invalid_address"
        ids = dict(s.execute(select(Contact.email, Delivery.provider_message_id)
                             .join(Delivery, Delivery.contact_id == Contact.id)
                             .where(Delivery.issue_id == issue_id, Delivery.status == "submitted")).all())
        assert len(ledger.unknown_batches(s, issue_id)) == 1
    by_recipient = {r.recipient: r.queue_id for r in server.handler.received}
    assert ids == {address: by_recipient[address] for address in ids}
    assert set(server.handler.counts().values()) == {1} and len(server.handler.counts()) == 39
