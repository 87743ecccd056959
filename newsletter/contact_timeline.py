"""One contact's history for staff, newest first: consent, deliveries, opens and clicks (and the
other events about their emails), the lead request, bookings and suppression.

Bounded whatever the history: each source reads at most one page of its newest rows older than the
cursor (through an index that starts with the contact: ``ix_events_contact_kind_time``,
``deliveries.contact_id``, ``consent_events.contact_id``, ``bookings.lead_id``), the rows are merged
and cut to the page. The cursor is a time: the next page holds what happened at or before it.
Entries at the page's last instant are all moved to the next page, so none is lost between pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from newsletter.models import Delivery, Event, Issue, Link, Sequence, SequenceStep
from subscribers.consent import ConsentAction
from subscribers.models import Booking, ConsentEvent, Contact, Lead, MailingList, Suppression
from subscribers.states import EventType

PAGE_SIZE = 200
# Events shown: what a person did with an email, or what became of it (delivery states are on the
# delivery itself; "processed" and "deferred" say nothing staff act on).
SHOWN_EVENTS = (EventType.OPEN, EventType.CLICK, EventType.BOUNCE, EventType.BLOCKED, EventType.DROPPED,
                EventType.SPAMREPORT, EventType.UNSUBSCRIBE, EventType.GROUP_UNSUBSCRIBE,
                EventType.GROUP_RESUBSCRIBE)
CONSENT_WORDS = {ConsentAction.REQUESTED: "Subscribe requested", ConsentAction.CONFIRMED: "Subscription confirmed",
                 ConsentAction.WITHDRAWN: "Unsubscribed", ConsentAction.FREQUENCY: "Frequency changed"}


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # consent | delivery | open | click | event | lead | booking | suppression
    title: str
    detail: str = ""
    about: str | None = None  # the issue or sequence it came from, named as the audit log names it ("issue 3")


@dataclass(frozen=True)
class Timeline:
    entries: list[Entry]
    older: datetime | None  # the cursor of the next page (None: nothing older)


def _page(stmt: Select[Any], column: Any, at_or_before: datetime | None, limit: int) -> Select[Any]:
    if at_or_before is not None:
        stmt = stmt.where(column <= at_or_before)
    return stmt.order_by(column.desc()).limit(limit)


def _consent(session: Session, contact: Contact, cursor: datetime | None, limit: int) -> list[Entry]:
    stmt = (select(ConsentEvent, MailingList.slug).outerjoin(MailingList, MailingList.id == ConsentEvent.list_id)
            .where(ConsentEvent.contact_id == contact.id))
    entries = []
    for event, slug in session.execute(_page(stmt, ConsentEvent.at, cursor, limit)):
        proof = [f"by {event.method}", f"form {event.form_id}" if event.form_id else "",
                 f"form version {event.form_version}" if event.form_version else "",
                 "consent wording kept" if event.consent_text_hash else "",
                 f"note: {event.note}" if event.note else ""]
        where = f"list {slug}" if slug else "every list"
        entries.append(Entry(event.at, "consent", f"{CONSENT_WORDS.get(event.action, event.action)} ({where})",
                             "; ".join(p for p in proof if p)))
    return entries


def _email_name(issue_subject: str | None, sequence: str | None, step: str | None) -> str:
    if issue_subject is not None:
        return f"issue “{issue_subject}”"
    if step is not None:
        return f"sequence {sequence}, step “{step}”"
    return "an email no longer stored"


def _about(issue_id: int | None, sequence_id: int | None) -> str | None:
    return f"issue {issue_id}" if issue_id is not None else f"sequence {sequence_id}" if sequence_id is not None else None


def _deliveries(session: Session, contact: Contact, cursor: datetime | None, limit: int) -> list[Entry]:
    stmt = (select(Delivery, Issue.subject, Sequence.name, SequenceStep.subject, Issue.id, Sequence.id)
            .outerjoin(Issue, Issue.id == Delivery.issue_id)
            .outerjoin(SequenceStep, SequenceStep.id == Delivery.step_id)
            .outerjoin(Sequence, Sequence.id == SequenceStep.sequence_id)
            .where(Delivery.contact_id == contact.id))
    entries = []
    for delivery, subject, sequence, step, issue_id, sequence_id in session.execute(
            _page(stmt, Delivery.created_at, cursor, limit)):
        detail = f"state: {delivery.status}"
        if delivery.submitted_at:
            detail += f", accepted by the provider {delivery.submitted_at:%Y-%m-%d %H:%M} UTC"
        entries.append(Entry(delivery.created_at, "delivery", f"Email: {_email_name(subject, sequence, step)}", detail,
                             _about(issue_id, sequence_id)))
    return entries


def _events(session: Session, contact: Contact, cursor: datetime | None, limit: int) -> list[Entry]:
    stmt = (select(Event, Issue.subject, Sequence.name, SequenceStep.subject, Link.url)
            .outerjoin(Issue, Issue.id == Event.issue_id)
            .outerjoin(SequenceStep, SequenceStep.id == Event.step_id)
            .outerjoin(Sequence, Sequence.id == SequenceStep.sequence_id)
            .outerjoin(Link, Link.id == Event.link_id)
            .where(Event.contact_id == contact.id, Event.type.in_(SHOWN_EVENTS)))
    entries = []
    for event, subject, sequence, step, link in session.execute(_page(stmt, Event.occurred_at, cursor, limit)):
        email = _email_name(subject, sequence, step)
        machine = " (by a machine, not counted)" if event.machine else ""
        if event.type == EventType.OPEN:
            entries.append(Entry(event.occurred_at, "open", f"Opened {email}{machine}"))
        elif event.type == EventType.CLICK:
            entries.append(Entry(event.occurred_at, "click", f"Clicked a link in {email}{machine}",
                                 link or event.url or ""))
        else:
            entries.append(Entry(event.occurred_at, "event", f"{event.type.replace('_', ' ').capitalize()}: {email}",
                                 event.reason or ""))
    return entries


def _lead(session: Session, contact: Contact, cursor: datetime | None, limit: int) -> list[Entry]:
    lead = session.scalar(select(Lead).where(Lead.contact_id == contact.id))
    if lead is None:
        return []
    entries = []
    if cursor is None or lead.requested_at <= cursor:
        entries.append(Entry(lead.requested_at, "lead", "Asked for a consultation",
                             f"source: {lead.source}; stage now: {lead.stage}"))
    stmt = select(Booking).where(Booking.lead_id == lead.id)
    for booking in session.scalars(_page(stmt, Booking.recorded_at, cursor, limit)):
        when = f"for {booking.booked_for:%Y-%m-%d %H:%M} UTC; " if booking.booked_for else ""
        entries.append(Entry(booking.recorded_at, "booking", "Consultation booked", f"{when}recorded by {booking.origin}"))
    return entries


def _suppression(session: Session, contact: Contact, cursor: datetime | None) -> list[Entry]:
    row = session.scalar(select(Suppression).where(Suppression.email_hash == contact.email_hash))
    if row is None or (cursor is not None and row.created_at > cursor):
        return []
    detail = f"reason: {row.reason.replace('_', ' ')}" + (f"; note: {row.note}" if row.note else "")
    return [Entry(row.created_at, "suppression", "Suppressed: no email may be sent", detail)]


def timeline(session: Session, contact: Contact, *, at_or_before: datetime | None = None,
             page_size: int = PAGE_SIZE) -> Timeline:
    """The newest ``page_size`` entries at or before ``at_or_before`` (None: from now)."""
    limit = page_size + 1
    entries = [*_consent(session, contact, at_or_before, limit), *_deliveries(session, contact, at_or_before, limit),
               *_events(session, contact, at_or_before, limit), *_lead(session, contact, at_or_before, limit),
               *_suppression(session, contact, at_or_before)]
    entries.sort(key=lambda e: e.at, reverse=True)
    if len(entries) <= page_size:
        return Timeline(entries, None)
    boundary = entries[page_size].at
    shown = [e for e in entries[:page_size] if e.at > boundary]
    if not shown:  # more than a page at one instant (only a bulk import does that): go on past it
        return Timeline(entries[:page_size], boundary - timedelta(microseconds=1))
    return Timeline(shown, boundary)
