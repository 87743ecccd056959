"""Server-side staff sessions.

The browser holds a random token; the table holds only its SHA-256, so a copy of the database (or a
backup) signs nobody in. A session ends when it has been idle for ``NEWSLETTER_STAFF_IDLE_MINUTES``,
after ``LIFETIME`` whatever happens, when its user signs out (here or everywhere), and at once for
every session of a user who is disabled or whose password is reset. Each session has its own CSRF
token, which every staff form posts back.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.staff.models import StaffSession, StaffUser

LIFETIME = timedelta(hours=12)
CODE_STEP_LIFETIME = timedelta(minutes=5)  # between a right password and its TOTP code
TOUCH_EVERY = timedelta(seconds=30)  # last-seen is written at most this often (one write per page view at most)


@dataclass(frozen=True)
class Started:
    token: str  # goes to the browser once; never stored
    session: StaffSession


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, user: StaffUser, now: datetime, *, pending_totp: bool = False) -> Started:
    """A new session with a new token and CSRF token. Signing in always starts a new one (the
    session id changes at sign-in, so a token planted before it is worth nothing)."""
    token = secrets.token_urlsafe(32)
    row = StaffSession(token_hash=hash_token(token), user_id=user.id, user=user, csrf_token=secrets.token_urlsafe(32),
                       pending_totp=pending_totp, created_at=now, last_seen_at=now,
                       expires_at=now + (CODE_STEP_LIFETIME if pending_totp else LIFETIME))
    session.add(row)
    session.flush()
    return Started(token, row)


def resolve(session: Session, token: str | None, now: datetime, idle: timedelta) -> StaffSession | None:
    """The live session of ``token``, touched; None (and the row removed) when it has ended."""
    if not token:
        return None
    row = session.scalar(select(StaffSession).where(StaffSession.token_hash == hash_token(token)))
    if row is None:
        return None
    if not row.user.active or now >= row.expires_at or now - row.last_seen_at >= idle:
        session.delete(row)
        session.flush()
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return row


def end(session: Session, row: StaffSession) -> None:
    session.delete(row)
    session.flush()


def sign_out_everywhere(session: Session, user: StaffUser) -> int:
    """End every session of ``user`` (every browser); returns how many there were."""
    result = session.execute(delete(StaffSession).where(StaffSession.user_id == user.id))
    session.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def prune(session: Session, now: datetime, idle: timedelta) -> None:
    """Remove sessions that ended by time (called at sign-in, so the table does not grow)."""
    session.execute(delete(StaffSession).where((StaffSession.expires_at <= now)
                                               | (StaffSession.last_seen_at <= now - idle)))
