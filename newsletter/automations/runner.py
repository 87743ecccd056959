"""The automations' part of a round of due work (``newsletter.due.run_round``): new posts become
issues, digests are made, and issues that waited for approval past their slot move to the next one.

Exactly one issue per (post, automation) and per (digest period, automation): the row of
``automation_issues`` is inserted first, in a savepoint, and the issue made in the same savepoint.
Its unique key is the guarantee: a second scheduler (PostgreSQL: its insert waits for the first
transaction, then fails), a repeated round or a restart between the import and the round finds the
row and makes nothing. Everything is read from the tables, so a round may run late or twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.automations import slots, wording
from newsletter.automations.configure import DIGEST_KIND, FEED, OFF, REVIEW, SEND, audience_names
from newsletter.compose.layouts import DIGEST, MAX_DIGEST_POSTS
from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.issues import create_issue
from newsletter.models import Automation, AutomationIssue, Issue, IssuePost, Post
from newsletter.sending.schedule import schedule_issue
from subscribers.states import IssueStatus

log = logging.getLogger("newsletter.automations")
# A digest is made this long before its slot begins: its posts are fixed then (later ones wait for
# the next), and in review mode staff have a day to approve it.
DIGEST_LEAD = timedelta(days=1)
DIGEST_SUBJECT = "{newsletter}: {count} new posts"
NOTHING_NEW = "nothing new since the last digest: skipped"


@dataclass
class AutomationReport:
    made: list[int] = field(default_factory=list)  # issues made
    scheduled: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)  # waited for approval past their slot
    skipped: int = 0  # digests with nothing new
    problems: list[str] = field(default_factory=list)

    def busy(self) -> bool:
        return bool(self.made or self.moved or self.skipped or self.problems)

    def summary(self) -> str:
        return (f"automations: issues made {self.made or 'none'}, scheduled {self.scheduled or 'none'}, "
                f"moved to the next slot {self.moved or 'none'}, digests skipped {self.skipped}")


def published(post_table: type[Post] = Post):  # noqa: ANN201 - a column expression
    """When a post counts as published: its feed's date, else when it was imported."""
    return func.coalesce(post_table.published_at, post_table.created_at)


def run_automations(session: Session, settings: Settings, now: datetime) -> AutomationReport:
    report = AutomationReport()
    for automation in session.scalars(select(Automation).where(Automation.mode != OFF).order_by(Automation.id)):
        if automation.kind == FEED:
            for post in _new_posts(session, automation):
                _make(session, settings, automation, now, report, posts=[post])
        elif automation.kind == DIGEST_KIND:
            _digest(session, settings, automation, now, report)
    _move_missed(session, settings, now, report)
    return report


def _new_posts(session: Session, automation: Automation) -> list[Post]:
    made = select(AutomationIssue.id).where(AutomationIssue.automation_id == automation.id,
                                            AutomationIssue.post_id == Post.id)
    return list(session.scalars(
        select(Post).where(Post.feed_id == automation.feed_id, published() >= automation.starts_at, ~made.exists())
        .order_by(published(), Post.id)))


def _digest(session: Session, settings: Settings, automation: Automation, now: datetime,
            report: AutomationReport) -> None:
    slot = slots.stored(automation.slot_days, automation.slot_time)
    day = slots.next_slot(slot, automation.every, now)
    if now < slots.starts(day, slot) - DIGEST_LEAD:
        return
    period = day.isoformat()
    if session.scalar(select(AutomationIssue.id).where(AutomationIssue.automation_id == automation.id,
                                                       AutomationIssue.period == period)):
        return  # made (or skipped) already
    in_earlier = (select(IssuePost.post_id).join(AutomationIssue, AutomationIssue.issue_id == IssuePost.issue_id)
                  .where(AutomationIssue.automation_id == automation.id, IssuePost.post_id == Post.id))
    query = select(Post).where(published() >= automation.starts_at, published() <= now, ~in_earlier.exists())
    if automation.feed_id is not None:
        query = query.where(Post.feed_id == automation.feed_id)
    # The oldest first; past the most a digest holds, the rest go in the next one.
    posts = list(session.scalars(query.order_by(published(), Post.id).limit(MAX_DIGEST_POSTS)))
    _make(session, settings, automation, now, report, posts=posts, period=period, day=day)


