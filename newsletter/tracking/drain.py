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
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import cast

from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from newsletter.database import Database
from newsletter.models import Delivery, Event, Link, TrackingLogProgress
from newsletter.sending import ledger
from newsletter.tracking.answers import Seen
from newsletter.tracking.event_log import PREFIX, SUFFIX, decode, drainable, read_lines
from newsletter.tracking.machines import ALL_AT_ONCE, ALL_AT_ONCE_LINKS, BURST, too_soon
from subscribers.db import insert_rows, utcnow
from subscribers.states import IN_REQUEST, DeliveryStatus, EventType

log = logging.getLogger("newsletter.tracking")
BATCH = 20000  # records a transaction, from as many sealed segments as it takes
IN_LIST = 10000  # ids a statement
DONE = ".done"  # a drained segment's name ends so until its progress row is gone
IDLE = 1.0  # seconds between looks for sealed segments when there were none: fewer, larger batches (each
# reads the clicks of the seconds around it again to find bursts, so short batches read the same rows again)


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
    recorded = utcnow()  # one moment for the batch: it is recorded in one transaction
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
                     "recorded_at": recorded})
        if delivery is not None and delivery[2] in IN_REQUEST:  # as ``ledger.resolve_accepted`` leaves it
            settle.append((r.delivery_id, r.at))
            delivery[1:] = [r.at, DeliveryStatus.SUBMITTED]
    _label_bursts(session, rows)  # before the insert: the batch's own clicks are labelled as they go in
    insert_rows(session, Event.__table__, rows)
    for delivery_id, at in sorted(settle):  # rows locked in one order by every drain: no deadlock
        ledger.resolve_accepted(session, [delivery_id], at)
    return len(rows)


def _label_bursts(session: Session, rows: list[dict[str, object]]) -> None:
    """A scanner opens every link of an email in a burst: each human click looks back ``ALL_AT_ONCE``
    at its delivery's clicks; three links or more, and every click in that window is a machine's. The
    window holds the batch's new clicks (``rows``, labelled here before they are inserted) and the
    clicks already stored around them: a log drained late can complete another process's burst, and
    a stored click found in one is updated, unless an earlier batch labelled it so already (a burst
    seen again by every batch that reaches into it was most of a drain's work)."""
    first: dict[int, datetime] = {}  # each delivery's first human click in the batch
    last: datetime | None = None
    for row in rows:
        if row["type"] == EventType.CLICK and row["delivery_id"] is not None and not row["machine"]:
            delivery_id, at = cast(int, row["delivery_id"]), cast(datetime, row["occurred_at"])
            first[delivery_id] = min(first.get(delivery_id, at), at)
            last = at if last is None else max(last, at)
    if last is None:
        return
    lo, hi = min(first.values()) - ALL_AT_ONCE, last + ALL_AT_ONCE
    # Each click of a delivery, in the order the direct path would have stored them: by time, then
    # stored before new, each in its own order (ids; the batch's order). A window holds the clicks up
    # to and including its own in that order, so clicks at the same instant are labelled alike
    # whether they arrive one by one or in batches of any size.
    # (when, 0 stored | 1 new, order, link, machine, what to label: a new row, a stored id, or None
    # for a stored click already labelled a burst's)
    clicks: defaultdict[int, list[tuple[datetime, int, int, int | None, bool, dict[str, object] | int | None]]] = \
        defaultdict(list)
    for id_, delivery_id, link_id, occurred_at, machine, reason in session.execute(
            select(Event.id, Event.delivery_id, Event.link_id, Event.occurred_at, Event.machine, Event.reason)
            .where(Event.delivery_id.in_(first), Event.type == EventType.CLICK,
                   Event.occurred_at >= lo, Event.occurred_at <= hi)):
        clicks[delivery_id].append((occurred_at, 0, id_, link_id, machine, None if reason == BURST else id_))
    for n, row in enumerate(rows):
        at = cast(datetime, row["occurred_at"])
        if row["type"] == EventType.CLICK and row["delivery_id"] in first and lo <= at <= hi:
            clicks[cast(int, row["delivery_id"])].append((at, 1, n, cast("int | None", row["link_id"]),
                                                          cast(bool, row["machine"]), row))
    stored: set[int] = set()
    for delivery_id, window in clicks.items():  # each window slides over the delivery's clicks in order
        window.sort(key=itemgetter(0, 1, 2))
        links: Counter[int] = Counter()
        start = marked = 0  # window[:marked] are labelled already, as far as windows reached
        since = first[delivery_id]
        for stop, (at, _, _, link_id, machine, _) in enumerate(window, start=1):
            if link_id is not None:
                links[link_id] += 1
            opened = at - ALL_AT_ONCE
            while window[start][0] < opened:
                gone = window[start][3]
                if gone is not None:
                    links[gone] -= 1
                    if not links[gone]:
                        del links[gone]
                start += 1
            if not machine and at >= since and len(links) >= ALL_AT_ONCE_LINKS:
                for *_, target in window[max(start, marked):stop]:
                    if isinstance(target, dict):
                        target["machine"], target["reason"] = True, BURST
                    elif target is not None:
                        stored.add(target)
                marked = stop
    ids = sorted(stored)  # rows locked in one order by every drain: no deadlock
    for at in range(0, len(ids), IN_LIST):  # PostgreSQL takes 65,535 parameters a statement at most
        session.execute(update(Event).where(Event.id.in_(ids[at:at + IN_LIST])).values(machine=True, reason=BURST)
                        .execution_options(synchronize_session=False))


