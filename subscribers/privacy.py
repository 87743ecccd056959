"""A person's rights over their data: a copy of everything we hold (export), and erasure.

Erasure deletes the contact and everything that hangs off it (foreign keys cascade: tags,
subscriptions, consent history, lead and stage history), unlinks bookings so they survive only as
anonymous counts, scrubs the person from free text that may quote them (suppression and consent
notes; see ``traces``), and keeps the address as a salted hash on the suppression list so nothing
mails it again. Tables added later must reference contacts with ON DELETE CASCADE or SET NULL to stay
covered, and their free text must be scrubbed by an erasure step.

``subscribers`` never imports ``newsletter``: what the newsletter side holds (deliveries' events,
the outbox folder, the database's write-ahead log) is erased by steps its caller hands in
(``newsletter.erasure``), run in the same transaction before the contact is deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subscribers.consent import history
from subscribers.contacts import contact_summary, find_contact, normalise_email
from subscribers.models import Booking, ConsentEvent, ConsentText, Contact, Erasure, Lead, Suppression
from subscribers.suppression import SuppressionReason, address_hash, suppress
from subscribers.traces import ErasedPerson, scrub_mentions

# Called with the person before their contact row is deleted, inside the erasure's transaction.
ErasureStep = Callable[[Session, ErasedPerson], None]


def export_personal_data(session: Session, email: str) -> dict[str, Any] | None:
    """Everything stored about one address, as JSON-ready data (None when nothing is stored)."""
    address = normalise_email(email)
    contact = find_contact(session, address)
    suppression = session.scalar(select(Suppression).where(Suppression.email_hash == address_hash(session, address)))
    if contact is None and suppression is None:
        return None
    data: dict[str, Any] = {"contact": contact_summary(contact) if contact else None}
    if contact is not None:
        data["subscriptions"] = [
            {
                "list": sub.mailing_list.slug, "status": sub.status, "frequency": sub.frequency,
                "created_at": _iso(sub.created_at), "confirmed_at": _iso(sub.confirmed_at),
                "unsubscribed_at": _iso(sub.unsubscribed_at),
            }
            for sub in contact.subscriptions
        ]
        texts = {t.hash: t for t in session.scalars(select(ConsentText))}
        data["consent_history"] = [
            {
                "at": _iso(e.at), "action": e.action, "method": e.method, "list_id": e.list_id,
                "form_id": e.form_id, "form_version": e.form_version,
                "consent_text": texts[e.consent_text_hash].text if e.consent_text_hash else None,
                "note": e.note, "ip_address": e.ip_address, "user_agent": e.user_agent,
            }
            for e in history(session, contact)
        ]
        lead = session.scalar(select(Lead).where(Lead.contact_id == contact.id))
        data["lead"] = _lead(session, lead) if lead else None
    data["suppression"] = (
        {"reason": suppression.reason, "since": _iso(suppression.created_at)} if suppression else None
    )
    return data


def _lead(session: Session, lead: Lead) -> dict[str, Any]:
    bookings = session.scalars(select(Booking).where(Booking.lead_id == lead.id).order_by(Booking.id))
    return {
        "phone": lead.phone, "preferred_contact": lead.preferred_contact, "source": lead.source,
        "requested_at": _iso(lead.requested_at), "requested_time": lead.requested_time, "stage": lead.stage,
        "utm": {k: getattr(lead, f"utm_{k}") for k in ("source", "medium", "campaign", "term", "content")},
        "contact_consent_at": _iso(lead.contact_consent_at), "contact_consent_method": lead.contact_consent_method,
        "stage_history": [
            {"from": c.from_stage, "to": c.to_stage, "by": c.by, "at": _iso(c.at)} for c in lead.stage_changes
        ],
        "bookings": [
            {"booked_for": _iso(b.booked_for), "recorded_at": _iso(b.recorded_at), "origin": b.origin,
             "external_id": b.external_id}
            for b in bookings
        ],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def erase(session: Session, email: str, *, also: Sequence[ErasureStep]) -> bool:
    """Forget the address. Returns whether a contact was deleted; the hash is suppressed either way,
    so an erasure request for an address we never held still keeps it from ever being added.

    ``also``: the steps that erase what other packages hold (required, so no caller forgets them;
    pass ``()`` only where nothing but the audience's tables exists)."""
    address = normalise_email(email)
    contact = find_contact(session, address)
    person = erased_person(session, address, contact)
    for step in also:
        step(session, person)
    suppress(session, address, SuppressionReason.ERASED, keep_address=False)
    if contact is not None:
        lead_ids = list(session.scalars(select(Lead.id).where(Lead.contact_id == contact.id)))
        for booking in session.scalars(select(Booking).where(Booking.lead_id.in_(lead_ids))):
            booking.lead_id = None  # the booking stays as an anonymous count
            booking.external_id = None  # a booking system's id could lead back to the person
        session.delete(contact)
        session.add(Erasure())
        session.flush()
    # Notes staff or imports wrote about others may still name them.
    scrub_mentions(session, person, [Suppression.note, ConsentEvent.note])
    session.flush()
    return contact is not None


def erased_person(session: Session, address: str, contact: Contact | None) -> ErasedPerson:
    """What of the person may appear in stored text: addresses, name, phones, custom field values,
    booking ids and the IP addresses their consent was given from."""
    if contact is None:
        return ErasedPerson(None, (address,))
    leads = list(session.scalars(select(Lead).where(Lead.contact_id == contact.id)))
    bookings = session.scalars(select(Booking.external_id).where(Booking.lead_id.in_([lead.id for lead in leads])))
    ips = session.scalars(select(ConsentEvent.ip_address).where(ConsentEvent.contact_id == contact.id))
    others = [*_strings(contact.custom_fields), *(b for b in bookings if b), *(ip for ip in ips if ip)]
    others += [v for lead in leads for v in (lead.utm_term, lead.utm_content) if v]
    return ErasedPerson(
        contact.id,
        tuple(dict.fromkeys((address, contact.email))),
        names=(contact.name,) if contact.name else (),
        phones=tuple(lead.phone for lead in leads if lead.phone),
        others=tuple(dict.fromkeys(others)),
    )


def _strings(value: Any) -> list[str]:
    """Every string and number inside a custom field value (lists and objects included)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, bool) or value is None:
        return []
    return [str(value)]


def erasure_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Erasure)) or 0



