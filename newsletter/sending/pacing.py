"""Pacing: at most N emails a second and M a day, so a new provider account is not flooded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import Delivery
from newsletter.sending.ledger import CLAIMED


class Pacer:
    """Shared by the dispatcher threads of a process (one budget for all of them)."""

    def __init__(self, per_second: float, per_day: int, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.per_day = per_day
        self.sleep = sleep
        self.clock = clock
        self._next_free = 0.0
        self._lock = threading.Lock()

    def wait_for(self, count: int) -> None:
        """Block until ``count`` more emails may leave under the per-second rate."""
        if self.per_second <= 0:
            return
        with self._lock:  # each caller books its own slot; the waiting happens outside the lock
            now = self.clock()
            start = max(now, self._next_free)
            self._next_free = start + count / self.per_second
        if start > now:
            self.sleep(start - now)

    def room_today(self, session: Session, now: datetime) -> int | None:
        """How many more may go out in the last 24 hours' window (None: no daily limit)."""
        if self.per_day <= 0:
            return None
        sent = session.scalar(select(func.count()).where(Delivery.submitted_at > now - timedelta(days=1))) or 0
        # Rows claimed by other dispatchers are about to go too.
        in_flight = session.scalar(select(func.count()).where(Delivery.status == CLAIMED)) or 0
        return max(self.per_day - sent - in_flight, 0)
