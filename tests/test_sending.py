"""The send path with a scripted transport: the ledger, the dispatcher's policy, schedules and ticks."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.errors import InputError
from newsletter.models import Delivery, Issue, SendBatch, SendPause
from newsletter.sending import ledger, schedule
from newsletter.sending.dispatch import Dispatcher, SendingStopped, send_all
from newsletter.sending.enqueue import enqueue_issue
from newsletter.sending.pacing import Pacer
from newsletter.transports.base import (
    AuthenticationFailed, BadRequest, Batch, BatchResult, BatchTooLarge, OutcomeUnknown, RateLimited, TemporaryFailure,
)
from subscribers.consent import Proof, unsubscribe
from subscribers.contacts import find_contact
from subscribers.models import Contact
from subscribers.suppression import suppress
from tests.sendkit import ScriptedTransport, add_audience, make_issue, raises

NOW = datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc)


def start(db: Database, settings: Settings, issue_id: int, now: datetime = NOW) -> int:
    with db.session() as s:
        return schedule.start_now(s, settings, s.get(Issue, issue_id), now)


def started_issue(db: Database, settings: Settings, contacts: int) -> int:
    """An issue sending now to ``contacts`` subscribers (reader0@… onwards)."""
    issue_id = make_issue(db, settings)
    add_audience(db, contacts)
    start(db, settings, issue_id)
    return issue_id


def counts(db: Database, issue_id: int) -> dict[str, int]:
    with db.session() as s:
        return ledger.status_counts(s, issue_id)


def dispatcher(settings: Settings, db: Database, transport: ScriptedTransport, **kw) -> Dispatcher:
    return Dispatcher(settings, db, transport, sleep=lambda s: None, clock=lambda: NOW, **kw)


def test_enqueue_is_one_statement_minus_suppressed_and_idempotent(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 50)
    with db.session() as s:
        suppress(s, "reader3@example.org", "hard_bounce")
        unsubscribe(s, find_contact(s, "reader4@example.org"), None, Proof("email_link"))
    assert start(db, settings, issue_id) == 48
    with db.session() as s:
        assert enqueue_issue(s, s.get(Issue, issue_id), NOW) == 0  # a second enqueue adds nothing
    assert counts(db, issue_id) == {"queued": 48}


def test_every_recipient_exactly_once_in_batches(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 250)
    transport = ScriptedTransport(max_batch=100)
    total = dispatcher(settings, db, transport).run_until_idle()
    assert total.submitted == 250 and transport.requests == 3
    assert sorted(transport.delivered) == sorted(f"reader{n}@example.org" for n in range(250))
    assert counts(db, issue_id) == {"submitted": 250}
    with db.session() as s:
        assert s.get(Issue, issue_id).status == "sent"


def test_who_leaves_after_enqueue_is_skipped_at_claim(db: Database, settings: Settings) -> None:
    started_issue(db, settings, 5)
    with db.session() as s:
        unsubscribe(s, find_contact(s, "reader1@example.org"), None, Proof("one_click"))
        suppress(s, "reader2@example.org", "spam_complaint")
    transport = ScriptedTransport()
    result = dispatcher(settings, db, transport).run_until_idle()
    assert result.suppressed == 2 and sorted(transport.delivered) == [f"reader{n}@example.org" for n in (0, 3, 4)]


def test_pause_and_resume_never_resend(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 30)
    transport = ScriptedTransport(max_batch=10)
    d = dispatcher(settings, db, transport)
    d.run_once()
    with db.session() as s:
        schedule.pause(s.get(Issue, issue_id))
    assert d.run_once().handled == 0  # paused: nothing is claimed
    with db.session() as s:
        schedule.resume(s, s.get(Issue, issue_id), NOW)
    d.run_until_idle()
    assert len(transport.delivered) == 30 == len(set(transport.delivered))


def test_rate_limit_waits_for_the_reset_and_retries(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 3)
    waits: list[float] = []
    transport = ScriptedTransport(script=[raises(RateLimited("429", reset_at=None))])
    Dispatcher(settings, db, transport, sleep=waits.append, clock=lambda: NOW).run_until_idle()
    assert waits and len(transport.delivered) == 3 and counts(db, issue_id) == {"submitted": 3}


def test_server_errors_retry_with_backoff_then_fail_the_batch_and_go_on(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 4)
    tries = settings.send_retries + 1
    waits: list[float] = []
    transport = ScriptedTransport(max_batch=2, script=[raises(TemporaryFailure("HTTP 500"))] * tries)
    Dispatcher(settings, db, transport, sleep=waits.append, clock=lambda: NOW).run_until_idle()
    assert counts(db, issue_id) == {"failed": 2, "submitted": 2}
    assert len(waits) == settings.send_retries and waits[-1] > waits[0]  # backing off
    with db.session() as s:
        assert "gave up after" in s.scalar(select(Delivery.error).where(Delivery.status == "failed"))


def test_bad_recipients_fail_alone_named_or_found_by_splitting(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 8)

    def refuse_reader5(batch):
        if any(r.email == "reader5@example.org" for r in batch.recipients):
            raise BadRequest("Does not contain a valid address.")
        return None

    transport = ScriptedTransport(script=[raises(BadRequest("invalid", {1})), *[refuse_reader5] * 10])
    dispatcher(settings, db, transport).run_until_idle()
    assert counts(db, issue_id) == {"failed": 2, "submitted": 6}
    assert "reader1@example.org" not in transport.delivered and "reader5@example.org" not in transport.delivered


def test_too_large_splits(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 6)
    transport = ScriptedTransport(script=[raises(BatchTooLarge("413"))])
    dispatcher(settings, db, transport).run_until_idle()
    assert counts(db, issue_id) == {"submitted": 6} and transport.requests == 3


def test_unknown_outcome_is_held_not_resent_and_staff_can_settle_it(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 3)
    transport = ScriptedTransport(script=[raises(OutcomeUnknown("read timeout"))])
    dispatcher(settings, db, transport).run_until_idle()
    assert counts(db, issue_id) == {"unknown": 3} and transport.delivered == []
    with db.session() as s:
        ((batch_id, rows, error, *_),) = ledger.unknown_batches(s, issue_id)
        assert rows == 3 and "read timeout" in error
        assert ledger.resolve_unknown(s, batch_id, sent=True, now=NOW, evidence="staff") == 3
    assert counts(db, issue_id) == {"submitted": 3}


def test_a_batch_queued_again_goes_out_even_after_its_issue_finished(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 3)
    transport = ScriptedTransport(script=[raises(OutcomeUnknown("read timeout"))])
    dispatcher(settings, db, transport).run_until_idle()
    with db.session() as s:
        assert s.get(Issue, issue_id).status == "sent"  # nothing left on its way: the send is over
        ((batch_id, _, _, *_),) = ledger.unknown_batches(s, issue_id)
        assert ledger.resolve_unknown(s, batch_id, sent=False, now=NOW, evidence="staff") == 3  # staff: --resend
    dispatcher(settings, db, transport).run_until_idle()
    assert sorted(transport.delivered) == [f"reader{n}@example.org" for n in range(3)]
    assert counts(db, issue_id) == {"submitted": 3}
    with db.session() as s:
        assert s.get(Issue, issue_id).status == "sent"


def test_a_wrong_key_stops_everything_and_marks_nothing_failed(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 3)
    transport = ScriptedTransport(script=[raises(AuthenticationFailed("the API key was refused"))])
    with pytest.raises(SendingStopped):
        dispatcher(settings, db, transport).run_until_idle()
    assert counts(db, issue_id) == {"queued": 3}
    with pytest.raises(SendingStopped, match="Fix SENDGRID_API_KEY"):
        dispatcher(settings, db, transport).run_once()
    with db.session() as s:
        s.execute(update(SendPause).values(active=False))  # 'newsletter sending resume'
    dispatcher(settings, db, transport).run_until_idle()
    assert counts(db, issue_id) == {"submitted": 3}


def test_circuit_breaker_pauses_a_failing_send(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 20)
    settings = settings.model_copy(update={"send_retries": 0, "breaker_threshold": 3})
    transport = ScriptedTransport(max_batch=2, script=[raises(TemporaryFailure("HTTP 503"))] * 50)
    dispatcher(settings, db, transport).run_until_idle()
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        assert issue.status == "paused" and "3 failed batches in a row" in issue.paused_reason
    assert counts(db, issue_id) == {"failed": 6, "queued": 14}


def test_a_dead_workers_rows_are_held_as_unknown_only_if_their_request_began(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 8)
    with db.session() as s:  # worker A claimed two rows, marked its request begun, and died
        a = ledger.claim(s, worker="A", limit=2, now=NOW, lease=timedelta(minutes=5), transport="x")
    with db.session() as s:
        ledger.begin_request(s, a.batch_id, NOW)
    with db.session() as s:  # worker C claimed two rows and died waiting for its pace slot
        c = ledger.claim(s, worker="C", limit=2, now=NOW, lease=timedelta(minutes=5), transport="x")
    with db.session() as s:  # two more rows, claimed by a version that set no batch at claim time
        b = ledger.claim(s, worker="B", limit=2, now=NOW, lease=timedelta(minutes=5), transport="x")
        s.execute(update(Delivery).where(Delivery.batch_id == b.batch_id).values(batch_id=None))
    with db.session() as s:
        assert s.get(SendBatch, a.batch_id).status == "requesting" and s.get(SendBatch, a.batch_id).size == 2
        assert s.get(SendBatch, c.batch_id).status == "claimed"
        assert ledger.recover_expired(s, NOW + timedelta(minutes=1)) == (0, 0)  # leases still valid
        assert ledger.recover_expired(s, NOW + timedelta(minutes=6)) == (4, 2)  # C's and B's never left
        assert s.get(SendBatch, a.batch_id).status == "unknown"
        never = s.get(SendBatch, c.batch_id)
        assert never.status == "failed" and "before this batch's request began" in never.error
    assert counts(db, issue_id) == {"queued": 6, "unknown": 2}
    transport = ScriptedTransport()
    dispatcher(settings, db, transport).run_until_idle()
    held = {f"reader{n}@example.org" for n in (0, 1)}
    assert len(transport.delivered) == 6 and not held & set(transport.delivered)
    assert sorted(transport.delivered) == sorted(set(transport.delivered))  # each once


def test_a_batch_is_marked_requesting_only_while_its_request_may_be_out(db: Database, settings: Settings) -> None:
    """What recovery would see at each moment: claimed while waiting, requesting during the request,
    claimed again after an answer that took nothing (429, 5xx), settled at the end."""
    issue_id = started_issue(db, settings, 2)
    seen: list[str] = []

    def status_now() -> None:
        with db.session() as s:
            seen.append(s.scalar(select(SendBatch.status)))

    def then(error: Exception | None):  # noqa: ANN202 - a script step
        def step(_batch: object) -> None:
            status_now()
            if error is not None:
                raise error
        return step

    transport = ScriptedTransport(script=[then(RateLimited("slow down", reset_at=time.time())),
                                          then(TemporaryFailure("SendGrid server error (503)")), then(None)])
    d = Dispatcher(settings, db, transport, sleep=lambda seconds: status_now(), clock=lambda: NOW)
    d.run_until_idle()
    assert seen == ["requesting", "claimed", "requesting", "claimed", "requesting"]
    assert counts(db, issue_id) == {"submitted": 2}


def test_a_claim_whose_rows_were_all_suppressed_makes_no_batch(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 2)
    with db.session() as s:
        s.execute(update(Contact).values(status="unsubscribed"))
    with db.session() as s:
        got = ledger.claim(s, worker="A", limit=10, now=NOW, lease=timedelta(minutes=5), transport="x")
        assert (got.rows, got.suppressed, got.batch_id) == ([], 2, None)
        assert s.scalar(select(func.count()).select_from(SendBatch)) == 0
    assert counts(db, issue_id) == {"suppressed": 2}


def test_scheduled_issue_goes_at_its_time_and_a_cancelled_one_never(db: Database, settings: Settings) -> None:
    add_audience(db, 3)
    sent_id, cancelled_id = make_issue(db, settings), make_issue(db, settings, "Another week")
    at = NOW + timedelta(hours=2)
    with db.session() as s:
        for issue_id in (sent_id, cancelled_id):
            schedule.schedule_issue(s, settings, s.get(Issue, issue_id), at=at, now=NOW, zone="UTC")
        schedule.cancel(s.get(Issue, cancelled_id))
    with db.session() as s:
        assert schedule.due_work(s, at - timedelta(seconds=1), settings).started == []
    with db.session() as s:
        assert schedule.due_work(s, at, settings).started == [sent_id]
    transport = ScriptedTransport()
    Dispatcher(settings, db, transport, sleep=lambda s: None, clock=lambda: at).run_until_idle()
    with db.session() as s:
        assert schedule.due_work(s, at + timedelta(days=2), settings).started == []
        assert s.get(Issue, sent_id).status == "sent" and s.get(Issue, cancelled_id).status == "draft"
    assert len(transport.delivered) == 3 and counts(db, cancelled_id) == {}


def test_scheduling_needs_a_passing_preflight_and_a_future_time(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings, subject="")
    with db.session() as s, pytest.raises(InputError, match="preflight failed: The subject is empty"):
        schedule.schedule_issue(s, settings, s.get(Issue, issue_id), at=NOW + timedelta(days=1), now=NOW, zone="UTC")
    ok_id = make_issue(db, settings)
    with db.session() as s, pytest.raises(InputError, match="in the past"):
        schedule.schedule_issue(s, settings, s.get(Issue, ok_id), at=NOW - timedelta(days=1), now=NOW, zone="UTC")


def test_local_time_sends_at_nine_in_every_zone_across_dst(db: Database, settings: Settings) -> None:
    """1 November 2026: US clocks fall back that morning; Europe already changed; Tokyo has no DST."""
    zones = ["America/Los_Angeles", "Europe/London", "Asia/Tokyo", "Australia/Sydney"]
    add_audience(db, 4, zones=zones)
    issue_id = make_issue(db, settings)
    day_before = datetime(2026, 10, 30, 12, tzinfo=timezone.utc)
    with db.session() as s:
        schedule.schedule_issue(s, settings, s.get(Issue, issue_id), at=datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc),
                                now=day_before, zone="UTC", local_time=True)
        start_at = s.get(Issue, issue_id).scheduled_at
    assert start_at == datetime(2026, 10, 31, 19, 0, tzinfo=timezone.utc)  # 09:00 at UTC+14
    with db.session() as s:
        assert schedule.due_work(s, start_at, settings).started == [issue_id]
        due = dict(s.execute(select(Delivery.contact_id, Delivery.due_at)).all())
    expected = {
        "America/Los_Angeles": datetime(2026, 11, 1, 17, 0, tzinfo=timezone.utc),  # PST (-8) after the fall-back at 02:00
        "Europe/London": datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc),  # GMT since 25 October
        "Asia/Tokyo": datetime(2026, 11, 1, 0, 0, tzinfo=timezone.utc),
        "Australia/Sydney": datetime(2026, 10, 31, 22, 0, tzinfo=timezone.utc),  # AEDT (+11)
    }
    assert sorted(due.values()) == sorted(expected.values())
    transport = ScriptedTransport()
    for moment, wanted in [(datetime(2026, 10, 31, 23, tzinfo=timezone.utc), 1),
                           (datetime(2026, 11, 1, 8, tzinfo=timezone.utc), 2),
                           (datetime(2026, 11, 1, 16, 59, tzinfo=timezone.utc), 3),
                           (datetime(2026, 11, 1, 17, 0, tzinfo=timezone.utc), 4)]:
        Dispatcher(settings, db, transport, sleep=lambda s: None, clock=lambda m=moment: m).run_until_idle()
        assert len(transport.delivered) == wanted, moment
    assert len(set(transport.delivered)) == 4


def test_daily_limit_holds_the_rest_for_tomorrow(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 10)
    capped = settings.model_copy(update={"rate_per_day": 4})
    transport = ScriptedTransport()
    Dispatcher(capped, db, transport, sleep=lambda s: None, clock=lambda: NOW).run_until_idle()
    assert len(transport.delivered) == 4 and counts(db, issue_id) == {"submitted": 4, "queued": 6}
    with db.session() as s:  # a day later there is room again
        s.execute(update(Delivery).where(Delivery.status == "submitted").values(submitted_at=NOW - timedelta(days=2)))
    Dispatcher(capped, db, transport, sleep=lambda s: None, clock=lambda: NOW).run_until_idle()
    assert len(transport.delivered) == 8


class SlowTransport(ScriptedTransport):
    """Answers after a pause, like a real provider, and notes how many requests were in flight at once."""

    def __init__(self, pause: float = 0.02) -> None:
        super().__init__(max_batch=50)
        self.pause, self.in_flight, self.most_in_flight = pause, 0, 0
        self.lock = threading.Lock()

    def send(self, batch: Batch) -> BatchResult:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.pause)
        with self.lock:
            self.in_flight -= 1
            return super().send(batch)


def test_a_pool_keeps_several_requests_in_flight_and_sends_each_once(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 1000)
    transport = SlowTransport()
    pool = Dispatcher.pool(settings, db, transport, count=4, clock=lambda: NOW)
    total = send_all(pool)
    assert total.submitted == 1000 and len(transport.delivered) == len(set(transport.delivered)) == 1000
    assert transport.most_in_flight > 1  # the threads overlapped their requests
    assert counts(db, issue_id) == {"submitted": 1000}
    with db.session() as s:
        assert s.get(Issue, issue_id).status == "sent"


def test_a_pool_shares_one_pace_and_one_daily_limit(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 400)
    paced = settings.model_copy(update={"rate_per_second": 1000.0, "rate_per_day": 320})
    pool = Dispatcher.pool(paced, db, SlowTransport(pause=0.005), count=4, sleep=lambda s: None, clock=lambda: NOW)
    assert len({id(d.pacer) for d in pool}) == 1
    assert send_all(pool).submitted == 320  # not 4 x 320: rows claimed by the others count against the day
    assert counts(db, issue_id) == {"submitted": 320, "queued": 80}


def test_the_pace_is_booked_one_caller_after_another() -> None:
    waits: list[float] = []
    pacer = Pacer(per_second=1000, per_day=0, clock=lambda: 0.0)  # time stands still
    threads = [threading.Thread(target=lambda: [waits.append(pacer.reserve(50)) for _ in range(2)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Eight batches of 50 at 1000 a second: slots 0.05 s apart, none shared, whichever thread took which.
    assert sorted(round(w, 3) for w in waits) == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]


def test_a_long_wait_for_the_pace_keeps_the_claim(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 100)
    slow = settings.model_copy(update={"rate_per_second": 2.0, "lease_seconds": 10})

    recovered = []

    def time_passes(seconds: float) -> None:  # the scheduler's recovery runs while the batch waits
        with db.session() as s:
            recovered.append(ledger.recover_expired(s, NOW + timedelta(seconds=seconds)))

    transport = ScriptedTransport(max_batch=50)
    Dispatcher(slow, db, transport, sleep=time_passes, clock=lambda: NOW).run_until_idle()
    # The second batch waited ~25 s for its slot, longer than its 10 s lease: the lease was extended first.
    assert len(recovered) == 1 and recovered[0] == (0, 0)  # nothing requeued or held as unknown meanwhile
    assert len(transport.delivered) == len(set(transport.delivered)) == 100
    assert counts(db, issue_id) == {"submitted": 100}
    with db.session() as s:
        assert ledger.unknown_batches(s, issue_id) == []


def test_the_providers_answer_settles_a_batch_recovery_took_for_lost(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 3)
    with db.session() as s:
        got = ledger.claim(s, worker="A", limit=10, now=NOW, lease=timedelta(minutes=5), transport="x")
    with db.session() as s:  # its request left, and took longer than the lease
        ledger.begin_request(s, got.batch_id, NOW)
    with db.session() as s:
        assert ledger.recover_expired(s, NOW + timedelta(minutes=6)) == (0, 3)
    with db.session() as s:  # then worker A's request comes back accepted
        ledger.mark_submitted(s, got.batch_id, [r.delivery_id for r in got.rows], "m1", NOW, whole=True)
    assert counts(db, issue_id) == {"submitted": 3}
    with db.session() as s:
        assert s.get(SendBatch, got.batch_id).status == "submitted" and ledger.unknown_batches(s, issue_id) == []


def test_a_stop_during_a_wait_gives_the_untried_rows_back(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 100)
    paced = settings.model_copy(update={"rate_per_second": 2.0})
    stop = threading.Event()
    transport = ScriptedTransport(max_batch=50)
    pool = Dispatcher.pool(paced, db, transport, count=1, stop=stop, sleep=lambda s: stop.set(), clock=lambda: NOW)
    send_all(pool)  # Ctrl-C while the second batch waits for its slot
    assert len(transport.delivered) == 50 and counts(db, issue_id) == {"submitted": 50, "queued": 50}
    send_all(Dispatcher.pool(settings, db, transport, count=1, clock=lambda: NOW))  # started again later
    assert len(transport.delivered) == len(set(transport.delivered)) == 100
    assert counts(db, issue_id) == {"submitted": 100}


def test_a_worker_alone_recovers_a_dead_workers_rows_and_finishes_the_issue(db: Database, settings: Settings) -> None:
    """No scheduler runs (a deployment of `newsletter worker` only): an idle worker recovers what a
    dead one held once its lease lapsed, sends what never left, and the issue ends."""
    from newsletter.sending.worker import run_worker

    issue_id = started_issue(db, settings, 6)
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    with db.session() as s:  # a worker claimed two batches an hour ago and died: one request had begun
        began = ledger.claim(s, worker="dead", limit=2, now=long_ago, lease=timedelta(minutes=5), transport="x")
        ledger.begin_request(s, began.batch_id, NOW)
        ledger.claim(s, worker="dead", limit=2, now=long_ago, lease=timedelta(minutes=5), transport="x")
    transport = ScriptedTransport()
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(settings, db, transport, stop))
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with db.session() as s:
            if s.get(Issue, issue_id).status == "sent":
                break
        time.sleep(0.1)
    stop.set()
    thread.join(timeout=30)
    assert counts(db, issue_id) == {"submitted": 4, "unknown": 2}
    assert sorted(transport.delivered) == sorted(f"reader{n}@example.org" for n in range(2, 6))
    with db.session() as s:
        assert s.get(Issue, issue_id).status == "sent"


class FailingWrites:
    """The database refuses the next ``count`` writes of submitted rows the way SQLite does when its
    disk is full or a lock outlasts the busy timeout (sqlite3.OperationalError from the driver)."""

    def __init__(self, db: Database, count: int, message: str) -> None:
        self.left, self.message, self.db = count, message, db

    def __enter__(self) -> "FailingWrites":
        from sqlalchemy import event

        event.listen(self.db.engine, "before_cursor_execute", self._maybe_fail)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        event.remove(self.db.engine, "before_cursor_execute", self._maybe_fail)

    def _maybe_fail(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        import sqlite3

        if self.left and statement.startswith("UPDATE deliveries SET status=") and "submitted" in str(parameters):
            self.left -= 1
            raise sqlite3.OperationalError(self.message)


@pytest.mark.parametrize("message", ["database or disk is full", "database is locked"])
def test_an_answer_the_database_cannot_take_at_once_is_recorded_when_it_can(
        db: Database, settings: Settings, message: str) -> None:
    issue_id = started_issue(db, settings, 5)
    transport = ScriptedTransport()
    waits: list[float] = []
    with FailingWrites(db, 3, message) as faults:
        Dispatcher(settings, db, transport, sleep=waits.append, clock=lambda: NOW).run_until_idle()
    assert faults.left == 0 and waits == [0.5, 1.0, 2.0]  # backoff while the database could not write
    assert counts(db, issue_id) == {"submitted": 5}  # accepted mail recorded, not left claimed
    assert transport.requests == 1  # and never sent twice


def test_a_real_write_lock_held_past_the_busy_timeout_is_waited_out(db: Database, settings: Settings) -> None:
    """Another process holds SQLite's write lock (BEGIN IMMEDIATE) from before the provider answers
    until 4 s later, past the sender's 1 s busy timeout: the answer is recorded once the lock is
    free, the rows are not left claimed, and nothing is sent twice."""
    import sqlite3

    issue_id = started_issue(db, settings, 5)
    path = db.engine.url.database
    sending_db = Database(f"sqlite:///{path}?timeout=1")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    released = threading.Event()

    def hold_the_lock(_batch: object) -> None:
        holder.execute("BEGIN IMMEDIATE")  # taken while the request is out, so the answer meets it

        def release() -> None:
            holder.execute("COMMIT")
            released.set()
        threading.Timer(4.0, release).start()

    transport = ScriptedTransport(script=[hold_the_lock])
    started = time.monotonic()
    Dispatcher(settings, sending_db, transport, clock=lambda: NOW).run_until_idle()
    waited = time.monotonic() - started
    holder.close()
    sending_db.engine.dispose()
    assert released.is_set() and waited >= 4.0  # it waited for the lock rather than giving up
    assert counts(db, issue_id) == {"submitted": 5} and transport.requests == 1


def test_a_database_that_stays_unwritable_is_one_clear_line(db: Database, settings: Settings) -> None:
    from newsletter.sending.dispatch import RecordingFailed

    issue_id = started_issue(db, settings, 2)
    waits: list[float] = []
    with FailingWrites(db, 1000, "database or disk is full"), pytest.raises(RecordingFailed) as caught:
        Dispatcher(settings, db, ScriptedTransport(), sleep=waits.append, clock=lambda: NOW).run_until_idle()
    assert sum(waits) >= settings.lease_seconds and max(waits) == 30.0
    text = str(caught.value)
    assert "could not record it" in text and "OperationalError: database or disk is full" in text
    assert "\n" not in text and "@" not in text
    assert counts(db, issue_id) == {"claimed": 2}  # recovery will hold them as unknown, never resend
