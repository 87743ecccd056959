"""One way to show every report: a table for people, JSON for programs, CSV for spreadsheets.

Each report becomes an ``Output``: its JSON (``data``) and its tables. ``emit`` prints one form:

- **table** (rich): the columns marked ``brief`` (all of them in a one-row table, shown as lines);
  rates as percentages.
- **json**: ``data`` as is; rates are fractions (0.125), times ISO 8601 in UTC, None is null.
- **csv**: every column of every table; the tables follow one another, each with its header row,
  separated by one blank line. The first table holds the report's main figures. Every text cell
  goes through ``subscribers.csv_cells`` (the one rule for every CSV the product writes): one that a
  spreadsheet would run as a formula (=, +, -, @, tab or CR first, e.g. a name typed into the
  public form) is written with a leading ' so it stays text; plain numbers such as phone numbers
  are left alone.

Cells are plain text in the table form: a subject or a name in [brackets] is never taken as markup.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table as RichTable
from rich.text import Text

from newsletter.reports.by_language import LanguageStats
from newsletter.reports.email_stats import EmailStats, IssueReport, LinkStats, SequenceReport
from newsletter.reports.follow_up import FollowUpReport
from newsletter.reports.funnel import STAGES, Funnel, FunnelReport
from newsletter.sending.progress import settle_hint
from subscribers.csv_cells import SafeWriter

FORMATS = ("table", "json", "csv")
_WIDEST = 400  # characters: wider than any report's natural width


@dataclass
class Column:
    header: str
    key: str
    kind: str = "text"  # text | count | rate | time | flag
    brief: bool = True  # shown in the table form (CSV and JSON have every column)


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    in_csv: bool = True  # False: a view for people only, its figures are in another table


@dataclass
class Output:
    data: dict[str, Any]
    tables: list[Table]
    notes: list[str] = field(default_factory=list)  # lines under the tables (table form only)


# --- the three forms --------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_json(data: dict[str, Any], stream: IO[str]) -> None:
    stream.write(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return value  # text is made spreadsheet-safe by the writer


def write_csv(tables: list[Table], stream: IO[str]) -> None:
    writer = SafeWriter(stream, lineterminator="\n")
    for number, table in enumerate(t for t in tables if t.in_csv):
        if number:
            stream.write("\n")
        writer.writerow([c.key for c in table.columns])
        for row in table.rows:
            writer.writerow([_csv_cell(row.get(c.key)) for c in table.columns])


def _text(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "time" and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if kind == "flag":
        return "yes" if value else ""
    if kind == "count" and isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(value: Any, kind: str) -> Text:
    return Text(_text(value, kind))  # Text, not str: rich would read "[...]" in a value as markup


def write_tables(output: Output, console: Console) -> None:
    for table in output.tables:
        columns = [c for c in table.columns if c.brief]
        if len(table.rows) == 1 and len(columns) > 6:  # one wide row reads better as lines
            shown = RichTable("figure", "value", title=Text(table.title), title_justify="left")
            for c in columns:
                shown.add_row(c.header, _cell(table.rows[0].get(c.key), c.kind))
        else:
            shown = RichTable(*(c.header for c in columns), title=Text(table.title), title_justify="left")
            for row in table.rows:
                shown.add_row(*(_cell(row.get(c.key), c.kind) for c in columns))
            if not table.rows:
                shown.caption = "none"
        print_whole(shown, console)
    for note in output.notes:
        console.print(Text(note))


def print_whole(table: RichTable, console: Console) -> None:
    """Never squeeze a table into a narrow (or piped, 80-column) console: cut cells mislead."""
    natural = Measurement.get(console, console.options.update_width(_WIDEST), table).maximum
    if natural > console.width:  # print() caps widths at the console's, so use a wider one
        Console(file=console.file, width=natural, force_terminal=console.is_terminal,
                no_color=console.no_color).print(table)
    else:
        console.print(table)


def emit(output: Output, fmt: str, console: Console | None = None) -> None:
    if fmt == "json":
        write_json(output.data, sys.stdout)
    elif fmt == "csv":
        write_csv(output.tables, sys.stdout)
    else:
        write_tables(output, console or Console())


# --- the reports as tables --------------------------------------------------------------------------

_EMAIL_COLUMNS = [
    Column("recipients", "recipients", "count"), Column("sent", "sent", "count"),
    Column("delivered", "delivered", "count"), Column("bounced", "bounced", "count"),
    Column("dropped", "dropped", "count", brief=False), Column("pending", "pending", "count", brief=False),
    Column("failed", "failed", "count", brief=False), Column("unknown", "unknown", "count", brief=False),
    Column("suppressed", "suppressed", "count", brief=False),
    Column("opens (human)", "unique_opens", "count"), Column("opens (machine)", "machine_opens", "count"),
    Column("clicks (human)", "unique_clicks", "count"),
    Column("clicks (machine)", "machine_clicks", "count", brief=False),
    Column("CTR", "ctr", "rate"), Column("CTOR", "ctor", "rate"),
    Column("unsubscribes", "unsubscribes", "count"), Column("complaints", "complaints", "count"),
    Column("anonymous opens", "anonymous_opens", "count", brief=False),
    Column("anonymous clicks", "anonymous_clicks", "count", brief=False),
    Column("bookings", "bookings", "count"),
]
_LINK_COLUMNS = [Column("#", "rank"), Column("label", "label"), Column("url", "url"),
                 Column("booking", "is_booking", "flag"), Column("unique clickers", "unique_clickers", "count"),
                 Column("clicks", "clicks", "count")]


def _email_row(stats: EmailStats) -> dict[str, Any]:
    return {k: v for k, v in stats.as_dict().items() if k != "top_links"}


def _links_table(title: str, links: list[LinkStats]) -> Table:
    return Table(title, _LINK_COLUMNS, [{"rank": n, **vars(link)} for n, link in enumerate(links, 1)])


def issue_output(report: IssueReport) -> Output:
    # People read the label ("sent, 3 unknown"); CSV also keeps the stored status and the state name.
    head = [Column("issue", "issue_id"), Column("subject", "subject"), Column("status", "status", brief=False),
            Column("state", "state", brief=False), Column("status", "label")]
    row = {"issue_id": report.issue_id, "subject": report.subject, **report.state.as_dict(),
           **_email_row(report.stats)}
    notes = [settle_hint(report.state.unknown, issue_id=report.issue_id)] if report.state.unknown else []
    return Output(report.as_dict(), [Table(f"Issue {report.issue_id}", head + _EMAIL_COLUMNS, [row]),
                                     _links_table("Top links (human clicks)", report.stats.top_links)], notes)


_LANGUAGE_COLUMNS = [
    Column("language", "language"), Column("issue's own", "default", "flag"), Column("recipients", "recipients", "count"),
    Column("sent", "sent", "count"), Column("opened", "unique_opens", "count"), Column("open rate", "open_rate", "rate"),
    Column("clicked", "unique_clicks", "count"), Column("click rate", "click_rate", "rate"),
    Column("bookings", "bookings", "count"),
]


def with_languages(output: Output, rows: list[LanguageStats]) -> Output:
    """An issue's report with its results per language version (JSON: ``by_language``)."""
    data = [r.as_dict() for r in rows]
    return Output({**output.data, "by_language": data},
                  [*output.tables, Table("By language version", _LANGUAGE_COLUMNS, data)], output.notes)


