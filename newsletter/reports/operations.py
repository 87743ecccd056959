"""Figures for operators (``/metrics``): read from the database at the moment they are asked for, so
they are the truth across every process that sends (several workers may run), never one process's
counters. Counts only: no address, no subject, nothing about a person.

What each figure is and how it is read (timed at 1,200,000 deliveries by ``bench/metrics_scrape.py``):

- **deliveries** by state and kind (``issue``: a delivery of an issue; ``step``: of a sequence step):
  one ``GROUP BY`` over the ledger. The only full scan: no index holds every row's state.
- **oldest due** per kind: the age of the oldest queued row whose ``due_at`` has passed, among the
  emails the dispatchers are meant to take now (issues that are sending, steps of active
  sequences; the rows of a paused issue or sequence wait on purpose). One probe of the queue's
  partial index per email, as the claim itself does, never a walk over the queued rows.
- **unknown**: batches whose request left without an answer, with their rows and the age of the
  oldest; looked up (``ledger.unknown_batches``, a walk of the batch index) only when the ledger
  count shows unknown rows.
- **submitted** in the last minute and five minutes: rows whose ``submitted_at`` falls in the window,
  a range of the partial index on ``submitted_at``. Rows resolved from unknown count when resolved.
- **provider errors** by kind: batches (one provider request each) whose recorded error is of that
  kind, ever, plus the stops for a refused API key (``send_pauses``). One pass over ``send_batches``
  (a row per request: a thousandth of the ledger for issues, up to one per row for sequence steps).
  A 429 is waited out and a 5xx retried until it succeeds without any record, so rate limits and
  retried errors are not counted here: that needs the dispatcher to record them.
- **webhook events**: SendGrid's events by type whose provider time is within the last five minutes,
  and the newest one's provider time and lag (our receipt time minus the provider's time): a range
  of the ``(type, occurred_at)`` index per type, never the whole table.
- **leases** (holder and seconds until expiry), whether **sending is stopped**, **issues** by status:
  small tables.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from newsletter.database import Database
from newsletter.models import Delivery, Event, Issue, Lease, SendBatch, SendPause, Sequence, SequenceStep
from newsletter.sending import ledger
from newsletter.sending.stops import active_stop
from newsletter.tracking import provider_events
from subscribers.db import utcnow
from subscribers.states import DeliveryStatus, EventType, IssueStatus, SequenceStatus, sql_literal

KINDS = ("issue", "step")
SUBMITTED_WINDOWS = (timedelta(minutes=1), timedelta(minutes=5))
EVENT_WINDOW = timedelta(minutes=5)
# The types SendGrid's events are stored under: its own names, and "blocked" for a soft bounce.
WEBHOOK_TYPES = tuple(sorted(kind.value for kind in provider_events.EVENT_TYPES | {EventType.BLOCKED}))
# How many of a type's newest events are looked at to find SendGrid's newest: our own opens, clicks
# and unsubscribes share those types, and the walk must stay short whatever their number.
NEWEST_LOOKAHEAD = 1000

# Provider errors, by what the stored message says (newsletter/transports/sendgrid.py and smtp.py write them,
# newsletter/sending/dispatch.py prefixes "gave up after N attempts: " or "refused by the provider: ").
# The first pattern that matches decides; tests/test_metrics.py drives each through the SendGrid fake.
ERROR_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("auth", re.compile(r"refused the (?:API key|user name or password)|\((?:401|403)\b", re.IGNORECASE)),
    ("rate_limited", re.compile(r"rate limit|\(429\b", re.IGNORECASE)),
    ("too_large", re.compile(r"too large|\(413\b", re.IGNORECASE)),
    ("bad_request", re.compile(r"refused the request|\(400\b", re.IGNORECASE)),
    ("server_error", re.compile(r"server error|\(5\d\d\b", re.IGNORECASE)),
    ("timeout_or_connection", re.compile(r"could not be reached|no answer from|timed? ?out|connection", re.IGNORECASE)),
    ("unexpected_answer", re.compile(r"unexpected answer", re.IGNORECASE)),
)
# Recorded on a batch, but not the provider's doing: our worker died mid-request, or stopped first.
NOT_PROVIDER = re.compile(r"the worker stopped|stopped before sending", re.IGNORECASE)
OTHER = "other"
# Every kind that can be read from the database (rate limits never are: see the module docstring).
STORED_ERROR_KINDS = tuple(kind for kind, _ in ERROR_KINDS if kind != "rate_limited") + (OTHER,)


def error_kind(message: str) -> str | None:
    """The kind of a provider error as stored on a batch or a pause; None when it was not the provider's."""
    if NOT_PROVIDER.search(message):
        return None
    return next((kind for kind, pattern in ERROR_KINDS if pattern.search(message)), OTHER)


