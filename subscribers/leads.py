"""Leads and bookings: people who asked for a consultation, their stage, and the consultations booked.

This module is the single home of the lead rules; the CLI, the web form and the bookings webhook all
call these functions. Privacy: a lead holds contact fields and a preferred contact method only. There
is deliberately no free-text field (no notes, no "reason for enquiry"): at a ketamine clinic anything a
person types there is likely a health detail. Even the requested time is a fixed window or a date-time,
never free text.

A lead's consent to be contacted about the consultation (``Lead.contact_consent_*``) is separate from
newsletter consent: nothing here subscribes anyone to a list or writes a ``ConsentEvent``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session, selectinload

from subscribers.consent import Proof, consent_text_hash
from subscribers.contacts import find_contact, normalise_email, upsert_contact
from subscribers.db import utcnow
from subscribers.errors import InputError, NotFound
from subscribers.models import Booking, Contact, Lead, LeadStageChange
from subscribers.names import clean_name
from subscribers.suppression import SuppressionReason, reason_for

STAGES = ("new", "contacted", "booked", "attended", "lost")
SOURCES = ("web_form", "phone", "referral", "campaign", "import")
ORIGINS = ("staff", "api", "import")  # who records a lead or a booking; "api" covers the web form too
CONTACT_METHODS = ("email", "phone", "text")
# How the person agreed to be contacted about the consultation: ticked on a form, said so on a call,
# staff recorded it, our API/webhook received it, or an import carried it.
CONSENT_METHODS = ("form", "phone", "admin", "api", "import")
# Who moved a lead to a stage (LeadStageChange.by).
CHANGED_BY = ("staff", "booking", "api", "import")
# A requested time is one of these windows or an ISO 8601 date-time with an offset; never free text.
REQUESTED_WINDOWS = ("any_time", "weekday_mornings", "weekday_afternoons", "weekday_evenings", "weekends")
UTM_KEYS = ("source", "medium", "campaign", "term", "content")
# How the person heard of the clinic: fixed choices (a form's free text could hold health details).
HEARD_FROM = ("search_engine", "social_media", "friend_or_family", "healthcare_provider", "news_or_article",
              "newsletter", "other")
MAX_UTM = 200
MAX_EXTERNAL_ID = 200
# A booking no longer needs the nurture that was meant to bring it about.
BOOKED_OR_LATER = ("booked", "attended")

_PHONE_PUNCTUATION = re.compile(r"[\s\-.()/]")
_PHONE = re.compile(r"^\+?\d{7,15}$")  # E.164 allows at most 15 digits


class FieldError(InputError):
    """Bad input in one named part of a form (``field``: "date", "time"), so a page shows it there."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ErasedAddress(NotFound):
    """The address was erased at the person's request; a replay or an import must not bring it back."""


@dataclass
class LeadResult:
    lead: Lead
    created: bool
    reopened: bool = False  # a "lost" lead enquired again and is "new" once more


@dataclass
class BookingResult:
    booking: Booking
    created: bool  # False: this booking was recorded before (same external id, or same lead and time)
    lead: Lead | None  # None only when a replay names a booking whose lead was erased since


BookingListener = Callable[[Session, BookingResult], None]
_booking_listeners: list[BookingListener] = []


def on_booking(listener: BookingListener) -> BookingListener:
    """Call ``listener(session, result)`` whenever ``record_booking`` creates a booking (never on a
    repeat), inside the same transaction, so that what it does (ending nurture sequences) is stored
    or lost together with the booking. ``subscribers`` cannot import ``newsletter``; this is how the
    newsletter side reacts without the rule living in each caller. Usable as a decorator."""
    if listener not in _booking_listeners:
        _booking_listeners.append(listener)
    return listener


def off_booking(listener: BookingListener) -> None:
    """Remove a listener registered with ``on_booking`` (tests, shutdown)."""
    if listener in _booking_listeners:
        _booking_listeners.remove(listener)


# --- checks: each names the field and the allowed values -------------------------------------------


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InputError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def normalise_phone(raw: str) -> str:
    """Keep a leading + and the digits; drop spaces, dashes, dots, slashes and brackets. Anything else
    (letters, an extension like "x12") is refused rather than guessed at."""
    compact = _PHONE_PUNCTUATION.sub("", raw.strip())
    if not _PHONE.match(compact):
        raise InputError(
            f"phone {raw!r}: use digits with an optional leading + (7 to 15 digits; spaces, dashes, dots "
            "and brackets are allowed), e.g. +1 415 555 0100"
        )
    return compact


