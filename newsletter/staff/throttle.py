"""The sign-in throttle: failed sign-ins counted per account and per client, in the database so that
every web process agrees (an in-memory count per process would multiply the allowance).

Keys are HMACs of the address typed and of the client's IP under the app's signing key: the table
never holds either as typed, and the counts for an address nobody has are kept the same way as for
one that exists (the throttle does not tell who has an account).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from newsletter.staff.models import SignInAttempt

WINDOW = timedelta(minutes=15)


class Scope(StrEnum):
    ACCOUNT = "account"
    CLIENT = "client"


@dataclass(frozen=True)
class Keys:
    account: str
    client: str

    @classmethod
    def of(cls, secret: str, email: str, client: str) -> "Keys":
        return cls(_key(secret, Scope.ACCOUNT, email.strip().lower()), _key(secret, Scope.CLIENT, client))


@dataclass(frozen=True)
class Limits:
    per_account: int
    per_client: int


def _key(secret: str, scope: Scope, value: str) -> str:
    return hmac.new(secret.encode(), f"{scope}:{value}".encode(), hashlib.sha256).hexdigest()


def wait_needed(session: Session, keys: Keys, limits: Limits, now: datetime) -> timedelta | None:
    """How long until a sign-in may be tried again, or None when it may be tried now."""
    waits = []
    for scope, key, limit in ((Scope.ACCOUNT, keys.account, limits.per_account),
                              (Scope.CLIENT, keys.client, limits.per_client)):
        recent = select(SignInAttempt.at).where(SignInAttempt.scope == scope.value, SignInAttempt.key == key,
                                                SignInAttempt.at > now - WINDOW)
        count = session.scalar(select(func.count()).select_from(recent.subquery())) or 0
        if count >= limit:
            # The window slides: the oldest failure that keeps the count at the limit must age out.
            oldest = session.scalars(recent.order_by(SignInAttempt.at.desc()).offset(limit - 1).limit(1)).first()
            if oldest is not None:
                waits.append(oldest + WINDOW - now)
    return max(waits) if waits else None


def record_failure(session: Session, keys: Keys, now: datetime) -> None:
    session.add_all([SignInAttempt(scope=Scope.ACCOUNT.value, key=keys.account, at=now),
                     SignInAttempt(scope=Scope.CLIENT.value, key=keys.client, at=now)])
    # Old failures count for nothing: drop them as new ones come, so the table stays small.
    session.execute(delete(SignInAttempt).where(SignInAttempt.at <= now - WINDOW))
    session.flush()


def clear_account(session: Session, keys: Keys) -> None:
    """A successful sign-in forgives the account's failures (not the client's: one valid account
    must not let a client try others without end)."""
    session.execute(delete(SignInAttempt).where(SignInAttempt.scope == Scope.ACCOUNT.value,
                                                SignInAttempt.key == keys.account))
