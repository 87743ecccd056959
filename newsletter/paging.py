"""The one cursor of keyset paging (the staff pages' audit log, leads board and follow-up list, and the
API's lists): a page link carries where the next page starts, as text that says nothing about a person."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: just past the row (at, id) that ended the last one. Keyset paging: each
    page is an index range, however long the list grows (no OFFSET, no count of every row)."""

    at: datetime
    id: int

    def __str__(self) -> str:
        return f"{self.at.strftime('%Y%m%dT%H%M%S.%f')}-{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        """A cursor from a page link; None for anything else (the newest page is shown)."""
        stamp, _, number = text.partition("-")
        if not number.isdigit() or len(number) > 18:
            return None
        try:
            at = datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=timezone.utc)
        except ValueError:
            return None
        return cls(at, int(number))


def seal(kind: str, position: str) -> str:
    """An API page cursor: where the next page of ``kind`` starts, as one opaque URL-safe word that a
    client passes back as it is (its content may change; clients must not build one)."""
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def unseal(kind: str, cursor: str) -> str | None:
    """The position a ``seal``ed cursor of ``kind`` holds; None for anything else (another list's
    cursor, a truncated or made-up one)."""
    if len(cursor) > 200:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    found, colon, position = text.partition(":")
    return position if colon and found == kind else None
