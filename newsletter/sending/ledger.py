"""Ledger operations: claim a batch under a lease, re-check suppression, mark outcomes, recover
from dead workers. Every function here is a few set-based statements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import and_, bindparam, case, exists, func, literal_column, null, or_, select, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from newsletter.errors import InputError
from newsletter.models import Delivery, Enrollment, Issue, SendBatch, Sequence, SequenceStep
from subscribers import suppression
from subscribers.db import is_postgresql
from subscribers.models import Contact, Subscription, Suppression
from subscribers.states import (COUNTS_AS_SENT, IN_REQUEST, MAY_HAVE_LEFT, ON_ITS_WAY, BatchStatus, ContactStatus,
                                DeliveryStatus, EnrollmentState, IssueStatus, SequenceStatus, SubscriptionStatus,
                                sql_literal)
from subscribers.suppression import SuppressionReason

# Queued and claimed are spelled as SQL literals (``sql_literal``), not bound parameters: the planner
# (SQLite's always, PostgreSQL's for a prepared statement's generic plan) can only use a partial index
# ``WHERE status = 'queued'`` when the query says so in the same words.
# A batch is claimed until its request begins, and requesting from the moment it may leave (that
# mark is committed before the first byte goes out): after a crash only a batch that may have left
# (``MAY_HAVE_LEFT``) can have reached the provider, so only its rows are held as unknown; a claimed
# one's rows are queued again.


class Claimed(NamedTuple):  # a tuple: made a thousand at a time, straight from the result rows
    delivery_id: int
    contact_id: int
    email: str
    name: str | None
    language: str | None  # the contact's, which picks the email's language version


@dataclass
class Claim:
    issue_id: int | None
    rows: list[Claimed]
    suppressed: int = 0
    step_id: int | None = None  # a sequence step's batch instead of an issue's
    batch_id: int | None = None  # the batch the rows are sent in (None when no row is left to send)

    @property
    def found(self) -> bool:
        return self.issue_id is not None or self.step_id is not None


def claim(session: Session, *, worker: str, limit: int, now: datetime, lease: timedelta,
          transport: str = "", only_issue: int | None = None) -> Claim:
    """Claim up to ``limit`` due rows of one email (an issue that is sending, or a step of an active
    sequence) into a new batch whose request is about to leave. PostgreSQL: FOR UPDATE SKIP LOCKED,
    so concurrent workers take disjoint rows; SQLite: the transaction holds the only write lock.

    The rows get their batch in the claim itself, so the batch is committed with the claim. It stays
    "claimed" until ``begin_request`` marks the moment its request may leave: if the worker dies
    before that, recovery queues the rows again; after it, recovery holds them as unknown."""
    queued = Delivery.status == sql_literal(DeliveryStatus.QUEUED)
    first = _next_due(session, now, only_issue)
    if first is None:
        return Claim(None, [])
    issue_id, step_id = first
    group = Delivery.issue_id == issue_id if issue_id is not None else Delivery.step_id == step_id
    # Walks the partial index (issue or step, due_at, id) WHERE status = 'queued': it holds only rows
    # not yet claimed, so a claim never re-reads the rows already sent.
    candidates = (
        select(Delivery.id)
        .where(group, queued, Delivery.due_at <= now)
        .order_by(Delivery.due_at, Delivery.id)
        .limit(limit)
    )
    if is_postgresql(session):
        # The classic queue: concurrent workers lock disjoint rows and never wait for each other.
        # MATERIALIZED: the locked pick is made once (as a plain IN subquery PostgreSQL may run it
        # again per row, and SKIP LOCKED would then hand out more than ``limit`` rows).
        picked = candidates.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        chosen = Delivery.id.in_(select(picked.c.id))
    else:
        chosen = Delivery.id.in_(candidates.scalar_subquery())
    # Made with the size asked for: a full claim (the usual one) never writes the batch again.
    batch = SendBatch(transport=transport, worker=worker, status=BatchStatus.CLAIMED, size=limit)
    session.add(batch)
    session.flush()
    # Core statements on the session's connection from here: the ORM's per-row and per-statement
    # work was a tenth of a claim, for rows read once into tuples.
    connection = session.connection()
    # Suppression is checked again in the same statement: whoever unsubscribed, bounced or was
    # erased since enqueue (or whose enrolment ended) is skipped now, not mailed.
    claiming = (
        update(Delivery)
        .where(chosen)  # the pick already holds only queued rows
        # .value: a bare str is typed String (an Enum member would go untyped, without ::VARCHAR).
        .values(status=case((_skip_now(), DeliveryStatus.SUPPRESSED.value), else_=DeliveryStatus.CLAIMED.value),
                claimed_by=worker, batch_id=batch.id,
                lease_expires_at=now + lease, attempts=Delivery.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if is_postgresql(session):
        # The claimed rows and their contacts in the same statement (UPDATE ... RETURNING in a CTE):
        # finding them again by batch would read the claimed index, which keeps an entry for every
        # row claimed since the last vacuum, one more walk per batch of a growing index.
        done = claiming.returning(Delivery.id, Delivery.contact_id, Delivery.status).cte("claiming")
        found = connection.execute(
            select(done.c.id, Contact.id, Contact.email, Contact.name, Contact.language, done.c.status)
            .outerjoin(Contact, Contact.id == done.c.contact_id)
            .order_by(done.c.id)
        ).all()
        claimed = len(found)
        rows = [Claimed(*row[:5]) for row in found if row[5] == DeliveryStatus.CLAIMED]
    else:
        claimed = connection.execute(claiming).rowcount
        # .all(): one fetchall (iterating the result fetched row by row: 4% of a send's time).
        rows = list(map(Claimed._make, connection.execute(
            select(Delivery.id, Contact.id, Contact.email, Contact.name, Contact.language)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.batch_id == batch.id, Delivery.status == sql_literal(DeliveryStatus.CLAIMED))
            .order_by(Delivery.id)
        ).all())) if claimed else []
    suppressed = claimed - len(rows)
    if suppressed:  # rare: the skipped rows are not in the request
        connection.execute(
            update(Delivery)
            .where(Delivery.batch_id == batch.id, Delivery.status == DeliveryStatus.SUPPRESSED)
            .values(batch_id=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
    if not rows:  # nothing left to send: no request, so no batch
        session.delete(batch)
        session.flush()
        return Claim(issue_id, [], suppressed, step_id)
    batch.size = len(rows)  # no UPDATE when unchanged: the ORM writes only what changed
    return Claim(issue_id, rows, suppressed, step_id, batch.id)


def split_by_language(session: Session, batch_id: int, groups: dict[str | None, list[Claimed]], *,
                      transport: str, worker: str) -> list[tuple[int, str | None, list[Claimed]]]:
    """A claim's rows as one batch per language version (one provider request carries one content):
    the first group keeps the claimed batch, each other moves to a batch of its own, in the claim's
    transaction. Returns (batch id, version language, rows) for each."""
    batches = []
    for n, (language, rows) in enumerate(groups.items()):
        if n == 0:
            batch = session.get(SendBatch, batch_id)
            assert batch is not None
            batch.size, batch.language = len(rows), language
        else:
            batch = open_batch(session, [r.delivery_id for r in rows], transport=transport, worker=worker,
                               language=language)
        batches.append((batch.id, language, rows))
    return batches


def _next_due(session: Session, now: datetime, only_issue: int | None) -> tuple[int | None, int | None] | None:
    """(issue, None) or (None, step): the email whose queued rows fell due first, among issues that
    are sending and steps of active sequences. One statement (it runs before every claim), one index
    probe per email (its earliest queued row), never a walk over the queued rows themselves."""

    def earliest(group: ColumnElement[bool]):  # noqa: ANN202 - a scalar subquery
        queued = Delivery.status == sql_literal(DeliveryStatus.QUEUED)
        return select(func.min(Delivery.due_at)).where(group, queued, Delivery.due_at <= now).scalar_subquery()

    issues = select(earliest(Delivery.issue_id == Issue.id).label("due"), literal_column("0").label("kind"),
                    Issue.id.label("issue_id"), null().label("step_id")).where(Issue.status == IssueStatus.SENDING)
    if only_issue is not None:
        issues = issues.where(Issue.id == only_issue)
        emails = issues.subquery()
    else:
        steps = (
            select(earliest(Delivery.step_id == SequenceStep.id), literal_column("1"), null(), SequenceStep.id)
            .join(Sequence, Sequence.id == SequenceStep.sequence_id)
            .where(Sequence.status == SequenceStatus.ACTIVE)
        )
        emails = union_all(issues, steps).subquery()
    first = session.connection().execute(
        select(emails.c.issue_id, emails.c.step_id).where(emails.c.due.is_not(None))
        .order_by(emails.c.due, emails.c.kind, emails.c.issue_id, emails.c.step_id).limit(1)
    ).first()
    return None if first is None else (first[0], first[1])


def _skip_now() -> ColumnElement[bool]:
    """True for a claimed row that must not be mailed after all: its contact was erased, left the
    list, is suppressed or no longer active, or its enrolment ended (a booking) after it was queued."""
    # OFFSET 0 keeps PostgreSQL from turning this NOT EXISTS into a hashed subplan, which read the
    # whole subscriptions table (every contact of every list) once per claim: its estimate of a
    # thousand index probes is dearer than the scan, the probes themselves several times cheaper.
    still_subscribed = (
        select(literal_column("1"))
        .where(Subscription.contact_id == Delivery.contact_id, Subscription.list_id == Delivery.list_id,
               Subscription.status == SubscriptionStatus.CONFIRMED)
        .offset(0).exists()
    )
    left_list = and_(Delivery.list_id.is_not(None), ~still_subscribed)
    enrollment_over = exists().where(Enrollment.id == Delivery.enrollment_id,
                                     Enrollment.state == EnrollmentState.EXITED)
    # One look at the contact (it exists: erasure, the only way a contact row goes, sets contact_id
    # NULL first) for both of its reasons. Spelled as EXISTS (... OR EXISTS): PostgreSQL probes it
    # per row by index; as NOT EXISTS (active AND NOT EXISTS) it hashed the whole contacts table.
    contact_out = exists().where(
        Contact.id == Delivery.contact_id,
        or_(Contact.status != ContactStatus.ACTIVE, exists().where(Suppression.email_hash == Contact.email_hash)),
    )
    return or_(Delivery.contact_id.is_(None), left_list, enrollment_over, contact_out)


def open_batch(session: Session, ids: list[int], *, transport: str, worker: str,
               language: str | None = None) -> SendBatch:
    """Move claimed rows into a new batch of their own (a split of a refused batch, or the contacts of
    a claim who get another language version); like any batch it is marked requesting only when its
    request begins."""
    batch = SendBatch(transport=transport, worker=worker, status=BatchStatus.CLAIMED, size=len(ids),
                      language=language)
    session.add(batch)
    session.flush()
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids))
        .values(batch_id=batch.id)
        .execution_options(synchronize_session=False)
    )
    return batch


def close_batch(session: Session, batch_id: int, status: str, error: str | None, now: datetime) -> None:
    """A batch is over: its final status, why (``error``, kept short enough to store) and when. The one
    way a single batch is closed; its rows are marked by the caller."""
    batch = session.get(SendBatch, batch_id)
    assert batch is not None
    batch.status, batch.error, batch.finished_at = status, None if error is None else error[:2000], now


def mark_submitted(session: Session, batch_id: int, ids: list[int], message_id: str | None, now: datetime,
                   *, each: dict[int, str] | None = None, whole: bool = False) -> None:
    """``ids`` were accepted with the request's ``message_id``, or, given ``each`` (a transport that
    answers per message, SMTP), with each delivery's own id. ``whole``: ``ids`` are every row of the
    batch still in its request, so they are found by the batch (no 1000-item IN list)."""
    if each:
        table = Delivery.__table__
        # Spelled out: an IN list cannot be used with executemany.
        in_request = or_(*(table.c.status == sql_literal(state) for state in IN_REQUEST))
        session.execute(
            update(table).where(table.c.id == bindparam("row"), in_request)
            .values(status=DeliveryStatus.SUBMITTED.value, provider_message_id=bindparam("message"),
                    submitted_at=now, lease_expires_at=None, error=None),  # a deferral's reason is over
            [{"row": row, "message": message} for row, message in each.items()],
        )
        ids = []
    # Core statements: two round trips, no load of the batch (this runs after every request).
    connection = session.connection()
    if ids:
        # Unknown too: recovery took the request for lost (the lease ran out), the provider's 202 says
        # otherwise. A row a webhook has already moved on (delivered, say) is left as it is.
        table = Delivery.__table__
        in_request = table.c.status.in_([state.value for state in IN_REQUEST])
        connection.execute(
            update(table)
            .where(table.c.batch_id == batch_id if whole else table.c.id.in_(ids), in_request)
            .values(status=DeliveryStatus.SUBMITTED.value, provider_message_id=message_id, submitted_at=now,
                    lease_expires_at=None)
        )
    batches = SendBatch.__table__
    # evidence: its own 202; what events said before it came is no longer needed.
    connection.execute(
        update(batches).where(batches.c.id == batch_id)
        .values(status=BatchStatus.SUBMITTED.value, provider_message_id=message_id, finished_at=now, evidence=None)
    )


def extend_lease(session: Session, batch_id: int, until: datetime) -> None:
    """Keep a batch's claim through a long wait before its request (pace, rate limit, backoff)."""
    session.execute(
        update(Delivery)
        .where(Delivery.batch_id == batch_id, Delivery.status == sql_literal(DeliveryStatus.CLAIMED))
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )


