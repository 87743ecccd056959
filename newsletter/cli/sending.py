"""Sending commands: schedule, send, pause and resume issues; run workers; one round of due work."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from newsletter.cli.common import (EXIT_UNSETTLED, audited, err, friendly_errors, open_database, out, print_json,
                                   print_rows, unit_of_work)
from newsletter.staff.audit import AuditAction
from newsletter.cli.issues import issues_app
from newsletter.config import get_settings
from newsletter.due import run_round
from newsletter.errors import InputError
from newsletter.issues import get_issue
from newsletter.posts import service as post_service
from newsletter.sending import ledger, schedule
from newsletter.sending.dispatch import Dispatcher, SendingStopped, default_worker_id, send_all
from newsletter.sending.progress import batch_line, batch_record, describe, issue_state, settle_hint
from newsletter.sending.reconcile import OperatorNotice, reconcile, request_log
from newsletter.sending.stops import lift_stop
from newsletter.sending.test_emails import TestEmailSender, queue_test_emails
from newsletter.transports.base import AuthenticationFailed
from newsletter.sending.worker import run_worker
from newsletter.outgoing_webhooks.sender import WebhookSender
from newsletter.transports import get_transport
from subscribers.db import utcnow
from subscribers.states import ConfirmationStatus, DeliveryStatus

sending_app = typer.Typer(help="The send path as a whole: resume after a stop.", no_args_is_help=True)


def _at(text: str | None) -> datetime:
    if not text:
        return utcnow()
    return schedule.parse_when(text, "UTC")


@issues_app.command("schedule")
@friendly_errors
def schedule_(
    issue_id: int,
    at: Annotated[Optional[str], typer.Option(help="When, e.g. '2026-12-03 09:00' (in --tz).")] = None,
    tz: Annotated[Optional[str], typer.Option("--tz", help="IANA time zone of --at; default NEWSLETTER_DEFAULT_TIMEZONE.")] = None,
    local_time: Annotated[bool, typer.Option("--local-time", help="Send at --at's time in each recipient's own zone.")] = False,
    list_slug: Annotated[Optional[str], typer.Option("--list", help="Audience list (default: the newsletter).")] = None,
    segment: Annotated[Optional[str], typer.Option(help="Only contacts in this segment.")] = None,
    cancel: Annotated[bool, typer.Option("--cancel", help="Cancel the schedule (back to draft).")] = False,
) -> None:
    """Schedule, reschedule or cancel an issue. The preflight must pass."""
    with unit_of_work() as (settings, session):
        issue = get_issue(session, issue_id)
        if cancel:
            schedule.cancel(issue)
            audited(session, AuditAction.CANCEL, f"issue {issue_id}")
            out.print(f"issue {issue_id}: schedule cancelled; it is a draft again")
            return
        if not at:
            raise InputError("--at is required (or --cancel)")
        zone = tz or settings.default_timezone
        when = schedule.parse_when(at, zone)
        schedule.schedule_issue(session, settings, issue, at=when, now=utcnow(), zone=zone, local_time=local_time,
                                list_slug=list_slug, segment=segment)
        audited(session, AuditAction.SCHEDULE, f"issue {issue_id}",
                f"{'local time ' if local_time else ''}{when.isoformat()} {zone}")
        what = (f"at {when:%H:%M} in each recipient's own time zone on {when:%Y-%m-%d}" if local_time
                else f"at {when.isoformat()} ({zone})")
        out.print(f"issue {issue_id} scheduled {what}", highlight=False)


@issues_app.command("send")
@friendly_errors
def send(
    issue_id: int,
    queue: Annotated[bool, typer.Option("--queue", help="Only enqueue; the workers send it.")] = False,
    list_slug: Annotated[Optional[str], typer.Option("--list", help="Audience list (default: the newsletter).")] = None,
    segment: Annotated[Optional[str], typer.Option(help="Only contacts in this segment.")] = None,
) -> None:
    """Send now: enqueue the audience and (unless --queue) send it here with a progress bar."""
    settings = get_settings()
    db = open_database(settings)
    with db.session() as session:
        issue = get_issue(session, issue_id)
        added = schedule.start_now(session, settings, issue, utcnow(), list_slug=list_slug, segment=segment)
        audited(session, AuditAction.SEND, f"issue {issue_id}", f"{added} recipients")
        queued = ledger.status_counts(session, issue_id).get(DeliveryStatus.QUEUED, 0)
    out.print(f"issue {issue_id}: {added} recipient(s) enqueued", highlight=False)
    if queue or not queued:
        return
    dispatchers = Dispatcher.pool(settings, db, get_transport(settings), only_issue=issue_id)
    with Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=out) as bar:
        task = bar.add_task("send", total=queued)
        try:
            total = send_all(dispatchers, on_progress=lambda r: bar.advance(task, r.handled))
        except SendingStopped as exc:
            raise InputError(str(exc)) from None
    out.print(f"submitted {total.submitted}, failed {total.failed}, unknown {total.unknown}, "
              f"skipped (suppressed) {total.suppressed}", highlight=False)
    with db.session() as session:
        state = issue_state(session, get_issue(session, issue_id))
    out.print(f"issue {issue_id}: {state.label}", highlight=False)
    if not state.settled:  # "sent" would be false: nobody knows whether these recipients got it
        err.print(f"[yellow]warning:[/yellow] {settle_hint(state.unknown, issue_id=issue_id)}", highlight=False)
        raise typer.Exit(EXIT_UNSETTLED)


@issues_app.command("test")
@friendly_errors
def send_test(
    issue_id: int,
    to: Annotated[str, typer.Option("--to", help="Addresses for the test copy, separated by commas.")],
    language: Annotated[str | None, typer.Option("--language", help="Send the issue's version in this language.")] = None,
) -> None:
    """Send a test copy ("[Test] " subject, never counted in results) to staff addresses now."""
    settings = get_settings()
    db = open_database(settings)
    with db.session() as session:
        rows = queue_test_emails(session, settings, get_issue(session, issue_id), to, requested_by="cli", now=utcnow(),
                                 language=language)
        audited(session, AuditAction.SEND_TEST, f"issue {issue_id}", f"{len(rows)} addresses")
        ids = {row.id: row.to_email for row in rows}
    sender = TestEmailSender(settings, db, get_transport(settings), worker=default_worker_id())
    try:
        results = sender.send_queued(ids)
    except AuthenticationFailed as exc:
        raise InputError(f"the test is queued, not sent: {exc}") from None
    for row_id, (state, error) in results.items():
        line = "sent" if state == ConfirmationStatus.SENT else f"{state}" + (f" ({error})" if error else "")
        out.print(f"{ids[row_id]}: {line}", highlight=False)


@issues_app.command("approve")
@friendly_errors
def approve(issue_id: int) -> None:
    """Approve an issue that waits for approval: it goes out as scheduled."""
    with unit_of_work() as (_, session):
        issue = get_issue(session, issue_id)
        schedule.approve(issue, approved_by="cli", now=utcnow())
        audited(session, AuditAction.APPROVE, f"issue {issue_id}")
        state = issue_state(session, issue).label
    out.print(f"issue {issue_id} is {state}", highlight=False)


@issues_app.command("pause")
@friendly_errors
def pause(issue_id: int) -> None:
    """Pause a scheduled or sending issue; batches already in flight finish."""
    with unit_of_work() as (_, session):
        schedule.pause(get_issue(session, issue_id))
        audited(session, AuditAction.PAUSE, f"issue {issue_id}")
    out.print(f"issue {issue_id} paused")


@issues_app.command("resume")
@friendly_errors
def resume(issue_id: int) -> None:
    """Resume a paused issue: only what has not gone out yet is sent."""
    with unit_of_work() as (_, session):
        issue = get_issue(session, issue_id)
        schedule.resume(session, issue, utcnow())
        audited(session, AuditAction.RESUME, f"issue {issue_id}")
        state = issue_state(session, issue).label
    out.print(f"issue {issue_id} is {state}", highlight=False)


@issues_app.command("status")
@friendly_errors
def status(issue_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Where an issue's send stands: deliveries by state, and batches held as unknown."""
    with unit_of_work() as (_, session):
        issue = get_issue(session, issue_id)
        counts = ledger.status_counts(session, issue_id)
        data = {
            "id": issue.id, **describe(issue.status, counts.get(DeliveryStatus.UNKNOWN, 0)).as_dict(),
            "scheduled_at": issue.scheduled_at.isoformat() if issue.scheduled_at else None,
            "local_send_time": issue.local_send_time, "paused_reason": issue.paused_reason,
            "deliveries": {state.value: counts.get(state, 0) for state in DeliveryStatus},
            "unknown_batches": [batch_record(held) for held in ledger.unknown_batches(session, issue_id)],
        }
    if as_json:
        print_json(data)
        return
    out.print(f"issue {issue_id}: {data['label']}"
              + (f" (scheduled for {data['scheduled_at']})" if data["scheduled_at"] else ""), highlight=False)
    if data["paused_reason"]:
        err.print(f"paused: {data['paused_reason']}", highlight=False)
    print_rows([{"state": k, "count": v} for k, v in data["deliveries"].items()], False, {"state": "state", "count": "count"})
    for batch in data["unknown_batches"]:
        out.print(batch_line(batch), highlight=False)


