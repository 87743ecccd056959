"""Enqueue: one set-based INSERT ... SELECT puts a row per recipient into the delivery ledger.

The unique (issue, contact) constraint makes a second enqueue, a restart or a second scheduler add
nothing. With "send at local time" each row's due time is the issue's wall-clock time in the
contact's own zone (computed once per distinct zone, so DST is zoneinfo's business).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import case, literal
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.models import Delivery, Issue
from newsletter.sending.audience import audience
from subscribers.db import insert_ignoring_conflicts, is_postgresql
from subscribers.models import Contact
from subscribers.states import DeliveryStatus

# The earliest zone on Earth is UTC+14: a local-time send can start that far ahead of UTC.
EARLIEST_OFFSET = timedelta(hours=14)


def local_instant(day: date, at: time, zone: str) -> datetime:
    """``day`` at wall-clock ``at`` in ``zone``, in UTC. In a spring-forward gap the clock is read
    as the time before the change (zoneinfo's fold=0), i.e. an hour later in real terms."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)


def first_local_instant(day: date, at: time) -> datetime:
    """When the first time zone reaches ``day`` ``at``: the moment to enqueue a local-time send."""
    return datetime.combine(day, at, tzinfo=timezone.utc) - EARLIEST_OFFSET


def enqueue_issue(session: Session, issue: Issue, now: datetime) -> int:
    """Put the issue's audience into the ledger. Returns how many rows were added."""
    due = literal(now, Delivery.due_at.type)
    if issue.local_send_time:
        wall = datetime.fromisoformat(issue.local_send_time)
        day, at = wall.date(), wall.time()
        zones = session.scalars(audience(session, issue, Contact.timezone).distinct()).all()
        whens = {zone: max(local_instant(day, at, zone), now) for zone in zones}
        if whens:
            due = case(
                *((Contact.timezone == zone, literal(when, Delivery.due_at.type)) for zone, when in whens.items()),
                else_=literal(now, Delivery.due_at.type),
            )
    rows = audience(
        session, issue,
        literal(issue.id), Contact.id, literal(issue.list_id), literal(DeliveryStatus.QUEUED, Delivery.status.type), due,
        literal(0),
        literal(now, Delivery.created_at.type),
    )
    statement = (
        insert_ignoring_conflicts(session, Delivery)
        .from_select(
            ["issue_id", "contact_id", "list_id", "status", "due_at", "attempts", "created_at"], rows
        )
        .execution_options(preserve_rowcount=True)  # psycopg otherwise reports -1 for INSERT ... SELECT
    )
    ignoring = statement.on_conflict_do_nothing(index_elements=["issue_id", "contact_id"])
    added = None
    if issue.enqueued_at is None and is_postgresql(session):
        # An issue's first enqueue finds no row of it: a plain INSERT. PostgreSQL's ON CONFLICT
        # inserts each row speculatively (one more WAL record a row, 10-15% of the statement). A
        # row there all the same (another enqueue got in first) is refused by the unique
        # constraint, and the statement runs again, ignoring what is there.
        try:
            with session.begin_nested():
                added = session.execute(statement).rowcount or 0
        except IntegrityError:
            added = None
    if added is None:
        added = session.execute(ignoring).rowcount or 0
    if issue.enqueued_at is None:
        issue.enqueued_at = now
    return added