def mark_failed(session: Session, ids: list[int], reason: str) -> None:
    if ids:
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids))
            .values(status=DeliveryStatus.FAILED, error=reason[:2000], lease_expires_at=None)
        )


def suppress_refused(session: Session, addresses: list[str], message: str) -> None:
    """Addresses the provider refused as invalid go on the suppression list, with its words (which
    name no address: the transport scrubs them), so the next send does not carry them again."""
    for address in addresses:
        suppression.suppress(session, address, SuppressionReason.INVALID_ADDRESS,
                             note=f"refused by the provider: {message}"[:2000])


def mark_unknown(session: Session, batch: SendBatch, reason: str, now: datetime) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.batch_id == batch.id, Delivery.status == DeliveryStatus.CLAIMED)
        .values(status=DeliveryStatus.UNKNOWN, error=reason[:2000], lease_expires_at=None)
    )
    close_batch(session, batch.id, BatchStatus.UNKNOWN, reason, now)


DEFER_FIRST_WAIT, DEFER_MAX_WAIT = timedelta(minutes=1), timedelta(hours=1)


def defer(session: Session, ids: list[int], reason: str, now: datetime, retries: int) -> tuple[int, int]:
    """Recipients a mail server refused for now (a 4xx): back to the queue, due after a backoff that
    doubles with each attempt (one minute, then two, ... at most an hour); a row already tried more
    than ``retries`` times fails with the reason. Returns (queued again, failed)."""
    if not ids:
        return 0, 0
    attempts = dict(session.execute(select(Delivery.id, Delivery.attempts).where(Delivery.id.in_(ids))).all())
    given_up = [row for row, tried in attempts.items() if (tried or 0) > retries]
    mark_failed(session, given_up, f"gave up after {retries + 1} attempts: {reason}")
    again = 0
    for row, tried in attempts.items():
        if row in given_up:
            continue
        wait = min(DEFER_FIRST_WAIT * 2 ** max((tried or 1) - 1, 0), DEFER_MAX_WAIT)
        again += session.execute(
            update(Delivery).where(Delivery.id == row, Delivery.status == sql_literal(DeliveryStatus.CLAIMED))
            .values(status=DeliveryStatus.QUEUED.value, due_at=now + wait, claimed_by=None, lease_expires_at=None,
                    batch_id=None, error=reason[:2000])
            .execution_options(synchronize_session=False)
        ).rowcount or 0
    return again, len(given_up)


