"""The lead funnel: from enquiry to consultation, and which emails the bookings are credited to.

Definitions:

- **leads**: leads created in [since, until) (``Lead.created_at``; either end may be open), of one
  source when ``source`` is given. Every other stage counts leads of this cohort.
- **emailed**: leads with at least one delivery that counts as sent (any issue or step, at any
  time; "sent" as in ``email_stats``).
- **engaged**: leads with a human open or click on any delivery to them (a click counts as an
  open; machine opens and clicks never count).
- **booked**: leads with a booking, or whose stage is or ever was booked or attended (staff may
  move the stage by hand without recording a booking; an attended lead surely booked).
- **attended**: leads whose stage is attended, or ever changed to attended (a lead later marked lost
  still attended).
- **attributed**: leads with a booking credited to an email (``attributions``). Not a funnel stage:
  it says how many of the booked were brought by email.

The stages are counted independently over the cohort, in the brief's order, and each rate is a
stage over the stage before it (``rate_from_previous``) and over the leads (``rate_overall``). A
lead can book without being emailed (a phone enquiry booked on the call), so ``booked`` can exceed
``engaged``: the rate then passes 100%, which says exactly that.

- **median hours to book**: over the booked leads of the cohort, from the lead's creation to its
  first booking (the earliest of its first booking's ``recorded_at`` and its first stage change to
  booked or attended); a booking recorded before the lead row existed (an import) counts as 0.
- **by source**: the same figures per lead source; **by month**: per calendar month of the lead's
  creation, in the time zone given (the clinic's), oldest first; **by sequence**: per sequence, over the cohort's
  leads ever enrolled in it (a lead in two sequences counts in both).
- **bookings per email**: bookings recorded in [since, until) (of the source given, by the source
  the booking keeps, which survives erasure), counted per issue and per step they are attributed
  to, with how many were credited to a click and how many to an open.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, exists, func, select
from sqlalchemy.orm import Session

from newsletter.errors import InputError
from newsletter.models import Attribution, Enrollment, Issue, Sequence, SequenceStep
from newsletter.reports.email_stats import flag, has_human_engagement, has_sent_delivery, rate, without_jit
from subscribers.leads import BOOKED_OR_LATER, SOURCES
from subscribers.models import Booking, Lead, LeadStageChange
from subscribers.states import EventType

STAGES = ("leads", "emailed", "engaged", "booked", "attended")


@dataclass
class Funnel:
    leads: int = 0
    emailed: int = 0
    engaged: int = 0
    booked: int = 0
    attended: int = 0
    attributed: int = 0
    hours_to_book: list[float] = field(default_factory=list)

    @property
    def median_hours_to_book(self) -> float | None:
        return round(statistics.median(self.hours_to_book), 1) if self.hours_to_book else None

    def stages(self) -> list[dict[str, Any]]:
        rows, previous = [], None
        for stage in STAGES:
            count = getattr(self, stage)
            rows.append({"stage": stage, "count": count,
                         "rate_from_previous": None if previous is None else rate(count, previous),
                         "rate_overall": rate(count, self.leads)})
            previous = count
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {**{stage: getattr(self, stage) for stage in STAGES}, "attributed": self.attributed,
                "median_hours_to_book": self.median_hours_to_book, "stages": self.stages()}


@dataclass
class EmailBookings:
    """Bookings attributed to one issue or step."""

    kind: str  # issue | step
    id: int
    name: str  # the issue's subject, or "sequence / step key"
    subject: str
    bookings: int
    by_click: int
    by_open: int


@dataclass
class FunnelReport:
    since: datetime | None
    until: datetime | None
    source: str | None
    total: Funnel
    by_source: dict[str, Funnel]
    by_sequence: dict[str, Funnel]
    bookings_by_email: list[EmailBookings]
    by_month: dict[str, Funnel] = field(default_factory=dict)  # "2026-12" -> figures, oldest first

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since, "until": self.until, "source": self.source,
            "total": self.total.as_dict(),
            "by_source": {name: f.as_dict() for name, f in self.by_source.items()},
            "by_month": {name: f.as_dict() for name, f in self.by_month.items()},
            "by_sequence": {name: f.as_dict() for name, f in self.by_sequence.items()},
            "bookings_by_issue": [_email_dict(e) for e in self.bookings_by_email if e.kind == "issue"],
            "bookings_by_step": [_email_dict(e) for e in self.bookings_by_email if e.kind == "step"],
        }


def _email_dict(e: EmailBookings) -> dict[str, Any]:
    return {f"{e.kind}_id": e.id, "name": e.name, "subject": e.subject, "bookings": e.bookings,
            "by_click": e.by_click, "by_open": e.by_open}


def ever_booked() -> ColumnElement[bool]:
    """The SQL form of **booked** above, for a query over ``Lead``: a booking, or a stage that is or ever
    was booked or attended (``_figures`` reads the same three facts per lead). Both probes are by
    index (bookings by lead, stage changes by lead)."""
    return (Lead.stage.in_(BOOKED_OR_LATER)
            | exists().where(Booking.lead_id == Lead.id)
            | exists().where(LeadStageChange.lead_id == Lead.id, LeadStageChange.to_stage.in_(BOOKED_OR_LATER)))


def _window(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    conditions = []
    if since is not None:
        conditions.append(column >= since)
    if until is not None:
        conditions.append(column < until)
    return conditions


def _cohort(since: datetime | None, until: datetime | None, source: str | None) -> list[ColumnElement[bool]]:
    conditions = _window(Lead.created_at, since, until)
    if source is not None:
        conditions.append(Lead.source == source)
    return conditions


def _lead_rows(session: Session, cohort: list[ColumnElement[bool]]) -> list[Any]:
    """One row per lead of the cohort with its stage flags. Email and engagement are EXISTS probes by
    index (deliveries per contact, events per contact and type); bookings, stage changes and
    attributions are small tables, grouped once and joined."""
    bookings = (select(Booking.lead_id, func.min(Booking.recorded_at).label("first"))
                .where(Booking.lead_id.is_not(None)).group_by(Booking.lead_id).subquery("first_booking"))
    stages = (select(LeadStageChange.lead_id, func.min(LeadStageChange.at).label("first"),
                     flag(LeadStageChange.to_stage == "attended").label("attended"))
              .where(LeadStageChange.to_stage.in_(BOOKED_OR_LATER))
              .group_by(LeadStageChange.lead_id).subquery("booked_stage"))
    credited = (select(Booking.lead_id).join(Attribution, Attribution.booking_id == Booking.id)
                .where(Booking.lead_id.is_not(None)).group_by(Booking.lead_id).subquery("credited"))
    query = (
        select(
            Lead.id, Lead.source, Lead.stage, Lead.created_at,
            has_sent_delivery(Lead.contact_id).label("emailed"),
            has_human_engagement(Lead.contact_id).label("engaged"),
            bookings.c.first.label("first_booking"),
            stages.c.first.label("first_booked_stage"),
            ((Lead.stage == "attended") | (stages.c.attended == 1)).label("attended"),
            credited.c.lead_id.is_not(None).label("attributed"),
        )
        .outerjoin(bookings, bookings.c.lead_id == Lead.id)
        .outerjoin(stages, stages.c.lead_id == Lead.id)
        .outerjoin(credited, credited.c.lead_id == Lead.id)
        .where(*cohort)
    )
    return list(session.execute(query))


def _sequences_of(session: Session, cohort: list[ColumnElement[bool]]) -> dict[int, list[str]]:
    """Lead id -> names of the sequences it was ever enrolled in."""
    query = (select(Lead.id, Sequence.name).distinct()
             .join(Enrollment, Enrollment.contact_id == Lead.contact_id)
             .join(Sequence, Sequence.id == Enrollment.sequence_id)
             .where(*cohort))
    found: dict[int, list[str]] = {}
    for lead_id, name in session.execute(query):
        found.setdefault(lead_id, []).append(name)
    return found


# One lead's figures: (1, emailed, engaged, booked, attended, attributed) as 0/1, and hours to book.
LeadFigures = tuple[tuple[int, ...], float | None]


def _figures(stage: str, created_at: datetime, emailed: Any, engaged: Any, first_booking: datetime | None,
             first_booked_stage: datetime | None, attended: Any, attributed: Any) -> LeadFigures:
    """Called once per lead of the cohort: kept to plain comparisons (no lists, no min of a list)."""
    if first_booking is None and first_booked_stage is None:
        booked, hours = stage in BOOKED_OR_LATER, None
    else:
        first = (first_booked_stage if first_booking is None else first_booking if first_booked_stage is None
                 else min(first_booking, first_booked_stage))
        booked, hours = True, max(0.0, (first - created_at).total_seconds() / 3600)
    return (1, 1 if emailed else 0, 1 if engaged else 0, 1 if booked else 0, 1 if attended else 0,
            1 if attributed else 0), hours


def _funnel(members: list[LeadFigures]) -> Funnel:
    """Column sums (zip and sum run in C: a cohort of tens of thousands adds up in milliseconds)."""
    sums = [sum(column) for column in zip(*(flags for flags, _ in members), strict=True)] or [0] * 6
    return Funnel(*sums, hours_to_book=[hours for _, hours in members if hours is not None])


def _bookings_by_email(session: Session, since: datetime | None, until: datetime | None,
                       source: str | None) -> list[EmailBookings]:
    conditions = _window(Booking.recorded_at, since, until)
    if source is not None:
        conditions.append(Booking.source == source)
    counts = (func.count().label("bookings"),
              func.sum(case((Attribution.kind == EventType.CLICK, 1), else_=0)).label("by_click"),
              func.sum(case((Attribution.kind == EventType.OPEN, 1), else_=0)).label("by_open"))
    issues = (select(Issue.id, Issue.subject, *counts)
              .join(Attribution, Attribution.issue_id == Issue.id)
              .join(Booking, Booking.id == Attribution.booking_id)
              .where(*conditions).group_by(Issue.id, Issue.subject))
    steps = (select(SequenceStep.id, Sequence.name, SequenceStep.key, SequenceStep.subject, *counts)
             .join(Attribution, Attribution.step_id == SequenceStep.id)
             .join(Sequence, Sequence.id == SequenceStep.sequence_id)
             .join(Booking, Booking.id == Attribution.booking_id)
             .where(*conditions).group_by(SequenceStep.id, Sequence.name, SequenceStep.key, SequenceStep.subject))
    found = [EmailBookings("issue", r.id, r.subject, r.subject, r.bookings, int(r.by_click), int(r.by_open))
             for r in session.execute(issues)]
    found += [EmailBookings("step", r.id, f"{r.name} / {r.key}", r.subject, r.bookings, int(r.by_click),
                            int(r.by_open)) for r in session.execute(steps)]
    return sorted(found, key=lambda e: (e.kind, -e.bookings, e.name))


def funnel_report(session: Session, *, since: datetime | None = None, until: datetime | None = None,
                  source: str | None = None, zone: str = "UTC") -> FunnelReport:
    if source is not None and source not in SOURCES:
        raise InputError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    if since is not None and until is not None and since >= until:
        raise InputError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
    without_jit(session)
    cohort = _cohort(since, until, source)
    sequences = _sequences_of(session, cohort)
    everyone: list[LeadFigures] = []
    by_source: dict[str, list[LeadFigures]] = {}
    by_month: dict[tuple[int, int], list[LeadFigures]] = {}
    tz = ZoneInfo(zone)
    by_sequence: dict[str, list[LeadFigures]] = {}
    # One row per lead (never per delivery), unpacked: this loop runs for every lead of the cohort.
    for lead_id, lead_source, stage, created_at, *facts in _lead_rows(session, cohort):
        figures = _figures(stage, created_at, *facts)
        everyone.append(figures)
        by_source.setdefault(lead_source, []).append(figures)
        local = created_at.astimezone(tz)  # (year, month) is five times cheaper than formatting each
        by_month.setdefault((local.year, local.month), []).append(figures)
        for name in sequences.get(lead_id, ()):
            by_sequence.setdefault(name, []).append(figures)
    biggest_first = sorted(by_source, key=lambda name: (-len(by_source[name]), name))
    return FunnelReport(since, until, source, _funnel(everyone),
                        {name: _funnel(by_source[name]) for name in biggest_first},
                        {name: _funnel(by_sequence[name]) for name in sorted(by_sequence)},
                        _bookings_by_email(session, since, until, source),
                        {f"{year:04d}-{month:02d}": _funnel(by_month[(year, month)]) for year, month in sorted(by_month)})