def _save_offset(session: Session, name: str, offset: int) -> None:
    session.merge(TrackingLogProgress(log=name, offset=offset, updated_at=utcnow()))


@dataclass(eq=False)
class Segment:
    """A sealed segment locked for a pass: ``offset`` committed, ``taking`` read past it for this batch."""
    name: str
    fd: int
    offset: int = 0
    taking: int = 0


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
        self.last_pass()

    def last_pass(self) -> None:
        """Drain what is sealed now, at shutdown; what the database cannot take stays for the next drain."""
        try:
            self.drain_sealed()
        except Exception as exc:  # noqa: BLE001 - the segments stay: the next drain takes them
            log.warning("tracking log: segments kept for the next drain (%s)", type(exc).__name__)

    def drain_sealed(self) -> int:
        """Every segment no process holds into the table, each deleted once drained; how many records."""
        with self._lock:
            left = self.folder.glob(f"{PREFIX}*{SUFFIX}{DONE}")  # drained before a crash: forget them now
            self._forget([path.name.removesuffix(DONE) for path in left])
            segments = [Segment(name, fd) for name, fd in drainable(self.folder)]
            if not segments:
                return 0
            try:
                with self.db.snapshot() as s:
                    done = {row.log: row.offset for row in s.scalars(select(TrackingLogProgress).where(
                        TrackingLogProgress.log.in_([g.name for g in segments])))}
                for segment in segments:
                    segment.offset = done.get(segment.name, 0)
                    if segment.offset:
                        log.warning("tracking log: resuming %s from byte %d (its drain stopped)", segment.name,
                                    segment.offset)
                moved = 0
                while True:
                    lines: list[tuple[Segment, bytes]] = []
                    for segment in segments:
                        got = read_lines(segment.fd, segment.offset + segment.taking, None, BATCH - len(lines))
                        lines += [(segment, line) for line in got]
                        segment.taking += sum(len(line) + 1 for line in got)
                        if len(lines) >= BATCH:
                            break
                    if not lines:
                        break
                    self._commit(lines)
                    moved += len(lines)
                # Each drained file is renamed done, then its progress row goes, then the file: a crash
                # between two steps leaves a done file, whose row and file the next pass removes. (The
                # row first would replay the whole file after a crash; the file first would leave its
                # row behind for good, as no drain can tell it from another host's.)
                for segment in segments:
                    os.replace(self.folder / segment.name, self.folder / (segment.name + DONE))
                self._forget([segment.name for segment in segments])
            finally:
                for segment in segments:
                    os.close(segment.fd)  # releases the lock; an undeleted file is the next pass's
        return moved

    def _forget(self, names: list[str]) -> None:
        """Drained segments (renamed done): their progress rows, then their files."""
        if not names:
            return
        with self.db.session() as s:
            s.execute(delete(TrackingLogProgress).where(TrackingLogProgress.log.in_(names)))
        for name in names:
            (self.folder / (name + DONE)).unlink(missing_ok=True)

    def flush(self) -> None:
        """Drain what is sealed now (tests; shutdown)."""
        self.drain_sealed()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _commit(self, lines: list[tuple[Segment, bytes]]) -> None:
        """The records of ``lines`` and each segment's offset after them, in one transaction (when it
        fails, the pass ends and the next one reads the offsets committed)."""
        records: list[tuple[Segment, int, Seen]] = []
        for segment, line in lines:
            segment.offset += len(line) + 1
            try:
                records.append((segment, segment.offset, decode(line)))
            except (ValueError, TypeError) as exc:
                self.dropped += 1
                log.error("tracking log %s: an unreadable record was skipped (%s)", segment.name, exc)
        touched = {segment: segment.offset for segment, _ in lines}
        for segment in touched:
            segment.taking = 0
        try:
            with self.db.session() as s:
                apply(s, [record for _, _, record in records])
                for segment, offset in touched.items():
                    _save_offset(s, segment.name, offset)
        except IntegrityError:  # a record the schema refuses (its email deleted meanwhile): find it
            for segment, after, record in records:
                try:
                    with self.db.session() as s:
                        apply(s, [record])
                        _save_offset(s, segment.name, after)
                except IntegrityError as exc:
                    self.dropped += 1
                    log.error("tracking log %s: the %s of issue %s / step %s could not be recorded (%s)",
                              segment.name, record.kind, record.issue_id, record.step_id, type(exc.orig).__name__)
            with self.db.session() as s:
                for segment, offset in touched.items():
                    _save_offset(s, segment.name, offset)
