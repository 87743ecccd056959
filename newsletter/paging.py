"""The one cursor of the staff pages' keyset paging (the audit log, the leads board, the follow-up list):
a page link carries where the next page starts, as text that says nothing about a person."""

from __future__ import annotations

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
