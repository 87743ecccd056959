"""Scheduling an issue, and the due work the scheduler (or ``newsletter tick``) runs each round.

All state is in our tables: an issue's status and time, and the ledger. A restart, a late tick or two
schedulers racing can neither lose nor repeat an email: enqueueing is idempotent, sending claims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter import health_policy
from newsletter.issues import policy_findings, preflight, recompile
from newsletter.models import Issue
from newsletter.compose.preflight import blocking
from newsletter.sending import ledger
from newsletter.sending.enqueue import enqueue_issue, first_local_instant
from subscribers.lists import ensure_list, get_list
from subscribers.segments import get_segment
from subscribers.states import CANCELLABLE, PAUSABLE, SCHEDULABLE, IssueStatus


def parse_when(text: str, zone: str) -> datetime:
    """'2026-12-03 09:00' read in ``zone`` (an offset in the text wins), as an aware datetime."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"--tz {zone!r} is not an IANA time zone (for example America/Los_Angeles)") from None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--at {text!r}: use a date and time like '2026-12-03 09:00'") from None
    return value if value.tzinfo else value.replace(tzinfo=tz)


def schedule_issue(
    session: Session,
    settings: Settings,
    issue: Issue,
    *,
    at: datetime,
    now: datetime,
    zone: str,
    local_time: bool = False,
    list_slug: str | None = None,
    segment: str | None = None,
    needs_approval: bool = False,
) -> Issue:
    """Schedule (or reschedule) a draft or scheduled issue. The preflight must pass first.

    With ``local_time`` the issue goes out at ``at``'s wall-clock time in each recipient's own zone,
    on ``at``'s date; otherwise everyone gets it at ``at``. With ``needs_approval`` (see
    ``approval_needed``) it waits for an admin's ``approve`` and cannot send before."""
    if issue.status not in SCHEDULABLE:
        raise InputError(f"issue {issue.id} is {issue.status}; only a draft or scheduled issue can be scheduled")
    recompile(session, issue, settings)  # the brand or template may have changed since the draft was made
    errors = blocking(preflight(issue, settings))
    if errors:
        raise InputError("the preflight failed: " + "; ".join(f.message for f in errors)
                         + f" (see 'newsletter issues preflight {issue.id}')")
    if in_the_past(at, now, local_time=local_time):
        raise InputError(f"{at.isoformat()} is in the past; use 'newsletter issues send {issue.id}' to send now")
    issue.list_id = (get_list(session, list_slug) if list_slug else ensure_list(session, settings.default_list, settings.newsletter_name)).id
    issue.segment_id = get_segment(session, segment).id if segment else None
    if local_time:
        wall = at.astimezone(ZoneInfo(zone))
        issue.local_send_time = wall.strftime("%Y-%m-%dT%H:%M")  # a wall-clock time, no zone: each recipient's
        issue.schedule_timezone = zone
        # Start enqueueing when the first zone on Earth reaches that time; each row gets its own due time.
        issue.scheduled_at = max(first_local_instant(wall.date(), time(wall.hour, wall.minute)), now)
    else:
        issue.local_send_time, issue.schedule_timezone, issue.scheduled_at = None, zone, at
    issue.status = IssueStatus.AWAITING_APPROVAL if needs_approval else IssueStatus.SCHEDULED
    issue.paused_reason, issue.approved_by, issue.approved_at = None, None, None
    return issue


def approval_needed(settings: Settings, *, is_admin: bool) -> bool:
    """With ``NEWSLETTER_ISSUE_APPROVAL``, what anyone but an admin schedules waits for an admin."""
    return settings.issue_approval and not is_admin


def approve(issue: Issue, *, approved_by: str, now: datetime) -> None:
    """An admin lets an issue that waits for approval go out as it was scheduled (at once, if that
    time has passed: the scheduler picks it up on its next round)."""
    if issue.status != IssueStatus.AWAITING_APPROVAL:
        raise InputError(f"issue {issue.id} is {issue.status}; only an issue awaiting approval can be approved")
    issue.status, issue.approved_by, issue.approved_at = IssueStatus.SCHEDULED, approved_by, now


