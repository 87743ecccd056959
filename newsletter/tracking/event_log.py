"""Each web process's append-only log of the clicks and opens it answered, on local disk.

A redirect or a pixel is answered only once its record is durable here (written and fsynced), so an
answer may come before its row is in the events table and still no acknowledged click is lost: the
drain (``drain``, in the ``newsletter tracking-drain`` process ``serve`` runs beside the web processes)
moves records into the table in batches.

- Segments: a process writes one file at a time and seals it (closes it) a second after its first
  record, or once it is large; a sealed segment never changes again, and the drain moves it into the
  table and deletes it. The web process does no database work for a click.
- Group commit: a writer thread writes and fsyncs the records pending; the requests that arrive
  meanwhile share the next write and ``fdatasync``.
- Ownership is a file lock (``flock``): a process holds an exclusive lock on the segment it is writing,
  and the kernel releases it when the process seals it or dies however it dies (``kill -9`` included).
  A segment nobody holds is the drain's: sealed, or left by a process that died (an orphan).
- A write that fails (a full disk) is cut back off the file, so the log never holds half a record,
  and the requests waiting on it are told (the web face then writes the event directly).

One record a line: a compact JSON array (``encode``/``decode``): ids, the tracking mode, the machine label
the request earned and the time. No address, user agent or IP address is written.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from newsletter.tracking.answers import Seen

log = logging.getLogger("newsletter.tracking")
PREFIX, SUFFIX = "events-", ".log"
EPOCH, MICROSECOND = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(microseconds=1)
RECORD_BYTES = 400  # more than any record takes
SEAL = 1.0  # seconds from a segment's first record to its sealing: how long a click waits for the drain
SEAL_BYTES = 8 * 2**20  # a segment this large is sealed at once
RETRY = 5.0  # seconds before making a segment is tried again after it failed (meanwhile: the direct path)
MAKING = ".making-"  # a segment's name until it is locked


def encode(seen: Seen) -> bytes:
    # orjson: a record is made on the event loop for every answer and read back by the drain; the
    # standard library's json took 4.6 and 3.8 µs for them (its encoding detection on bytes
    # included), orjson 1.1 and 2.0.
    # The same compact JSON array either way, so logs written before read back alike.
    return orjson.dumps([seen.kind, seen.mode, seen.delivery_id, seen.issue_id, seen.step_id, seen.link_id,
                         seen.reason, (seen.at - EPOCH) // MICROSECOND], option=orjson.OPT_APPEND_NEWLINE)


def decode(line: bytes) -> Seen:
    kind, mode, delivery_id, issue_id, step_id, link_id, reason, at = orjson.loads(line)
    return Seen(kind, mode, delivery_id, issue_id, step_id, link_id, reason, EPOCH + at * MICROSECOND)


def read_lines(fd: int, offset: int, end: int | None, limit: int) -> list[bytes]:
    """Up to ``limit`` whole lines from ``offset`` (to ``end`` when given, else the file's end). A torn
    last line (the process died mid-write, before its fsync: never acknowledged) is left out."""
    size = end if end is not None else os.fstat(fd).st_size
    if size <= offset:
        return []
    data = os.pread(fd, min(size - offset, limit * RECORD_BYTES), offset)
    return data[:data.rfind(b"\n") + 1].splitlines()[:limit]


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drainable(folder: Path) -> Iterator[tuple[str, int]]:
    """The segments in ``folder`` no process holds (sealed, or left by a process that died), oldest
    first, each locked for the caller: (name, fd). The caller drains it, deletes the file, then closes
    the fd."""
    if not folder.is_dir():
        return
    for making in folder.glob(f"{MAKING}*"):  # a process died between making a segment and naming it
        try:
            if time.time() - making.stat().st_mtime > 60:  # long dead (a younger one may be being named)
                making.unlink()  # empty: nothing is written before it is named
        except FileNotFoundError:
            pass
    for path in sorted(folder.glob(f"{PREFIX}*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # drained and deleted by another drain meanwhile
        if not _lock(fd):
            os.close(fd)
            continue
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # it was deleted after we opened it
            os.close(fd)
            continue
        yield path.name, fd


class EventLog:
    """This process's log: a sequence of segment files. ``append_async`` from the event loop
    (group-committed), ``append`` from anywhere (one fsync of its own)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._io = threading.Lock()  # held while writing and fsyncing, and to seal the segment
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._seal_due: asyncio.TimerHandle | None = None
        self._seal_asked = self._closing = False
        self._wake = threading.Event()  # records are pending, or a seal is due, or closing
        self._taking = threading.Lock()
        self._writer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.broken: str | None = None  # why the last segment could not be made (retried after RETRY)
        self._retry_at = 0.0
        self.name, self.fd = "", -1  # the open segment ("", -1: none yet, or just sealed)
        self.durable = 0  # bytes of the open segment written and fsynced
        self.records = self.fsyncs = self.segments = 0
        self.fsync_seconds = 0.0  # time spent waiting for fsyncs (the bound on answers/s: see the bench)

    def _open_segment(self) -> None:
        """A fresh segment, locked before its name is one a drain looks for (it would take an
        unlocked empty file for a sealed one)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{PREFIX}{time.time_ns():016x}-{uuid.uuid4().hex[:12]}{SUFFIX}"
        making = self.folder / f"{MAKING}{name}"
        fd = os.open(making, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(making, self.folder / name)
            _fsync_dir(self.folder)  # the file itself survives a power cut, not only its contents
        except OSError:
            os.close(fd)
            making.unlink(missing_ok=True)
            raise
        self.name, self.fd, self.durable = name, fd, 0
        self.segments += 1

    def append(self, line: bytes) -> None:
        """``line`` durable when this returns; OSError when it could not be made so."""
        error = self._write(line)
        if error is not None:
            raise error

    def append_async(self, line: bytes) -> asyncio.Future[None]:
        """A future resolved once ``line`` is durable (or failed with the OSError that kept it off).
        Group commit: a writer thread writes and fsyncs what is pending, while the loop goes on
        answering; the records appended meanwhile are the next group, written with one write and one
        fsync (the loop never waits on the disk, and no group waits for company). The segment is
        sealed ``SEAL`` seconds after its first record, so the drain has it by then."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        if self._writer is None:
            self._loop = loop
            self._writer = threading.Thread(target=self._write_groups, daemon=True, name="tracking-log-writer")
            self._writer.start()
        if self._seal_due is None:
            self._seal_due = loop.call_later(SEAL, self._seal_on_time)
        with self._taking:
            self._pending.append((line, done))
        self._wake.set()
        return done

    def _seal_on_time(self) -> None:
        self._seal_due = None
        self._seal_asked = True
        self._wake.set()

    def _write_groups(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._taking:  # a record appended as the batch is taken is in it, or in the next
                batch, self._pending = self._pending, []
            if batch:
                error = self._write(b"".join(line for line, _ in batch))
                assert self._loop is not None
                try:
                    self._loop.call_soon_threadsafe(_resolve, batch, error)
                except RuntimeError:  # the loop closed meanwhile: nobody waits for these answers
                    pass
            if self._seal_asked:
                self._seal_asked = False
                self.seal()
            if self._closing and not self._pending:
                return

    def _flush(self) -> None:
        """Write what is pending now, in this thread (once the writer has stopped)."""
        batch, self._pending = self._pending, []
        if batch:
            _resolve(batch, self._write(b"".join(line for line, _ in batch)))

    def _write(self, data: bytes) -> OSError | None:
        with self._io:
            if self.fd < 0:
                if self.broken is not None and time.monotonic() < self._retry_at:
                    return OSError(f"the tracking log is unavailable ({self.broken})")
                try:
                    self._open_segment()
                except OSError as exc:
                    if self.broken is None:
                        log.error("tracking log: a segment cannot be made in %s (%s); clicks and opens are "
                                  "written to the database directly", self.folder, exc.strerror or exc)
                    self.broken, self._retry_at = f"{type(exc).__name__}: {exc.strerror or exc}", time.monotonic() + RETRY
                    return exc
                self.broken = None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view):]
                started = time.perf_counter()
                os.fdatasync(self.fd)
                self.fsync_seconds += time.perf_counter() - started
            except OSError as exc:
                try:  # never leave half a record in the log
                    os.ftruncate(self.fd, self.durable)
                except OSError as cut:  # seal it as it is (the drain leaves a torn last line out)
                    self.broken = f"could not cut back a failed write: {cut.strerror or cut}"
                    self._retry_at = time.monotonic() + RETRY
                    log.error("tracking log: %s; %s sealed", self.broken, self.name)
                    self._seal()
                log.error("tracking log: a write of %d records failed (%s)", data.count(b"\n"),
                          exc.strerror or exc)
                return exc
            self.durable += len(data)
            self.records += data.count(b"\n")
            self.fsyncs += 1
            if self.durable >= SEAL_BYTES:
                self._seal()
            return None

    def seal(self) -> None:
        """Close the open segment: unlocked, it is the drain's (its records are all durable)."""
        with self._io:
            self._seal()

    def _seal(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.name, self.fd, self.durable = "", -1, 0

    def close(self) -> None:
        """Write what is pending and seal the segment, for the drain to move into the table."""
        if self._seal_due is not None:
            self._seal_due.cancel()
            self._seal_due = None
        if self._writer is not None:
            self._closing = True
            self._wake.set()
            self._writer.join()
            self._writer, self._closing = None, False
        self._flush()
        self.seal()
        if self.fsyncs:
            log.info("tracking log: %d records in %d fsyncs (%.1f a group), %.2f ms a fsync on average, %d segments",
                     self.records, self.fsyncs, self.records / self.fsyncs, 1000 * self.fsync_seconds / self.fsyncs,
                     self.segments)


def _resolve(batch: list[tuple[bytes, asyncio.Future[None]]], error: OSError | None) -> None:
    for _, done in batch:
        if done.cancelled():
            continue  # the client went away meanwhile
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