@issues_app.command("resolve")
@friendly_errors
def resolve(
    batch_id: int,
    sent: Annotated[bool, typer.Option("--sent/--resend", help="--sent: the provider accepted it (check its activity "
                                       "log); --resend: queue it again, accepting possible duplicates.")],
) -> None:
    """Settle a batch held as unknown (its request left and no answer came)."""
    with unit_of_work() as (_, session):
        count = ledger.settle_by_staff(session, batch_id, sent=sent, now=utcnow(), who="staff (cli)")
    out.print(f"{count} deliveries marked {DeliveryStatus.SUBMITTED if sent else 'queued again'}")


@sending_app.command("resume")
@friendly_errors
def sending_resume() -> None:
    """Lift a stop of all sending (after fixing SENDGRID_API_KEY)."""
    with unit_of_work() as (_, session):
        lifted = lift_stop(session)
    out.print("sending resumed" if lifted else "sending was not stopped")


def worker() -> None:
    """Send until Ctrl-C or SIGTERM, NEWSLETTER_SEND_CONCURRENCY requests in flight (several workers
    may run at once against PostgreSQL)."""
    import logging
    import signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    db = open_database(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_worker(settings, db, get_transport(settings), stop)
    except KeyboardInterrupt:
        stop.set()


def tick(
    at: Annotated[Optional[str], typer.Option(help="Act as if it were this time (ISO; UTC unless it has an offset).")] = None,
    send_too: Annotated[bool, typer.Option("--send/--no-send", help="Also send what is due.")] = True,
    poll: Annotated[bool, typer.Option("--poll", help="Poll every feed first (the scheduler does it every "
                                       "NEWSLETTER_FEED_POLL_MINUTES), so new posts meet their automations.")] = False,
) -> None:
    """One round of due work as if it were --at: start scheduled issues, recover dead workers' rows,
    queue due sequence steps, send what is due, then reconcile batches held as unknown (and send
    what that queued again). For tests, catch-up and cron; exits 3 while deliveries stay unknown."""
    settings = get_settings()
    db = open_database(settings)
    now = _at(at)
    if poll:  # each feed fetched with no transaction open, a failing one recorded and passed over
        for result in post_service.poll_all(db, settings, now):
            if result.error:
                err.print(f"[yellow]feed {result.feed.id}:[/yellow] {escape(result.error)}", highlight=False)
    with db.session() as session:
        report = run_round(session, settings, now)
    sent = None
    transport = get_transport(settings) if send_too else None
    if transport is not None:
        sent = send_all(Dispatcher.pool(settings, db, transport, clock=lambda: now))
    settled = reconcile(settings, db, now, log_source=request_log(settings, transport) if transport else None,
                        notify=OperatorNotice(settings, transport) if transport else None)
    if transport is not None and settled.requeued:
        assert sent is not None
        sent.add(send_all(Dispatcher.pool(settings, db, transport, clock=lambda: now)))
    if transport is not None:  # outgoing webhook events due by then
        WebhookSender(settings, db, worker=default_worker_id() + "/webhooks", transport=transport,
                      clock=lambda: now).run_until_idle()
    out.print(f"{now.isoformat()}: {report.summary()}"
              + (f"; sent: submitted {sent.submitted}, failed {sent.failed}, unknown {sent.unknown}, "
                 f"suppressed {sent.suppressed}" if sent else "")
              + (f"; {settled.summary()}" if settled.busy() else ""),
              highlight=False)
    with db.session() as session:
        left = ledger.unknown_total(session)
    if left:
        err.print(f"[yellow]warning:[/yellow] {settle_hint(left)}", highlight=False)
        raise typer.Exit(EXIT_UNSETTLED)
