"""Setting an automation (CLI and staff app alike): every value is checked, each problem named by
its field, before anything is stored.

Modes: ``off`` (nothing made), ``draft`` (each new post becomes a draft issue; staff are told on the
staff home page), ``review`` (the draft is scheduled for the next slot and waits for an admin's
approval; unapproved by the slot it moves to the next one and staff are told), ``send`` (scheduled
for the next slot, no approval). With ``NEWSLETTER_ISSUE_APPROVAL`` on, only an admin (or the
command line) may choose ``send``: it would go round the approval step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.automations import slots, wording
from newsletter.compose.layouts import DIGEST, FULL, TEASER
from newsletter.config import Settings
from newsletter.errors import InputError, NotFound
from newsletter.models import Automation, Feed
from subscribers.lists import get_list
from subscribers.models import MailingList, Segment
from subscribers.segments import get_segment

OFF, DRAFT, REVIEW, SEND = "off", "draft", "review", "send"
MODES = (OFF, DRAFT, REVIEW, SEND)
MODE_LABELS = {
    OFF: "Off: posts are imported, nothing more",
    DRAFT: "Draft: each new post becomes a draft issue",
    REVIEW: "Review then send: scheduled for the next slot once an admin approves it",
    SEND: "Send: scheduled for the next slot, no approval",
}
FEED, DIGEST_KIND = "feed", "digest"
PER_POST = "post"
EVERY = (slots.WEEK, slots.MONTH)
FEED_LAYOUTS = (FULL, TEASER)
DEFAULT_SLOT = "tue 09:00"


class AutomationErrors(InputError):
    """Bad values, by field name (mode, slot, layout, list, segment, subject_template,
    preheader_template, every): one sentence each, all shown at once."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass
class Wanted:
    """An automation's settings as typed (``None``: keep what is stored, or the default)."""

    mode: str
    slot: str | None = None
    layout: str | None = None
    list_slug: str | None = None
    segment: str | None = None
    subject_template: str | None = None
    preheader_template: str | None = None
    every: str | None = None
    starts_at: datetime | None = None


def get_feed(session: Session, feed_id: int) -> Feed:
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise NotFound(f"there is no feed {feed_id}; 'newsletter feeds list' shows them")
    return feed


def feed_automation(session: Session, feed_id: int) -> Automation | None:
    return session.scalar(select(Automation).where(Automation.feed_id == feed_id, Automation.kind == FEED))


def digest_automation(session: Session, feed_id: int | None) -> Automation | None:
    """The digest of ``feed_id``'s posts (None: of every post)."""
    where = Automation.feed_id == feed_id if feed_id is not None else Automation.feed_id.is_(None)
    return session.scalar(select(Automation).where(where, Automation.kind == DIGEST_KIND))


def set_feed_automation(session: Session, settings: Settings, feed_id: int, wanted: Wanted, *, now: datetime,
                        may_skip_approval: bool = True) -> Automation:
    feed = get_feed(session, feed_id)
    return _store(session, settings, feed_automation(session, feed.id), FEED, feed.id, wanted, now=now,
                  may_skip_approval=may_skip_approval)


def set_digest_automation(session: Session, settings: Settings, feed_id: int | None, wanted: Wanted, *,
                          now: datetime, may_skip_approval: bool = True) -> Automation:
    if feed_id is not None:
        get_feed(session, feed_id)
    return _store(session, settings, digest_automation(session, feed_id), DIGEST_KIND, feed_id, wanted, now=now,
                  may_skip_approval=may_skip_approval)


def _store(session: Session, settings: Settings, found: Automation | None, kind: str, feed_id: int | None,
           wanted: Wanted, *, now: datetime, may_skip_approval: bool) -> Automation:
    checked = check(session, settings, kind, wanted, found, may_skip_approval=may_skip_approval)
    automation = found or Automation(kind=kind, feed_id=feed_id, starts_at=now)
    was_off = found is None or found.mode == OFF
    for name, value in checked.items():
        setattr(automation, name, value)
    if wanted.starts_at is not None:
        automation.starts_at = wanted.starts_at
    elif was_off and automation.mode != OFF:  # switched on: what was published while off stays unsent
        automation.starts_at = now
    session.add(automation)
    session.flush()
    return automation


