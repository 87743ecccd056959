"""Confirmation emails go through a durable queue, never out of a web request: the sign-up and resend
forms answer alike for known and new addresses without calling the provider; the dispatchers send
each queued email at most once, retry failures with backoff and record what happened."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import func, select

from newsletter import erasure, optin
from newsletter.config import Settings, get_settings
from newsletter.database import Database
from newsletter.models import ConfirmationEmail, SendPause
from newsletter.sending.confirmations import ConfirmationSender
from newsletter.sending.dispatch import Dispatcher, SendingStopped, send_all
from newsletter.transports import MemoryTransport
from newsletter.transports.base import AuthenticationFailed, OutcomeUnknown, RateLimited, TemporaryFailure
from newsletter.transports.sendgrid import SendGridTransport
from subscribers.consent import Proof, confirm
from subscribers.contacts import find_contact
from tests.audience import subscriber
from tests.liveserver import serving
from tests.sendgrid_fake import FakeSendGrid
from tests.webhook_signer import Signer
from tests.sendkit import ScriptedTransport, raises

FORM = Proof("form", form_id="test", text="I agree")


def sign_up(client: httpx.Client, email: str) -> httpx.Response:
    return client.post("/subscribe", data={"email": email, "name": "Sam", "consent": "yes"})


def queue_one(db: Database, settings: Settings, email: str = "sam@example.org") -> int:
    with db.session() as s:
        queued = optin.sign_up(s, settings, email, name="Sam", proof=FORM).confirmation_id
    assert queued is not None
    return queued


def row(db: Database, confirmation_id: int) -> ConfirmationEmail:
    with db.session() as s:
        found = s.get(ConfirmationEmail, confirmation_id)
        assert found is not None
        return found


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_forms_answer_alike_and_no_provider_request_happens_inside_one(
        settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeSendGrid(latency=0.25) as fake:  # SendGrid's usual response time
        monkeypatch.setenv("SENDGRID_API_KEY", fake.api_key)
        monkeypatch.setenv("SENDGRID_API_HOST", fake.url)
        monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", Signer().public)  # SendGrid sending needs it
        get_settings.cache_clear()
        sendgrid_settings = get_settings()
        with db.session() as s:
            subscriber(s, sendgrid_settings, "known@example.org", name="Kim")  # confirmed already
        with serving(sendgrid_settings, db, SendGridTransport) as server:
            with httpx.Client(base_url=server.url) as client:
                new = sign_up(client, "new@example.org")
                known = sign_up(client, "known@example.org")
                again = client.post("/confirm/resend", data={"email": "new@example.org"})
                nobody = client.post("/confirm/resend", data={"email": "nobody@example.org"})
            assert fake.requests == []  # no answer waited for the provider
            assert new.status_code == known.status_code == again.status_code == nobody.status_code == 200
            assert new.text == known.text and again.text == nobody.text
            result = server.send_queued()  # what serve's dispatchers do in the background
        assert result.one_offs == 1
        assert [(d.to, d.categories) for d in fake.deliveries] == [("new@example.org", ["confirmation"])]
    with db.session() as s:
        (sent,) = s.scalars(select(ConfirmationEmail))
        assert (sent.status, sent.attempts, sent.error) == ("sent", 1, None)
        assert sent.provider_message_id == fake.requests[0].message_id and sent.sent_at is not None


def test_a_rolled_back_sign_up_queues_nothing(db: Database, settings: Settings) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        optin.sign_up(s, settings, "ana@example.org", name="Ana", proof=FORM)
        raise RuntimeError("the request failed after the sign-up")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConfirmationEmail)) == 0


def test_a_claimed_email_is_never_sent_twice_even_when_its_dispatcher_dies(db: Database, settings: Settings) -> None:
    confirmation_id = queue_one(db, settings)
    clock = Clock()
    with db.session() as s:  # a dispatcher claims it, sends, and dies before recording the answer
        assert ConfirmationSender(settings, db, ScriptedTransport(), worker="gone").claim(s, clock.now) is not None
    transport = ScriptedTransport()
    assert Dispatcher(settings, db, transport, clock=clock).run_until_idle().one_offs == 0  # its lease holds
    clock.now += timedelta(seconds=301)
    assert Dispatcher(settings, db, transport, clock=clock).run_until_idle().one_offs == 0
    assert transport.requests == 0  # held as unknown, not sent again blindly
    held = row(db, confirmation_id)
    assert held.status == "unknown" and "not sent again" in (held.error or "")


def test_two_dispatchers_send_one_queued_email_once(db: Database, settings: Settings) -> None:
    queue_one(db, settings)
    transport = MemoryTransport(settings)
    totals = send_all(Dispatcher.pool(settings, db, transport, count=2))
    assert totals.one_offs == 1 and len(transport.sent) == 1


def test_each_memory_transport_keeps_only_what_it_was_given(db: Database, settings: Settings) -> None:
    first, second = MemoryTransport(settings), MemoryTransport(settings)
    queue_one(db, settings, "sam@example.org")
    Dispatcher(settings, db, first).run_until_idle()
    queue_one(db, settings, "kim@example.org")
    Dispatcher(settings, db, second).run_until_idle()
    assert [m["To"].addresses[0].addr_spec for m in first.sent] == ["sam@example.org"]
    assert [m["To"].addresses[0].addr_spec for m in second.sent] == ["kim@example.org"]
    assert MemoryTransport(settings).sent == []


def test_failures_are_retried_with_backoff_and_recorded(db: Database, settings: Settings) -> None:
    confirmation_id = queue_one(db, settings)
    clock = Clock()
    transport = ScriptedTransport(script=[raises(TemporaryFailure("SendGrid server error (503)")),
                                          raises(TemporaryFailure("SendGrid server error (502)"))])
    dispatcher = Dispatcher(settings, db, transport, clock=clock, sleep=lambda _: None)
    assert dispatcher.run_once().one_offs == 1
    first = row(db, confirmation_id)
    assert (first.status, first.attempts, first.error) == ("queued", 1, "SendGrid server error (503)")
    assert timedelta(seconds=15) <= first.due_at - clock.now <= timedelta(seconds=45)  # 30 s, with jitter
    assert dispatcher.run_once().handled == 0  # not due yet
    clock.now = first.due_at
    dispatcher.run_once()
    second = row(db, confirmation_id)
    assert (second.status, second.attempts, second.error) == ("queued", 2, "SendGrid server error (502)")
    assert timedelta(seconds=30) <= second.due_at - clock.now <= timedelta(seconds=90)  # doubled
    clock.now = second.due_at
    dispatcher.run_once()
    assert row(db, confirmation_id).status == "sent" and transport.delivered == ["sam@example.org"]
    assert transport.requests == 3


def test_it_gives_up_after_the_retries_and_says_why(db: Database, settings: Settings) -> None:
    confirmation_id = queue_one(db, settings)
    clock = Clock()
    transport = ScriptedTransport(script=[raises(TemporaryFailure("SendGrid could not be reached"))] * 2)
    dispatcher = Dispatcher(settings.model_copy(update={"send_retries": 1}), db, transport, clock=clock)
    dispatcher.run_once()
    clock.now = row(db, confirmation_id).due_at
    dispatcher.run_once()
    failed = row(db, confirmation_id)
    assert failed.status == "failed" and failed.error == "gave up after 2 attempts: SendGrid could not be reached"


def test_an_unknown_outcome_is_held_and_never_resent(db: Database, settings: Settings) -> None:
    confirmation_id = queue_one(db, settings)
    transport = ScriptedTransport(script=[raises(OutcomeUnknown("no answer from SendGrid"))])
    assert Dispatcher(settings, db, transport).run_until_idle().one_offs == 1
    assert Dispatcher(settings, db, transport).run_until_idle().one_offs == 0
    held = row(db, confirmation_id)
    assert (held.status, held.error, transport.requests) == ("unknown", "no answer from SendGrid", 1)


def test_rate_limits_wait_for_the_reset_and_a_refused_key_stops_all_sending(db: Database, settings: Settings) -> None:
    confirmation_id = queue_one(db, settings)
    clock = Clock()
    reset = clock.now + timedelta(seconds=40)
    transport = ScriptedTransport(script=[raises(RateLimited("SendGrid: rate limit reached (429)", reset.timestamp())),
                                          raises(AuthenticationFailed("SendGrid refused the API key (401)"))])
    dispatcher = Dispatcher(settings, db, transport, clock=clock)
    dispatcher.run_once()
    limited = row(db, confirmation_id)
    assert (limited.status, limited.attempts) == ("queued", 0)
    assert abs((limited.due_at - reset).total_seconds()) < 1
    clock.now = limited.due_at
    with pytest.raises(SendingStopped):
        dispatcher.run_once()
    stopped = row(db, confirmation_id)
    assert (stopped.status, stopped.attempts) == ("queued", 0)  # given back untried
    with db.session() as s:
        assert s.scalar(select(SendPause).where(SendPause.active.is_(True))) is not None
    with pytest.raises(SendingStopped):  # nothing goes out until staff resume sending
        dispatcher.run_once()
    assert transport.requests == 2


def test_nothing_is_sent_once_confirmed_and_an_erased_contacts_email_is_gone(db: Database, settings: Settings) -> None:
    first = queue_one(db, settings, "done@example.org")
    queue_one(db, settings, "erased@example.org")
    with db.session() as s:
        (sub,) = find_contact(s, "done@example.org").subscriptions
        confirm(s, sub, Proof("email_link"))  # confirmed with an earlier link before this one went
        erasure.erase(s, settings, "erased@example.org")
    transport = ScriptedTransport()
    Dispatcher(settings, db, transport).run_until_idle()
    assert transport.requests == 0
    skipped = row(db, first)
    assert skipped.status == "skipped" and skipped.error == "not sent: the subscription is confirmed now"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConfirmationEmail)) == 1  # the erased one's row went too


@pytest.mark.postgres
def test_concurrent_dispatchers_on_postgresql_send_each_email_once(postgres_db: Database, settings: Settings) -> None:
    for n in range(12):
        queue_one(postgres_db, settings, f"reader{n}@example.org")
    transport = MemoryTransport(settings)
    totals = send_all(Dispatcher.pool(settings, postgres_db, transport, count=4))
    assert totals.one_offs == 12
    addresses = sorted(m["To"].addresses[0].addr_spec for m in transport.sent)
    assert addresses == sorted(f"reader{n}@example.org" for n in range(12))
    with postgres_db.session() as s:
        assert set(s.scalars(select(ConfirmationEmail.status))) == {"sent"}
