"""newsletter sequences ...: drips for new subscribers and consultation leads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from newsletter.cli.common import err, friendly_errors, out, print_json, print_rows, unit_of_work
from newsletter.errors import InputError
from newsletter.sending.progress import batch_line
from newsletter.sequences import service
from newsletter.sequences.definition import health_warnings, load_yaml
from subscribers.db import utcnow
from subscribers.states import DeliveryStatus, EnrollmentState, SequenceStatus

sequences_app = typer.Typer(help="Sequences: drips for new subscribers and leads.", no_args_is_help=True)


@sequences_app.command("load")
@friendly_errors
def load(
    file: Path,
    reach_completed: Annotated[bool, typer.Option(help="New steps at the end also reach contacts who had finished.")] = False,
) -> None:
    """Create or update a sequence from a YAML file (validated first; nothing changes on an error)."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{file}: {exc.strerror or exc}") from None
    definition = load_yaml(text, source=str(file))
    for warning in health_warnings(definition):
        err.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
    with unit_of_work() as (settings, session):
        report = service.load(session, settings, definition, utcnow(), reach_completed=reach_completed)
        name, status = report.sequence.name, report.sequence.status
    verb = "created" if report.created else "updated"
    out.print(f"sequence {name!r} {verb} ({status})"
              + (f"; steps added {report.added}" if report.added and not report.created else "")
              + (f"; changed {report.changed}" if report.changed else "")
              + (f"; removed {report.removed} (never sent again)" if report.removed else "")
              + (f"; {report.reopened} finished contacts will get the new steps" if report.reopened else ""),
              highlight=False)


@sequences_app.command("export")
@friendly_errors
def export(name: str, out_file: Annotated[Optional[Path], typer.Option("--out")] = None) -> None:
    """Write a sequence as YAML (to stdout, or --out FILE)."""
    with unit_of_work() as (_, session):
        text = service.export(service.get_sequence(session, name))
    if out_file:
        out_file.write_text(text, encoding="utf-8")
        out.print(f"written to {out_file}", highlight=False)
    else:
        typer.echo(text, nl=False)


@sequences_app.command("list")
@friendly_errors
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Sequences with their trigger, steps and enrolments."""
    with unit_of_work() as (_, session):
        rows = [service.summary(session, s) for s in service.all_sequences(session)]
    if as_json:
        print_json(rows)
        return
    states = [state.value for state in EnrollmentState]  # a column each: how many enrolments are in it
    print_rows([{"name": r["name"], "status": r["status"], "trigger": f"{r['trigger']['type']} {r['trigger']['value'] or ''}".strip(),
                 "steps": len(r["steps"]), **{state: r["enrollments"][state] for state in states}} for r in rows],
               False, {k: k for k in ("name", "status", "trigger", "steps", *states)})


@sequences_app.command("show")
@friendly_errors
def show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One sequence: settings, and per step how many wait, went out, failed or were skipped."""
    with unit_of_work() as (_, session):
        data = service.summary(session, service.get_sequence(session, name))
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{data['name']}[/bold] ({data['status']}); trigger {data['trigger']['type']} "
              f"{data['trigger']['value'] or ''}; window {data['window']}; goals {data['goals']}", highlight=False)
    out.print(f"enrolments: {data['enrollments']}", highlight=False)
    columns = tuple(state.value for state in (DeliveryStatus.SUBMITTED, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED,
                                              DeliveryStatus.UNKNOWN, DeliveryStatus.SUPPRESSED))
    print_rows([{"#": s["position"], "subject": s["subject"], "delay": _delay(s["delay_seconds"]), "waiting": s["waiting"],
                 **{k: s["deliveries"].get(k, 0) for k in columns}}
                for s in data["steps"]], False, {k: k for k in ("#", "subject", "delay", "waiting", *columns)})
    for batch in data["unknown_batches"]:
        out.print(batch_line(batch), highlight=False)


def _delay(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    return f"{days}d{rest // 3600}h" if rest else f"{days}d"


@sequences_app.command("pause")
@friendly_errors
def pause(name: str) -> None:
    """Hold everyone where they are."""
    with unit_of_work() as (_, session):
        service.set_status(service.get_sequence(session, name), SequenceStatus.PAUSED)
    out.print(f"sequence {name!r} paused")


@sequences_app.command("resume")
@friendly_errors
def resume(name: str) -> None:
    """Carry on: steps that came due meanwhile go out inside the send window."""
    with unit_of_work() as (_, session):
        service.set_status(service.get_sequence(session, name), SequenceStatus.ACTIVE)
    out.print(f"sequence {name!r} resumed")


@sequences_app.command("enroll")
@friendly_errors
def enroll(name: str, email: str) -> None:
    """Enrol one contact by hand."""
    with unit_of_work() as (_, session):
        enrollment = service.enroll_contact(session, service.get_sequence(session, name), email, utcnow())
        due = enrollment.next_due_at
    out.print(f"enrolled; the first step is due {due.isoformat() if due else 'now'}", highlight=False)


@sequences_app.command("tracking")
@friendly_errors
def tracking(name: str, mode: Annotated[str, typer.Argument(help="full | anonymous | off")]) -> None:
    """Change first-party tracking of a sequence's emails from now on."""
    with unit_of_work() as (settings, session):
        service.set_tracking(session, settings, service.get_sequence(session, name), mode, utcnow())
    out.print(f"sequence {name!r}: tracking {mode}", highlight=False)
