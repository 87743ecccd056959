"""Stops of all sending: nothing more goes out until staff lift the stop.

A stop is made when the provider refuses the API key (the dispatcher gives the batch's rows back
untried and stops every sender); ``newsletter sending resume`` lifts it once the key is fixed. Each
stop is a ``SendPause`` row with no issue, kept (inactive) after it is lifted, with its reason.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.models import SendPause

def active_stop(session: Session) -> SendPause | None:
    """The stop in force, if any: while there is one, no dispatcher claims anything."""
    return session.scalar(
        select(SendPause).where(SendPause.active.is_(True), SendPause.issue_id.is_(None)).limit(1))


def stop_all_sending(session: Session, reason: str) -> SendPause:
    """Stop every sender, with the reason staff see (and what to do about it)."""
    stop = SendPause(reason=reason)
    session.add(stop)
    return stop


def lift_stop(session: Session) -> int:
    """Lift every pause in force; returns how many there were (0: sending was not stopped)."""
    return session.execute(
        update(SendPause).where(SendPause.active.is_(True)).values(active=False)
    ).rowcount or 0
