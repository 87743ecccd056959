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

How it is read: one statement finds every warm lead and its last activity (human opens and clicks
in the window, by the events' indexes on kind and time or on contact, kind and time), which gives
the order and the total; then, for the leads shown only (all of them for the command, a page of
``limit`` after a ``Cursor`` for the staff page: keyset paging, never an OFFSET), their events by
contact (index ``contact, type, machine, time``) grouped per kind, link and email, and their details.
This list is for clinic staff, so it shows addresses and phone numbers; nothing here logs them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, literal, select
from sqlalchemy.orm import Session

from newsletter.errors import InputError
from newsletter.models import Event, Issue, Link, Sequence, SequenceStep
from newsletter.reports.email_stats import HUMAN, flag, is_booking_click, without_jit
from newsletter.paging import Cursor
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
    total: int = 0  # warm leads in all; ``leads`` is the page of them asked for
    more: Cursor | None = None  # where the next page starts (None: these are the last)

    def as_dict(self) -> dict[str, Any]:
        return {"days": self.days, "since": self.since, "total": self.total,
                "leads": [lead.as_dict() for lead in self.leads]}


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


def _warm(session: Session, since: datetime, now: datetime) -> list[tuple[datetime, int, int]]:
    """Every warm lead as (last activity, lead id, contact id), most recent first (ties: the newer lead)."""
    booked_since_enquiry = exists().where(Booking.lead_id == Lead.id, Booking.recorded_at >= Lead.requested_at)
    query = (
        select(func.max(Event.occurred_at), Lead.id, Lead.contact_id)
        .select_from(Lead)
        # Events by their contact: an open or click carries it exactly when it carries its delivery
        # (never under anonymous tracking).
        .join(Event, Event.contact_id == Lead.contact_id)
        .where(Lead.stage.in_(NOT_BOOKED), ~booked_since_enquiry, *_warming(since, now))
        .group_by(Lead.id, Lead.contact_id)
    )
    return sorted(((at, lead_id, contact_id) for at, lead_id, contact_id in session.execute(query)), reverse=True)


def _warming(since: datetime, now: datetime) -> tuple[ColumnElement[bool], ...]:
    return Event.type.in_(WARMING), HUMAN, Event.occurred_at >= since, Event.occurred_at <= now


def _activity(session: Session, lead_of: dict[int, int], since: datetime, now: datetime) -> dict[int, _Activity]:
    """The human opens and clicks in the window of the leads shown (``lead_of``: contact id -> lead
    id), read by their contacts' index and grouped per (contact, kind, link target, email), so
    repeated opens of one email are one row."""
    target = func.coalesce(Link.url, Event.url, literal(""))
    contacts = sorted(lead_of)
    found: dict[int, _Activity] = {}
    for start in range(0, len(contacts), _CHUNK):
        query = (
            select(Event.contact_id, Event.type, target.label("url"),
                   func.max(func.coalesce(Link.label, "")).label("label"),
                   flag(is_booking_click(Event.url)).label("is_booking"), func.count().label("times"),
                   func.max(Event.occurred_at).label("last_at"), Issue.subject, Sequence.name, SequenceStep.key)
            .outerjoin(Link, Link.id == Event.link_id)
            .outerjoin(Issue, Issue.id == Event.issue_id)
            .outerjoin(SequenceStep, SequenceStep.id == Event.step_id)
            .outerjoin(Sequence, Sequence.id == SequenceStep.sequence_id)
            .where(Event.contact_id.in_(contacts[start:start + _CHUNK]), *_warming(since, now))
            .group_by(Event.contact_id, Event.type, target, Event.issue_id, Event.step_id, Issue.subject,
                      Sequence.name, SequenceStep.key)
        )
        for row in session.execute(query):
            _fold(found.setdefault(lead_of[row.contact_id], _Activity()), row)
    return found


def _fold(activity: _Activity, row: Any) -> None:
    """One grouped row into its lead's activity: the latest open; per link target, the clicks over
    all emails and the email of the latest."""
    email = _email_name(row.subject, row.name, row.key)
    if row.type == EventType.OPEN:
        if activity.opened is None or row.last_at > activity.opened[0]:
            activity.opened = (row.last_at, email)
        return
    link = activity.links.get(row.url)
    if link is None:
        activity.links[row.url] = ClickedLink(row.url, row.label or "", bool(row.is_booking), int(row.times),
                                              row.last_at, email)
        return
    link.clicks += int(row.times)
    link.label = max(link.label, row.label or "")
    link.is_booking = link.is_booking or bool(row.is_booking)
    if row.last_at > link.last_at:
        link.last_at, link.email = row.last_at, email


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


def follow_up_report(session: Session, *, now: datetime, days: int = DEFAULT_DAYS, limit: int | None = None,
                     after: Cursor | None = None) -> FollowUpReport:
    """The warm leads, most recent first: all of them, or ``limit`` of them from just after ``after``."""
    if days < 1:
        raise InputError(f"--days must be at least 1, not {days}")
    without_jit(session)
    since = now - timedelta(days=days)
    warm = _warm(session, since, now)
    shown = [w for w in warm if after is None or (w[0], w[1]) < (after.at, after.id)]
    more = None
    if limit is not None and len(shown) > limit:
        shown = shown[:limit]
        more = Cursor(shown[-1][0], shown[-1][1])
    activity = _activity(session, {contact_id: lead_id for _, lead_id, contact_id in shown}, since, now)
    details = _details(session, sorted(activity))
    leads = []
    for _, lead_id, _ in shown:
        if lead_id not in activity or lead_id not in details:
            continue  # erased between the two reads
        d, seen = details[lead_id], activity[lead_id]
        links = sorted(seen.links.values(), key=lambda c: (not c.is_booking, -c.last_at.timestamp(), c.url))
        leads.append(WarmLead(
            lead_id, d.name, d.email, d.phone, d.preferred_contact, d.source, d.stage,
            last_active_at=seen.last_at,
            last_click_at=max((c.last_at for c in links), default=None),
            booking_click=any(c.is_booking for c in links), links_clicked=len(links), clicked=links,
            last_opened_at=seen.opened[0] if seen.opened else None,
            opened_email=seen.opened[1] if seen.opened else "",
            contact_id=d.contact_id, timezone=d.timezone, requested_time=d.requested_time))
    return FollowUpReport(days, since, leads, len(warm), more)