def cancel(issue: Issue) -> None:
    if issue.status not in CANCELLABLE:
        raise InputError(f"issue {issue.id} is {issue.status}; only a scheduled issue can be cancelled "
                         "(pause one that is sending)")
    issue.status, issue.scheduled_at = IssueStatus.DRAFT, None


def pause(issue: Issue, reason: str = "paused by staff") -> None:
    if issue.status not in PAUSABLE:
        raise InputError(f"issue {issue.id} is {issue.status}; only a scheduled or sending issue can be paused")
    issue.status, issue.paused_reason = IssueStatus.PAUSED, reason


def resume(session: Session, issue: Issue, now: datetime) -> None:
    """Carry on where it stopped: only rows still queued go out; nothing already sent is resent."""
    if issue.status != IssueStatus.PAUSED:
        raise InputError(f"issue {issue.id} is {issue.status}, not paused")
    issue.status = IssueStatus.SENDING if issue.enqueued_at else IssueStatus.SCHEDULED
    issue.paused_reason = None
    ledger.finish_if_done(session, issue, now)


def start_now(session: Session, settings: Settings, issue: Issue, now: datetime, *,
              list_slug: str | None = None, segment: str | None = None) -> int:
    """Schedule for now and enqueue at once. Returns the number of recipients added."""
    if issue.status in SCHEDULABLE:
        schedule_issue(session, settings, issue, at=now, now=now, zone="UTC", list_slug=list_slug, segment=segment)
    if issue.status != IssueStatus.SCHEDULED:
        raise InputError(f"issue {issue.id} is {issue.status}")
    return begin_sending(session, settings, issue, now)


class PolicyRefused(InputError):
    """The health-information policy refuses an issue as its send starts."""


def begin_sending(session: Session, settings: Settings, issue: Issue, now: datetime) -> int:
    """Enqueue the issue's audience: where every send of an issue starts (send now; its time came).
    The health-information policy is asked again here, since a field may have been marked sensitive
    after the issue was scheduled."""
    if reason := health_policy.refusal(policy_findings(session, settings, issue)):
        raise PolicyRefused(f"issue {issue.id} cannot be sent: {reason}")
    added = enqueue_issue(session, issue, now)
    issue.status = IssueStatus.SENDING
    ledger.finish_if_done(session, issue, now)  # an empty audience is sent at once
    return added


@dataclass
class TickReport:
    started: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    requeued: int = 0
    held_unknown: int = 0
    held_by_policy: list[int] = field(default_factory=list)  # paused: the health-information policy refused them


def due_work(session: Session, now: datetime, settings: Settings) -> TickReport:
    """One round of what is due: start scheduled issues (one the health-information policy now
    refuses is paused with the reason, for staff to fix and resume), recover dead workers' rows,
    close finished sends."""
    report = TickReport()
    for issue in session.scalars(
        select(Issue).where(Issue.status == IssueStatus.SCHEDULED, Issue.scheduled_at <= now).order_by(Issue.scheduled_at)
    ):
        try:
            begin_sending(session, settings, issue, now)
        except PolicyRefused as refused:
            pause(issue, str(refused))
            report.held_by_policy.append(issue.id)
            continue
        report.started.append(issue.id)
    recover_and_finish(session, now, report)
    return report


def recover_and_finish(session: Session, now: datetime, report: TickReport | None = None) -> TickReport:
    """Recover dead workers' rows whose lease lapsed, then close sends that have nothing left. The
    scheduler does it each round, and so does every worker when idle: a deployment that runs only
    ``newsletter worker`` must not leave an issue "sending" for ever."""
    report = report or TickReport()
    report.requeued, report.held_unknown = ledger.recover_expired(session, now)
    for issue in session.scalars(select(Issue).where(Issue.status == IssueStatus.SENDING)):
        if ledger.finish_if_done(session, issue, now):
            report.finished.append(issue.id)
    return report


def in_the_past(at: datetime, now: datetime, *, local_time: bool) -> bool:
    """A time that has passed cannot be scheduled (send now instead). At each contact's local time,
    ``at``'s date may still lie ahead in other zones, so only the send path's own start is clamped."""
    return at < now and not local_time
