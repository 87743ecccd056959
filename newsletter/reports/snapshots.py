"""Issue figures kept for pages that list several issues (the staff home's last issues).

``email_stats`` folds every delivery's events into one row per delivery: exact, and about 80 ms per
issue of 25,000 deliveries on SQLite, so five issues cost more than a page may. Like Ghost's and
Mailchimp's reports, the list pages show figures computed a few minutes ago instead: the scheduler
calls ``refresh_figures`` every minute, which recomputes the figures of the last ``TRACKED`` issues
once they are older than ``MAX_AGE``; a page reads them with ``figures_of`` (computing, once, those of
an issue that has none yet) and says when they were computed. One issue's own results page still
computes its figures live.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Issue, IssueFigures
from newsletter.reports.email_stats import COUNTS, ISSUE, EmailStats, LinkStats, stats_for

MAX_AGE = timedelta(minutes=5)
TRACKED = 20  # the latest issues ever queued whose figures are kept fresh


@dataclass(frozen=True)
class Figures:
    stats: EmailStats
    computed_at: datetime


def _to_json(stats: EmailStats) -> dict[str, Any]:
    return {**{name: getattr(stats, name) for name in COUNTS}, "links": [asdict(link) for link in stats.links]}


def _from_json(data: dict[str, Any]) -> EmailStats:
    return EmailStats(**{name: int(data.get(name, 0)) for name in COUNTS},
                      links=[LinkStats(**link) for link in data.get("links", [])])


def _store(session: Session, ids: list[int], now: datetime) -> dict[int, Figures]:
    computed = stats_for(session, ISSUE, ids)
    for issue_id, stats in computed.items():
        row = session.get(IssueFigures, issue_id)
        if row is None:
            session.add(IssueFigures(issue_id=issue_id, computed_at=now, figures=_to_json(stats)))
        else:
            row.computed_at, row.figures = now, _to_json(stats)
    session.flush()
    return {issue_id: Figures(stats, now) for issue_id, stats in computed.items()}


def figures_of(session: Session, issue_ids: list[int], now: datetime) -> dict[int, Figures]:
    """The kept figures of these issues; those with none yet are computed now and kept."""
    rows = session.scalars(select(IssueFigures).where(IssueFigures.issue_id.in_(issue_ids))).all()
    found = {row.issue_id: Figures(_from_json(row.figures), row.computed_at) for row in rows}
    missing = [i for i in issue_ids if i not in found]
    if missing:
        found.update(_store(session, missing, now))
    return found


def refresh_figures(session: Session, now: datetime, *, tracked: int = TRACKED, max_age: timedelta = MAX_AGE) -> int:
    """Recompute the figures of the latest issues that are older than ``max_age``; returns how many."""
    latest = select(Issue.id).where(Issue.enqueued_at.is_not(None)).order_by(Issue.enqueued_at.desc()).limit(tracked)
    ids = list(session.scalars(latest))
    fresh = set(session.scalars(select(IssueFigures.issue_id).where(
        IssueFigures.issue_id.in_(ids), IssueFigures.computed_at >= now - max_age)))
    stale = [i for i in ids if i not in fresh]
    if stale:
        _store(session, stale, now)
    return len(stale)
