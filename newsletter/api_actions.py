"""What a call of the REST API does to the audience, leads and bookings, each audited naming the token
("api token 3"), never the person. The rules are the services' own (``newsletter.optin``,
``subscribers.consent``, ``subscribers.contacts``, ``subscribers.leads``); this adds the API's consent
proof and the audit entry, in the caller's transaction, so what is done and its entry commit together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import api_tokens
from newsletter.config import Settings
from newsletter.contact_records import contact_target
from newsletter.optin import SignUp, newsletter_list, sign_up
from newsletter.staff import lead_actions
from newsletter.staff.audit import AuditAction, record
from newsletter.staff.models import ApiToken
from subscribers import consent
from subscribers.consent import Proof
from subscribers.contacts import contact_by_id, find_contact, upsert_contact
from subscribers.leads import BookingResult, FieldError, LeadResult, add_lead, lead_of_contact, record_booking
from subscribers.models import Contact, Lead, MailingList
from subscribers.states import SubscribeOutcome
from subscribers.suppression import is_suppressed

ORIGIN = "api"  # origin of leads and bookings, method of consent, "changed by" of stage moves


@dataclass(frozen=True)
class ConsentProof:
    """The caller's proof that the person opted in: how (``note``), and the wording they agreed to."""

    note: str
    text: str | None = None
    version: str | None = None


def _list(session: Session, settings: Settings, slug: str | None, field: str = "list") -> MailingList:
    """The list named by ``slug``, or the newsletter's own (made on first use) when none is named. An
    unknown slug is the body's fault (its ``field``), not a missing resource of the URL."""
    if slug is None or slug == settings.default_list:
        return newsletter_list(session, settings)
    found = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        raise FieldError(field, f"there is no list {slug!r}")
    return found


@dataclass
class Subscribed:
    list_slug: str
    state: SubscribeOutcome
    confirmation_queued: bool


@dataclass
class SavedContact:
    contact: Contact | None  # None: a suppressed address not stored before, and not stored now
    created: bool
    suppressed: bool
    subscribed: list[Subscribed]


def save_contact(session: Session, settings: Settings, token: ApiToken, email: str, *, name: str | None,
                 timezone: str | None, tags: list[str] | None, custom_fields: dict[str, str] | None,
                 lists: list[str], proof: ConsentProof | None, language: str | None = None) -> SavedContact:
    """Create the contact or update what is given (values replace, tags are added), then subscribe it
    to ``lists`` (``subscribe``). Nothing is stored about a suppressed address that is not a contact
    already, as with every other way in."""
    for slug in lists:
        _list(session, settings, slug, "lists")  # every list checked before anything is written
    if is_suppressed(session, email) and find_contact(session, email) is None:
        return SavedContact(None, False, True, [])
    change = upsert_contact(session, email, default_timezone=settings.default_timezone, source=ORIGIN, name=name,
                            timezone=timezone, tags=tags, custom_fields=custom_fields, language=language)
    if change.created or change.changed:
        record(session, api_tokens.target(token), AuditAction.CONTACT_ADDED if change.created
               else AuditAction.CONTACT_EDITED, contact_target(change.contact.id))
    subscribed = [subscribe(session, settings, token, change.contact, slug, proof) for slug in dict.fromkeys(lists)]
    return SavedContact(change.contact, change.created, is_suppressed(session, change.contact.email), subscribed)