def check(session: Session, settings: Settings, kind: str, wanted: Wanted, found: Automation | None = None, *,
          may_skip_approval: bool = True) -> dict[str, object]:
    """The columns to store, or ``AutomationErrors`` naming every bad field."""
    errors: dict[str, str] = {}
    values: dict[str, object] = {}

    def field(name: str, read) -> None:  # noqa: ANN001 - a small local helper
        try:
            values[name] = read()
        except InputError as exc:
            message = str(exc)
            errors[name] = message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")

    mode = (wanted.mode or "").strip().lower()
    if mode not in MODES:
        errors["mode"] = f"Choose a mode: {', '.join(MODES)}."
    elif mode == SEND and settings.issue_approval and not may_skip_approval:
        errors["mode"] = "Issue approval is on: only an admin may let an automation send without approval."
    else:
        values["mode"] = mode
    slot_text = wanted.slot if wanted.slot is not None else (
        f"{found.slot_days} {found.slot_time}" if found else DEFAULT_SLOT)
    try:
        slot = slots.parse_slot(slot_text)
        values["slot_days"], values["slot_time"] = slot.days_text, slot.time_text
    except InputError as exc:
        errors["slot"] = str(exc)[:1].upper() + str(exc)[1:] + "."
    if kind == FEED:
        values["every"] = PER_POST
        layout = (wanted.layout or (found.layout if found else FULL)).strip().lower()
        if layout not in FEED_LAYOUTS:
            errors["layout"] = f"A feed automation makes one issue per post: choose {' or '.join(FEED_LAYOUTS)}."
        else:
            values["layout"] = layout
    else:
        values["layout"] = DIGEST
        every = (wanted.every or (found.every if found else slots.WEEK)).strip().lower()
        every = {"weekly": slots.WEEK, "monthly": slots.MONTH}.get(every, every)
        if every not in EVERY:
            errors["every"] = "Choose every week or every month."
        else:
            values["every"] = every
    field("list_id", lambda: _list_id(session, wanted.list_slug, found))
    if "list_id" in errors:
        errors["list"] = errors.pop("list_id")
    field("segment_id", lambda: _segment_id(session, wanted.segment, found))
    if "segment_id" in errors:
        errors["segment"] = errors.pop("segment_id")
    for name, what in (("subject_template", "subject template"), ("preheader_template", "preheader template")):
        given = getattr(wanted, name)
        if given is None:
            values[name] = getattr(found, name) if found else None
        else:
            field(name, lambda given=given, what=what: wording.check_template(given, what))
    if errors:
        raise AutomationErrors(errors)
    return values


def _list_id(session: Session, slug: str | None, found: Automation | None) -> int | None:
    if slug is None:
        return found.list_id if found else None
    slug = slug.strip()
    if not slug:
        return None  # the newsletter's own list
    try:
        return get_list(session, slug).id
    except NotFound:
        raise InputError(f"there is no list {slug!r}") from None


def _segment_id(session: Session, name: str | None, found: Automation | None) -> int | None:
    if name is None:
        return found.segment_id if found else None
    name = name.strip()
    if not name:
        return None
    try:
        return get_segment(session, name).id
    except NotFound:
        raise InputError(f"there is no segment {name!r}; 'newsletter segments list' shows them") from None


def audience_names(session: Session, automation: Automation) -> tuple[str | None, str | None]:
    """The list's slug and the segment's name an automation's issues go to (None: the newsletter's list;
    no segment)."""
    chosen = session.get(MailingList, automation.list_id) if automation.list_id else None
    segment = session.get(Segment, automation.segment_id) if automation.segment_id else None
    return (chosen.slug if chosen else None), (segment.name if segment else None)
