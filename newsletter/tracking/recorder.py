"""One web process's first-party tracking: answer from caches (``answers``), make the record durable in
the process's log (``event_log``), and let the drain (``drain``) write the events: the
``newsletter tracking-drain`` process when one runs (``tracking_drain_process``), else a thread here.

When the log cannot take a record (a full disk, an unwritable folder), the event is written to the
database directly, in the request, as before the log existed; when that fails too, the reader is
still redirected (or shown the pixel) and an ERROR line says what was not recorded: a reader's
redirect never fails because of our bookkeeping, and an unrecorded click is never silent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from starlette.concurrency import run_in_threadpool

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.tracking.answers import Answer, Answers, CachedLink, Miss, Seen
from newsletter.tracking.drain import Drainer, apply
from newsletter.tracking.event_log import EventLog, encode
from newsletter.tracking.machines import request_reason
from subscribers.db import utcnow
from subscribers.states import EventType

log = logging.getLogger("newsletter.tracking")


class Tracker:
    def __init__(self, settings: Settings, db: Database) -> None:
        assert settings.tracking_log_dir is not None
        self.folder = settings.tracking_log_dir
        self.drain_here = not settings.tracking_drain_process
        self.db = db
        self.answers = Answers(settings, db.snapshot)
        self.log: EventLog | None = None
        self.drainer: Drainer | None = None
        self.direct = 0  # events written to the database directly (the log could not take them)
        self.unrecorded = 0  # answered, but recorded nowhere (each one also an ERROR line)
        self._starting = threading.Lock()
        self._loading: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def start(self) -> None:
        """Open this process's log, and drain in a thread when no drain process does."""
        with self._starting:
            if self.log is None:
                self.log = EventLog(self.folder)
                if self.drain_here:
                    self.drainer = Drainer(self.db, self.folder)
                    self.drainer.start()

    def stop(self) -> None:
        """Write what is pending and seal the segment; the thread, if any, drains it before it stops
        (what the database cannot take now stays for the next drain)."""
        with self._starting:
            if self.log is None:
                return
            self.log.close()
            if self.drainer is not None:
                self.drainer.stop()
            self.log = self.drainer = None

    def flush(self) -> None:
        """Everything answered so far is in the events table when this returns (tests; in this
        process's drain thread)."""
        if self.log is not None:
            self.log.seal()
        if self.drainer is not None:
            self.drainer.flush()

    # Answering --------------------------------------------------------------------------------------

    async def click(self, token: str, link_id: str, method: str, agent: str | None, ip: str | None) -> CachedLink | None:
        """The target of a tracked link, once the click is durably recorded; None: not a link (of
        this token's email)."""
        answer = await self._answer(self.answers.click, token, link_id)
        if answer.record:
            await self._record(answer, EventType.CLICK, method, agent, ip)
        return answer.link if answer.ok else None

    async def open(self, token: str, key: str, method: str, agent: str | None, ip: str | None) -> None:
        """The pixel was fetched: recorded (durably) when its token and email are counted."""
        answer = await self._answer(self.answers.open, token, key)
        if answer.record:
            await self._record(answer, EventType.OPEN, method, agent, ip)

    async def _answer(self, ask: Callable[..., Answer], token: str, key: str) -> Answer:
        """From the caches when they hold what the answer needs; else one load at a time, in a thread.
        The first seconds of a burst (a freshly sent issue's new tokens) found the same missing block of
        deliveries by the dozen: each request loaded it again in a thread of its own, and the loop
        waited while each new thread started (py-spy), a click p99 of 117-216 ms in the first two
        seconds against 11-15 ms after. Now the requests that miss queue here, and most find the cache
        filled once their turn comes."""
        try:
            return ask(token, key, offline=True)
        except Miss:
            pass
        async with self._loader():
            try:
                return ask(token, key, offline=True)  # loaded while this one waited
            except Miss:
                return await run_in_threadpool(ask, token, key)

    def _loader(self) -> asyncio.Lock:
        """The lock of the running loop (an asyncio lock belongs to one loop; tests run several)."""
        loop = asyncio.get_running_loop()
        if self._loading is None or self._loading[0] is not loop:
            self._loading = (loop, asyncio.Lock())
        return self._loading[1]

    async def _record(self, answer: Answer, kind: str, method: str, agent: str | None, ip: str | None) -> None:
        seen = Seen(kind, answer.mode, answer.delivery_id, answer.issue_id, answer.step_id,
                    answer.link.id if answer.link is not None else None,
                    request_reason(method, agent, ip, kind), utcnow())
        if self.log is None:
            self.start()
        assert self.log is not None
        try:
            await self.log.append_async(encode(seen))
        except OSError:
            await run_in_threadpool(self._direct, seen)

    def _direct(self, seen: Seen) -> None:
        try:
            with self.db.session() as s:
                apply(s, [seen])
            self.direct += 1
        except Exception as exc:  # noqa: BLE001 - the reader is answered whatever happens here
            self.unrecorded += 1
            log.error("tracking: a %s of issue %s / step %s at %s was answered but not recorded: the log and the "
                      "database both refused it (%s)", seen.kind, seen.issue_id, seen.step_id, _iso(seen.at),
                      type(exc).__name__)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")
