"""Warm leads for a phone call: people who opened or clicked our emails lately but have not booked.

This module is the one home of the rule; the staff page and ``newsletter report follow-up`` only
show what it finds.

Definitions:

- **not booked**: the lead's stage is new or contacted, and no booking was recorded since its
  current enquiry (``Booking.recorded_at >= Lead.requested_at``): a lost lead that enquired again
  is a candidate even if it booked once, long ago.
- **warm**: not booked, and in the last ``days`` days (default 14) a person opened or clicked an
  email of ours sent to them (an issue or a sequence step). Machine opens and clicks (Apple's
  privacy proxy, link scanners) never count, so no machine can make anyone look warm.
- **reason**: why a lead is warm, the strongest evidence first: a click on a booking button
  (``Link.is_booking``, or a click whose URL a booking button points at: provider clicks carry only
  the URL), else clicks on other links (how many, which, the latest one's email and time), else
  the latest open (which email, when). An email is named by its issue's subject, or "sequence / step".
- **shown**: name, email, phone, preferred contact method and time, time zone, source, stage, the
  reason, what was clicked (the booking button first, then the most recent), the last click and
  the last open; most recent activity (any human open or click) first, ties by lead id, newest first.

All of it comes from one statement over the events by contact (index ``contact, type, machine,
time``), grouped per lead, kind, link and email, plus one read of the warm leads' details.
This list is for clinic staff, so it shows addresses and phone numbers; nothing here logs them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, literal, select
from sqlalchemy.orm import Session

from newsletter.errors import InputError
from newsletter.models import Event, Issue, Link, Sequence, SequenceStep
from newsletter.reports.email_stats import HUMAN, flag, is_booking_click, without_jit
from subscribers.models import Booking, Contact, Lead
from subscribers.states import EventType

DEFAULT_DAYS = 14
NOT_BOOKED = ("new", "contacted")
WARMING = (EventType.OPEN, EventType.CLICK)  # what a person does to an email that makes them warm
_CHUNK = 1000  # lead ids per IN list

# Reasons, strongest first.
BOOKING_CLICK = "booking_click"
CLICKED = "clicked"
OPENED = "opened"


@dataclass
class ClickedLink:
    """One link target a lead clicked in the window."""

    url: str
    label: str
    is_booking: bool
    clicks: int
    last_at: datetime
    email: str = ""  # the email of the latest of these clicks: an issue's subject, or "sequence / step"


@dataclass
class Reason:
    """Why a lead is warm: the strongest thing they did, in which email and when."""

    kind: str  # BOOKING_CLICK | CLICKED | OPENED
    email: str
    at: datetime
    links: list[str] = field(default_factory=list)  # what was clicked: the booking button, or every link
    also_clicked: int = 0  # with a booking click: how many other links they clicked

    def text(self, when: str = "") -> str:
        """In words, with ``when`` ("3 hours ago", a date) where the time belongs:
        'opened “Sleep and mood” 3 hours ago'."""
        where = f" in “{self.email}”" if self.email else ""
        at = f" {when}" if when else ""
        quoted = ", ".join(f"“{link}”" for link in self.links)
        if self.kind == OPENED:
            return f"opened “{self.email}”{at}" if self.email else f"opened an email{at}"
        if self.kind == BOOKING_CLICK or len(self.links) == 1:
            more = f"; {self.also_clicked + 1} links clicked in all" if self.also_clicked else ""
            return f"clicked {quoted}{where}{at}{more}"
        return f"clicked {len(self.links)} links ({quoted}), the latest{where}{at}"


@dataclass
class WarmLead:
    lead_id: int
    name: str | None
    email: str
    phone: str | None
    preferred_contact: str
    source: str
    stage: str
    last_active_at: datetime  # the latest human open or click in the window: the list's order
    last_click_at: datetime | None
    booking_click: bool
    links_clicked: int
    clicked: list[ClickedLink] = field(default_factory=list)
    last_opened_at: datetime | None = None
    opened_email: str = ""  # the email of the latest open
    contact_id: int | None = None
    timezone: str | None = None
    requested_time: str | None = None  # a window ("weekday_mornings") or a UTC ISO date-time

    @property
    def reason(self) -> Reason:
        """The booking button if they clicked it, else the links they clicked, else their latest open."""
        if self.clicked:
            first = self.clicked[0]  # the booking button first, then the most recent
            if first.is_booking:
                return Reason(BOOKING_CLICK, first.email, first.last_at, [first.label or first.url],
                              also_clicked=self.links_clicked - 1)
            return Reason(CLICKED, first.email, first.last_at, [c.label or c.url for c in self.clicked])
        assert self.last_opened_at is not None  # warm without a click: they opened
        return Reason(OPENED, self.opened_email, self.last_opened_at)

    @property
    def clicked_text(self) -> str:
        """What they clicked, for a table cell: labels (or URLs), booking button first."""
        return "; ".join(c.label or c.url for c in self.clicked)

    def as_dict(self) -> dict[str, Any]:
        reason = self.reason
        return {**asdict(self), "reason": {"kind": reason.kind, "email": reason.email, "at": reason.at,
                                           "text": reason.text()}}


@dataclass
class FollowUpReport:
    days: int
    since: datetime
    leads: list[WarmLead]

    def as_dict(self) -> dict[str, Any]:
        return {"days": self.days, "since": self.since, "leads": [lead.as_dict() for lead in self.leads]}


@dataclass
class _Activity:
    """One lead's human opens and clicks in the window, folded from the grouped rows."""

    links: dict[str, ClickedLink] = field(default_factory=dict)
    opened: tuple[datetime, str] | None = None  # the latest open and its email

    @property
    def last_at(self) -> datetime:
        times = [link.last_at for link in self.links.values()] + ([self.opened[0]] if self.opened else [])
        return max(times)