@dataclass(frozen=True)
class LeaseFigure:
    name: str
    holder: str
    expires_in_seconds: float  # negative: it lapsed that long ago, nobody holds it


@dataclass(frozen=True)
class OperationsFigures:
    at: datetime
    deliveries: dict[tuple[str, str], int]  # (state, kind) -> rows; every state and kind, 0 included
    oldest_due_seconds: dict[str, float]  # kind -> age of the oldest due row of a sendable email (0: none)
    unknown_batches: int
    unknown_rows: int
    oldest_unknown_seconds: float  # since the oldest batch held as unknown was given up on (0: none)
    submitted: dict[int, int]  # window in seconds -> rows submitted within it
    provider_errors: dict[str, int]  # kind -> provider requests (batches) or stops that ended in it, ever
    webhook_events: dict[str, int]  # SendGrid event type -> events of the last EVENT_WINDOW (provider time)
    webhook_newest_event_at: datetime | None  # provider time of SendGrid's newest event stored
    webhook_newest_received_at: datetime | None  # when that event reached us
    leases: list[LeaseFigure]
    sending_stopped: bool
    issues: dict[str, int]  # issue status -> issues

    @property
    def webhook_lag_seconds(self) -> float | None:
        if self.webhook_newest_event_at is None or self.webhook_newest_received_at is None:
            return None
        return (self.webhook_newest_received_at - self.webhook_newest_event_at).total_seconds()


def read_figures(db: Database, now: datetime | None = None) -> OperationsFigures:
    """Every figure, from one consistent snapshot that neither waits for nor holds up the senders."""
    now = now or utcnow()
    with db.snapshot() as session:
        return figures(session, now)


def figures(session: Session, now: datetime) -> OperationsFigures:
    deliveries = _deliveries(session)
    unknown_rows = sum(deliveries[(DeliveryStatus.UNKNOWN, kind)] for kind in KINDS)
    batches, oldest_unknown = _unknown(session, now) if unknown_rows else (0, 0.0)
    newest_at, received_at = _newest_webhook_event(session, now)
    return OperationsFigures(
        at=now,
        deliveries=deliveries,
        oldest_due_seconds=_oldest_due(session, now),
        unknown_batches=batches,
        unknown_rows=unknown_rows,
        oldest_unknown_seconds=oldest_unknown,
        submitted=_submitted(session, now),
        provider_errors=_provider_errors(session),
        webhook_events=_webhook_events(session, now),
        webhook_newest_event_at=newest_at,
        webhook_newest_received_at=received_at,
        leases=[LeaseFigure(name, holder, (expires - now).total_seconds())
                for name, holder, expires in session.execute(select(Lease.name, Lease.holder, Lease.expires_at))],
        sending_stopped=active_stop(session) is not None,
        issues={status: count for status, count in session.execute(
            select(Issue.status, func.count()).group_by(Issue.status))},
    )


def _deliveries(session: Session) -> dict[tuple[str, str], int]:
    counts = dict.fromkeys(((state.value, kind) for state in DeliveryStatus for kind in KINDS), 0)
    # Grouped by state alone, the kind counted beside it: SQLite sorts every row to group them,
    # and one sort key instead of two costs a third less CPU at 1,000,000 rows (bench/metrics_scrape.py).
    for state, rows, of_issues in session.execute(
        select(Delivery.status, func.count(), func.count(Delivery.issue_id)).group_by(Delivery.status)
    ):
        counts[(state, "issue")] = of_issues
        counts[(state, "step")] = rows - of_issues
    return counts


