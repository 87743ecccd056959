"""What staff see of automations: each feed's automation and its state (next slot, issues waiting
for approval, drafts, the last problem) and the feed's run of failed polls; and the home page's
"needs you" list. Read only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.automations import slots
from newsletter.automations.configure import DIGEST_KIND, DRAFT, FEED, OFF, REVIEW
from newsletter.automations.runner import NOTHING_NEW
from newsletter.models import Automation, AutomationIssue, Feed, Issue
from subscribers.states import IssueStatus

RECENT = 20  # rows looked at per automation for its state


@dataclass
class AutomationState:
    automation: Automation
    next_slot: date | None  # None: off
    next_slot_starts: datetime | None
    awaiting_approval: list[Issue] = field(default_factory=list)
    drafts: list[Issue] = field(default_factory=list)
    last_problem: str | None = None

    @property
    def slot_text(self) -> str:
        a = self.automation
        days = ", ".join(d.capitalize() for d in a.slot_days.split(","))
        first = " (the first of the month)" if a.every == slots.MONTH else ""
        return f"{days}{first} at {a.slot_time}, each contact's own time"


def state_of(session: Session, automation: Automation, now: datetime) -> AutomationState:
    slot = slots.stored(automation.slot_days, automation.slot_time)
    on = automation.mode != OFF
    day = slots.next_slot(slot, automation.every if automation.kind == DIGEST_KIND else slots.WEEK, now) if on else None
    state = AutomationState(automation, day, slots.starts(day, slot) if day else None)
    rows = session.execute(select(AutomationIssue, Issue).outerjoin(Issue, Issue.id == AutomationIssue.issue_id)
                           .where(AutomationIssue.automation_id == automation.id)
                           .order_by(AutomationIssue.id.desc()).limit(RECENT)).all()
    for row, issue in rows:
        if issue is not None and issue.status == IssueStatus.AWAITING_APPROVAL:
            state.awaiting_approval.append(issue)
        elif issue is not None and issue.status == IssueStatus.DRAFT and automation.mode in (DRAFT, REVIEW):
            state.drafts.append(issue)
        if state.last_problem is None and row.note and row.note != NOTHING_NEW and (
                issue is None or issue.status in (IssueStatus.DRAFT, IssueStatus.AWAITING_APPROVAL)):
            state.last_problem = row.note
    return state


@dataclass
class FeedState:
    feed: Feed
    automation: AutomationState | None

    @property
    def failing(self) -> bool:
        return bool(self.feed.consecutive_failures)


def feed_states(session: Session, now: datetime) -> list[FeedState]:
    feeds = list(session.scalars(select(Feed).order_by(Feed.id)))
    automations = {a.feed_id: a for a in session.scalars(select(Automation).where(Automation.kind == FEED))}
    return [FeedState(feed, state_of(session, automations[feed.id], now) if feed.id in automations else None)
            for feed in feeds]


def digest_states(session: Session, now: datetime) -> list[AutomationState]:
    return [state_of(session, a, now)
            for a in session.scalars(select(Automation).where(Automation.kind == DIGEST_KIND).order_by(Automation.id))]


@dataclass(frozen=True)
class Notice:
    """One thing on the staff home page that needs someone: a sentence and where to act."""

    text: str
    href: str


def needs_attention(session: Session, now: datetime) -> list[Notice]:
    """Drafts automations made, issues waiting for approval (and slots they missed), problems, and
    feeds whose polls keep failing."""
    notices: list[Notice] = []
    for state in [*(f.automation for f in feed_states(session, now) if f.automation), *digest_states(session, now)]:
        name = _name(state.automation)
        for issue in state.drafts:
            notices.append(Notice(f"{name} made draft issue {issue.id}: look it over and schedule it.",
                                  f"/staff/issues/{issue.id}"))
        for issue in state.awaiting_approval:
            row = session.scalar(select(AutomationIssue).where(AutomationIssue.issue_id == issue.id))
            missed = f" It has missed {row.missed_slots} slot(s) unapproved." if row and row.missed_slots else ""
            notices.append(Notice(f"Issue {issue.id} from {name} waits for an admin's approval.{missed}",
                                  f"/staff/issues/{issue.id}/send"))
        if state.last_problem:
            notices.append(Notice(f"{name}: {state.last_problem}", "/staff/posts/feeds"))
    for feed in session.scalars(select(Feed).where(Feed.consecutive_failures > 0).order_by(Feed.id)):
        notices.append(Notice(f"Feed {feed.id} has failed {feed.consecutive_failures} poll(s) in a row: "
                              f"{feed.last_error}", "/staff/posts/feeds"))
    return notices


def _name(automation: Automation) -> str:
    if automation.kind == DIGEST_KIND:
        return f"The {automation.every}ly digest"
    return f"The automation of feed {automation.feed_id}"
