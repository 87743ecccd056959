"""Warm leads for a phone call: people who showed interest in the emails but have not booked.

Definitions:

- **not booked**: the lead's stage is new or contacted, and no booking was recorded since its
  current enquiry (``Booking.recorded_at >= Lead.requested_at``): a lost lead that enquired again
  is a candidate even if it booked once, long ago.
- **warm**: in the last ``days`` days (default 14), a human click on a booking button
  (``Link.is_booking``, or a click whose URL a booking button points at: provider clicks carry only
  the URL), or human clicks on at least 3 distinct links (distinct targets, over all emails).
  Machine clicks (link scanners) never count, so a scanner cannot make anyone look warm.
- **shown**: name, email, phone, preferred contact method and time, time zone, source, stage, the
  last human click and what was clicked (the booking button first, then the most recent) in which
  email (the issue's subject, or "sequence / step"), newest last click first.

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
WARM_LINKS = 3
NOT_BOOKED = ("new", "contacted")
_CHUNK = 1000  # lead ids per IN list


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
class WarmLead:
    lead_id: int
    name: str | None
    email: str
    phone: str | None
    preferred_contact: str
    source: str
    stage: str
    last_click_at: datetime
    booking_click: bool
    links_clicked: int
    clicked: list[ClickedLink] = field(default_factory=list)
    contact_id: int | None = None
    timezone: str | None = None
    requested_time: str | None = None  # a window ("weekday_mornings") or a UTC ISO date-time

    @property
    def reason(self) -> ClickedLink:
        """Why they are warm: the booking button if they clicked it, else their latest click."""
        return self.clicked[0]

    @property
    def clicked_text(self) -> str:
        """What they clicked, for a table cell: labels (or URLs), booking button first."""
        return "; ".join(c.label or c.url for c in self.clicked)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FollowUpReport:
    days: int
    since: datetime
    leads: list[WarmLead]

    def as_dict(self) -> dict[str, Any]:
        return {"days": self.days, "since": self.since, "leads": [lead.as_dict() for lead in self.leads]}


def _clicks(session: Session, since: datetime, now: datetime) -> dict[int, list[ClickedLink]]:
    """Human clicks of not-booked leads in the window, per (lead, link target)."""
    target = func.coalesce(Link.url, Event.url, literal(""))
    booked_since_enquiry = exists().where(Booking.lead_id == Lead.id, Booking.recorded_at >= Lead.requested_at)
    query = (
        select(Lead.id.label("lead_id"), target.label("url"), func.max(func.coalesce(Link.label, "")).label("label"),
               flag(is_booking_click(Event.url)).label("is_booking"), func.count().label("clicks"),
               func.max(Event.occurred_at).label("last_at"))
        .select_from(Lead)
        # Clicks by their contact: a click carries it exactly when it carries its delivery (never
        # under anonymous tracking). Read by index, per lead (contact, type, time) or for the window.
        .join(Event, Event.contact_id == Lead.contact_id)
        .outerjoin(Link, Link.id == Event.link_id)
        .where(Lead.stage.in_(NOT_BOOKED), ~booked_since_enquiry,
               Event.type == EventType.CLICK, HUMAN, Event.occurred_at >= since, Event.occurred_at <= now)
        .group_by(Lead.id, target)
    )
    found: dict[int, list[ClickedLink]] = {}
    for row in session.execute(query):
        found.setdefault(row.lead_id, []).append(
            ClickedLink(row.url, row.label or "", bool(row.is_booking), int(row.clicks), row.last_at))
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


def _emails(session: Session, lead_of: dict[int, int], since: datetime, now: datetime) -> dict[tuple[int, str], str]:
    """(lead, link target) -> the email its latest human click in the window was in; only for the
    warm leads (``lead_of``: contact id -> lead id), read by their contacts' index (contact, type,
    machine, time)."""
    target = func.coalesce(Link.url, Event.url, literal(""))
    contacts = sorted(lead_of)
    found: dict[tuple[int, str], tuple[datetime, str]] = {}
    for start in range(0, len(contacts), _CHUNK):
        chunk = contacts[start:start + _CHUNK]
        query = (select(Event.contact_id, target.label("url"), Event.occurred_at, Issue.subject, Sequence.name,
                        SequenceStep.key)
                 .outerjoin(Link, Link.id == Event.link_id)
                 .outerjoin(Issue, Issue.id == Event.issue_id)
                 .outerjoin(SequenceStep, SequenceStep.id == Event.step_id)
                 .outerjoin(Sequence, Sequence.id == SequenceStep.sequence_id)
                 .where(Event.contact_id.in_(chunk), Event.type == EventType.CLICK, HUMAN,
                        Event.occurred_at >= since, Event.occurred_at <= now))
        for contact_id, url, at, subject, sequence, step in session.execute(query):
            name = subject or (f"{sequence} / {step}" if sequence else "")
            key = (lead_of[contact_id], url)
            if key not in found or at > found[key][0]:
                found[key] = (at, name)
    return {key: name for key, (_, name) in found.items()}


def follow_up_report(session: Session, *, now: datetime, days: int = DEFAULT_DAYS) -> FollowUpReport:
    if days < 1:
        raise InputError(f"--days must be at least 1, not {days}")
    without_jit(session)
    since = now - timedelta(days=days)
    clicks = _clicks(session, since, now)
    warm = {lead_id: links for lead_id, links in clicks.items()
            if any(c.is_booking for c in links) or len(links) >= WARM_LINKS}
    details = _details(session, sorted(warm))
    emails = _emails(session, {d.contact_id: lead_id for lead_id, d in details.items()}, since, now)
    leads = []
    for lead_id, links in warm.items():
        d = details[lead_id]
        for link in links:
            link.email = emails.get((lead_id, link.url), "")
        links.sort(key=lambda c: (not c.is_booking, -c.last_at.timestamp(), c.url))
        leads.append(WarmLead(
            lead_id, d.name, d.email, d.phone, d.preferred_contact, d.source, d.stage,
            last_click_at=max(c.last_at for c in links), booking_click=any(c.is_booking for c in links),
            links_clicked=len(links), clicked=links, contact_id=d.contact_id, timezone=d.timezone,
            requested_time=d.requested_time))
    leads.sort(key=lambda lead: (lead.last_click_at, lead.lead_id), reverse=True)
    return FollowUpReport(days, since, leads)
