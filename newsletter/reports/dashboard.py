"""The staff home page's figures: what is going out, how the last issues did, this month against the
last, engagement week by week, and the lead funnel. Plain dataclasses; the page only shows them.

Definitions (each reuses the rule's home where there is one):

- **scheduled**: issues waiting for their time (status scheduled, or paused before anything was
  queued), soonest first, with their audience (the list, or the segment within it).
- **sending**: issues whose send has begun and is not over (status sending, or paused after it was
  queued), with their progress (``sending.progress.send_progress``).
- **recent issues**: the last ``limit`` issues that were ever queued, newest first, each with the
  figures of ``email_stats`` (sent, delivered, bounced, human opens and clicks apart from machine
  ones, unsubscribes, bookings attributed) and its state as people are told it.
- **this month / last month**, months of ``NEWSLETTER_DEFAULT_TIMEZONE``: this month so far and the
  whole month before.
  - **sign-ups**: subscriptions confirmed in the month (``confirmed_at``; one per list joined);
  - **unsubscribes**: subscriptions whose ``unsubscribed_at`` falls in the month, by any path
    (one-click, the preferences page, the provider);
  - **leads**: leads created in the month; **bookings**: bookings recorded in the month.
- **engagement by week**: the last ``weeks`` weeks (Monday 00:00 in the same zone; the last one is the
  current week, so far), per week:
  - **sent**: deliveries the provider accepted in that week (``submitted_at``);
  - **human opens**: deliveries with a human open or a human click in that week (a click implies an
    open, as in ``email_stats``); **human clicks**: deliveries with a human click in that week.
    Machine opens and clicks (Apple Mail Privacy Protection, link scanners) never count. A delivery
    read in two weeks counts in both; anonymous events (no delivery) in neither.
- **lead funnel**: leads by their current stage, and how many ever booked (``funnel.ever_booked``)
  and how many had a booking credited to an email (``attributions``).

Every figure is a handful of set-based statements whatever the size: ranges of indexes (the ledger's
``submitted_at``, the events' ``type, machine, occurred_at``, ``subscriptions.confirmed_at``,
``bookings.recorded_at``) and the per-email event indexes ``email_stats`` reads. bench/dashboard.py
times each at 100,000 contacts and 1,000,000 deliveries: all but one take 10-100 ms. The exception is
``recent_issues`` computed live, which is ``email_stats``' report per issue (its per-delivery fold of
the events): about 80 ms on SQLite and 130 ms on PostgreSQL per issue of 25,000 deliveries, so
400-650 ms for five. It reads the figures ``reports.snapshots`` keeps (refreshed by the scheduler
every few minutes) instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, distinct, func, literal, select
from sqlalchemy.orm import Session

from newsletter.models import Attribution, Delivery, Event, Issue
from newsletter.reports.email_stats import HUMAN, EmailStats, rate, without_jit
from newsletter.reports.funnel import ever_booked
from newsletter.reports.snapshots import figures_of
from newsletter.sending.progress import IssueState, SendProgress, describe, send_progress
from subscribers.leads import STAGES
from subscribers.models import Booking, Lead, MailingList, Segment, Subscription
from subscribers.states import ENGAGEMENT, EventType, IssueStatus

RECENT_ISSUES = 5
WEEKS = 12


# --- what is going out ------------------------------------------------------------------------------


@dataclass
class ScheduledIssue:
    issue_id: int
    subject: str
    status: str  # scheduled, or paused before it began
    when: datetime | None  # UTC; with ``local_send_time``, when the first zone reaches it
    local_send_time: str | None  # "2026-12-03T09:00" in each contact's own zone, or None
    timezone: str | None  # the zone the time was given in
    audience: str  # the list's name, with the segment's: "The Limbic Letter / lapsed readers"


@dataclass
class SendingIssue:
    issue_id: int
    subject: str
    audience: str
    started_at: datetime | None
    progress: SendProgress


@dataclass
class Outgoing:
    scheduled: list[ScheduledIssue]
    sending: list[SendingIssue]


def _audience(list_name: str | None, segment_name: str | None) -> str:
    return " / ".join(name for name in (list_name, segment_name) if name) or "no audience chosen"


def outgoing(session: Session) -> Outgoing:
    """What is scheduled and what is sending now. The issues table is small; the progress counts one
    grouped pass over each sending issue's rows."""
    query = (select(Issue, MailingList.name, Segment.name)
             .outerjoin(MailingList, MailingList.id == Issue.list_id)
             .outerjoin(Segment, Segment.id == Issue.segment_id)
             .where(Issue.status.in_((IssueStatus.SCHEDULED, IssueStatus.SENDING, IssueStatus.PAUSED)))
             .order_by(Issue.scheduled_at, Issue.id))
    scheduled, sending = [], []
    for issue, list_name, segment_name in session.execute(query):
        audience = _audience(list_name, segment_name)
        if issue.enqueued_at is None:  # nothing queued yet: it waits for its time
            scheduled.append(ScheduledIssue(issue.id, issue.subject, issue.status, issue.scheduled_at,
                                            issue.local_send_time, issue.schedule_timezone, audience))
        else:
            sending.append(SendingIssue(issue.id, issue.subject, audience, issue.enqueued_at,
                                        send_progress(session, issue)))
    return Outgoing(scheduled, sending)


