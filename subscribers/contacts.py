"""Contacts: one per normalised address, with name, time zone, custom fields, tags and source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.email_syntax import quick_normalized
from subscribers.errors import InputError, NotFound
from subscribers.languages import check_language
from subscribers.models import Contact, ContactTag, Subscription
from subscribers.names import clean_name
from subscribers.suppression import address_hash

SOURCES = ("form", "import", "api", "admin", "lead")
MAX_TAG = 100


def normalise_email(raw: str) -> str:
    """Trimmed, syntax-checked, domain lower-cased (the local part is kept as given: it may be
    case-sensitive). No DNS look-ups: imports must not depend on the network."""
    candidate = (raw or "").strip()
    if not candidate:
        raise InputError("the email address is empty")
    # The usual address: email-validator's verdict per domain, cached (email_syntax); else its own.
    normalized = quick_normalized(candidate)
    if normalized is None:
        try:
            normalized = validate_email(candidate, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InputError(f"{candidate!r} is not a valid email address: {exc}") from None
    local, _, domain = normalized.rpartition("@")
    return f"{local}@{domain.lower()}"


class UnsupportedAddress(InputError):
    """A valid address we cannot send to: characters beyond ASCII before the @ (RFC 6531, SMTPUTF8).
    SendGrid does not deliver to such addresses (it drops them as invalid), and the outbox writes
    the plain SMTP messages a provider would deliver, so they are refused where they come in."""


UNSUPPORTED_ADDRESS = ("the part before the @ has characters beyond plain ASCII (an internationalised "
                       "address); our email provider cannot deliver to it, so please use another address")


def sendable_email(raw: str) -> str:
    """``normalise_email``, and an address we can send to: new contacts must pass this. (Looking an
    address up, suppressing or erasing it only needs ``normalise_email``: an address stored before
    this rule can still be found and removed.) Internationalised domains are fine: they travel in
    their ASCII form (see ``ascii_address``)."""
    address = normalise_email(raw)
    if not address.rpartition("@")[0].isascii():
        raise UnsupportedAddress(UNSUPPORTED_ADDRESS)
    return address


def ascii_address(address: str) -> str:
    """The address as it travels in a message or a provider request: the domain in its ASCII (IDNA)
    form, e.g. ``ana@xn--bcher-kva.example`` for ``ana@bücher.example``. Raises InputError for an
    address that cannot travel (stored before today's rules, or never checked); the message holds
    no part of the address, as it is kept with the delivery."""
    if address.isascii() and address.isprintable() and " " not in address and "@" in address:
        return address  # the usual case, kept cheap: it runs for every recipient of a send
    local = address.rpartition("@")[0]
    if not local.isascii():
        raise UnsupportedAddress(UNSUPPORTED_ADDRESS)
    try:
        return validate_email(address, check_deliverability=False, allow_smtputf8=False).ascii_email or address
    except EmailNotValidError:
        raise InputError("the stored address is not a valid email address") from None


MAX_TIMEZONE = 64  # the longest IANA name is about 30 characters; the column holds 64


def check_timezone(name: str) -> str:
    # A name is looked up as a file of the zone database: one over the file system's name limit
    # raises OSError, not ZoneInfoNotFoundError, so length is checked first and OSError caught too.
    shown = name if len(name) <= 40 else name[:40] + "…"
    try:
        if len(name) > MAX_TIMEZONE:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InputError(f"{shown!r} is not an IANA time zone (for example America/New_York)") from None
    return name


def clean_tag(tag: str) -> str:
    tag = " ".join(tag.strip().lower().split())
    if not tag or len(tag) > MAX_TAG:
        shown = tag if len(tag) <= 40 else tag[:40] + "…"  # a pasted page is not echoed back whole
        raise InputError(f"tag {shown!r} must be 1 to {MAX_TAG} characters")
    return tag


def find_contact(session: Session, email: str) -> Contact | None:
    """Case-insensitive: matched by the address hash (see suppression.hash_with_salt)."""
    digest = address_hash(session, normalise_email(email))
    return session.scalar(select(Contact).where(Contact.email_hash == digest))


def get_contact(session: Session, email: str) -> Contact:
    contact = find_contact(session, email)
    if contact is None:
        raise NotFound("no contact has that address")  # the address itself is not echoed into logs
    return contact


@dataclass
class ContactChange:
    contact: Contact
    created: bool
    changed: bool


def upsert_contact(
    session: Session,
    email: str,
    *,
    default_timezone: str,
    source: str,
    name: str | None = None,
    timezone: str | None = None,
    custom_fields: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    language: str | None = None,
) -> ContactChange:
    """Create the contact or fill in what is new. Values given replace stored ones; tags are added.
    Everything is checked before anything is written (nothing half stored). A new contact's address
    must be one we can send to (``sendable_email``); the name goes through ``names.clean_name``."""
    if source not in SOURCES:
        raise InputError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    address = normalise_email(email)
    zone = check_timezone(timezone) if timezone else None
    spoken = check_language(language) if language else None
    name = clean_name(name)
    new_tags = {clean_tag(t) for t in tags or ()}
    contact = find_contact(session, address)
    created = contact is None
    if contact is None:
        address = sendable_email(address)
        contact = Contact(
            email=address,
            email_hash=address_hash(session, address),
            timezone=zone or default_timezone,
            source=source,
            custom_fields={},
        )
        session.add(contact)
    changed = created
    if name and contact.name != name:
        contact.name, changed = name, True
    if zone and contact.timezone != zone:
        contact.timezone, changed = zone, True
    if spoken and contact.language != spoken:
        contact.language, changed = spoken, True
    if custom_fields:
        merged = {**(contact.custom_fields or {}), **custom_fields}
        if merged != contact.custom_fields:
            contact.custom_fields, changed = merged, True
    if new_tags:
        have = {t.tag for t in contact.tags}
        for tag in new_tags - have:
            contact.tags.append(ContactTag(tag=tag))
            changed = True
    session.flush()
    return ContactChange(contact, created, changed)


def contact_by_id(session: Session, contact_id: int, *, for_update: bool = False) -> Contact:
    """The contact with this number (staff pages name contacts by number, never by address).
    ``for_update``: the row locked until the transaction ends (PostgreSQL; SQLite's writers are serial
    already), so that two requests changing one contact, such as a form sent twice, run one after the
    other and the second sees what the first did: together they inserted the same tag twice, or
    erased the contact twice (a unique violation, a 500, on PostgreSQL)."""
    contact = session.get(Contact, contact_id, with_for_update=for_update or None, populate_existing=for_update)
    if contact is None:
        raise NotFound(f"there is no contact {contact_id}")
    return contact


# How many tags and custom fields a person may type for one contact: 50,000 tags were saved from the
# contact's page (3 s), and every page and export that shows the contact then drew them all.
MAX_TYPED_TAGS = 100
MAX_TYPED_FIELDS = 100


def parse_tags(text: str) -> list[str]:
    """Tags typed as one line, separated by commas, each checked (``clean_tag``)."""
    tags = sorted({clean_tag(part) for part in text.split(",") if part.strip()})
    if len(tags) > MAX_TYPED_TAGS:
        raise InputError(f"{len(tags):,} tags: a contact has at most {MAX_TYPED_TAGS}")
    return tags


MAX_FIELD_KEY = 100
MAX_FIELD_VALUE = 2000


def parse_fields(text: str) -> dict[str, str]:
    """Custom fields typed one per line as ``key: value``; InputError names the line that is wrong.
    A later line with the same key wins."""
    fields: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not colon or not key:
            raise InputError(f"line {number}: write a field as 'key: value'")
        if len(key) > MAX_FIELD_KEY or len(value) > MAX_FIELD_VALUE:
            raise InputError(f"line {number}: a key has at most {MAX_FIELD_KEY} characters, "
                             f"a value at most {MAX_FIELD_VALUE}")
        fields[key] = value
        if len(fields) > MAX_TYPED_FIELDS:
            raise InputError(f"line {number}: a contact has at most {MAX_TYPED_FIELDS} custom fields")
    return fields


def fields_text(fields: dict[str, Any] | None) -> str:
    """Custom fields as ``parse_fields`` reads them back, one ``key: value`` a line."""
    return "\n".join(f"{key}: {value}" for key, value in (fields or {}).items())


def set_language(contact: Contact, language: str | None) -> bool:
    """Set the language to write to the contact in (checked: "es-MX" is "es"); None or "" clears it,
    so they follow the newsletter's. Returns whether anything changed."""
    wanted = check_language(language) if language else None
    if contact.language == wanted:
        return False
    contact.language = wanted
    return True


def set_tags(session: Session, contact: Contact, tags: list[str]) -> bool:
    """Make the contact's tags exactly ``tags``. Tags it keeps keep their ``added_at`` (sequences
    triggered by a tag read it), so only new ones count as added. Returns whether anything changed."""
    wanted = {clean_tag(tag) for tag in tags}
    have = {t.tag: t for t in contact.tags}
    for tag in set(have) - wanted:
        contact.tags.remove(have[tag])
    for tag in sorted(wanted - set(have)):
        contact.tags.append(ContactTag(tag=tag))
    session.flush()
    return wanted != set(have)


def set_custom_fields(session: Session, contact: Contact, fields: dict[str, Any]) -> bool:
    """Replace the contact's custom fields (a key left out is removed). Returns whether they changed."""
    if fields == (contact.custom_fields or {}):
        return False
    contact.custom_fields = dict(fields)
    session.flush()
    return True


def list_contacts(session: Session, *, list_id: int | None = None, status: str | None = None,
                  limit: int = 100, offset: int = 0) -> list[Contact]:
    """Contacts, newest first; with ``list_id`` only those with a subscription to that list, and with
    ``status`` too only those whose subscription is in that state (it has no meaning without a list)."""
    query = select(Contact).order_by(Contact.id.desc()).limit(limit).offset(offset)
    if list_id is not None:
        membership = select(Subscription.contact_id).where(Subscription.list_id == list_id)
        if status:
            membership = membership.where(Subscription.status == status)
        query = query.where(Contact.id.in_(membership))
    return list(session.scalars(query))


def contact_summary(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "email": contact.email,
        "name": contact.name,
        "timezone": contact.timezone,
        "language": contact.language,  # None: the newsletter's
        "status": contact.status,
        "source": contact.source,
        "tags": contact.tag_names,
        "custom_fields": contact.custom_fields,
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
    }
