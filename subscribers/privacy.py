"""A person's rights over their data: a copy of everything we hold (export), and erasure.

Erasure deletes the contact and everything that hangs off it (foreign keys cascade: tags,
subscriptions, consent history, lead and stage history), unlinks bookings so they survive only as
anonymous counts, and keeps the address as a salted hash on the suppression list so nothing mails it
again. Tables added later must reference contacts with ON DELETE CASCADE or SET NULL to stay covered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.consent import history
from subscribers.contacts import contact_summary, find_contact, normalise_email
from subscribers.models import Booking, ConsentText, Erasure, Lead, Suppression
from subscribers.suppression import address_hash, suppress


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


def erase(session: Session, email: str) -> bool:
    """Forget the address. Returns whether a contact was deleted; the hash is suppressed either way,
    so an erasure request for an address we never held still keeps it from ever being added."""
    address = normalise_email(email)
    contact = find_contact(session, address)
    suppress(session, address, "erased", keep_address=False)
    if contact is None:
        return False
    lead_ids = list(session.scalars(select(Lead.id).where(Lead.contact_id == contact.id)))
    for booking in session.scalars(select(Booking).where(Booking.lead_id.in_(lead_ids))):
        booking.lead_id = None  # the booking stays as an anonymous count
        booking.external_id = None  # a booking system's id could lead back to the person
    session.delete(contact)
    session.add(Erasure())
    session.flush()
    return True


def erasure_count(session: Session) -> int:
    from sqlalchemy import func

    return session.scalar(select(func.count()).select_from(Erasure)) or 0