# --- the last issues --------------------------------------------------------------------------------


@dataclass
class RecentIssue:
    issue_id: int
    subject: str
    started_at: datetime | None  # when its send began (enqueued)
    state: IssueState
    stats: EmailStats
    as_of: datetime  # when the figures were computed

    def as_dict(self) -> dict[str, Any]:
        return {"issue_id": self.issue_id, "subject": self.subject, "started_at": self.started_at, "as_of": self.as_of,
                **self.state.as_dict(), **self.stats.as_dict()}


def recent_issues(session: Session, now: datetime, limit: int = RECENT_ISSUES) -> list[RecentIssue]:
    """The last ``limit`` issues ever queued, newest first, with their figures as last computed
    (``snapshots``: at most a few minutes old; ``as_of`` says when)."""
    without_jit(session)
    issues = list(session.scalars(select(Issue).where(Issue.enqueued_at.is_not(None))
                                  .order_by(Issue.enqueued_at.desc(), Issue.id.desc()).limit(limit)))
    figures = figures_of(session, [issue.id for issue in issues], now)
    return [RecentIssue(issue.id, issue.subject, issue.enqueued_at,
                        describe(issue.status, figures[issue.id].stats.unknown), figures[issue.id].stats,
                        figures[issue.id].computed_at) for issue in issues]


# --- this month against the last --------------------------------------------------------------------

MONTH_FIGURES = ("sign_ups", "unsubscribes", "leads", "bookings")


@dataclass
class MonthFigures:
    sign_ups: int = 0
    unsubscribes: int = 0
    leads: int = 0
    bookings: int = 0


@dataclass
class MonthComparison:
    zone: str
    this_month: date  # the first day of this month, in ``zone``
    last_month: date
    this: MonthFigures
    last: MonthFigures

    def rows(self) -> list[tuple[str, int, int]]:
        """(figure, this month, last month), in the order the page shows them."""
        return [(name, getattr(self.this, name), getattr(self.last, name)) for name in MONTH_FIGURES]


def month_start(day: date) -> date:
    return day.replace(day=1)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """00:00 of ``day`` in ``zone`` (DST changes happen at night, never at midnight in practice: the
    zone's offset at that wall time decides)."""
    return datetime.combine(day, time(0), zone)


def month_comparison(session: Session, *, zone: str, now: datetime) -> MonthComparison:
    """Sign-ups, unsubscribes, leads and bookings this month (so far) and last month, in one statement
    of eight counts over index ranges (leads: a pass over a table of leads only)."""
    tz = ZoneInfo(zone)
    this_first = month_start(now.astimezone(tz).date())
    last_first = month_start(this_first - timedelta(days=1))
    this_start, last_start = local_midnight(this_first, tz), local_midnight(last_first, tz)

    def counts(since: datetime, until: datetime) -> list[ColumnElement[int]]:
        def n(table: Any, column: Any) -> ColumnElement[int]:
            return (select(func.count()).select_from(table).where(column >= since, column < until)
                    .scalar_subquery())
        return [n(Subscription, Subscription.confirmed_at), n(Subscription, Subscription.unsubscribed_at),
                n(Lead, Lead.created_at), n(Booking, Booking.recorded_at)]

    row = session.execute(select(*counts(this_start, now), *counts(last_start, this_start))).one()
    return MonthComparison(zone, this_first, last_first, MonthFigures(*row[:4]), MonthFigures(*row[4:]))