def hold_unknown_each(session: Session, held: dict[int, str], *, transport: str, worker: str,
                      now: datetime, language: str | None = None) -> None:
    """Deliveries whose own message left with no answer (SMTP: the final dot went, no reply came), in a
    batch that was otherwise answered: each is held as unknown in a batch of its own, so that a
    provider event about one settles that one alone (``settle_reported`` takes a batch as a whole)."""
    for row, reason in held.items():
        batch = open_batch(session, [row], transport=transport, worker=worker, language=language)
        batch.began_at = now
        mark_unknown(session, batch, reason, now)


def release(session: Session, ids: list[int]) -> None:
    """Give rows back untried (the request never left), e.g. when the API key is refused."""
    if ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status=DeliveryStatus.QUEUED, claimed_by=None, lease_expires_at=None, batch_id=None,
                    attempts=Delivery.attempts - 1)
        )


def begin_request(session: Session, batch_id: int, now: datetime) -> str | None:
    """Mark, durably and before anything is sent, that this batch's request may now leave. Returns
    the batch's marker, which travels with the request."""
    # One statement (no load of the batch first): it runs before every request.
    return session.connection().execute(
        update(SendBatch.__table__).where(SendBatch.__table__.c.id == batch_id)
        .values(status=BatchStatus.REQUESTING.value, began_at=now).returning(SendBatch.__table__.c.marker)
    ).scalar_one()


