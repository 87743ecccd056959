"""Bearer tokens of the REST API (/api/v1): made by an admin with scopes, shown once, stored hashed,
revocable. The one home of the token rules; the CLI (``newsletter api-tokens``), the staff page and
the API's own guard all call these functions, and every change writes its audit entry here.

A secret is ``nlt_`` and 32 random bytes (URL-safe base64): the prefix lets a secret scanner, or a
person, recognise one in a paste or a log. Only its SHA-256 is kept. A fast hash is right for a
secret of 256 random bits (unlike a password, nobody can guess one by trying, so a slow hash such as
argon2 would only cost every call time); it also makes the lookup an index probe on the hash, so no
comparison of secrets happens in code whose timing could leak them.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.staff.audit import Actor, AuditAction, record
from newsletter.staff.models import ApiToken
from subscribers.db import utcnow
from subscribers.errors import InputError, NotFound

PREFIX = "nlt_"
HINT_LENGTH = len(PREFIX) + 4  # what lists show of a secret: enough to tell tokens apart, useless to call with
MAX_NAME = 100
MAX_SECRET = 200  # longer than any secret we make: refused before it is hashed
# last_used_at is written at most this often per token, so a busy integration does not write on every call.
LAST_USED_EVERY = timedelta(minutes=1)


class Scope(StrEnum):
    """What a token may do. ``contacts:consent`` lets the caller say it holds proof of opt-in, so a
    subscription is confirmed without the double opt-in email (with ``contacts:write``)."""

    CONTACTS_WRITE = "contacts:write"
    CONTACTS_CONSENT = "contacts:consent"
    LEADS_WRITE = "leads:write"
    BOOKINGS_WRITE = "bookings:write"
    REPORTS_READ = "reports:read"
    ISSUES_READ = "issues:read"


SCOPE_ABOUT = {
    Scope.CONTACTS_WRITE: "create and update contacts, subscribe (double opt-in) and unsubscribe them",
    Scope.CONTACTS_CONSENT: "subscribe as confirmed, with the caller's proof of opt-in (no confirmation email)",
    Scope.LEADS_WRITE: "create and update leads and move them between stages",
    Scope.BOOKINGS_WRITE: "record bookings",
    Scope.REPORTS_READ: "read issue results, the lead funnel and the follow-up list (names, addresses, phones)",
    Scope.ISSUES_READ: "list issues",
}


def target(token: ApiToken | int) -> str:
    """How the audit log names a token, as actor of its calls and as target of its own changes."""
    return f"api token {token if isinstance(token, int) else token.id}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(values: list[str]) -> list[str]:
    """Scopes as typed (one per value, or several separated by spaces or commas); InputError names an
    unknown one and lists the ones there are."""
    chosen: list[str] = []
    for value in values:
        for word in value.replace(",", " ").split():
            try:
                scope = Scope(word.strip().lower())
            except ValueError:
                shown = word if len(word) <= 40 else word[:40] + "…"
                raise InputError(f"scope {shown!r} does not exist: use {', '.join(Scope)}") from None
            if scope not in chosen:
                chosen.append(scope)
    if not chosen:
        raise InputError(f"give a token at least one scope: {', '.join(Scope)}")
    return [s.value for s in Scope if s in chosen]  # in a fixed order


def clean_name(name: str) -> str:
    """A label people recognise the token by ("booking system"): one line of printable text."""
    text = " ".join(name.split())
    if not text:
        raise InputError("give the token a name (what uses it, e.g. 'booking system')")
    if len(text) > MAX_NAME or not text.isprintable():
        raise InputError(f"a token's name is one line of printable text, at most {MAX_NAME} characters")
    return text


def create(session: Session, name: str, scopes: list[str], *, actor: Actor) -> tuple[ApiToken, str]:
    """A new token and its secret. The secret is returned this once; only its hash is stored."""
    label, chosen = clean_name(name), parse_scopes(scopes)
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=label, token_hash=hash_secret(secret), hint=secret[:HINT_LENGTH],
                     scopes=" ".join(chosen), created_by=actor if isinstance(actor, str) else actor.email,
                     created_at=utcnow())
    session.add(token)
    session.flush()
    record(session, actor, AuditAction.API_TOKEN_CREATED, target(token), "scopes: " + ", ".join(chosen))
    return token, secret


def all_tokens(session: Session) -> list[ApiToken]:
    """Every token, active ones first, newest first."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())))


def by_id(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"there is no API token {token_id}")
    return token


def revoke(session: Session, token: ApiToken, *, actor: Actor) -> bool:
    """Revoke ``token``: its next call is refused (401). False, and nothing recorded, if it was already."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    session.flush()
    record(session, actor, AuditAction.API_TOKEN_REVOKED, target(token))
    return True


def authenticate(session: Session, secret: str, now: datetime | None = None) -> ApiToken | None:
    """The active token whose secret this is, or None (unknown, malformed or revoked). Notes the use
    (``last_used_at``) at most once a minute."""
    if not secret.startswith(PREFIX) or len(secret) > MAX_SECRET or not secret.isascii():
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))
    if token is None or token.revoked_at is not None:
        return None
    now = now or utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        token.last_used_at = now
        session.flush()
    return token
