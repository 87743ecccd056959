"""Staff users: adding them, their roles, disabling, passwords, and signing in (password, then the
TOTP code when the user has one), behind the throttle. Every change here writes its audit entry in
the same transaction, so the CLI and the staff pages record it the same way, once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.staff import sessions, throttle
from newsletter.staff.audit import UNKNOWN_ACCOUNT, Actor, AuditAction, record
from newsletter.staff.models import StaffUser
from newsletter.staff.roles import Role, parse_role
from newsletter.staff.totp import verify as verify_code
from subscribers.contacts import normalise_email
from subscribers.db import utcnow
from subscribers.errors import InputError, NotFound

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps a single request's hashing cheap
SYSTEM = "system"

_hasher = PasswordHasher()
# Verified when no user has the address typed, so a wrong address costs the same time as a wrong
# password and the answer's timing does not tell who has an account.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class PasswordRejected(InputError):
    """A new password that is too weak: the message says what to change."""


def target(user: StaffUser) -> str:
    return f"user {user.id}"


def check_password_rules(password: str, email: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise PasswordRejected(f"The password must be at least {MIN_PASSWORD} characters long.")
    if len(password) > MAX_PASSWORD:
        raise PasswordRejected(f"The password must be at most {MAX_PASSWORD} characters long.")
    if password.strip().lower() == email.lower() or password.strip() == "":
        raise PasswordRejected("The password must not be the email address.")


def generate_password() -> str:
    """A strong password to hand over once (about 144 bits)."""
    return secrets.token_urlsafe(18)


def staff_email(email: str) -> str:
    """A staff address as stored: trimmed, checked, lower-case (one account per address)."""
    return normalise_email(email).lower()  # InputError names what is wrong


def find(session: Session, email: str) -> StaffUser | None:
    return session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))


def get(session: Session, email: str) -> StaffUser:
    user = find(session, email)
    if user is None:
        raise NotFound(f"no staff user has the address {email.strip()!r}")
    return user


def by_id(session: Session, user_id: int) -> StaffUser:
    user = session.get(StaffUser, user_id)
    if user is None:
        raise NotFound(f"staff user {user_id} does not exist")
    return user


def add_user(session: Session, email: str, role: Role | str, password: str | None = None, *,
             actor: Actor = SYSTEM) -> tuple[StaffUser, str]:
    """A new user with ``role``; without ``password`` a strong one is generated. Returns the user and
    the password (to show once: only its hash is kept)."""
    address = staff_email(email)
    role = parse_role(role)
    if find(session, address) is not None:
        raise InputError(f"a staff user with the address {address!r} exists already")
    password = generate_password() if password is None else password
    check_password_rules(password, address)
    user = StaffUser(email=address, role=role.value, password_hash=_hasher.hash(password), created_at=utcnow())
    session.add(user)
    session.flush()
    record(session, actor, AuditAction.USER_ADDED, target(user), f"role {role.value}")
    return user, password


def list_users(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.email)))


def _other_active_admins(session: Session, user: StaffUser) -> int:
    return session.scalar(select(func.count()).select_from(StaffUser).where(
        StaffUser.role == Role.ADMIN.value, StaffUser.disabled_at.is_(None), StaffUser.id != user.id)) or 0


def _keep_an_admin(session: Session, user: StaffUser, doing: str) -> None:
    # Nobody could add users or read the audit log again from the staff app (the CLI still could).
    if user.role == Role.ADMIN and user.active and _other_active_admins(session, user) == 0:
        raise InputError(f"cannot {doing} {user.email}: it is the only active admin")


def disable_user(session: Session, user: StaffUser, *, actor: Actor = SYSTEM) -> bool:
    """Disable ``user`` and end every session of theirs at once. False if already disabled."""
    if not user.active:
        return False
    _keep_an_admin(session, user, "disable")
    user.disabled_at = utcnow()
    sessions.sign_out_everywhere(session, user)
    record(session, actor, AuditAction.USER_DISABLED, target(user))
    return True


def change_role(session: Session, user: StaffUser, role: Role | str, *, actor: Actor = SYSTEM) -> bool:
    """Give ``user`` another role (from their next request on). False if it is the same."""
    role = parse_role(role)
    if user.role == role.value:
        return False
    if role != Role.ADMIN:
        _keep_an_admin(session, user, "take the admin role from")
    before, user.role = user.role, role.value
    record(session, actor, AuditAction.ROLE_CHANGED, target(user), f"{before} -> {role.value}")
    return True


def reset_password(session: Session, user: StaffUser, password: str | None = None, *,
                   actor: Actor = SYSTEM) -> str:
    """A new password (generated unless given); every session of the user ends. Returns it."""
    password = generate_password() if password is None else password
    check_password_rules(password, user.email)
    user.password_hash = _hasher.hash(password)
    sessions.sign_out_everywhere(session, user)
    record(session, actor, AuditAction.PASSWORD_RESET, target(user))
    return password


class Outcome(StrEnum):
    SIGNED_IN = "signed_in"
    NEEDS_CODE = "needs_code"   # right password; the TOTP step comes next (a pending session)
    REFUSED = "refused"         # wrong address, password or code, or a disabled user: one answer for all
    THROTTLED = "throttled"


@dataclass(frozen=True)
class SignIn:
    outcome: Outcome
    started: sessions.Started | None = None
    wait: timedelta | None = None


@dataclass(frozen=True)
class Attempt:
    """Where a sign-in comes from and under which limits it runs."""

    client: str
    secret: str  # the key the throttle's hashes are made with
    limits: throttle.Limits


def authenticate(session: Session, email: str, password: str, attempt: Attempt,
                 now: datetime | None = None) -> SignIn:
    """Check an address and password. A user with TOTP gets a pending session for the code step
    (``verify_code_step``); one without is signed in. Refusals look the same whatever was wrong."""
    now = now or utcnow()
    keys = throttle.Keys.of(attempt.secret, email, attempt.client)
    wait = throttle.wait_needed(session, keys, attempt.limits, now)
    if wait is not None:
        return SignIn(Outcome.THROTTLED, wait=wait)
    user = find(session, email)
    if user is None or not _password_matches(user, password):
        throttle.record_failure(session, keys, now)
        record(session, user if user is not None else UNKNOWN_ACCOUNT, AuditAction.SIGN_IN_FAILED,
               target(user) if user else None, "wrong password" if user else None, at=now)
        return SignIn(Outcome.REFUSED)
    if not user.active:
        throttle.record_failure(session, keys, now)
        record(session, user, AuditAction.SIGN_IN_FAILED, target(user), "user disabled", at=now)
        return SignIn(Outcome.REFUSED)
    if user.has_totp:
        return SignIn(Outcome.NEEDS_CODE, started=sessions.start(session, user, now, pending_totp=True))
    return SignIn(Outcome.SIGNED_IN, started=_signed_in(session, user, keys, now))


def verify_code_step(session: Session, pending: sessions.StaffSession, code: str, attempt: Attempt,
                     now: datetime | None = None) -> SignIn:
    """The TOTP step after a right password: a right code ends the pending session and starts a
    full one (a new token again). Wrong codes count against the same throttle as passwords."""
    now = now or utcnow()
    user = pending.user
    keys = throttle.Keys.of(attempt.secret, user.email, attempt.client)
    wait = throttle.wait_needed(session, keys, attempt.limits, now)
    if wait is not None:
        sessions.end(session, pending)
        return SignIn(Outcome.THROTTLED, wait=wait)
    if not verify_code(user, code, now):
        throttle.record_failure(session, keys, now)
        record(session, user, AuditAction.SIGN_IN_FAILED, target(user), "wrong code", at=now)
        return SignIn(Outcome.REFUSED)
    sessions.end(session, pending)
    return SignIn(Outcome.SIGNED_IN, started=_signed_in(session, user, keys, now))


def _signed_in(session: Session, user: StaffUser, keys: throttle.Keys, now: datetime) -> sessions.Started:
    throttle.clear_account(session, keys)
    user.last_sign_in_at = now
    record(session, user, AuditAction.SIGN_IN, target(user), at=now)
    return sessions.start(session, user, now)


def _password_matches(user: StaffUser | None, password: str) -> bool:
    if len(password) > MAX_PASSWORD:
        password = password[:MAX_PASSWORD + 1]  # still wrong; hashing a huge body would be the attack
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    if user is not None and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)  # the parameters changed since: upgrade while we have it
    return user is not None
