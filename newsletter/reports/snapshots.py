"""Issue and sequence step figures kept for pages that list several emails (the staff home's last
issues, the sequence pages' steps).

``email_stats`` folds every delivery's events into one row per delivery: exact, and about 80 ms per
issue of 25,000 deliveries on SQLite, so five issues cost more than a page may. Like Ghost's and
Mailchimp's reports, the list pages show figures computed a few minutes ago instead: the scheduler
calls ``refresh_figures`` every minute, which recomputes the figures of the last ``TRACKED`` issues
once they are older than ``MAX_AGE``; a page reads them with ``figures_of`` (computing, once, those of
an issue that has none yet) and says when they were computed. One issue's own results page still
computes its figures live. Sequence steps keep theirs the same way (``step_figures_of``): a sequence
sends to everyone it enrols, so its steps' deliveries add up to as many as an issue's; the same
minute's refresh brings kept step figures older than ``MAX_AGE`` up to date.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Issue, IssueFigures, StepFigures
from newsletter.reports.email_stats import COUNTS, ISSUE, STEP, EmailStats, LinkStats, Scope, stats_for

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


@dataclass(frozen=True)
class Kept:
    """Where one kind of email keeps its figures: its scope in the reports and its table."""

    scope: Scope
    model: type[IssueFigures] | type[StepFigures]
    key: Any  # the table's id column


ISSUES = Kept(ISSUE, IssueFigures, IssueFigures.issue_id)
STEPS = Kept(STEP, StepFigures, StepFigures.step_id)


def _store(session: Session, kept: Kept, ids: list[int], now: datetime) -> dict[int, Figures]:
    computed = stats_for(session, kept.scope, ids)
    for email_id, stats in computed.items():
        row = session.get(kept.model, email_id)
        if row is None:
            session.add(kept.model(**{kept.key.key: email_id}, computed_at=now, figures=_to_json(stats)))
        else:
            row.computed_at, row.figures = now, _to_json(stats)
    session.flush()
    return {email_id: Figures(stats, now) for email_id, stats in computed.items()}


def _kept(session: Session, kept: Kept, ids: list[int], now: datetime) -> dict[int, Figures]:
    rows = session.scalars(select(kept.model).where(kept.key.in_(ids))).all()
    found = {getattr(row, kept.key.key): Figures(_from_json(row.figures), row.computed_at) for row in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        found.update(_store(session, kept, missing, now))
    return found


def figures_of(session: Session, issue_ids: list[int], now: datetime) -> dict[int, Figures]:
    """The kept figures of these issues; those with none yet are computed now and kept."""
    return _kept(session, ISSUES, issue_ids, now)


def step_figures_of(session: Session, step_ids: list[int], now: datetime) -> dict[int, Figures]:
    """The kept figures of these sequence steps; those with none yet are computed now and kept."""
    return _kept(session, STEPS, step_ids, now)


def refresh_figures(session: Session, now: datetime, *, tracked: int = TRACKED, max_age: timedelta = MAX_AGE) -> int:
    """Recompute the figures of the latest issues, and the kept ones of sequence steps, that are
    older than ``max_age``; returns how many."""
    latest = select(Issue.id).where(Issue.enqueued_at.is_not(None)).order_by(Issue.enqueued_at.desc()).limit(tracked)
    ids = list(session.scalars(latest))
    fresh = set(session.scalars(select(IssueFigures.issue_id).where(
        IssueFigures.issue_id.in_(ids), IssueFigures.computed_at >= now - max_age)))
    stale = [i for i in ids if i not in fresh]
    if stale:
        _store(session, ISSUES, stale, now)
    steps = list(session.scalars(select(StepFigures.step_id).where(StepFigures.computed_at < now - max_age)))
    if steps:
        _store(session, STEPS, steps, now)
    return len(stale) + len(steps)