def request_refused(session: Session, batch_id: int) -> None:
    """The provider answered without taking the batch (a 429, a 5xx, a refused connection): until the
    next attempt begins, its request is not in flight."""
    session.execute(update(SendBatch).where(SendBatch.id == batch_id).values(status=BatchStatus.CLAIMED))


def recover_expired(session: Session, now: datetime) -> tuple[int, int]:
    """After a worker died: rows it claimed whose request never began go back to the queue; rows
    whose request may have left are held as unknown (never resent blindly). Returns (requeued, held
    unknown)."""
    expired = and_(Delivery.status == sql_literal(DeliveryStatus.CLAIMED), Delivery.lease_expires_at < now)
    never_began = select(SendBatch.id).where(SendBatch.status == BatchStatus.CLAIMED).scalar_subquery()
    requeued = session.execute(
        update(Delivery)
        .where(expired, or_(Delivery.batch_id.is_(None), Delivery.batch_id.in_(never_began)))
        .values(status=DeliveryStatus.QUEUED, claimed_by=None, lease_expires_at=None, batch_id=None)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    if requeued:
        session.execute(
            update(SendBatch)
            .where(SendBatch.status == BatchStatus.CLAIMED, ~exists().where(Delivery.batch_id == SendBatch.id))
            .values(status=BatchStatus.FAILED, error="the worker stopped before this batch's request began; its rows "
                                           "were queued again", finished_at=now)
            .execution_options(synchronize_session=False)
        )
    in_flight = select(SendBatch.id).where(SendBatch.status.in_(MAY_HAVE_LEFT)).scalar_subquery()
    held = session.execute(
        update(Delivery)
        .where(expired, Delivery.batch_id.in_(in_flight))
        .values(status=DeliveryStatus.UNKNOWN, error="the worker stopped while this batch's request was in flight",
                lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    if held:
        session.execute(
            update(SendBatch)
            .where(SendBatch.status.in_(MAY_HAVE_LEFT),
                   ~exists().where(Delivery.batch_id == SendBatch.id, Delivery.status == DeliveryStatus.CLAIMED))
            .values(status=BatchStatus.UNKNOWN, error="the worker stopped while this request was in flight",
                    finished_at=now)
            .execution_options(synchronize_session=False)
        )
    return requeued, held


def unknown_total(session: Session) -> int:
    """Deliveries held as unknown, of every issue and sequence (a walk of their small partial index)."""
    held = Delivery.status == DeliveryStatus.UNKNOWN
    return session.scalar(select(func.count()).select_from(Delivery).where(held)) or 0


def status_counts(session: Session, issue_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count()).where(Delivery.issue_id == issue_id).group_by(Delivery.status)
    )
    return {status: count for status, count in rows}


def finish_if_done(session: Session, issue: Issue, now: datetime) -> bool:
    """An issue that is sending is sent once none of its rows are still on their way."""
    if issue.status != IssueStatus.SENDING:
        return False
    mine = Delivery.issue_id == issue.id
    # Probes of the small partial indexes, not a count over every row the issue has; one statement,
    # so one snapshot (a row going from claimed back to queued is seen in one state or the other).
    on_their_way = or_(*(exists().where(mine, Delivery.status == sql_literal(state)) for state in ON_ITS_WAY))
    if session.scalar(select(on_their_way)):
        return False
    issue.status, issue.finished_at = IssueStatus.SENT, now
    return True


class HeldBatch(NamedTuple):
    """A batch with deliveries held as unknown, as staff and reconciliation see it."""

    batch_id: int
    rows: int  # its deliveries still held as unknown
    error: str | None  # why it was held
    held_at: datetime | None
    marker: str | None
    evidence: str | None  # what reconciliation found so far
    checked_at: datetime | None  # when the provider's log was last asked
    notified_at: datetime | None  # when staff were told it waits for them
    issue_id: int | None
    step_id: int | None


def unknown_batches(session: Session, issue_id: int | None = None, *,
                    sequence_id: int | None = None) -> list[HeldBatch]:
    """Every batch with deliveries held as unknown (of one issue, or one sequence's steps), oldest first."""
    query = (
        select(SendBatch.id, func.count(Delivery.id), SendBatch.error,
               func.coalesce(SendBatch.finished_at, SendBatch.created_at), SendBatch.marker, SendBatch.evidence,
               SendBatch.checked_at, SendBatch.notified_at, func.min(Delivery.issue_id), func.min(Delivery.step_id))
        .join(Delivery, Delivery.batch_id == SendBatch.id)
        .where(Delivery.status == DeliveryStatus.UNKNOWN)
        .group_by(SendBatch.id)
        .order_by(SendBatch.id)
    )
    if issue_id is not None:
        query = query.where(Delivery.issue_id == issue_id)
    if sequence_id is not None:
        steps = select(SequenceStep.id).where(SequenceStep.sequence_id == sequence_id)
        query = query.where(Delivery.step_id.in_(steps))
    return [HeldBatch._make(row) for row in session.execute(query)]


def resolve_unknown(session: Session, batch_id: int, *, sent: bool, now: datetime, evidence: str) -> int:
    """Settle a batch held as unknown (staff, or reconciliation on the provider's word): ``sent``
    marks it submitted; otherwise its rows are queued again. ``evidence`` says why, and is kept."""
    values = (
        {"status": DeliveryStatus.SUBMITTED, "submitted_at": now, "error": None}
        if sent
        else {"status": DeliveryStatus.QUEUED, "batch_id": None, "claimed_by": None, "error": None}
    )
    held = and_(Delivery.batch_id == batch_id, Delivery.status == DeliveryStatus.UNKNOWN)
    issue_ids = list(session.scalars(select(Delivery.issue_id).where(held, Delivery.issue_id.is_not(None)).distinct()))
    count = session.execute(update(Delivery).where(held).values(**values)).rowcount or 0
    if count and not sent and issue_ids:
        # An issue that finished meanwhile sends again, and only what was queued again.
        session.execute(
            update(Issue).where(Issue.id.in_(issue_ids), Issue.status == IssueStatus.SENT)
            .values(status=IssueStatus.SENDING, finished_at=None)
        )
    batch = session.get(SendBatch, batch_id)
    if batch is not None and count:
        batch.status = BatchStatus.SUBMITTED if sent else BatchStatus.FAILED
        batch.evidence = evidence[:2000]
    return count


def settle_by_staff(session: Session, batch_id: int, *, sent: bool, now: datetime, who: str = "staff") -> int:
    """A person settles a batch held as unknown: ``sent`` after checking the provider's activity log,
    or queue it again accepting possible duplicates. Raises InputError when nothing is held."""
    count = resolve_unknown(session, batch_id, sent=sent, now=now,
                            evidence=f"settled by {who}: {'sent' if sent else 'queued again'}")
    if not count:
        raise InputError(f"batch {batch_id} has no deliveries held as unknown")
    return count


def resolve_accepted(session: Session, ids: list[int], now: datetime) -> int:
    """The per-row form of ``resolve_unknown(sent=True)``, on the provider's own word: it reported on
    these rows (a "processed" event, or any later one), so their request was accepted. Rows held as
    unknown, or still claimed by a worker that has not recorded the answer yet, become submitted; a
    batch held as unknown with no unknown row left becomes submitted too. Returns the rows changed."""
    if not ids:
        return 0
    in_request = or_(Delivery.status == DeliveryStatus.UNKNOWN,
                     and_(Delivery.status == DeliveryStatus.CLAIMED, Delivery.batch_id.is_not(None)))
    count = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), in_request)
        .values(status=DeliveryStatus.SUBMITTED, submitted_at=now, error=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    if count:
        touched = select(Delivery.batch_id).where(Delivery.id.in_(ids), Delivery.batch_id.is_not(None))
        count += settle_reported(session, now, session.scalars(
            select(SendBatch.id).where(SendBatch.status == BatchStatus.UNKNOWN, SendBatch.id.in_(touched))).all())
        # A request still marked in flight whose every row the provider has reported on: its worker
        # died before recording the answer (or is about to record it); either way it was accepted.
        session.execute(
            update(SendBatch)
            .where(SendBatch.status.in_(MAY_HAVE_LEFT), SendBatch.id.in_(touched),
                   ~exists().where(Delivery.batch_id == SendBatch.id, Delivery.status == DeliveryStatus.CLAIMED))
            .values(status=BatchStatus.SUBMITTED, finished_at=now,
                    evidence="the provider reported on its deliveries before the worker recorded its answer")
            .execution_options(synchronize_session=False)
        )
    return count


def settle_reported(session: Session, now: datetime, batch_ids: list[int] | None = None) -> int:
    """A provider accepts or refuses a request whole (SendGrid: 202 for every personalization, or an
    error for all), so one row it reported on proves the batch's request was accepted: the batch's
    other rows held as unknown become submitted too. ``batch_ids``: only these batches (default:
    every batch held as unknown). Returns the rows changed."""
    held = select(SendBatch.id).where(SendBatch.status == BatchStatus.UNKNOWN)
    if batch_ids is not None:
        if not batch_ids:
            return 0
        held = held.where(SendBatch.id.in_(batch_ids))
    proven = list(session.execute(
        select(Delivery.batch_id, func.count())
        # Reported on by the provider (or settled by staff as sent).
        .where(Delivery.batch_id.in_(held.scalar_subquery()), Delivery.status.in_(COUNTS_AS_SENT))
        .group_by(Delivery.batch_id)
    ))
    changed = 0
    for batch_id, reported in proven:
        changed += resolve_unknown(
            session, batch_id, sent=True, now=now,
            evidence=f"the provider reported on {reported} of its deliveries, so it accepted the request",
        )
        batch = session.get(SendBatch, batch_id)
        if batch is not None and batch.status == BatchStatus.UNKNOWN:  # no row was left unknown (all reported)
            batch.status = BatchStatus.SUBMITTED
    return changed
