"""Moving logged clicks and opens (``event_log``) into the events table, in batches, in the background:
in the ``newsletter tracking-drain`` process that ``newsletter serve`` starts (and restarts) beside its web
processes, or, when nothing runs one (tests, an app served otherwise), in a thread of the web process.

``apply`` makes the events of answered requests as ``first_party`` makes them at answer time: the
delivery's contact under full tracking, machine labels (a click within seconds of sending needs the
delivery, so it is decided here), a burst of every link at once relabelled as machine clicks, and a
delivery held as unknown settled as submitted when its genuine token comes back.

Exactly once: a batch's events and the log's new offset (``TrackingLogProgress``) are committed in one
transaction, so a crash anywhere leaves either both or neither, and a replay starts after the last
committed record. Only segments no process holds are drained (sealed ones, and those of processes
that died), each by one drain at a time (its file lock), so several drains may share a folder.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from newsletter.database import Database
from newsletter.models import Delivery, Event, Link, TrackingLogProgress
from newsletter.sending import ledger
from newsletter.tracking.answers import Seen
from newsletter.tracking.event_log import decode, drainable, read_lines
from newsletter.tracking.machines import ALL_AT_ONCE, ALL_AT_ONCE_LINKS, BURST, too_soon
from subscribers.db import utcnow
from subscribers.states import IN_REQUEST, DeliveryStatus, EventType

log = logging.getLogger("newsletter.tracking")
BATCH = 5000  # records a transaction
IDLE = 0.5  # seconds between looks for sealed segments when there were none


def apply(session: Session, records: list[Seen]) -> int:
    """Make the events of ``records`` (in the order they were answered); returns how many. The one
    home of how a first-party open or click becomes an event, for the drain and the direct path."""
    wanted = {r.delivery_id for r in records if r.delivery_id is not None}
    deliveries = {row.id: [row.contact_id, row.submitted_at, row.status] for row in session.execute(
        select(Delivery.id, Delivery.contact_id, Delivery.submitted_at, Delivery.status).where(Delivery.id.in_(wanted)))
    } if wanted else {}
    link_ids = {r.link_id for r in records if r.link_id is not None}
    urls = dict(session.execute(select(Link.id, Link.url).where(Link.id.in_(link_ids))).all()) if link_ids else {}
    rows: list[dict[str, object]] = []
    human: list[tuple[int, datetime]] = []
    settle: list[tuple[int, datetime]] = []
    for r in records:
        delivery = deliveries.get(r.delivery_id) if r.delivery_id is not None else None
        if (r.delivery_id is not None and delivery is None) or (r.link_id is not None and r.link_id not in urls):
            continue  # erased since it was answered: the direct path would now answer it as unknown
        reason = r.reason
        if reason is None and r.kind == EventType.CLICK and delivery is not None:
            reason = too_soon(delivery[1], r.at)
        rows.append({"delivery_id": r.delivery_id, "contact_id": delivery[0] if delivery else None,
                     "issue_id": r.issue_id, "step_id": r.step_id, "link_id": r.link_id,
                     "url": urls.get(r.link_id) if r.link_id is not None else None, "type": r.kind,
                     "machine": reason is not None, "reason": reason, "source": "first_party", "occurred_at": r.at,
                     "recorded_at": utcnow()})
        if delivery is not None:
            if r.kind == EventType.CLICK and reason is None:
                human.append((r.delivery_id, r.at))
            if delivery[2] in IN_REQUEST:  # as ``ledger.resolve_accepted`` leaves it 
                settle.append((r.delivery_id, r.at))
                delivery[1:] = [r.at, DeliveryStatus.SUBMITTED]
    if rows:
        session.connection().execute(insert(Event.__table__), rows)  # Core: no ORM bookkeeping per row
    _label_bursts(session, human)
    for delivery_id, at in sorted(settle):  # rows locked in one order by every drain: no deadlock
        ledger.resolve_accepted(session, [delivery_id], at)
    return len(rows)


def _label_bursts(session: Session, human: list[tuple[int, datetime]]) -> None:
    """A scanner opens every link of an email in a burst: each human click looks back ``ALL_AT_ONCE``
    at its delivery's clicks; three links or more, and every click in that window is a machine's. Human
    clicks already stored that end a window reaching into this batch are looked at again (a log
    drained late can complete another process's burst)."""
    if not human:
        return
    first: dict[int, datetime] = {}
    for delivery_id, at in human:
        first[delivery_id] = min(first.get(delivery_id, at), at)
    lo, hi = min(first.values()) - ALL_AT_ONCE, max(at for _, at in human) + ALL_AT_ONCE
    clicks = defaultdict(list)
    for row in session.execute(select(Event.id, Event.delivery_id, Event.link_id, Event.occurred_at, Event.machine)
                               .where(Event.delivery_id.in_(first), Event.type == EventType.CLICK,
                                      Event.occurred_at >= lo, Event.occurred_at <= hi)):
        clicks[row.delivery_id].append(row)
    burst: set[int] = set()
    for delivery_id, rows in clicks.items():  # each window slides over the delivery's clicks in time order
        rows.sort(key=lambda row: row.occurred_at)
        links: Counter[int] = Counter()
        start = stop = 0
        for end in rows:
            while stop < len(rows) and rows[stop].occurred_at <= end.occurred_at:
                if rows[stop].link_id is not None:
                    links[rows[stop].link_id] += 1
                stop += 1
            while rows[start].occurred_at < end.occurred_at - ALL_AT_ONCE:
                if rows[start].link_id is not None:
                    links[rows[start].link_id] -= 1
                    if not links[rows[start].link_id]:
                        del links[rows[start].link_id]
                start += 1
            if not end.machine and end.occurred_at >= first[delivery_id] and len(links) >= ALL_AT_ONCE_LINKS:
                burst.update(row.id for row in rows[start:stop])
    if burst:
        session.execute(update(Event).where(Event.id.in_(burst)).values(machine=True, reason=BURST)
                        .execution_options(synchronize_session=False))


def _save_offset(session: Session, name: str, offset: int) -> None:
    session.merge(TrackingLogProgress(log=name, offset=offset, updated_at=utcnow()))


class Drainer:
    """Drains the sealed and orphaned segments of a folder: ``run`` until stopped (a process's main
    loop), or ``start`` a thread that does."""

    def __init__(self, db: Database, folder: Path) -> None:
        self.db, self.folder = db, folder
        self.dropped = 0  # records that could not be made into events (logged one by one)
        self._lock = threading.Lock()  # one pass at a time (the thread, or flush())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, daemon=True, name="tracking-drain")
        self._thread.start()

    def run(self, alive: Callable[[], bool] = lambda: True) -> None:
        """Drain until ``stop`` (or ``alive`` says no), then once more: what was sealed meanwhile."""
        pause = IDLE
        while not self._stop.is_set() and alive():
            try:
                moved = self.drain_sealed()
                pause = IDLE
            except DBAPIError as exc:  # the database is locked or down: the segments keep everything meanwhile
                log.warning("tracking log: draining waits for the database (%s)", type(exc.orig).__name__)
                moved, pause = 0, min(pause * 2, 10.0)
            if not moved:
                self._stop.wait(pause)
        try:
            self.drain_sealed()
        except Exception as exc:  # noqa: BLE001 - the segments stay: the next drain takes them
            log.warning("tracking log: segments kept for the next drain (%s)", type(exc).__name__)

    def drain_sealed(self) -> int:
        """Every segment no process holds into the table, each deleted once drained; how many records."""
        moved = 0
        with self._lock:
            for name, fd in drainable(self.folder):
                with self.db.snapshot() as s:
                    start = s.scalar(select(TrackingLogProgress.offset).where(TrackingLogProgress.log == name)) or 0
                if start:
                    log.warning("tracking log: resuming %s from byte %d (its drain stopped)", name, start)
                moved += self._finish(name, fd, start)
        return moved

    def flush(self) -> None:
        """Drain what is sealed now (tests; shutdown)."""
        self.drain_sealed()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _finish(self, name: str, fd: int, start: int) -> int:
        """Drain a segment that no one writes to any more from ``start``, then delete it."""
        moved, offset = 0, start
        try:
            while True:
                lines = read_lines(fd, offset, None, BATCH)
                if not lines:
                    break
                offset = self._commit(name, offset, lines)
                moved += len(lines)
            # The file goes before its progress row: the other way round, a crash between the two
            # would replay the whole file.
            (self.folder / name).unlink(missing_ok=True)
            with self.db.session() as s:
                s.execute(delete(TrackingLogProgress).where(TrackingLogProgress.log == name))
        finally:
            os.close(fd)  # releases the lock; an undeleted file is an orphan for the next look
        return moved

    def _commit(self, name: str, start: int, lines: list[bytes]) -> int:
        """The records of ``lines`` (read from ``start``) and the offset after them, in one transaction;
        returns that offset."""
        records: list[tuple[int, Seen]] = []
        end = start
        for line in lines:
            end += len(line) + 1
            try:
                records.append((end, decode(line)))
            except (ValueError, TypeError) as exc:
                self.dropped += 1
                log.error("tracking log %s: an unreadable record was skipped (%s)", name, exc)
        try:
            with self.db.session() as s:
                apply(s, [record for _, record in records])
                _save_offset(s, name, end)
        except IntegrityError:  # a record the schema refuses (its email deleted meanwhile): find it
            for after, record in records:
                try:
                    with self.db.session() as s:
                        apply(s, [record])
                        _save_offset(s, name, after)
                except IntegrityError as exc:
                    self.dropped += 1
                    log.error("tracking log %s: a %s of issue %s / step %s could not be recorded (%s)", name,
                              record.kind, record.issue_id, record.step_id, type(exc.orig).__name__)
            with self.db.session() as s:
                _save_offset(s, name, end)
        return end
