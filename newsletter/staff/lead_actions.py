"""What staff do to a lead from the staff pages, each audited: move it to another stage, record a
booking. The rules are ``subscribers.leads``' (the ones ``newsletter leads stage`` and ``leads book``
follow); this adds the audit entry, in the same transaction, naming the lead by number only."""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.staff.audit import Actor, AuditAction, record
from subscribers import leads
from subscribers.leads import BookingResult
from subscribers.models import Lead


def target(lead: Lead) -> str:
    """By the number the staff pages use for a lead (its contact's: /staff/leads/N), so an admin
    reading the audit log finds the lead it names."""
    return f"lead {lead.contact_id}"


def move_stage(session: Session, lead: Lead, stage: str, *, actor: Actor, by: str = "staff") -> bool:
    """Move ``lead`` to ``stage`` (InputError for a stage that is not one); False, and no audit entry,
    when it is there already. ``by``: who the lead's history names ("staff", or "api" for the API)."""
    before = lead.stage
    changed = leads.change_stage(session, lead, stage, by=by)
    if changed:
        record(session, actor, AuditAction.LEAD_STAGE_CHANGED, target(lead), f"{before} -> {stage}")
    return changed


def book(session: Session, lead: Lead, *, day: str, clock: str, zone: str, external_id: str | None,
         actor: Actor) -> BookingResult:
    """Record a consultation on ``day`` at ``clock`` in ``zone`` (stored as UTC), as ``leads book``
    does: the same external id (or the same lead and time) again is the booking recorded before."""
    booked_for = leads.local_datetime(day, clock, zone, "booking time")
    result = leads.record_booking(session, lead, booked_for=booked_for, origin="staff", external_id=external_id)
    if result.created:
        record(session, actor, AuditAction.BOOKING_RECORDED, target(lead), f"booking {result.booking.id}")
    return result
