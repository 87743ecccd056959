"""What staff do to an issue's send in the staff app, each action audited once with target "issue N":
choose the audience (with its live count), schedule, send now, approve, cancel, pause, resume, and
settle a batch held as unknown.

The rules stay where they live (``schedule``, ``ledger``, the state sets of ``subscribers.states``);
this module reads a form's words into their arguments, says which actions apply to an issue now, and
writes the audit entry in the same transaction as the change, so an entry exists exactly when the
change was stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.models import Issue
from newsletter.sending import ledger, schedule
from newsletter.sending.audience import audience_size
from newsletter.staff.audit import AuditAction, record
from newsletter.staff.models import StaffUser
from newsletter.staff.roles import Role
from subscribers.lists import all_lists, ensure_list
from subscribers.models import MailingList, Segment
from subscribers.segments import list_segments
from subscribers.states import CANCELLABLE, PAUSABLE, SCHEDULABLE, IssueStatus

# While an issue is in one of these, its figures change by themselves: the page keeps asking.
CHANGING = (IssueStatus.SCHEDULED, IssueStatus.SENDING)


class FieldError(InputError):
    """Bad input in one field of a form (``field``: its name), told beside that field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def target(issue: Issue) -> str:
    return f"issue {issue.id}"


def who(user: StaffUser) -> str:
    """How a staff user is named where a change is stored (``approved_by``, a batch's evidence):
    by number, never by address."""
    return f"user {user.id}"


def is_admin(user: StaffUser) -> bool:
    return user.role == Role.ADMIN


# --- the audience -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """The list (and segment) chosen, and how many the issue would go to now."""

    mailing_list: MailingList
    segment: Segment | None
    count: int

    @property
    def description(self) -> str:
        where = self.mailing_list.name + (f", segment {self.segment.name}" if self.segment else "")
        return f"{where}: {self.count} {'person' if self.count == 1 else 'people'}"

    def as_dict(self) -> dict[str, object]:
        return {"list": self.mailing_list.id, "segment": self.segment.id if self.segment else None,
                "count": self.count, "text": self.description}


