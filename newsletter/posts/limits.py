"""The hard cap on what one post source (file, stdin, page or feed) may weigh.

Sizes that a source declares (``stat()``, which says 0 for /dev/zero; an HTTP Content-Length) are
only hints: the cap holds while reading, so nothing larger than it is ever held in memory.
"""

from __future__ import annotations

from collections.abc import Callable

from newsletter.errors import InputError

CHUNK = 64 * 1024


def size_text(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.1f} kB"


class CappedBody:
    """Chunks gathered under a cap; the chunk that goes over it raises an error naming ``name``."""

    def __init__(self, name: str, max_bytes: int) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.total = 0
        self._chunks: list[bytes] = []

    @property
    def room(self) -> int:
        """How much more to read at most: one byte over the cap is enough to know it is too big."""
        return self.max_bytes - self.total + 1

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > self.max_bytes:
            raise InputError(f"{self.name}: is larger than the {size_text(self.max_bytes)} limit")
        self._chunks.append(chunk)

    def data(self) -> bytes:
        return b"".join(self._chunks)


def read_capped(read: Callable[[int], bytes], name: str, max_bytes: int) -> bytes:
    """Everything ``read(n)`` gives until it gives b"", refused once it passes ``max_bytes``."""
    body = CappedBody(name, max_bytes)
    while chunk := read(min(CHUNK, body.room)):
        body.add(chunk)
    return body.data()
