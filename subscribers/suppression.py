"""The suppression list: addresses no path may mail, with the reason.

Addresses are matched by a salted SHA-256 of the normalised address, so an erased contact's address
stays suppressed although the address itself is gone; SQL matches ``contacts.email_hash`` against it.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from sqlalchemy import exists, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from subscribers.models import Contact, Installation, Suppression



class SuppressionReason(StrEnum):
    """``suppressions.reason``: why an address may not be mailed."""

    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    SPAM_COMPLAINT = "spam_complaint"
    INVALID_ADDRESS = "invalid_address"  # the provider refused it
    MANUAL = "manual"  # staff
    ERASED = "erased"  # the person asked to be forgotten: never lifted


REASONS = tuple(SuppressionReason)
# What staff may give as the reason: every one but erasure, which only an erasure records.
STAFF_REASONS = tuple(r for r in SuppressionReason if r != SuppressionReason.ERASED)
_salts: dict[str, str] = {}  # per database URL; the salt never changes once made


def installation_salt(session: Session) -> str:
    """The salt of address hashes, made once by the migration (cached per database)."""
    key = session.get_bind().engine.url.render_as_string(hide_password=False)
    if key not in _salts:
        _salts[key] = session.scalar(select(Installation.hash_salt).where(Installation.id == 1)) or ""
        if not _salts[key]:
            raise RuntimeError("the installation row is missing: run 'newsletter init'")
    return _salts[key]


def address_hash(session: Session, email: str) -> str:
    """Salted hash of a normalised address (pass it through contacts.normalise_email first)."""
    return hash_with_salt(installation_salt(session), email)


def hash_with_salt(salt: str, email: str) -> str:
    # Lower-cased whole: "Ann@x.org" and "ann@x.org" reach one inbox everywhere that matters, so
    # they are one contact and one suppression (the stored address keeps the case it was given).
    return hashlib.sha256(f"{salt}:{email.lower()}".encode("utf-8")).hexdigest()


def is_suppressed(session: Session, email: str) -> bool:
    digest = address_hash(session, email)
    return session.scalar(select(exists().where(Suppression.email_hash == digest))) or False


def reason_for(session: Session, email: str) -> str | None:
    return session.scalar(select(Suppression.reason).where(Suppression.email_hash == address_hash(session, email)))


def suppress(session: Session, email: str, reason: str, note: str | None = None, *, keep_address: bool = True) -> Suppression:
    """Add (or keep) an address on the list. The first reason stands, except that erasure always
    drops the stored address and any note (a note may name the person)."""
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}; one of {', '.join(REASONS)}")
    digest = address_hash(session, email)
    row = session.scalar(select(Suppression).where(Suppression.email_hash == digest))
    if row is None:
        row = Suppression(email_hash=digest, email=email if keep_address else None, reason=reason, note=note)
        session.add(row)
    elif not keep_address:
        row.email = None
        row.reason = reason
        row.note = note
    session.flush()
    return row


def lift(session: Session, email: str) -> bool:
    """Staff lift a manual suppression (never an erasure: that person asked to be forgotten)."""
    row = session.scalar(select(Suppression).where(Suppression.email_hash == address_hash(session, email)))
    if row is None:
        return False
    if row.reason == SuppressionReason.ERASED:
        raise ValueError("this address was erased at the person's request; it cannot be un-suppressed")
    session.delete(row)
    session.flush()
    return True


def not_suppressed() -> ColumnElement[bool]:
    """A WHERE clause for contact queries: leaves out every suppressed address (set-based)."""
    return ~exists().where(Suppression.email_hash == Contact.email_hash)
