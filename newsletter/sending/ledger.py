"""Ledger operations: claim a batch under a lease, re-check suppression, mark outcomes, recover
from dead workers. Every function here is one or two set-based statements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from newsletter.models import Delivery, Enrollment, Issue, SendBatch, Sequence, SequenceStep
from subscribers.models import Contact, Subscription, Suppression

ACTIVE = ("queued", "claimed")  # rows still on their way out


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    contact_id: int
    email: str
    name: str | None


@dataclass
class Claim:
    issue_id: int | None
    rows: list[Claimed]
    suppressed: int = 0
    step_id: int | None = None  # a sequence step's batch instead of an issue's

    @property
    def found(self) -> bool:
        return self.issue_id is not None or self.step_id is not None


def claim(session: Session, *, worker: str, limit: int, now: datetime, lease: timedelta,
          only_issue: int | None = None) -> Claim:
    """Claim up to ``limit`` due rows of one email (an issue that is sending, or a step of an active
    sequence). PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent workers take disjoint rows; SQLite:
    the transaction holds the only write lock."""
    sending = Delivery.issue_id.in_(select(Issue.id).where(Issue.status == "sending"))
    running = Delivery.step_id.in_(
        select(SequenceStep.id).join(Sequence, Sequence.id == SequenceStep.sequence_id).where(Sequence.status == "active")
    )
    due = (
        select(Delivery.issue_id, Delivery.step_id)
        .where(Delivery.status == "queued", Delivery.due_at <= now, or_(sending, running))
        .order_by(Delivery.due_at, Delivery.id)
        .limit(1)
    )
    if only_issue is not None:
        due = due.where(Delivery.issue_id == only_issue)
    first = session.execute(due).first()
    if first is None:
        return Claim(None, [])
    issue_id, step_id = first
    group = Delivery.issue_id == issue_id if issue_id is not None else Delivery.step_id == step_id
    candidates = (
        select(Delivery.id)
        .where(group, Delivery.status == "queued", Delivery.due_at <= now)
        .order_by(Delivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # The classic queue: concurrent workers lock disjoint rows and never wait for each other.
        # MATERIALIZED: the locked pick is made once (as a plain IN subquery PostgreSQL may run it
        # again per row, and SKIP LOCKED would then hand out more than ``limit`` rows).
        picked = candidates.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        chosen = Delivery.id.in_(select(picked.c.id))
    else:
        chosen = Delivery.id.in_(candidates.scalar_subquery())
    claimed = session.execute(
        update(Delivery)
        .where(chosen)  # the pick already holds only queued rows; repeating it sends SQLite down the status index
        .values(status="claimed", claimed_by=worker, lease_expires_at=now + lease, attempts=Delivery.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return Claim(issue_id, [], step_id=step_id)
    mine = and_(Delivery.claimed_by == worker, Delivery.status == "claimed", Delivery.batch_id.is_(None))
    suppressed = _suppress_at_claim(session, mine)
    rows = session.execute(
        select(Delivery.id, Contact.id, Contact.email, Contact.name)
        .join(Contact, Contact.id == Delivery.contact_id)
        .where(mine)
        .order_by(Delivery.id)
    )
    return Claim(issue_id, [Claimed(*row) for row in rows], suppressed, step_id)


def _suppress_at_claim(session: Session, mine: ColumnElement[bool]) -> int:
    """Whoever unsubscribed, bounced or was erased since enqueue is skipped now, not mailed; so is a
    step whose enrolment ended (a booking) after it was queued."""
    still_subscribed = exists().where(
        Subscription.contact_id == Delivery.contact_id,
        Subscription.list_id == Delivery.list_id,
        Subscription.status == "confirmed",
    )
    left_list = and_(Delivery.list_id.is_not(None), ~still_subscribed)
    enrollment_over = exists().where(Enrollment.id == Delivery.enrollment_id, Enrollment.state == "exited")
    suppressed = exists().where(Suppression.email_hash == Contact.email_hash, Contact.id == Delivery.contact_id)
    active = exists().where(Contact.id == Delivery.contact_id, Contact.status == "active")
    return session.execute(
        update(Delivery)
        .where(mine, or_(Delivery.contact_id.is_(None), left_list, enrollment_over, suppressed, ~active))
        .values(status="suppressed", lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount or 0


def open_batch(session: Session, ids: list[int], *, transport: str, worker: str, fresh_claim: bool = False) -> SendBatch:
    """Record that a provider request is about to leave with these rows (committed before sending:
    if the worker dies now, recovery knows the request may have left)."""
    batch = SendBatch(transport=transport, worker=worker, status="sending", size=len(ids))
    session.add(batch)
    session.flush()
    mine = and_(Delivery.claimed_by == worker, Delivery.status == "claimed", Delivery.batch_id.is_(None))
    session.execute(
        update(Delivery)
        .where(mine if fresh_claim else Delivery.id.in_(ids))  # a whole fresh claim: no 1000-item IN list
        .values(batch_id=batch.id)
        .execution_options(synchronize_session=False)
    )
    return batch


def mark_submitted(session: Session, batch: SendBatch, ids: list[int], message_id: str | None, now: datetime) -> None:
    if ids:
        whole_batch = len(ids) == session.scalar(
            select(func.count()).where(Delivery.batch_id == batch.id, Delivery.status == "claimed")
        )
        session.execute(
            update(Delivery)
            .where(and_(Delivery.batch_id == batch.id, Delivery.status == "claimed") if whole_batch else Delivery.id.in_(ids))
            .values(status="submitted", provider_message_id=message_id, submitted_at=now, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
    batch.status, batch.provider_message_id, batch.finished_at = "submitted", message_id, now


def mark_failed(session: Session, ids: list[int], reason: str) -> None:
    if ids:
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids)).values(status="failed", error=reason[:2000], lease_expires_at=None)
        )


def mark_unknown(session: Session, batch: SendBatch, reason: str, now: datetime) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.batch_id == batch.id, Delivery.status == "claimed")
        .values(status="unknown", error=reason[:2000], lease_expires_at=None)
    )
    batch.status, batch.error, batch.finished_at = "unknown", reason[:2000], now


def release(session: Session, ids: list[int]) -> None:
    """Give rows back untried (the request never left), e.g. when the API key is refused."""
    if ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status="queued", claimed_by=None, lease_expires_at=None, batch_id=None, attempts=Delivery.attempts - 1)
        )


def recover_expired(session: Session, now: datetime) -> tuple[int, int]:
    """After a worker died: rows it claimed but never sent go back to the queue; rows whose request
    may have left are held as unknown (never resent blindly). Returns (requeued, held unknown)."""
    expired = and_(Delivery.status == "claimed", Delivery.lease_expires_at < now)
    requeued = session.execute(
        update(Delivery)
        .where(expired, Delivery.batch_id.is_(None))
        .values(status="queued", claimed_by=None, lease_expires_at=None)
    ).rowcount or 0
    in_flight = select(SendBatch.id).where(SendBatch.status == "sending").scalar_subquery()
    held = session.execute(
        update(Delivery)
        .where(expired, Delivery.batch_id.in_(in_flight))
        .values(status="unknown", error="the worker stopped while this batch's request was in flight",
                lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    if held:
        session.execute(
            update(SendBatch)
            .where(SendBatch.status == "sending", ~exists().where(Delivery.batch_id == SendBatch.id, Delivery.status == "claimed"))
            .values(status="unknown", error="the worker stopped while this request was in flight", finished_at=now)
            .execution_options(synchronize_session=False)
        )
    return requeued, held


def status_counts(session: Session, issue_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count()).where(Delivery.issue_id == issue_id).group_by(Delivery.status)
    )
    return {status: count for status, count in rows}


def finish_if_done(session: Session, issue: Issue, now: datetime) -> bool:
    """An issue that is sending is sent once none of its rows are still on their way."""
    if issue.status != "sending":
        return False
    remaining = session.scalar(
        select(func.count()).where(Delivery.issue_id == issue.id, Delivery.status.in_(ACTIVE))
    )
    if remaining:
        return False
    issue.status, issue.finished_at = "sent", now
    return True


def unknown_batches(session: Session, issue_id: int | None = None) -> list[tuple[int, int, str | None]]:
    """(batch id, rows, error) of every batch held as unknown."""
    query = (
        select(SendBatch.id, func.count(Delivery.id), SendBatch.error)
        .join(Delivery, Delivery.batch_id == SendBatch.id)
        .where(Delivery.status == "unknown")
        .group_by(SendBatch.id, SendBatch.error)
        .order_by(SendBatch.id)
    )
    if issue_id is not None:
        query = query.where(Delivery.issue_id == issue_id)
    return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]


def resolve_unknown(session: Session, batch_id: int, *, sent: bool, now: datetime) -> int:
    """Staff (or the provider's "processed" events) settle a batch held as unknown: ``sent`` marks it
    submitted; otherwise its rows are queued again, accepting that some may arrive twice."""
    values = (
        {"status": "submitted", "submitted_at": now, "error": None}
        if sent
        else {"status": "queued", "batch_id": None, "claimed_by": None, "error": None}
    )
    count = session.execute(
        update(Delivery).where(Delivery.batch_id == batch_id, Delivery.status == "unknown").values(**values)
    ).rowcount or 0
    batch = session.get(SendBatch, batch_id)
    if batch is not None and count:
        batch.status = "submitted" if sent else "failed"
    return count


def resolve_accepted(session: Session, ids: list[int], now: datetime) -> int:
    """The per-row form of ``resolve_unknown(sent=True)``, on the provider's own word: it reported on
    these rows (a "processed" event, or any later one), so their request was accepted. Rows held as
    unknown, or still claimed by a worker that has not recorded the answer yet, become submitted; a
    batch held as unknown with no unknown row left becomes submitted too. Returns the rows changed."""
    if not ids:
        return 0
    in_request = or_(Delivery.status == "unknown", and_(Delivery.status == "claimed", Delivery.batch_id.is_not(None)))
    count = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), in_request)
        .values(status="submitted", submitted_at=now, error=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    if count:
        touched = select(Delivery.batch_id).where(Delivery.id.in_(ids), Delivery.batch_id.is_not(None))
        session.execute(
            update(SendBatch)
            .where(SendBatch.status == "unknown", SendBatch.id.in_(touched),
                   ~exists().where(Delivery.batch_id == SendBatch.id, Delivery.status == "unknown"))
            .values(status="submitted")
            .execution_options(synchronize_session=False)
        )
    return count