def aware(value: datetime, what: str) -> datetime:
    """Naive date-times are refused rather than guessed: a booking an hour off is a missed appointment."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{what} {value.isoformat()} has no time zone: give an offset, e.g. -08:00 or Z for UTC")
    return value


def parse_datetime(text: str, what: str) -> datetime:
    """An ISO 8601 date-time that carries an offset or Z (the CLI's --at, a webhook's field), and
    that exists in UTC (it is stored as UTC: 9999-12-31T23:00-05:00 does not)."""
    try:
        value = datetime.fromisoformat(text.strip())  # accepts Z from Python 3.11
    except ValueError:
        raise InputError(f"{what} {text[:60]!r} is not an ISO 8601 date-time such as 2025-03-04T15:30-08:00") from None
    aware(value, what)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise InputError(f"{what} {text[:60]!r} is outside the years 1 to 9999 in UTC") from None
    return value


def local_datetime(day: str, clock: str, zone: str, what: str) -> datetime:
    """A date and a time of day typed in ``zone`` (a staff form's two fields), as an aware date-time.
    A time that a daylight-saving change skips (02:30 on the night clocks go forward) does not exist
    and is refused rather than moved; of a time that happens twice (the night they go back), the
    first is meant (``fold`` 0)."""
    if not day.strip():
        raise FieldError("date", f"{what}: enter the date")
    if not clock.strip():
        raise FieldError("time", f"{what}: enter the time of day")
    try:
        on = date.fromisoformat(day.strip())
    except ValueError:
        raise FieldError("date", f"{what}: {day[:30]!r} is not a date such as 2025-03-04") from None
    try:
        at = time.fromisoformat(clock.strip())
    except ValueError:
        raise FieldError("time", f"{what}: {clock[:30]!r} is not a time of day such as 15:30") from None
    if at.tzinfo is not None:
        raise FieldError("time", f"{what}: give the time without an offset; it is read in {zone}")
    tz = ZoneInfo(zone)
    value = datetime.combine(on, at, tzinfo=tz)
    try:
        back = value.astimezone(UTC).astimezone(tz)
    except OverflowError:
        raise FieldError("date", f"{what}: {day[:30]!r} is outside the years 1 to 9999 in UTC") from None
    if back.replace(tzinfo=None) != value.replace(tzinfo=None):
        raise FieldError("time", f"{what}: {on.isoformat()} {at.isoformat('minutes')} does not exist in {zone} "
                         "(the clocks skip it for daylight saving time)")
    return value


def clean_requested_time(raw: str) -> str:
    """A window (e.g. "weekday mornings") or an ISO date-time with offset, stored as UTC."""
    word = re.sub(r"[\s\-]+", "_", raw.strip().lower())
    if word in REQUESTED_WINDOWS:
        return word
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InputError(
            f"requested time {raw!r}: use one of {', '.join(REQUESTED_WINDOWS)} or an ISO 8601 date-time "
            "with an offset (free text is not kept: it could hold health details)"
        ) from None
    return aware(value, "requested time").astimezone(UTC).isoformat()


def clean_utm(utm: Mapping[str, str | None] | None) -> dict[str, str]:
    """Keys "source" or "utm_source" (etc.); empty values are dropped."""
    cleaned: dict[str, str] = {}
    for key, value in (utm or {}).items():
        name = key.strip().lower().removeprefix("utm_")
        if name not in UTM_KEYS:
            raise InputError(f"UTM key {key!r} must be one of {', '.join('utm_' + k for k in UTM_KEYS)}")
        text = (value or "").strip()
        if len(text) > MAX_UTM:
            raise InputError(f"utm_{name} is longer than {MAX_UTM} characters")
        if text:
            cleaned[name] = text
    return cleaned


# --- leads ------------------------------------------------------------------------------------------


def find_lead(session: Session, email: str) -> Lead | None:
    contact = find_contact(session, email)
    if contact is None:
        return None
    return session.scalar(select(Lead).where(Lead.contact_id == contact.id))


def get_lead(session: Session, email: str) -> Lead:
    lead = find_lead(session, email)
    if lead is None:
        raise NotFound("no lead has that address")  # the address is not echoed into logs
    return lead


def _record_stage(session: Session, lead: Lead, stage: str, by: str) -> None:
    lead.stage_changes.append(LeadStageChange(from_stage=lead.stage, to_stage=stage, by=by, at=utcnow()))
    lead.stage = stage


def add_lead(
    session: Session,
    email: str,
    *,
    default_timezone: str,
    source: str,
    consent_method: str,
    origin: str = "staff",
    name: str | None = None,
    phone: str | None = None,
    preferred_contact: str | None = None,
    requested_time: str | None = None,
    utm: Mapping[str, str | None] | None = None,
    timezone: str | None = None,
    heard_from: str | None = None,
    proof: Proof | None = None,
    unverified: bool = False,
    language: str | None = None,
) -> LeadResult:
    """Record a consultation request: the contact (source "lead"), the lead and its consent to be
    contacted. Takes contact fields and a preferred contact method only, never health details.

    A repeat request updates the fields given. ``source`` and the UTM values say how the enquiry
    came in, so they are kept from the first request, except when a "lost" lead enquires again: that
    is a new enquiry, so it is moved back to "new" with fresh source, UTM values and requested_at.
    New leads prefer email unless ``preferred_contact`` says otherwise. Every request refreshes the
    consent to be contacted (its time and method, and with ``proof`` the form, the exact wording by
    its hash and version, and the IP and agent the caller chose to keep; without it those are
    cleared, as they described an earlier consent); it never subscribes the contact to a list.
    ``heard_from`` (one of HEARD_FROM) is kept from the first request that gives it, like the source.
    An import never adds back an erased address (``ErasedAddress``); the person's own new request
    (staff, API) does, and the address stays suppressed, so only staff contact them.
    ``unverified``: the request comes from someone who has not shown they own the address (a public
    form: anyone may type anyone's address). For a contact we know already it only fills in what is
    missing (name, phone, contact method, time) and changes nothing stored, so a stranger cannot
    redirect a real lead's calls; staff see the new request and confirm details when they call.
    """
    _one_of(source, SOURCES, "source")
    _one_of(consent_method, CONSENT_METHODS, "consent method")
    _one_of(origin, ORIGINS, "origin")
    if preferred_contact is not None:
        _one_of(preferred_contact, CONTACT_METHODS, "preferred contact method")
    if heard_from is not None:
        _one_of(heard_from, HEARD_FROM, "how they heard of us")
    name = clean_name(name)  # the one rule for names (upsert_contact applies it too)
    # Check everything before writing anything: bad input must leave nothing half stored.
    clean_phone = normalise_phone(phone) if phone and phone.strip() else None
    window = clean_requested_time(requested_time) if requested_time and requested_time.strip() else None
    utm_values = clean_utm(utm)
    if origin == "import" and _erased(session, email):
        # Like a re-import never re-subscribing someone who left: old data must not undo an erasure.
        raise ErasedAddress("that address was erased at the person's request; an import does not add it back")

    known = find_contact(session, email) if unverified else None
    if known is not None:
        name, timezone = (name if known.name is None else None), None
        language = language if known.language is None else None
    contact = upsert_contact(
        session, email, default_timezone=default_timezone, source="lead", name=name, timezone=timezone,
        language=language,
    ).contact
    lead = session.scalar(select(Lead).where(Lead.contact_id == contact.id))
    created = reopened = False
    if unverified and lead is not None:  # fill in only: keep what is stored (see the docstring)
        clean_phone = clean_phone if lead.phone is None else None
        preferred_contact = None
        window = window if lead.requested_time is None else None
    if lead is None:
        lead = Lead(contact=contact, stage="new", source=source, preferred_contact="email", requested_at=utcnow())
        session.add(lead)
        lead.stage_changes.append(LeadStageChange(from_stage=None, to_stage="new", by=origin, at=utcnow()))
        _set_first_touch(lead, source, utm_values)
        created = True
    elif lead.stage == "lost":
        _record_stage(session, lead, "new", origin)
        lead.requested_at = utcnow()
        _set_first_touch(lead, source, utm_values)
        reopened = True
    if clean_phone:
        lead.phone = clean_phone
    if preferred_contact:
        lead.preferred_contact = preferred_contact
    if window:
        lead.requested_time = window
    if heard_from and (lead.heard_from is None or created or reopened):
        lead.heard_from = heard_from
    lead.contact_consent_at, lead.contact_consent_method = utcnow(), consent_method
    _keep_consent_proof(session, lead, proof)
    session.flush()
    return LeadResult(lead, created, reopened)


def _keep_consent_proof(session: Session, lead: Lead, proof: Proof | None) -> None:
    """The consent's details as given now; none of an earlier consent's stay beside it."""
    lead.contact_consent_form_id = proof.form_id if proof else None
    lead.contact_consent_text_hash = (consent_text_hash(session, proof.text, proof.text_version)
                                      if proof and proof.text else None)
    lead.contact_consent_text_version = proof.text_version if proof and proof.text else None
    lead.contact_consent_ip = proof.ip_address if proof else None
    lead.contact_consent_agent = (proof.user_agent or "")[:500] or None if proof else None


def _erased(session: Session, email: str) -> bool:
    return reason_for(session, normalise_email(email)) == SuppressionReason.ERASED


def _set_first_touch(lead: Lead, source: str, utm: dict[str, str]) -> None:
    lead.source = source
    for key in UTM_KEYS:
        setattr(lead, f"utm_{key}", utm.get(key))


def change_stage(session: Session, lead: Lead, stage: str, *, by: str) -> bool:
    """Move a lead to ``stage`` and keep the change in its history. Idempotent: asking for the stage
    it is in records nothing and returns False. Any stage may follow any other (staff correct
    mistakes); the history shows who did what."""
    _one_of(stage, STAGES, "stage")
    _one_of(by, CHANGED_BY, "changed by")
    if lead.stage == stage:
        return False
    _record_stage(session, lead, stage, by)
    session.flush()
    return True


# --- bookings ---------------------------------------------------------------------------------------


def _booking_by_external_id(session: Session, external_id: str) -> Booking | None:
    return session.scalar(select(Booking).where(Booking.external_id == external_id))


def _same_consultation(session: Session, lead: Lead, booked_for: datetime, external_id: str | None) -> Booking | None:
    """A person cannot have two consultations at the same moment: a booking of this lead for the same
    time (with no external id, or the same one) is this booking, recorded before."""
    rows = session.scalars(
        select(Booking).where(Booking.lead_id == lead.id, Booking.booked_for == booked_for).order_by(Booking.id)
    )
    return next((b for b in rows if b.external_id is None or b.external_id == external_id), None)


def _repeat(booking: Booking, lead: Lead | None) -> BookingResult:
    """A booking seen before: fine for the same lead (or an erased one), an error for another."""
    if booking.lead_id is not None and (lead is None or booking.lead_id != lead.id):
        raise InputError(f"external id {booking.external_id!r} is already used by a booking of another lead")
    return BookingResult(booking, created=False, lead=lead)


def record_booking(
    session: Session,
    email_or_lead: str | Lead,
    *,
    booked_for: datetime | None,
    origin: str,
    external_id: str | None,
    recorded_at: datetime | None = None,
    default_timezone: str | None = None,
    new_lead_source: str | None = None,
) -> BookingResult:
    """Record that a lead booked a consultation; the one function the CLI and the webhook share.

    - Idempotent by ``external_id`` (the booking system's id): the same id again returns the same
      booking with ``created`` False and changes nothing; the same id for a different lead is an
      InputError. Without an external id, a booking of the same lead for the same ``booked_for`` is
      the same booking. A concurrent duplicate delivery is settled by the unique constraint on
      ``bookings.external_id``, inside a SAVEPOINT.
    - Moves the lead to "booked" (by "booking") unless it is booked or attended already.
    - Stores the lead's source on the booking, so counts by source survive erasure.
    - Date-times must be timezone-aware: a naive one is an InputError, never guessed.
    - Staff book for existing leads only (NotFound otherwise: a typo must not make a lead). API and
      import bookings may come from someone who booked without enquiring first: a bare lead is made
      (``new_lead_source``, default "web_form" for the API and "import" for imports, consent method
      from the origin); this needs ``default_timezone``. Callers with more details (name, phone) call
      ``add_lead`` first.
    - Erasure must stick: a replayed external id whose booking survives unlinked returns that booking
      and makes no lead; an erased address (erasure also clears the external id) is refused with
      ``ErasedAddress`` instead of being made again. The webhook should acknowledge it and move on.
    - Listeners registered with ``on_booking`` run when a booking is created, in this transaction.
    """
    _one_of(origin, ORIGINS, "origin")
    if booked_for is not None:
        aware(booked_for, "booked-for time")
    recorded = aware(recorded_at, "recorded-at time") if recorded_at is not None else utcnow()
    external_id = (external_id or "").strip() or None
    if external_id is not None and len(external_id) > MAX_EXTERNAL_ID:
        raise InputError(f"external id is longer than {MAX_EXTERNAL_ID} characters")
    if external_id is not None and not external_id.isprintable():
        raise InputError("external id must be printable text (no control characters)")  # PostgreSQL refuses NUL

    lead = email_or_lead if isinstance(email_or_lead, Lead) else find_lead(session, email_or_lead)
    if external_id is not None:
        seen = _booking_by_external_id(session, external_id)
        if seen is not None:  # checked before any lead is made: a replay must not create one
            return _repeat(seen, lead)
    if lead is None:
        assert isinstance(email_or_lead, str)
        lead = _lead_for_booking(session, email_or_lead, origin, default_timezone, new_lead_source)
    if booked_for is not None:
        # The lead's row locked first (PostgreSQL): the same consultation recorded twice at once (a
        # form sent twice, a webhook retried beside staff) each found none and both were stored.
        session.execute(select(Lead.id).where(Lead.id == lead.id).with_for_update())
        same = _same_consultation(session, lead, booked_for, external_id)
        if same is not None:
            return _attach_external_id(session, same, lead, external_id)

    booking = Booking(lead_id=lead.id, booked_for=booked_for, recorded_at=recorded, origin=origin,
                      external_id=external_id, source=lead.source)
    result = BookingResult(booking, created=True, lead=lead)
    try:
        # Everything a new booking does happens in one SAVEPOINT: if a concurrent delivery of the
        # same external id won, all of it is undone and that delivery's booking is returned.
        with session.begin_nested():
            session.add(booking)
            session.flush()
            if lead.stage not in BOOKED_OR_LATER:
                _record_stage(session, lead, "booked", "booking")
                session.flush()
            for listener in list(_booking_listeners):  # a copy: a listener may unregister itself
                listener(session, result)
            session.flush()
    except IntegrityError:
        winner = _booking_by_external_id(session, external_id) if external_id else None
        if winner is None:
            raise  # not a duplicate delivery: a real error
        return _repeat(winner, lead)
    return result


def _attach_external_id(session: Session, booking: Booking, lead: Lead, external_id: str | None) -> BookingResult:
    """Staff recorded the booking by hand and the booking system reports it later: one booking, and
    the next delivery of that id is recognised."""
    if external_id is not None and booking.external_id is None:
        try:
            with session.begin_nested():
                booking.external_id = external_id
                session.flush()
        except IntegrityError:
            winner = _booking_by_external_id(session, external_id)
            if winner is None:
                raise
            return _repeat(winner, lead)
    return BookingResult(booking, created=False, lead=lead)


def _lead_for_booking(
    session: Session, email: str, origin: str, default_timezone: str | None, source: str | None
) -> Lead:
    if origin == "staff":
        raise NotFound("no lead has that address: add it first with 'newsletter leads add'")
    if _erased(session, email):
        # Erasure clears the booking's external id, so a webhook replay would otherwise look new.
        raise ErasedAddress("that address was erased at the person's request; a booking does not add it back")
    if default_timezone is None:
        raise ValueError("record_booking needs default_timezone to make a lead for an unknown address")
    return add_lead(
        session,
        email,
        default_timezone=default_timezone,
        source=source or ("import" if origin == "import" else "web_form"),
        consent_method=origin,  # "api" or "import": both are consent methods
        origin=origin,
    ).lead


def bookings_of(session: Session, lead: Lead) -> list[Booking]:
    return list(session.scalars(select(Booking).where(Booking.lead_id == lead.id).order_by(Booking.id)))


# --- reading ----------------------------------------------------------------------------------------


def list_leads(
    session: Session, *, stage: str | None = None, source: str | None = None, limit: int = 100
) -> list[Lead]:
    """Newest enquiry first (a lost lead that enquired again comes back to the top)."""
    query = select(Lead).options(selectinload(Lead.contact), selectinload(Lead.stage_changes))
    if stage is not None:
        query = query.where(Lead.stage == _one_of(stage, STAGES, "stage"))
    if source is not None:
        query = query.where(Lead.source == _one_of(source, SOURCES, "source"))
    if limit < 1:
        raise InputError(f"limit must be at least 1, not {limit}")
    return list(session.scalars(query.order_by(Lead.requested_at.desc(), Lead.id.desc()).limit(limit)))


def lead_of_contact(session: Session, contact_id: int) -> Lead:
    """The lead of contact ``contact_id``; NotFound when that contact is not a lead (or does not exist):
    staff pages about leads never show a contact who did not ask for a consultation."""
    lead = session.scalar(select(Lead).where(Lead.contact_id == contact_id)
                          .options(selectinload(Lead.contact), selectinload(Lead.stage_changes)))
    if lead is None:
        raise NotFound(f"contact {contact_id} is not a lead")
    return lead


def stage_of_contact(session: Session, contact_id: int) -> str | None:
    """The stage of contact ``contact_id``'s lead; None when they never asked for a consultation."""
    return session.scalar(select(Lead.stage).where(Lead.contact_id == contact_id))


@dataclass
class StagePage:
    """Leads in one stage, newest enquiry first; ``after`` continues the list (keyset: a lead id)."""

    stage: str
    leads: list[Lead]
    after: int | None  # None: nothing more


def leads_in_stage(session: Session, stage: str, *, after: int | None = None, limit: int = 10) -> StagePage:
    """One page of a stage's leads, in ``list_leads``' order (requested_at, id, both descending), read
    from the index (stage, requested_at, id): never an OFFSET, never a count of the stage."""
    _one_of(stage, STAGES, "stage")
    if limit < 1:
        raise InputError(f"limit must be at least 1, not {limit}")
    query = select(Lead).options(selectinload(Lead.contact)).where(Lead.stage == stage)
    if after is not None:
        mark = session.execute(select(Lead.requested_at, Lead.id).where(Lead.id == after)).first()
        if mark is None:
            raise NotFound(f"lead {after} does not exist")
        # A row value: both databases then start the walk down the index at the mark.
        query = query.where(tuple_(Lead.requested_at, Lead.id) < tuple_(mark.requested_at, mark.id))
    rows = list(session.scalars(query.order_by(Lead.requested_at.desc(), Lead.id.desc()).limit(limit + 1)))
    more = rows[limit - 1].id if len(rows) > limit else None
    return StagePage(stage, rows[:limit], more)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def lead_summary(lead: Lead) -> dict[str, Any]:
    """Everything stored about a lead, for JSON output (there is no health detail to leave out)."""
    session = object_session(lead)
    bookings = bookings_of(session, lead) if session is not None else []
    contact: Contact = lead.contact
    return {
        "id": lead.id,
        "email": contact.email,
        "name": contact.name,
        "phone": lead.phone,
        "timezone": contact.timezone,
        "preferred_contact": lead.preferred_contact,
        "source": lead.source,
        **{f"utm_{key}": getattr(lead, f"utm_{key}") for key in UTM_KEYS},
        "stage": lead.stage,
        "requested_at": _iso(lead.requested_at),
        "requested_time": lead.requested_time,
        "contact_consent_at": _iso(lead.contact_consent_at),
        "contact_consent_method": lead.contact_consent_method,
        "contact_consent_form_id": lead.contact_consent_form_id,
        "contact_consent_text_version": lead.contact_consent_text_version,
        "contact_consent_ip": lead.contact_consent_ip,
        "contact_consent_agent": lead.contact_consent_agent,
        "heard_from": lead.heard_from,
        "bookings": [
            {
                "id": b.id,
                "booked_for": _iso(b.booked_for),
                "recorded_at": _iso(b.recorded_at),
                "origin": b.origin,
                "external_id": b.external_id,
                "source": b.source,
            }
            for b in bookings
        ],
        "stage_history": [
            {"from": c.from_stage, "to": c.to_stage, "by": c.by, "at": _iso(c.at)} for c in lead.stage_changes
        ],
    }
