"""Pacing: at most N emails a second and M a day, so a new provider account is not flooded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import Delivery
from subscribers.states import DeliveryStatus, sql_literal
from subscribers.db import serialized


DAILY_BUDGET_LOCK = 0x6E6C6462  # a PostgreSQL advisory lock key of this project's own ("nldb")


class Pacer:
    """Shared by the dispatcher threads of a process (one budget for all of them)."""

    def __init__(self, per_second: float, per_day: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.per_day = per_day
        self.clock = clock
        self._next_free = 0.0
        self._lock = threading.Lock()

    def reserve(self, count: int) -> float:
        """Book the next slot for ``count`` emails under the per-second rate; returns the seconds to
        wait for it (the caller waits, outside the lock)."""
        if self.per_second <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            start = max(now, self._next_free)
            self._next_free = start + count / self.per_second
        return start - now

    def room_today(self, session: Session, now: datetime) -> int | None:
        """How many more may go out in the last 24 hours' window (None: no daily limit). Call it in
        the transaction that claims: on PostgreSQL it takes a transaction-scoped lock, so workers
        count and claim one after another and never both spend the same room (SQLite's claims are
        serial already)."""
        if self.per_day <= 0:
            return None
        serialized(session, DAILY_BUDGET_LOCK)
        sent = session.scalar(select(func.count()).where(Delivery.submitted_at > now - timedelta(days=1))) or 0
        # Rows claimed by other dispatchers are about to go too.
        claimed = Delivery.status == sql_literal(DeliveryStatus.CLAIMED)
        in_flight = session.scalar(select(func.count()).where(claimed)) or 0
        return max(self.per_day - sent - in_flight, 0)
