"""The claim on PostgreSQL: real row locking (concurrent workers never claim or send the same row), and
the suppression re-check inside the claim statement."""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select, text, update

from newsletter import erasure
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Delivery, Issue, SendBatch
from newsletter.sending import ledger, schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.sending.pacing import Pacer
from subscribers.consent import Proof, unsubscribe
from subscribers.contacts import find_contact
from subscribers.states import BatchStatus, DeliveryStatus, IssueStatus
from subscribers.suppression import suppress
from tests.sendkit import ScriptedTransport, add_audience, make_issue

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc)


def test_open_claims_skip_each_others_rows(postgres_db: Database, settings: Settings) -> None:
    issue_id = make_issue(postgres_db, settings)
    add_audience(postgres_db, 10)
    with postgres_db.session() as s:
        assert schedule.start_now(s, settings, s.get(Issue, issue_id), NOW) == 10  # the count, not psycopg's -1
    with postgres_db.session() as first:
        a = ledger.claim(first, worker="A", limit=6, now=NOW, lease=timedelta(minutes=5))
        with postgres_db.session() as second:  # while A's transaction is still open
            b = ledger.claim(second, worker="B", limit=6, now=NOW, lease=timedelta(minutes=5))
    ids_a = {r.delivery_id for r in a.rows}
    ids_b = {r.delivery_id for r in b.rows}
    assert len(ids_a) == 6 and len(ids_b) == 4 and not ids_a & ids_b


def test_two_workers_send_every_row_once(postgres_db: Database, settings: Settings) -> None:
    issue_id = make_issue(postgres_db, settings)
    add_audience(postgres_db, 2000)
    with postgres_db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), NOW)
    transports = [ScriptedTransport(max_batch=50), ScriptedTransport(max_batch=50)]
    workers = [
        threading.Thread(target=Dispatcher(settings, postgres_db, t, worker=f"w{n}", sleep=lambda s: None,
                                           clock=lambda: NOW).run_until_idle)
        for n, t in enumerate(transports)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    sent = transports[0].delivered + transports[1].delivered
    assert len(sent) == 2000 == len(set(sent))
    assert transports[0].delivered and transports[1].delivered  # both did work
    with postgres_db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 2000}


def test_who_left_after_enqueue_is_skipped_at_claim(postgres_db: Database, settings: Settings) -> None:
    issue_id = make_issue(postgres_db, settings)
    add_audience(postgres_db, 6)
    with postgres_db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), NOW)
    with postgres_db.session() as s:
        unsubscribe(s, find_contact(s, "reader1@example.org"), None, Proof("one_click"))
        suppress(s, "reader2@example.org", "spam_complaint")
        erasure.erase(s, settings, "reader3@example.org")
    with postgres_db.session() as s:
        got = ledger.claim(s, worker="A", limit=10, now=NOW, lease=timedelta(minutes=5), transport="x")
    assert [r.email for r in got.rows] == [f"reader{n}@example.org" for n in (0, 4, 5)] and got.suppressed == 3
    with postgres_db.session() as s:
        assert s.get(SendBatch, got.batch_id).size == 3
        skipped = s.execute(select(Delivery.batch_id, Delivery.lease_expires_at).where(Delivery.status == "suppressed"))
        assert skipped.all() == [(None, None)] * 3  # not part of the request


def test_workers_claiming_at_once_share_one_daily_budget(postgres_db: Database, settings: Settings) -> None:
    issue_id = make_issue(postgres_db, settings)
    add_audience(postgres_db, 500)
    with postgres_db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), NOW)
    pacer = Pacer(0, 320)
    claims: dict[str, int] = {}

    def claim_as(worker: str, session) -> None:  # noqa: ANN001 - a Session
        room = pacer.room_today(session, NOW)
        claims[worker] = len(ledger.claim(session, worker=worker, limit=min(300, room), now=NOW,
                                          lease=timedelta(minutes=5), transport="x").rows)

    with postgres_db.session() as first:
        claim_as("A", first)  # A has counted and claimed 300, not committed yet
        second = threading.Thread(target=lambda: _in_session(postgres_db, lambda s: claim_as("B", s)))
        second.start()
        second.join(timeout=1)
        assert second.is_alive()  # B waits for A's count and claim to be settled
    second.join(timeout=30)
    assert claims == {"A": 300, "B": 20}  # not 300 + 300


def _in_session(db: Database, work) -> None:  # noqa: ANN001
    with db.session() as session:
        work(session)


def test_postgresql_connections_killed_mid_send_are_weather(postgres_db: Database, settings: Settings) -> None:
    """While the request is out, every other connection of the dispatcher's pool is killed (as a
    PostgreSQL restart does): the answer is still recorded, on a new connection, and nobody is mailed
    twice."""
    from sqlalchemy import create_engine, text

    issue_id = make_issue(postgres_db, settings)
    add_audience(postgres_db, 30)
    with postgres_db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), datetime.now(timezone.utc))
    # The dispatcher's own connections carry a name of their own: only they are killed, never another
    # test run's on the same server.
    name = f"dispatcher-under-test-{secrets.token_hex(4)}"
    sending_db = Database(postgres_db.engine.url.update_query_dict({"application_name": name})
                          .render_as_string(hide_password=False))
    killer = create_engine(postgres_db.engine.url)

    def kill_the_pool(_batch: object) -> None:
        with killer.connect() as conn:
            killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE application_name = :name"), {"name": name}).scalar()
        assert killed >= 1

    transport = ScriptedTransport(script=[kill_the_pool, kill_the_pool])
    waits: list[float] = []
    settings = settings.model_copy(update={"batch_size": 10})
    Dispatcher(settings, sending_db, transport, sleep=waits.append).run_until_idle()
    killer.dispose()
    sending_db.engine.dispose()
    with postgres_db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 30}
    assert transport.requests == 3 and len(transport.delivered) == len(set(transport.delivered)) == 30


def test_a_state_member_is_stored_as_its_value(postgres_db: Database, settings: Settings) -> None:
    """psycopg 3 dumps a plain Enum by its name; the states are StrEnums, so they go as their values
    ('queued', never 'QUEUED'), whether written through the ORM or a Core insert or update."""
    issue_id = make_issue(postgres_db, settings)
    add_audience(postgres_db, 2)
    with postgres_db.session() as s:
        s.get(Issue, issue_id).status = IssueStatus.SCHEDULED  # the ORM
        batch = SendBatch(transport="x", worker="w", status=BatchStatus.CLAIMED, size=0)
        s.add(batch)
        s.flush()
        s.execute(insert(Delivery).values(issue_id=issue_id, contact_id=find_contact(s, "reader0@example.org").id,
                                          status=DeliveryStatus.QUEUED, due_at=NOW))  # a Core insert
        s.execute(update(SendBatch).where(SendBatch.id == batch.id).values(status=BatchStatus.SPLIT))  # a Core update
        batch_id = batch.id
    with postgres_db.session() as s:
        stored = s.execute(text("SELECT (SELECT status FROM issues WHERE id = :i), "
                                "(SELECT status FROM deliveries WHERE issue_id = :i), "
                                "(SELECT status FROM send_batches WHERE id = :b)"), {"i": issue_id, "b": batch_id}).one()
        assert tuple(stored) == ("scheduled", "queued", "split")
        # ... and a member as a bound parameter matches the stored value.
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.QUEUED)) == 1
