"""What a process does when it starts: wire the listeners, and open (creating if new) the database.

Importing a module never registers anything. The faces call ``wire`` where a process starts: the
CLI's app callback (every command), ``create_app`` (the web app) and ``scheduler.main``. Only the
faces and the scheduler import this module; services never do.
"""

from __future__ import annotations

import threading

from newsletter.config import Settings
from newsletter.database import Database, current_revision, head_revision, upgrade
from newsletter.errors import InputError
from newsletter.sequences.engine import end_on_booking
from newsletter.sequences.service import install_shipped
from newsletter.tracking.attribution import Attribute
from subscribers.db import utcnow
from subscribers.leads import BookingListener, off_booking, on_booking

_lock = threading.Lock()
_wired: list[BookingListener] = []


def wire(settings: Settings) -> None:
    """Register what reacts to a booking, whichever face records it (CLI, webhook, staff): it is
    attributed, then its lead's nurture sequences end. Idempotent: a second call replaces the first
    one's listeners (with its own settings), never adds to them, so a process that starts the CLI
    or the app many times (tests) still calls each listener once."""
    listeners: list[BookingListener] = [Attribute(days=settings.attribution_days), end_on_booking]
    with _lock:
        _unwire()
        for listener in listeners:
            on_booking(listener)
        _wired.extend(listeners)


def unwire() -> None:
    """Remove what ``wire`` registered (tests, shutdown)."""
    with _lock:
        _unwire()


def _unwire() -> None:
    for listener in _wired:
        off_booking(listener)
    _wired.clear()


def prepare(settings: Settings, db: Database) -> tuple[str | None, str, list[str]]:
    """Create or upgrade the schema, and put in the sequences the product ships (paused) if missing.
    Returns (revision before, revision after, sequences added)."""
    before, after = upgrade(db.engine)
    with db.session() as session:
        added = install_shipped(session, settings, utcnow())
    return before, after, added


def open_database(settings: Settings) -> Database:
    """A fresh database is created on first use; an older schema must be upgraded with ``init``."""
    db = Database.from_settings(settings)
    current, head = current_revision(db.engine), head_revision(db.engine)
    if current is None:
        prepare(settings, db)
    elif current != head:
        raise InputError(f"the database is at revision {current}, the code needs {head}: run 'newsletter init'")
    return db
