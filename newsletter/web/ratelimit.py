"""A small sliding-window rate limit for public forms, kept in memory.

Per process: with several web processes each keeps its own window, which still bounds abuse. The
client address is only used as a key in memory (hashed), never stored or logged.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import defaultdict, deque


class RateLimiter:
    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, *parts: str) -> bool:
        key = hashlib.sha256("|".join(parts).encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > 100_000:  # bounded memory under a flood of distinct clients
                self._hits = defaultdict(deque, {k: v for k, v in self._hits.items() if v})
            return True

    def over(self, *parts: str) -> bool:
        """Whether the key ``parts`` is at its limit now, without counting a hit (a face that counts
        only some requests, such as refused webhook posts)."""
        key = hashlib.sha256("|".join(parts).encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hits = self._hits.get(key)
            return hits is not None and sum(1 for hit in hits if now - hit <= self.window) >= self.limit

    def retry_after(self, *parts: str) -> int:
        """Whole seconds until the key ``parts`` may be allowed again (1 at least): when its oldest
        hit in the window leaves it. For a Retry-After header."""
        key = hashlib.sha256("|".join(parts).encode()).hexdigest()
        with self._lock:
            hits = self._hits.get(key)
            oldest = hits[0] if hits else time.monotonic()
        return max(1, math.ceil(self.window - (time.monotonic() - oldest)))