def sequence_output(report: SequenceReport) -> Output:
    head = [Column("#", "position"), Column("step", "key"), Column("subject", "subject", brief=False),
            Column("active", "active", "flag", brief=False)]
    rows = [{"position": s.position, "key": s.key, "subject": s.subject, "active": s.active, **_email_row(s.stats)}
            for s in report.steps]
    rows.append({"position": None, "key": "total", "subject": None, "active": None, **_email_row(report.totals)})
    unknown = report.totals.unknown
    notes = [settle_hint(unknown, sequence=report.name)] if unknown else []
    return Output(report.as_dict(), [Table(f"Sequence {report.name}", head + _EMAIL_COLUMNS, rows),
                                     _links_table("Top links over all steps (human clicks)", report.totals.top_links)],
                  notes)


_FUNNEL_COLUMNS = [
    Column("group", "group"), Column("name", "name"),
    *(Column(stage, stage, "count") for stage in STAGES),
    *(Column(f"{stage} rate", f"{stage}_rate", "rate", brief=False) for stage in STAGES[1:]),
    Column("booked of leads", "booked_overall", "rate"), Column("attributed", "attributed", "count"),
    Column("median h to book", "median_hours_to_book"),
]


def _funnel_row(group: str, name: str, funnel: Funnel) -> dict[str, Any]:
    stages = funnel.stages()
    return {"group": group, "name": name, **{s["stage"]: s["count"] for s in stages},
            **{f"{s['stage']}_rate": s["rate_from_previous"] for s in stages[1:]},
            "booked_overall": stages[3]["rate_overall"], "attributed": funnel.attributed,
            "median_hours_to_book": funnel.median_hours_to_book}


def funnel_output(report: FunnelReport) -> Output:
    rows = [_funnel_row("all", "all", report.total)]
    rows += [_funnel_row("source", name, f) for name, f in report.by_source.items()]
    rows += [_funnel_row("sequence", name, f) for name, f in report.by_sequence.items()]
    stages = Table("Funnel", [Column("stage", "stage"), Column("leads", "count", "count"),
                                   Column("of previous", "rate_from_previous", "rate"),
                                   Column("of leads", "rate_overall", "rate")], report.total.stages(), in_csv=False)
    email_columns = [Column("kind", "kind"), Column("id", "id"), Column("name", "name"),
                     Column("subject", "subject", brief=False), Column("bookings", "bookings", "count"),
                     Column("by click", "by_click", "count"), Column("by open", "by_open", "count")]
    emails = Table("Bookings attributed to each email", email_columns, [vars(e) for e in report.bookings_by_email])
    window = f"leads created {_when(report.since, 'the start')} to {_when(report.until, 'now')}" + (
        f", source {report.source}" if report.source else "")
    # People see the stages first; CSV starts with the complete breakdown (its first row is the total).
    return Output(report.as_dict(), [stages, Table("By source and sequence", _FUNNEL_COLUMNS, rows), emails],
                  [window])


def _when(value: datetime | None, default: str) -> str:
    return value.isoformat() if value else default


def follow_up_output(report: FollowUpReport) -> Output:
    columns = [Column("last active", "last_active_at", "time"), Column("lead", "lead_id", brief=False),
               Column("name", "name"), Column("email", "email"), Column("phone", "phone"),
               Column("prefers", "preferred_contact"), Column("source", "source"), Column("stage", "stage"),
               Column("why", "why"), Column("why at", "why_at", "time", brief=False),
               Column("booking button", "booking_click", "flag"), Column("links", "links_clicked", "count"),
               Column("clicked", "clicked"), Column("last click", "last_click_at", "time"),
               Column("last opened", "last_opened_at", "time"), Column("opened", "opened_email", brief=False)]
    rows = []
    for lead in report.leads:
        reason = lead.reason
        rows.append({**lead.as_dict(), "clicked": lead.clicked_text, "why": reason.text(), "why_at": reason.at})
    return Output(report.as_dict(), [Table(f"Warm leads: opened or clicked in the last {report.days} days, "
                                           "not booked", columns, rows)])
