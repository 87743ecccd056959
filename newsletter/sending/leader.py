"""Leader election through a lease row: exactly one scheduler acts at a time; others wait as standby.

One conditional UPDATE (or INSERT for the first holder) decides, atomically on SQLite and PostgreSQL:
the lease is taken only when it is free or expired, or renewed by its holder.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.models import Lease


def acquire(session: Session, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease. True when ``holder`` holds it until now + ttl."""
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
        .values(holder=holder, expires_at=now + ttl)
    ).rowcount
    if taken:
        return True
    if session.scalar(select(Lease.name).where(Lease.name == name)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Lease(name=name, holder=holder, expires_at=now + ttl))
    except IntegrityError:  # another scheduler created it first
        return False
    return True


def release(session: Session, name: str, holder: str) -> None:
    """Step down (a clean shutdown), so a standby takes over at once instead of after the TTL."""
    session.execute(
        update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=datetime(2000, 1, 1, tzinfo=timezone.utc))
    )


def holder_of(session: Session, name: str, now: datetime) -> str | None:
    lease = session.get(Lease, name)
    return lease.holder if lease is not None and lease.expires_at >= now else None