def _email_name(subject: str | None, sequence: str | None, step: str | None) -> str:
    return subject or (f"{sequence} / {step}" if sequence else "")


def _activity(session: Session, since: datetime, now: datetime) -> dict[int, _Activity]:
    """Human opens and clicks of not-booked leads in the window, per lead: one statement, grouped
    per (lead, kind, link target, email), so repeated opens of one email are one row."""
    target = func.coalesce(Link.url, Event.url, literal(""))
    booked_since_enquiry = exists().where(Booking.lead_id == Lead.id, Booking.recorded_at >= Lead.requested_at)
    query = (
        select(Lead.id.label("lead_id"), Event.type, target.label("url"),
               func.max(func.coalesce(Link.label, "")).label("label"),
               flag(is_booking_click(Event.url)).label("is_booking"), func.count().label("times"),
               func.max(Event.occurred_at).label("last_at"), Issue.subject, Sequence.name, SequenceStep.key)
        .select_from(Lead)
        # Events by their contact: an open or click carries it exactly when it carries its delivery
        # (never under anonymous tracking). Read by index, per lead (contact, type, machine, time).
        .join(Event, Event.contact_id == Lead.contact_id)
        .outerjoin(Link, Link.id == Event.link_id)
        .outerjoin(Issue, Issue.id == Event.issue_id)
        .outerjoin(SequenceStep, SequenceStep.id == Event.step_id)
        .outerjoin(Sequence, Sequence.id == SequenceStep.sequence_id)
        .where(Lead.stage.in_(NOT_BOOKED), ~booked_since_enquiry,
               Event.type.in_(WARMING), HUMAN, Event.occurred_at >= since, Event.occurred_at <= now)
        .group_by(Lead.id, Event.type, target, Event.issue_id, Event.step_id, Issue.subject, Sequence.name,
                  SequenceStep.key)
    )
    found: dict[int, _Activity] = {}
    for row in session.execute(query):
        activity = found.setdefault(row.lead_id, _Activity())
        email = _email_name(row.subject, row.name, row.key)
        if row.type == EventType.OPEN:
            if activity.opened is None or row.last_at > activity.opened[0]:
                activity.opened = (row.last_at, email)
            continue
        link = activity.links.get(row.url)
        if link is None:
            activity.links[row.url] = ClickedLink(row.url, row.label or "", bool(row.is_booking), int(row.times),
                                                  row.last_at, email)
            continue
        link.clicks += int(row.times)  # the same target in another email
        link.label = max(link.label, row.label or "")
        link.is_booking = link.is_booking or bool(row.is_booking)
        if row.last_at > link.last_at:
            link.last_at, link.email = row.last_at, email
    return found


def _details(session: Session, lead_ids: list[int]) -> dict[int, Any]:
    rows: dict[int, Any] = {}
    for start in range(0, len(lead_ids), _CHUNK):
        chunk = lead_ids[start:start + _CHUNK]
        for row in session.execute(
            select(Lead.id, Contact.name, Contact.email, Lead.phone, Lead.preferred_contact, Lead.source, Lead.stage,
                   Lead.contact_id, Contact.timezone, Lead.requested_time)
            .join(Contact, Contact.id == Lead.contact_id).where(Lead.id.in_(chunk))
        ):
            rows[row.id] = row
    return rows


def follow_up_report(session: Session, *, now: datetime, days: int = DEFAULT_DAYS) -> FollowUpReport:
    if days < 1:
        raise InputError(f"--days must be at least 1, not {days}")
    without_jit(session)
    since = now - timedelta(days=days)
    warm = _activity(session, since, now)
    details = _details(session, sorted(warm))
    leads = []
    for lead_id, activity in warm.items():
        d = details[lead_id]
        links = sorted(activity.links.values(), key=lambda c: (not c.is_booking, -c.last_at.timestamp(), c.url))
        leads.append(WarmLead(
            lead_id, d.name, d.email, d.phone, d.preferred_contact, d.source, d.stage,
            last_active_at=activity.last_at,
            last_click_at=max((c.last_at for c in links), default=None),
            booking_click=any(c.is_booking for c in links), links_clicked=len(links), clicked=links,
            last_opened_at=activity.opened[0] if activity.opened else None,
            opened_email=activity.opened[1] if activity.opened else "",
            contact_id=d.contact_id, timezone=d.timezone, requested_time=d.requested_time))
    leads.sort(key=lambda lead: (lead.last_active_at, lead.lead_id), reverse=True)
    return FollowUpReport(days, since, leads)