def _id(value: str | int | None, what: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if not text.isdigit() or len(text) > 12:
        raise FieldError(what, f"choose a {what} from the list")
    return int(text)


def choose_audience(session: Session, settings: Settings, issue: Issue, list_id: str | int | None = None,
                    segment_id: str | int | None = None) -> Audience:
    """The audience chosen by ids from a form or a query (none given: the issue's own choice, else the
    newsletter's list), with its live count. An id that names nothing is a ``FieldError``."""
    lid = _id(list_id, "list")
    sid = _id(segment_id, "segment")
    if list_id is None and segment_id is None:
        lid, sid = issue.list_id, issue.segment_id
    chosen = session.get(MailingList, lid) if lid is not None else ensure_list(
        session, settings.default_list, settings.newsletter_name)
    if chosen is None:
        raise FieldError("list", f"there is no list {lid}: choose one from the list")
    segment = session.get(Segment, sid) if sid is not None else None
    if sid is not None and segment is None:
        raise FieldError("segment", f"there is no segment {sid}: choose one from the list")
    return Audience(chosen, segment, audience_size(session, chosen.id, segment.id if segment else None))


def audience_options(session: Session) -> tuple[list[MailingList], list[Segment]]:
    return all_lists(session), list_segments(session)


# --- what applies now ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actions:
    """Which buttons an issue's Send page shows to this user now."""

    schedule: bool
    send_now: bool
    approve: bool
    cancel: bool
    pause: bool
    resume: bool
    awaiting_approval: bool  # told to everyone; only admins get the button
    asks_approval: bool  # scheduling by this user will wait for an admin
    live: bool  # the figures change by themselves (the page polls)


def actions_for(issue: Issue, settings: Settings, user: StaffUser) -> Actions:
    admin = is_admin(user)
    awaiting = issue.status == IssueStatus.AWAITING_APPROVAL
    return Actions(
        schedule=issue.status in SCHEDULABLE,
        send_now=issue.status in SCHEDULABLE,
        approve=awaiting and admin,
        cancel=issue.status in CANCELLABLE,
        pause=issue.status in PAUSABLE,
        resume=issue.status == IssueStatus.PAUSED,
        awaiting_approval=awaiting,
        asks_approval=schedule.approval_needed(settings, is_admin=admin),
        live=issue.status in CHANGING,
    )


# --- scheduling ---------------------------------------------------------------------------------------


@cache
def time_zones() -> list[str]:
    """Every IANA zone name this machine knows, sorted (the choices of the time-zone select)."""
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


def read_when(day: str, clock: str, zone: str) -> datetime:
    """The date and time typed (``2026-12-03``, ``09:00``) read in ``zone``."""
    try:
        tz = ZoneInfo(zone.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldError("zone", f"{zone!r} is not a time zone: choose one from the list") from None
    try:
        parsed_day = date.fromisoformat(day.strip())
    except ValueError:
        raise FieldError("date", "enter a date like 2026-12-03") from None
    try:
        parsed_time = time.fromisoformat(clock.strip())
    except ValueError:
        raise FieldError("time", "enter a time like 09:00") from None
    return datetime.combine(parsed_day, parsed_time.replace(tzinfo=None), tzinfo=tz)


def schedule_by_staff(session: Session, settings: Settings, issue: Issue, user: StaffUser, *, day: str, clock: str,
                      zone: str, local_time: bool, list_id: str | None, segment_id: str | None,
                      now: datetime) -> Issue:
    """Schedule from the Send page's form. Waits for an admin when ``schedule.approval_needed`` says so.
    Bad input is a ``FieldError`` (the field named) or an ``InputError`` from the service (the
    preflight, the issue's state): nothing stored either way."""
    at = read_when(day, clock, zone)
    if schedule.in_the_past(at, now, local_time=local_time):
        raise FieldError("date", f"{at:%Y-%m-%d %H:%M} ({zone}) has passed: choose a later time, or send now")
    audience = choose_audience(session, settings, issue, list_id or "", segment_id or "")
    waits = schedule.approval_needed(settings, is_admin=is_admin(user))
    schedule.schedule_issue(session, settings, issue, at=at, now=now, zone=zone.strip(), local_time=local_time,
                            list_slug=audience.mailing_list.slug,
                            segment=audience.segment.name if audience.segment else None, needs_approval=waits)
    how = f"at {at:%H:%M} in each contact's own time zone on {at:%Y-%m-%d}" if local_time else \
        f"at {at:%Y-%m-%d %H:%M} {zone.strip()}"
    record(session, user, AuditAction.SCHEDULE, target(issue),
           f"{how}; list {audience.mailing_list.id}" + (f", segment {audience.segment.id}" if audience.segment else "")
           + ("; awaits approval" if waits else ""))
    return issue


def send_now_by_staff(session: Session, settings: Settings, issue: Issue, user: StaffUser, *,
                      list_id: str | None, segment_id: str | None, now: datetime) -> int | None:
    """Send now: enqueue at once (the dispatchers send it) and return the recipients added; or, when
    approval is needed, schedule it for now to wait for an admin (the scheduler starts it once
    approved) and return None."""
    audience = choose_audience(session, settings, issue, list_id or "", segment_id or "")
    slug, segment = audience.mailing_list.slug, audience.segment.name if audience.segment else None
    if schedule.approval_needed(settings, is_admin=is_admin(user)):
        schedule.schedule_issue(session, settings, issue, at=now, now=now, zone="UTC", list_slug=slug,
                                segment=segment, needs_approval=True)
        record(session, user, AuditAction.SCHEDULE, target(issue), "send now; awaits approval")
        return None
    added = schedule.start_now(session, settings, issue, now, list_slug=slug, segment=segment)
    record(session, user, AuditAction.SEND, target(issue), f"send now: {added} recipient(s) enqueued")
    return added


def approve_by_staff(session: Session, issue: Issue, user: StaffUser, now: datetime) -> None:
    if not is_admin(user):
        raise InputError("only an admin can approve an issue")
    schedule.approve(issue, approved_by=who(user), now=now)
    record(session, user, AuditAction.APPROVE, target(issue))


def cancel_by_staff(session: Session, issue: Issue, user: StaffUser) -> None:
    schedule.cancel(issue)
    record(session, user, AuditAction.CANCEL, target(issue))


def pause_by_staff(session: Session, issue: Issue, user: StaffUser) -> None:
    schedule.pause(issue, f"paused by {who(user)}")
    record(session, user, AuditAction.PAUSE, target(issue))


def resume_by_staff(session: Session, issue: Issue, user: StaffUser, now: datetime) -> None:
    schedule.resume(session, issue, now)
    record(session, user, AuditAction.RESUME, target(issue))


def settle_batch_by_staff(session: Session, issue: Issue, batch_id: int, user: StaffUser, *, sent: bool,
                          now: datetime) -> int:
    """Settle one of this issue's batches held as unknown: ``sent`` (the provider's activity log shows it
    accepted) or queued again, accepting possible duplicates. Returns the deliveries changed."""
    if batch_id not in {held.batch_id for held in ledger.unknown_batches(session, issue.id)}:
        raise InputError(f"batch {batch_id} of issue {issue.id} holds no deliveries as unknown")
    count = ledger.settle_by_staff(session, batch_id, sent=sent, now=now, who=who(user))
    record(session, user, AuditAction.BATCH_SETTLED, target(issue),
           f"batch {batch_id}: {count} {'marked sent' if sent else 'queued again'}")
    return count


def schedule_text(issue: Issue, settings: Settings) -> str | None:
    """When a scheduled issue goes out, as staff read it (None: it has no time)."""
    if issue.local_send_time:
        day, clock = issue.local_send_time.split("T")
        return f"{day} at {clock} in each contact's own time zone"
    if issue.scheduled_at is None:
        return None
    zone = issue.schedule_timezone or settings.default_timezone
    return f"{issue.scheduled_at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} ({zone})"


def schedule_defaults(issue: Issue, settings: Settings, now: datetime) -> dict[str, object]:
    """The schedule form's first values: the issue's own schedule, else the next whole hour in the
    default time zone."""
    zone = issue.schedule_timezone or settings.default_timezone
    if issue.local_send_time:
        day, clock = issue.local_send_time.split("T")
        return {"date": day, "time": clock, "zone": zone, "local_time": True}
    when = issue.scheduled_at or (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    local = when.astimezone(ZoneInfo(zone))
    return {"date": f"{local:%Y-%m-%d}", "time": f"{local:%H:%M}", "zone": zone, "local_time": False}
