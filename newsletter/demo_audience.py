"""The demo's audience: a few invented contacts, leads at every stage and two segments, so that each
staff page (Contacts, Segments, Leads, Sequences, the funnel) has something to show on a first run.

Made only in a database with no contact of its own (a demo run against a real install adds nobody),
through the same service functions as the CLI and the pages. Addresses are on example.org (reserved,
never delivered) and nothing said about anyone touches health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from subscribers.consent import Proof, request_subscription
from subscribers.contacts import upsert_contact
from subscribers.db import utcnow
from subscribers.leads import add_lead, change_stage, record_booking
from subscribers.lists import ensure_list
from subscribers.models import Contact
from subscribers.segments import save_segment
from subscribers.suppression import SuppressionReason, suppress

NEWSLETTER = "newsletter"


@dataclass(frozen=True)
class Reader:
    email: str
    name: str
    city: str
    tags: tuple[str, ...] = ()
    confirmed: bool = True


@dataclass(frozen=True)
class Enquiry:
    email: str
    name: str
    stage: str  # where the demo leaves the lead (subscribers.leads.STAGES)
    source: str
    phone: str | None = None
    booked_in_days: int | None = None  # a booking this many days from now (negative: in the past)
    days_ago: int = 0  # when they enquired, so the board and the funnel's months are not all one moment


READERS = (
    Reader("maya.okafor@example.org", "Maya Okafor", "Portland", ("blog", "event-guest")),
    Reader("li.chen@example.org", "Li Chen", "Seattle", ("blog",)),
    Reader("sam.rivera@example.org", "Sam Rivera", "Portland", ("event-guest",)),
    Reader("noor.haddad@example.org", "Noor Haddad", "San Diego", ("blog",)),
    Reader("ben.kowalski@example.org", "Ben Kowalski", "Seattle"),
    Reader("ada.mensah@example.org", "Ada Mensah", "Portland", ("blog",)),
    Reader("tom.becker@example.org", "Tom Becker", "Sacramento", confirmed=False),
    Reader("ines.duarte@example.org", "Inês Duarte", "San Diego", ("event-guest",)),
)
ENQUIRIES = (
    Enquiry("jordan.lee@example.org", "Jordan Lee", "new", "web_form", "+1 503 555 0142"),
    Enquiry("priya.nair@example.org", "Priya Nair", "new", "referral", days_ago=2),
    Enquiry("maya.okafor@example.org", "Maya Okafor", "contacted", "web_form", "+1 503 555 0117", days_ago=6),
    Enquiry("omar.farouk@example.org", "Omar Farouk", "booked", "phone", "+1 206 555 0190", booked_in_days=5,
            days_ago=12),
    Enquiry("sam.rivera@example.org", "Sam Rivera", "attended", "web_form", "+1 503 555 0163", booked_in_days=-9,
            days_ago=30),
    Enquiry("grace.kim@example.org", "Grace Kim", "lost", "campaign", days_ago=45),
)
PAUSED = "ben.kowalski@example.org"  # asked by phone not to be mailed for a while
SEGMENTS = (
    ("event-guests", {"tag": "event-guest"}, "People tagged event-guest (the open evenings)"),
    ("portland-readers", {"all": [{"list": NEWSLETTER}, {"field": "city", "op": "eq", "value": "Portland"}]},
     "Newsletter readers whose city is Portland"),
)


def seed_audience(session: Session, settings: Settings) -> bool:
    """Add the demo audience unless the database has contacts already; True if it was added now."""
    if session.scalar(select(exists().where(Contact.id.is_not(None)))):
        return False
    zone = settings.default_timezone
    newsletter = ensure_list(session, NEWSLETTER)
    for reader in READERS:
        contact = upsert_contact(session, reader.email, default_timezone=zone, source="admin", name=reader.name,
                                 custom_fields={"city": reader.city}, tags=list(reader.tags)).contact
        request_subscription(session, contact, newsletter, Proof("admin", note="demo data"),
                             confirmed=reader.confirmed)
    now = utcnow()
    for enquiry in ENQUIRIES:
        lead = add_lead(session, enquiry.email, default_timezone=zone, source=enquiry.source,
                        consent_method="form", origin="staff", name=enquiry.name, phone=enquiry.phone,
                        preferred_contact="phone" if enquiry.phone else None).lead
        lead.requested_at = now - timedelta(days=enquiry.days_ago)
        if enquiry.booked_in_days is not None:
            record_booking(session, lead, booked_for=now + timedelta(days=enquiry.booked_in_days), origin="staff",
                           external_id=None)
        if lead.stage != enquiry.stage:
            change_stage(session, lead, enquiry.stage, by="staff")
    suppress(session, PAUSED, SuppressionReason.MANUAL, "asked by phone to pause")
    for name, definition, description in SEGMENTS:
        save_segment(session, name, definition, description)
    return True
