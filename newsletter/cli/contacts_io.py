"""newsletter contacts import / export: CSV files in and out (the work is in subscribers.csv_*)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.markup import escape
from rich.table import Column, Table

from newsletter import contact_records
from newsletter.staff.audit import CLI, AuditAction
from newsletter.cli.common import (
    err,
    friendly_errors,
    audited,
    open_database,
    out,
    print_json,
    unit_of_work,
)
from newsletter.cli.contacts import contacts_app
from newsletter.config import get_settings
from newsletter.errors import InputError
from subscribers.csv_import import (
    ImportProgress,
    ImportSummary,
    default_report_path,
    import_csv,
)


@contacts_app.command("import")
@friendly_errors
def contacts_import(
    file: Annotated[Path, typer.Argument(
        exists=True, dir_okay=False, readable=True,
        help="CSV with a header line; UTF-8, UTF-16, or another encoding: detected, or given with --encoding.")],
    list_slug: Annotated[str, typer.Option("--list", help="List to subscribe them to; made on first use.")],
    confirmed: Annotated[bool, typer.Option(
        "--confirmed", help="They opted in already (needs --consent-note): subscribed at once, no email.")] = False,
    consent_note: Annotated[str | None, typer.Option(
        "--consent-note", help="Where and how they agreed; kept with each consent record as the proof.")] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="Tag every contact (repeatable).")] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Where rejected rows are listed [default: FILE.report.csv next to FILE].")] = None,
    start_line: Annotated[int, typer.Option(
        "--start-line", min=0, help="Skip rows up to this line: resumes a stopped import.")] = 0,
    encoding: Annotated[str | None, typer.Option(
        "--encoding", help="The file's encoding (e.g. cp1252, shift_jis, iso-8859-7) [default: detected].")] = None,
    maps: Annotated[list[str] | None, typer.Option(
        "--map", metavar="HEADER=FIELD",
        help="Put a column in a field other than its guess (repeatable): FIELD is email, name, first_name, "
             "last_name, timezone, tags, language, custom (a custom field named by the header), custom:NAME, or ignore.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Import contacts from a CSV file and subscribe them to a list.

    Columns: email (required), name or first/last name, timezone, tags, language (en, es); any other column becomes a
    custom field. Without --confirmed, subscriptions wait for double opt-in. Suppressed addresses
    and people who left the list are skipped. Safe to run again: what is there counts as unchanged.
    UTF-8 and files with a byte-order mark are read as they are; another encoding is detected, and
    a file whose encoding cannot be told is refused (give it with --encoding).
    """
    settings = get_settings()
    report = report or default_report_path(file)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("Importing", total=file.stat().st_size)

        def progress(step: ImportProgress) -> None:
            bar.update(task, completed=step.bytes_read, description=f"Importing: {step.rows:,} rows")

        try:
            summary = import_csv(open_database(settings).engine, file, list_slug=list_slug,
                                 default_timezone=settings.default_timezone, confirmed=confirmed,
                                 consent_note=consent_note, tags=tags or [], report_path=report,
                                 start_line=start_line, progress=progress, encoding=encoding,
                                 mapping=_mapping(maps or []))
        except KeyboardInterrupt as exc:
            bar.stop()
            err.print("Stopped.", *map(escape, getattr(exc, "__notes__", [])), escape(f"Rejected rows so far: {report}"),
                      highlight=False)
            raise typer.Exit(130) from None
        except InputError as exc:  # a file broken half-way: the note says what is imported already
            raise InputError(" ".join([str(exc), *getattr(exc, "__notes__", [])])) from None
    with unit_of_work() as (_, session):  # the import commits in its own transactions, as it goes
        audited(session, AuditAction.IMPORT, f"list {list_slug}" if list_slug else None,
                summary.counts_line())
    if as_json:
        print_json(summary.as_dict())
    else:
        _print_summary(file, summary)
    if summary.rows and summary.rejected == summary.rows:  # a script must not take this for success
        err.print(f"[red]error:[/red] {escape(str(file))}: every row was rejected, so nothing was imported; "
                  f"the report says why: {escape(str(summary.report_path))}", highlight=False)
        raise typer.Exit(1)


def _mapping(maps: list[str]) -> dict[str, str]:
    """--map HEADER=FIELD options as a mapping (the last '=' splits: a header may hold one)."""
    mapping = {}
    for item in maps:
        header, sep, field_name = item.rpartition("=")
        if not sep or not header.strip():
            raise InputError(f"--map {item!r}: write HEADER=FIELD, e.g. --map 'E-post=email'")
        mapping[header.strip()] = field_name.strip()
    return mapping


def _print_summary(file: Path, summary: ImportSummary) -> None:
    title = f"{file.name}: {summary.rows:,} rows, {summary.duration_seconds:.1f} s"
    table = Table("outcome", Column("rows", justify="right"), title=title, title_justify="left")
    for label, value in (("added", summary.added), ("updated", summary.updated), ("unchanged", summary.unchanged),
                         ("rejected (see the report)", summary.rejected),
                         ("suppressed: skipped", summary.suppressed_skipped),
                         ("left this list earlier: skipped", summary.withdrawn_skipped),
                         ("repeated rows, merged", summary.duplicates)):
        table.add_row(label, f"{value:,}")
    out.print(table)
    out.print(f"Subscriptions: {summary.pending:,} now wait for confirmation, {summary.confirmed:,} confirmed.",
              highlight=False)
    if summary.ignored_columns:
        out.print(f"Ignored columns: {', '.join(summary.ignored_columns)}.", highlight=False)
    out.print(f"File {escape(summary.read_as)}.", highlight=False)
    out.print(f"Report: {summary.report_path}", highlight=False)


@contacts_app.command("export")
@friendly_errors
def contacts_export(
    file: Annotated[Path, typer.Argument(dir_okay=False, help="The CSV file to write (replaced if it exists).")],
    list_slug: Annotated[str | None, typer.Option(
        "--list", help="Only this list's contacts, with their status.")] = None,
    segment: Annotated[str | None, typer.Option(help="Only contacts in this segment.")] = None,
    include_suppressed: Annotated[bool, typer.Option(
        "--include-suppressed", help="Also contacts who must not be mailed (marked in a column).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Export contacts to a CSV file (readable by its owner only: it holds personal data)."""
    with unit_of_work() as (_, session):
        summary = contact_records.export_contacts(session, file, CLI, list_slug=list_slug, segment=segment,
                                                  include_suppressed=include_suppressed)
    if as_json:
        print_json({"path": str(summary.path), "rows": summary.rows, "columns": summary.columns})
    else:
        out.print(f"Exported {summary.rows:,} contacts to {summary.path}.", highlight=False)