def subscribe(session: Session, settings: Settings, token: ApiToken, contact: Contact, list_slug: str | None,
              proof: ConsentProof | None = None) -> Subscribed:
    """Subscribe ``contact`` to a list. Double opt-in (a confirmation email is queued) unless the caller
    gives its ``proof`` of opt-in: the face checks that the token may (scope ``contacts:consent``).
    The proof is kept in the consent history with the token that brought it. A suppressed address
    gets nothing; someone who left comes back only by confirming (or with the caller's proof)."""
    mailing_list = _list(session, settings, list_slug)
    evidence = Proof(ORIGIN, form_id=api_tokens.target(token), note=proof.note if proof else None,
                     text=proof.text if proof else None, text_version=proof.version if proof and proof.text else None)
    result: SignUp = sign_up(session, settings, contact.email, name=None, proof=evidence, mailing_list=mailing_list,
                             confirmed=proof is not None)
    if result.state in (SubscribeOutcome.PENDING, SubscribeOutcome.CONFIRMED):
        record(session, api_tokens.target(token), AuditAction.SUBSCRIBED, contact_target(contact.id),
               f"list {mailing_list.slug}: {result.state}")
    return Subscribed(mailing_list.slug, SubscribeOutcome(result.state), result.email_queued)


def unsubscribe(session: Session, settings: Settings, token: ApiToken, contact: Contact,
                list_slug: str | None) -> bool:
    """Take ``contact`` off one list, or off every list (``list_slug`` None: the address is then
    suppressed too, as an unsubscribe link does). Returns whether anything changed."""
    mailing_list = _list(session, settings, list_slug) if list_slug is not None else None
    changed = consent.unsubscribe(session, contact, mailing_list, Proof(ORIGIN, form_id=api_tokens.target(token)))
    if changed:
        record(session, api_tokens.target(token), AuditAction.UNSUBSCRIBED, contact_target(contact.id),
               f"list {mailing_list.slug}" if mailing_list else "every list")
    return changed


def contact(session: Session, contact_id: int) -> Contact:
    return contact_by_id(session, contact_id, for_update=True)


def save_lead(session: Session, settings: Settings, token: ApiToken, email: str, *, source: str,
              name: str | None, phone: str | None, preferred_contact: str | None, requested_time: str | None,
              utm: Mapping[str, str | None] | None, timezone: str | None,
              language: str | None = None) -> LeadResult:
    """A consultation request: the lead is made (or updated; a lost one enquiring again is new once
    more), with the caller's word that the person agreed to be contacted."""
    result = add_lead(session, email, default_timezone=settings.default_timezone, source=source,
                      consent_method=ORIGIN, origin=ORIGIN, name=name, phone=phone,
                      preferred_contact=preferred_contact, requested_time=requested_time, utm=utm,
                      timezone=timezone, language=language)
    action = AuditAction.LEAD_ADDED if result.created or result.reopened else AuditAction.LEAD_UPDATED
    record(session, api_tokens.target(token), action, lead_actions.target(result.lead))
    return result


def move_lead(session: Session, token: ApiToken, contact_id: int, stage: str) -> tuple[Lead, bool]:
    """Move the lead of contact ``contact_id`` to ``stage``: (the lead, whether it moved)."""
    lead = lead_of_contact(session, contact_id)
    return lead, lead_actions.move_stage(session, lead, stage, actor=api_tokens.target(token), by=ORIGIN)


def book(session: Session, settings: Settings, token: ApiToken, *, lead_id: int | None, email: str | None,
         external_id: str, booked_for: datetime | None) -> BookingResult:
    """Record a booking, idempotent by ``external_id``: the same id again is the booking recorded
    before (``created`` False). Names the lead by its contact id, or by address (a lead is then made
    for someone who booked without enquiring, as the bookings webhook does)."""
    who: Lead | str
    if lead_id is not None:
        who = lead_of_contact(session, lead_id)
    elif email is not None:
        who = email
    else:
        raise FieldError("lead_id", "name the lead: lead_id (its contact id) or email")
    result = record_booking(session, who, booked_for=booked_for, origin=ORIGIN, external_id=external_id,
                            default_timezone=settings.default_timezone)
    if result.created and result.lead is not None:
        record(session, api_tokens.target(token), AuditAction.BOOKING_RECORDED, lead_actions.target(result.lead),
               f"booking {result.booking.id}")
    return result

