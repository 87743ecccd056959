"""The counts beside the saved segments on the staff list page, kept a few minutes.

Counting a segment reads every contact (about 0.1 to 0.3 s each at 100,000 contacts; see
bench/segment_pages.py), so the list page is drawn at once with the counts it has from the last
``FRESH`` seconds, and the rest come from a JSON request made by the page's script (or, without
JavaScript, from a link that counts them all before drawing the page). A count is kept per segment
and definition: saving a segment changes its ``updated_at``, which drops its old count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from sqlalchemy.orm import Session

from subscribers import segments
from subscribers.models import Segment

FRESH = 300.0  # seconds a count is shown without counting again
_counts: dict[tuple[int, str], tuple[float, int]] = {}  # (segment id, updated_at) -> (when, count)
_lock = threading.Lock()


def _key(segment: Segment) -> tuple[int, str]:
    return segment.id, segment.updated_at.isoformat()


def known(saved: Sequence[Segment]) -> dict[int, int]:
    """The counts made in the last ``FRESH`` seconds, by segment id."""
    now = time.monotonic()
    with _lock:
        found = {s.id: _counts.get(_key(s)) for s in saved}
    return {sid: value[1] for sid, value in found.items() if value is not None and now - value[0] < FRESH}


def count_all(session: Session, saved: Sequence[Segment]) -> dict[int, int]:
    """Every segment's count: the fresh ones kept, the others counted. (One statement for all of them,
    ``count(CASE WHEN <segment> ...)`` per segment, measured no faster on SQLite and slower on
    PostgreSQL, whose EXISTS become per-row subplans under CASE: bench/segment_pages.py.)"""
    have = known(saved)
    for segment in saved:
        if segment.id not in have:
            value = segments.count(session, segment.definition)
            with _lock:
                _counts[_key(segment)] = (time.monotonic(), value)
            have[segment.id] = value
    return have