# --- engagement by week -----------------------------------------------------------------------------


@dataclass
class WeekEngagement:
    week_of: date  # the Monday the week starts on, in the configured zone
    sent: int
    human_opens: int
    human_clicks: int

    @property
    def open_rate(self) -> float | None:
        return rate(self.human_opens, self.sent)


def week_starts(*, zone: str, now: datetime, weeks: int) -> list[datetime]:
    """The starts of the last ``weeks`` weeks (Monday 00:00 in ``zone``), oldest first, as aware
    datetimes; the last one starts the current week."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    return [local_midnight(monday - timedelta(weeks=k), tz) for k in range(weeks - 1, -1, -1)]


def engagement_by_week(session: Session, *, zone: str, now: datetime, weeks: int = WEEKS) -> list[WeekEngagement]:
    """Per week, oldest first: deliveries sent, and deliveries a person opened and clicked. One
    statement of three counts per week, each a range of an index read without touching the table:
    the ledger's ``submitted_at``, and the events' ``(type, machine, occurred_at, delivery_id)``
    (migration 0011). A count per range, not a CASE per row: bench/dashboard.py measured the CASE
    bucketing at 150-200 ms on SQLite for the ledger alone, the ranges at about 15 ms."""
    without_jit(session)
    starts = week_starts(zone=zone, now=now, weeks=weeks)
    ends = starts[1:] + [now + timedelta(microseconds=1)]  # the current week up to now, inclusive

    def sent(since: datetime, until: datetime) -> ColumnElement[int]:
        return (select(func.count()).select_from(Delivery)
                .where(Delivery.submitted_at >= since, Delivery.submitted_at < until).scalar_subquery())

    def read(kinds: tuple[EventType, ...], since: datetime, until: datetime) -> ColumnElement[int]:
        return (select(func.count(distinct(Event.delivery_id)))
                .where(Event.type.in_(kinds), HUMAN, Event.occurred_at >= since, Event.occurred_at < until,
                       Event.delivery_id.is_not(None)).scalar_subquery())

    figures = [column for since, until in zip(starts, ends, strict=True)
               for column in (sent(since, until), read(ENGAGEMENT, since, until), read((EventType.CLICK,), since, until))]
    row = session.execute(select(*figures)).one()
    return [WeekEngagement(start.date(), *(int(n) for n in row[3 * k:3 * k + 3])) for k, start in enumerate(starts)]


# --- the lead funnel --------------------------------------------------------------------------------


@dataclass
class LeadFunnel:
    by_stage: dict[str, int] = field(default_factory=dict)  # every stage, in the stages' order
    booked: int = 0  # ever booked (funnel.ever_booked)
    booked_by_email: int = 0  # with a booking credited to an email

    @property
    def leads(self) -> int:
        return sum(self.by_stage.values())

    @property
    def booked_rate(self) -> float | None:
        return rate(self.booked, self.leads)


def lead_funnel(session: Session) -> LeadFunnel:
    """Leads by stage and how many booked: one grouped pass over the leads, with the booking probes
    by index, and one join of the (small) attributions to their bookings."""
    without_jit(session)
    booked = func.coalesce(func.sum(case((ever_booked(), 1), else_=0)), literal(0))
    rows = session.execute(select(Lead.stage, func.count(), booked).group_by(Lead.stage)).all()
    by_stage = {stage: 0 for stage in STAGES} | {stage: int(n) for stage, n, _ in rows}
    by_email = session.scalar(select(func.count(distinct(Booking.lead_id)))
                              .join(Attribution, Attribution.booking_id == Booking.id)
                              .where(Booking.lead_id.is_not(None))) or 0
    return LeadFunnel(by_stage, sum(int(b) for _, _, b in rows), int(by_email))
