"""Each web process's append-only log of the clicks and opens it answered, on local disk.

A redirect or a pixel is answered only once its record is durable here (written and fsynced), so an
answer may come before its row is in the events table and still no acknowledged click is lost: the
drain (``drain``) moves records into the table in batches, and a log left by a process that died is
replayed by whichever process finds it first.

- Group commit: the records of the requests that arrive within a millisecond of each other are written
  with one write and one ``fdatasync``; concurrent requests share it.
- Ownership is a file lock (``flock``): a process holds an exclusive lock on its own log for as long as
  it runs, and the kernel releases it when the process dies however it dies (``kill -9`` included). A
  log nobody holds is an orphan; the first process to lock it drains it and deletes it.
- A write that fails (a full disk) is cut back off the file, so the log never holds half a record,
  and the requests waiting on it are told (the web face then writes the event directly).

One record a line: a compact JSON array (``encode``/``decode``): ids, the tracking mode, the machine label
the request earned and the time. No address, user agent or IP address is written.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from newsletter.tracking.answers import Seen

log = logging.getLogger("newsletter.tracking")
PREFIX, SUFFIX = "events-", ".log"
EPOCH, MICROSECOND = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(microseconds=1)
GATHER = 0.001  # seconds a group commit waits for more records (PostgreSQL's commit_delay, in effect)
RECORD_BYTES = 400  # more than any record takes
ROTATE_BYTES = 16 * 2**20  # a fully drained log larger than this is replaced by a fresh one


def encode(seen: Seen) -> bytes:
    return (json.dumps([seen.kind, seen.mode, seen.delivery_id, seen.issue_id, seen.step_id, seen.link_id,
                        seen.reason, (seen.at - EPOCH) // MICROSECOND], separators=(",", ":"))
            + "\n").encode()


def decode(line: bytes) -> Seen:
    kind, mode, delivery_id, issue_id, step_id, link_id, reason, at = json.loads(line)
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


def orphans(folder: Path) -> Iterator[tuple[str, int]]:
    """The logs in ``folder`` no running process holds, each locked for the caller: (name, fd). The
    caller drains it, deletes the file, then closes the fd."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"{PREFIX}*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # drained and deleted by another process meanwhile
        if not _lock(fd):
            os.close(fd)
            continue
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # it was deleted (and maybe made anew) after we opened it
            os.close(fd)
            continue
        yield path.name, fd


class EventLog:
    """This process's log. ``append_async`` from the event loop (group-committed), ``append`` from
    anywhere (one fsync of its own)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._io = threading.Lock()  # held while writing and fsyncing, and to replace the file
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self.broken: str | None = None  # why appends fail at once (the log could not be made)
        self.name, self.fd = "", -1
        self.durable = 0  # bytes written and fsynced: what the drain may read
        self.records = self.fsyncs = 0
        self.fsync_seconds = 0.0  # time spent waiting for fsyncs (the bound on answers/s: see the bench)
        try:
            self.name, self.fd = self._new_file()
        except OSError as exc:
            self.broken = f"{type(exc).__name__}: {exc.strerror or exc}"
            log.error("tracking log: cannot be made in %s (%s); clicks and opens are written to the database "
                      "directly", folder, self.broken)

    def _new_file(self) -> tuple[str, int]:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{PREFIX}{uuid.uuid4().hex}{SUFFIX}"
        fd = os.open(self.folder / name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        _fsync_dir(self.folder)  # the file itself survives a power cut, not only its contents
        return name, fd

    def append(self, line: bytes) -> None:
        """``line`` durable when this returns; OSError when it could not be made so."""
        error = self._write(line)
        if error is not None:
            raise error

    def append_async(self, line: bytes) -> asyncio.Future[None]:
        """A future resolved once ``line`` is durable (or failed with the OSError that kept it off).
        Group commit: the records appended within ``GATHER`` of the first one (the requests that
        arrived meanwhile, while the loop kept reading them) are written with one write and one
        fsync. The fsync runs on the loop itself: handing it to a thread costs more, in waits for the
        GIL, than it saves."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        if not self._pending:
            loop.call_later(GATHER, self._flush)
        self._pending.append((line, done))
        return done

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        error = self._write(b"".join(line for line, _ in batch))
        for _, done in batch:
            if done.cancelled():
                continue  # the client went away meanwhile
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    def _write(self, data: bytes) -> OSError | None:
        with self._io:
            if self.broken is not None:
                return OSError(f"the tracking log is unavailable ({self.broken})")
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
                except OSError as cut:
                    self.broken = f"could not cut back a failed write: {cut.strerror or cut}"
                log.error("tracking log: a write of %d records failed (%s)", data.count(b"\n"),
                          exc.strerror or exc)
                return exc
            self.durable += len(data)
            self.records += data.count(b"\n")
            self.fsyncs += 1
            return None

    def rotate(self) -> tuple[str, int, int] | None:
        """Start a fresh file; the old one's (name, fd, size) for the drain to finish and delete."""
        with self._io:
            if self.broken is not None:
                return None
            try:
                name, fd = self._new_file()
            except OSError as exc:
                log.warning("tracking log: could not start a fresh file (%s); keeping %s", exc.strerror or exc,
                            self.name)
                return None
            old = (self.name, self.fd, self.durable)
            self.name, self.fd, self.durable = name, fd, 0
            return old

    def close(self) -> None:
        """Write what is pending (the file stays, locked, for the drain to finish and delete)."""
        self._flush()
        if self.fsyncs:
            log.info("tracking log: %d records in %d fsyncs (%.1f a group), %.2f ms a fsync on average",
                     self.records, self.fsyncs, self.records / self.fsyncs, 1000 * self.fsync_seconds / self.fsyncs)
