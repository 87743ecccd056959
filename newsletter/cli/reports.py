"""newsletter report ...: how emails did, the lead funnel, and the warm leads to call.

A thin face over ``newsletter.reports``: the figures are defined and computed there, and every
command prints them the same way (``--json``, ``--csv`` or a table).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer

from newsletter.cli.common import friendly_errors, out, unit_of_work
from newsletter.errors import InputError
from newsletter.reports.email_stats import issue_report, sequence_report
from newsletter.reports.follow_up import DEFAULT_DAYS, follow_up_report
from newsletter.reports.funnel import funnel_report
from newsletter.reports.by_language import issue_by_language
from newsletter.reports.output import (Output, emit, follow_up_output, funnel_output, issue_output, sequence_output,
                                       with_languages)
from newsletter.issues import get_issue
from newsletter.versions import issue_language
from newsletter.sequences.service import get_sequence
from subscribers.db import utcnow
from subscribers.leads import SOURCES

report_app = typer.Typer(help="Reports: emails, the lead funnel, leads to follow up.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (rates as fractions, times in UTC).")]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV to stdout (tables separated by a blank line).")]


def _show(output: Output, as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise InputError("choose one of --json and --csv")
    emit(output, "json" if as_json else "csv" if as_csv else "table", out)


def _moment(text: str | None, option: str) -> datetime | None:
    """A date (midnight UTC) or a date-time with an offset; a naive date-time is refused, not guessed."""
    if text is None:
        return None
    raw = text.strip()
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(f"{option} {text!r} is not an ISO 8601 date (2025-03-01) or date-time with offset "
                         "(2025-03-01T09:00-08:00)") from None
    if value.tzinfo is None:
        raise InputError(f"{option} {text!r} has no time zone: give an offset, e.g. -08:00 or Z for UTC")
    return value


@report_app.command("issue")
@friendly_errors
def issue(issue_id: int, as_json: JsonOption = False, as_csv: CsvOption = False,
          by_language: Annotated[bool, typer.Option("--by-language", help="Add each language version's results: sent, opens, clicks, bookings.")] = False) -> None:
    """How one issue did: sent, delivered, human opens and clicks (machine ones apart), top links."""
    with unit_of_work() as (settings, session):
        output = issue_output(issue_report(session, issue_id))
        if by_language:
            output = with_languages(output, issue_by_language(session, issue_id, issue_language(
                get_issue(session, issue_id), settings)))
    _show(output, as_json, as_csv)


@report_app.command("sequence")
@friendly_errors
def sequence(name: str, as_json: JsonOption = False, as_csv: CsvOption = False) -> None:
    """How each step of a sequence did, with totals."""
    with unit_of_work() as (_, session):
        output = sequence_output(sequence_report(session, get_sequence(session, name)))
    _show(output, as_json, as_csv)


@report_app.command("funnel")
@friendly_errors
def funnel(
    since: Annotated[str | None, typer.Option(help="Leads created from (ISO date or date-time with offset).")] = None,
    until: Annotated[str | None, typer.Option(help="Leads created before (ISO date or date-time with offset).")] = None,
    source: Annotated[str | None, typer.Option(help=f"Only leads of this source: {', '.join(SOURCES)}.")] = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Leads → emailed → engaged → booked → attended, by source and sequence; bookings per email."""
    start, end = _moment(since, "--since"), _moment(until, "--until")
    with unit_of_work() as (_, session):
        output = funnel_output(funnel_report(session, since=start, until=end, source=source))
    _show(output, as_json, as_csv)


@report_app.command("follow-up")
@friendly_errors
def follow_up(
    days: Annotated[int, typer.Option(help="Look at opens and clicks of the last N days.")] = DEFAULT_DAYS,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Warm leads to call: opened or clicked an email lately, not booked; why, most recent first."""
    with unit_of_work() as (_, session):
        output = follow_up_output(follow_up_report(session, now=utcnow(), days=days))
    _show(output, as_json, as_csv)