def _make(session: Session, settings: Settings, automation: Automation, now: datetime, report: AutomationReport,
          *, posts: list[Post], period: str | None = None, day: date | None = None) -> None:
    """Claim the (automation, post or period) row and make its issue, in one savepoint."""
    try:
        with session.begin_nested():
            row = AutomationIssue(automation_id=automation.id, post_id=None if period else posts[0].id,
                                  period=period)
            session.add(row)
            session.flush()  # the claim: a second round stops here
            if not posts:
                row.note = NOTHING_NEW
                report.skipped += 1
                return
            try:
                with session.begin_nested():
                    issue = _issue(session, settings, automation, posts)
                    row.issue_id = issue.id
            except InputError as exc:
                row.note = f"no issue made: {exc}"
                report.problems.append(f"automation {automation.id}: {row.note}")
                # The reason may quote a post's words: staff read it in the app, the log only learns that.
                log.warning("automation %s: post %s made no issue (the feeds page says why)", automation.id,
                            posts[0].id)
                return
            report.made.append(issue.id)
            if automation.mode in (REVIEW, SEND):
                _schedule(session, settings, automation, issue, row, now, report, day)
    except IntegrityError:
        return  # another round (a second scheduler) made it


def _issue(session: Session, settings: Settings, automation: Automation, posts: list[Post]) -> Issue:
    lead, count = posts[0], len(posts)
    if automation.layout == DIGEST:
        subject = wording.subject_for(automation.subject_template or DIGEST_SUBJECT, lead, settings, count)
    else:
        subject = wording.subject_for(automation.subject_template, lead, settings)
    preheader = wording.preheader_for(automation.preheader_template, lead, settings, count)
    return create_issue(session, settings, lead.id, subject, preheader, layout=automation.layout,
                        more_posts=[p.id for p in posts[1:]] if automation.layout == DIGEST else ())


def _schedule(session: Session, settings: Settings, automation: Automation, issue: Issue, row: AutomationIssue,
              now: datetime, report: AutomationReport, day: date | None = None) -> bool:
    """Schedule for ``day`` (else the next slot) at the slot's time in each contact's zone. A failing
    preflight leaves a draft, with the reason on the row for staff."""
    slot = slots.stored(automation.slot_days, automation.slot_time)
    day = day or slots.next_slot(slot, automation.every, now)
    list_slug, segment = audience_names(session, automation)
    try:
        with session.begin_nested():
            schedule_issue(session, settings, issue, at=datetime.combine(day, slot.at, tzinfo=UTC), now=now,
                           zone="UTC", local_time=True, list_slug=list_slug, segment=segment,
                           needs_approval=automation.mode == REVIEW)
    except InputError as exc:
        row.note = f"left as a draft: {exc}"
        report.problems.append(f"automation {automation.id}: issue {issue.id} {row.note}")
        log.warning("automation %s: issue %s left as a draft (the feeds page says why)", automation.id, issue.id)
        return False
    report.scheduled.append(issue.id)
    return True


def _move_missed(session: Session, settings: Settings, now: datetime, report: AutomationReport) -> None:
    """Review mode: an issue still awaiting approval when its slot began waits for the next slot."""
    rows = session.execute(
        select(AutomationIssue, Automation, Issue)
        .join(Automation, Automation.id == AutomationIssue.automation_id)
        .join(Issue, Issue.id == AutomationIssue.issue_id)
        .where(Issue.status == IssueStatus.AWAITING_APPROVAL, Issue.scheduled_at <= now,
               Automation.mode.in_((REVIEW, SEND))))
    for row, automation, issue in rows.all():
        if _schedule(session, settings, automation, issue, row, now, report):
            row.missed_slots += 1
            row.note = f"not approved by its slot; moved to {issue.local_send_time} (missed {row.missed_slots})"
            report.moved.append(issue.id)