def _oldest_due(session: Session, now: datetime) -> dict[str, float]:
    def earliest(group):  # noqa: ANN001, ANN202 - a column comparison; a scalar subquery
        # Spelled as the claim spells it (a literal), so both databases probe the partial index.
        queued = Delivery.status == sql_literal(DeliveryStatus.QUEUED)
        return select(func.min(Delivery.due_at)).where(group, queued, Delivery.due_at <= now).scalar_subquery()

    issues = (select(earliest(Delivery.issue_id == Issue.id)).select_from(Issue)
              .where(Issue.status == IssueStatus.SENDING))
    steps = (select(earliest(Delivery.step_id == SequenceStep.id)).select_from(SequenceStep)
             .join(Sequence, Sequence.id == SequenceStep.sequence_id).where(Sequence.status == SequenceStatus.ACTIVE))
    ages = {}
    for kind, query in zip(KINDS, (issues, steps)):
        due = [value for value in session.scalars(query) if value is not None]
        ages[kind] = max((now - min(due)).total_seconds(), 0.0) if due else 0.0
    return ages


def _unknown(session: Session, now: datetime) -> tuple[int, float]:
    held = ledger.unknown_batches(session)
    since = session.scalar(select(func.min(func.coalesce(SendBatch.finished_at, SendBatch.created_at)))
                           .where(SendBatch.id.in_([batch.batch_id for batch in held])))
    return len(held), max((now - since).total_seconds(), 0.0) if since is not None else 0.0


def _submitted(session: Session, now: datetime) -> dict[int, int]:
    widest = max(SUBMITTED_WINDOWS)
    columns = [func.count().filter(Delivery.submitted_at >= now - window) for window in SUBMITTED_WINDOWS]
    row = session.execute(select(*columns).where(Delivery.submitted_at >= now - widest)).one()
    return {int(window.total_seconds()): count for window, count in zip(SUBMITTED_WINDOWS, row)}


def _provider_errors(session: Session) -> dict[str, int]:
    counts: Counter[str] = Counter(dict.fromkeys(STORED_ERROR_KINDS, 0))
    for message, count in session.execute(
        select(SendBatch.error, func.count()).where(SendBatch.error.is_not(None)).group_by(SendBatch.error)
    ):
        if kind := error_kind(message):
            counts[kind] += count
    for reason, count in session.execute(
        select(SendPause.reason, func.count()).where(SendPause.issue_id.is_(None)).group_by(SendPause.reason)
    ):
        if error_kind(reason) == "auth":  # a stop for any other reason is not the provider's answer
            counts["auth"] += count
    return dict(counts)


def _webhook_events(session: Session, now: datetime) -> dict[str, int]:
    counts = dict.fromkeys(WEBHOOK_TYPES, 0)
    counts.update(session.execute(
        select(Event.type, func.count())
        .where(Event.type.in_(WEBHOOK_TYPES), Event.occurred_at >= now - EVENT_WINDOW, Event.occurred_at <= now,
               Event.source.in_(provider_events.SOURCES))
        .group_by(Event.type)
    ).all())
    return counts


def _newest_webhook_event(session: Session, now: datetime) -> tuple[datetime | None, datetime | None]:
    """(provider time, receipt time) of SendGrid's newest event up to now: per type, a short walk
    down the ``(type, occurred_at)`` index; the newest of those."""
    newest_per_type = []
    for kind in WEBHOOK_TYPES:
        recent = (select(Event.occurred_at, Event.recorded_at, Event.source)
                  .where(Event.type == kind, Event.occurred_at <= now)
                  .order_by(Event.occurred_at.desc()).limit(NEWEST_LOOKAHEAD).subquery())
        newest_per_type.append(select(recent.c.occurred_at, recent.c.recorded_at)
                               .where(recent.c.source.in_(provider_events.SOURCES))
                               .order_by(recent.c.occurred_at.desc()).limit(1).subquery().select())
    rows = session.execute(union_all(*newest_per_type)).all()
    if not rows:
        return None, None
    occurred, recorded = max(rows, key=lambda row: row[0])
    return occurred, recorded

