"""Stops of all sending (sending/stops.py), how a batch is closed (ledger.close_batch), and the circuit
breaker's key (one count per email: an issue and a step are never confused)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Issue, SendBatch, SendPause
from newsletter.sending import ledger, schedule, stops
from newsletter.sending.dispatch import Dispatcher, EmailRef, SendingStopped, _Breaker
from newsletter.transports.base import AuthenticationFailed, BadRequest, BatchTooLarge, TemporaryFailure
from subscribers.states import BatchStatus
from tests.sendkit import ScriptedTransport, add_audience, make_issue, raises

NOW = datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc)


def started_issue(db: Database, settings: Settings, contacts: int) -> int:
    issue_id = make_issue(db, settings)
    add_audience(db, contacts)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), NOW)
    return issue_id


def counts(db: Database, issue_id: int) -> dict[str, int]:
    with db.session() as s:
        return ledger.status_counts(s, issue_id)


def dispatcher(settings: Settings, db: Database, transport: ScriptedTransport) -> Dispatcher:
    return Dispatcher(settings, db, transport, sleep=lambda s: None, clock=lambda: NOW)


def test_a_stop_holds_every_sender_until_it_is_lifted(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 3)
    with db.session() as s:
        assert stops.active_stop(s) is None
        assert stops.lift_stop(s) == 0  # nothing to lift
        stops.stop_all_sending(s, "Sending stopped: staff are checking the key.")
    with pytest.raises(SendingStopped, match="staff are checking the key"):
        dispatcher(settings, db, ScriptedTransport()).run_once()
    assert counts(db, issue_id) == {"queued": 3}
    with db.session() as s:
        assert stops.active_stop(s).reason == "Sending stopped: staff are checking the key."
        assert stops.lift_stop(s) == 1
        assert stops.active_stop(s) is None
        assert [p.active for p in s.scalars(select(SendPause))] == [False]  # kept, with its reason
    dispatcher(settings, db, ScriptedTransport()).run_until_idle()
    assert counts(db, issue_id) == {"submitted": 3}


def test_a_refused_key_closes_its_batch_and_stops_sending_with_the_reason(db: Database, settings: Settings) -> None:
    issue_id = started_issue(db, settings, 3)
    transport = ScriptedTransport(script=[raises(AuthenticationFailed("the API key was refused"))])
    with pytest.raises(SendingStopped):
        dispatcher(settings, db, transport).run_until_idle()
    assert counts(db, issue_id) == {"queued": 3}  # given back untried
    with db.session() as s:
        (batch,) = s.scalars(select(SendBatch))
        assert (batch.status, batch.finished_at) == (BatchStatus.FAILED, NOW)
        assert "the API key was refused" in batch.error and "queued again" in batch.error
        assert "Fix SENDGRID_API_KEY" in stops.active_stop(s).reason


@pytest.mark.parametrize("script", [
    [raises(BatchTooLarge("413"))],
    [raises(BadRequest("invalid", {1}))],
    [raises(TemporaryFailure("HTTP 503"))] * 4,
    [raises(BadRequest("refused"))] * 12,
], ids=["split", "blamed", "gave-up", "bisected"])
def test_every_batch_that_did_not_go_whole_is_closed_with_its_reason_and_time(
        script: list, db: Database, settings: Settings) -> None:
    started_issue(db, settings, 4)
    settings = settings.model_copy(update={"send_retries": 2})
    dispatcher(settings, db, ScriptedTransport(script=list(script))).run_until_idle()
    with db.session() as s:
        closed = [b for b in s.scalars(select(SendBatch)) if b.status != BatchStatus.SUBMITTED]
        assert closed
        for batch in closed:
            assert batch.status in (BatchStatus.FAILED, BatchStatus.SPLIT), batch.status
            assert batch.error and batch.finished_at == NOW, (batch.status, batch.error)


def test_close_batch_keeps_the_error_short_enough_to_store(db: Database, settings: Settings) -> None:
    with db.session() as s:
        batch = SendBatch(transport="x", worker="w", status=BatchStatus.CLAIMED, size=0)
        s.add(batch)
        s.flush()
        ledger.close_batch(s, batch.id, BatchStatus.FAILED, "x" * 5000, NOW)
        assert (batch.status, len(batch.error), batch.finished_at) == (BatchStatus.FAILED, 2000, NOW)


def test_the_breaker_counts_each_email_apart() -> None:
    breaker = _Breaker(threshold=2)
    issue, step = EmailRef("issue", 7), EmailRef("step", 7)  # the same id, two emails
    assert not breaker.record(issue, ok=False)
    assert not breaker.record(step, ok=False)
    assert breaker.record(issue, ok=False)  # the issue's second failure in a row
    assert not breaker.record(step, ok=True) and not breaker.record(step, ok=False)
    assert breaker.failures == {issue: 2, step: 1}
