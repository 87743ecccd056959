"""newsletter feeds automate / newsletter digests ...: automations that make issues by themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

import typer

from newsletter.automations import configure, status
from newsletter.cli.common import audited, friendly_errors, out, print_rows, unit_of_work
from newsletter.cli.feeds import feeds_app
from newsletter.errors import InputError
from newsletter.sending.schedule import parse_when
from newsletter.staff.audit import AuditAction
from subscribers.db import utcnow

digests_app = typer.Typer(help="Digest automations: an issue of the posts since the last digest, weekly or monthly.",
                          no_args_is_help=True)

Mode = Annotated[str, typer.Option("--mode", help="off, draft, review (then send once approved) or send.")]
Slot = Annotated[Optional[str], typer.Option("--slot", help="Weekdays and a time in each contact's own zone, e.g. 'tue 09:00'.")]
ListOpt = Annotated[Optional[str], typer.Option("--list", help="List slug the issues go to (default: the newsletter's).")]
SegmentOpt = Annotated[Optional[str], typer.Option("--segment", help="Only contacts in this segment.")]
SubjectOpt = Annotated[Optional[str], typer.Option("--subject-template", help="E.g. 'New this week: {title}' "
                                                  "({title}, {excerpt}, {newsletter}, {count}); '' for the post's own.")]
PreheaderOpt = Annotated[Optional[str], typer.Option("--preheader-template", help="As --subject-template.")]
StartOpt = Annotated[Optional[str], typer.Option("--start", help="Posts published before this (UTC, "
                                                "'2026-12-01 00:00') are never sent; default: when switched on.")]


def _start(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_when(text, "UTC")
    except InputError:
        raise InputError(f"--start {text!r}: use a date and time like '2026-12-01 00:00' (UTC)") from None


def _print_state(state: status.AutomationState) -> None:
    a = state.automation
    when = f"next slot {state.next_slot}" if state.next_slot else "off"
    out.print(f"automation {a.id}: {a.mode}, {state.slot_text}; {when}", highlight=False)


@feeds_app.command("automate")
@friendly_errors
def feeds_automate(
    feed_id: int, mode: Mode, slot: Slot = None,
    layout: Annotated[Optional[str], typer.Option("--layout", help="full or teaser.")] = None,
    list_slug: ListOpt = None, segment: SegmentOpt = None, subject_template: SubjectOpt = None,
    preheader_template: PreheaderOpt = None, start: StartOpt = None,
) -> None:
    """Make an issue of each new post of a feed: as a draft, for review then send, or to send at the next slot."""
    now = utcnow()
    wanted = configure.Wanted(mode=mode, slot=slot, layout=layout, list_slug=list_slug, segment=segment,
                              subject_template=subject_template, preheader_template=preheader_template,
                              starts_at=_start(start))
    with unit_of_work() as (settings, session):
        automation = configure.set_feed_automation(session, settings, feed_id, wanted, now=now)
        audited(session, AuditAction.AUTOMATION_SET, f"automation {automation.id}", f"feed {feed_id}: {automation.mode}")
        _print_state(status.state_of(session, automation, now))


@digests_app.command("automate")
@friendly_errors
def digests_automate(
    mode: Mode,
    every: Annotated[str, typer.Option("--every", help="week or month (a monthly slot is the first such weekday).")] = "week",
    feed_id: Annotated[Optional[int], typer.Option("--feed", help="Only this feed's posts (default: every post).")] = None,
    slot: Slot = None, list_slug: ListOpt = None, segment: SegmentOpt = None, subject_template: SubjectOpt = None,
    preheader_template: PreheaderOpt = None, start: StartOpt = None,
) -> None:
    """Make a digest of the posts since the last one every week or month; skipped when nothing is new."""
    now = utcnow()
    wanted = configure.Wanted(mode=mode, slot=slot, every=every, list_slug=list_slug, segment=segment,
                              subject_template=subject_template, preheader_template=preheader_template,
                              starts_at=_start(start))
    with unit_of_work() as (settings, session):
        automation = configure.set_digest_automation(session, settings, feed_id, wanted, now=now)
        audited(session, AuditAction.AUTOMATION_SET, f"automation {automation.id}",
                f"digest every {automation.every}: {automation.mode}")
        _print_state(status.state_of(session, automation, now))


@digests_app.command("list")
@friendly_errors
def digests_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Digest automations, their mode, slot and next slot."""
    now = utcnow()
    with unit_of_work() as (_, session):
        rows = [_row(state) for state in status.digest_states(session, now)]
    print_rows(rows, as_json, {"id": "id", "feed": "feed", "mode": "mode", "every": "every", "slot": "slot",
                               "next slot": "next_slot", "awaiting approval": "awaiting_approval"})


def _row(state: status.AutomationState) -> dict[str, object]:
    a = state.automation
    return {"id": a.id, "feed": a.feed_id, "mode": a.mode, "every": a.every, "slot": f"{a.slot_days} {a.slot_time}",
            "next_slot": state.next_slot.isoformat() if state.next_slot else None,
            "awaiting_approval": [i.id for i in state.awaiting_approval], "drafts": [i.id for i in state.drafts],
            "last_problem": state.last_problem}
