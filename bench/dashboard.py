"""Time each figure of the staff home page (``newsletter.reports.dashboard``) at 100,000 contacts and
1,000,000 deliveries, next to floors measured in the same run.

Fills a fresh database with ``bench.staff_data.fill`` (SQLite in a temp folder, and PostgreSQL in a
schema of its own with --postgres), then runs each function --repeat times, each in its own
session, and prints the median and p95 in milliseconds. The floors are what any page pays anyway:
``SELECT 1`` (a round trip) and ``SELECT count(*) FROM deliveries`` (one pass over the ledger's
smallest index). Nothing here is a test: timings depend on the machine.

    .venv/bin/python bench/dashboard.py [--repeat 20] [--postgres URL] [--skip-sqlite] [--plans] \
        [--sqlite-path FILE] [--reuse]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.common import captured, explain, postgres_database
from bench.staff_data import NOW, Size, fill
from bench.summary import Row, add_summary_argument, write_summary
from newsletter.database import Database, upgrade
from newsletter.reports import dashboard

ZONE = "America/Los_Angeles"


def functions() -> dict[str, Callable[[Session], str]]:
    def outgoing(s: Session) -> str:
        o = dashboard.outgoing(s)
        return (f"{len(o.scheduled)} scheduled, {len(o.sending)} sending"
                + "".join(f", {i.progress.percent}% of {i.progress.recipients:,}" for i in o.sending))

    def recent(s: Session) -> str:
        issues = dashboard.recent_issues(s, NOW)
        return ", ".join(f"#{i.issue_id} {i.stats.sent:,} sent/{i.stats.unique_opens:,} opens" for i in issues[:2]) + " ..."

    def month(s: Session) -> str:
        m = dashboard.month_comparison(s, zone=ZONE, now=NOW)
        return "; ".join(f"{name} {this:,} vs {last:,}" for name, this, last in m.rows())

    def weeks(s: Session) -> str:
        w = dashboard.engagement_by_week(s, zone=ZONE, now=NOW)
        return (f"{len(w)} weeks, sent {sum(x.sent for x in w):,}, opens {sum(x.human_opens for x in w):,}, "
                f"clicks {sum(x.human_clicks for x in w):,}")

    def funnel(s: Session) -> str:
        f = dashboard.lead_funnel(s)
        return f"{f.leads:,} leads, {f.booked:,} booked, {f.booked_by_email:,} by email"

    return {"floor: SELECT 1": lambda s: str(s.scalar(text("SELECT 1"))),
            "floor: count(*) deliveries": lambda s: f"{s.scalar(text('SELECT count(*) FROM deliveries')):,}",
            "outgoing (scheduled, sending)": outgoing, "recent_issues (5)": recent,
            "month_comparison": month, "engagement_by_week (12)": weeks, "lead_funnel": funnel}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def time_all(db: Database, repeat: int, plans: bool) -> list[tuple[str, float, float, str]]:
    rows = []
    for label, function in functions().items():
        timings, summary = [], ""
        for n in range(repeat + 1):  # the first run warms the cache and is not counted
            with db.session() as session, captured(db) as statements:
                started = time.perf_counter()
                summary = function(session)
                elapsed = (time.perf_counter() - started) * 1000
            if n:
                timings.append(elapsed)
            elif plans and not label.startswith("floor"):
                print(f"\n{label}: {len(statements)} statements")
                for statement, parameters in statements:
                    if statement.lstrip().upper().startswith("SELECT"):
                        print("  " + " ".join(statement.split())[:200] + " ...")
                        print(explain(db, statement, parameters))
        rows.append((label, statistics.median(timings), p95(timings), summary))
    return rows


def show(backend: str, counts: dict[str, int] | None, build_s: float | None,
         rows: list[tuple[str, float, float, str]], repeat: int) -> None:
    built = (f": {counts['contacts']:,} contacts, {counts['deliveries']:,} deliveries, {counts['events']:,} events, "
             f"{counts['leads']:,} leads, {counts['bookings']:,} bookings (built in {build_s:.0f} s)") if counts else ""
    print(f"\n{backend}{built}; {repeat} runs each")
    print(f"{'function':<32} {'median ms':>10} {'p95 ms':>8}  figures")
    for label, median, high, summary in rows:
        print(f"{label:<32} {median:>10.1f} {high:>8.1f}  {summary}")


@contextmanager
def sqlite_database(path: Path | None, reuse: bool) -> Iterator[tuple[Database, bool]]:
    folder = None if path else tempfile.TemporaryDirectory(prefix="dashboard-bench-")
    target = path or Path(folder.name) / "bench.db"  # type: ignore[union-attr]
    existing = reuse and target.exists()
    if target.exists() and not existing:
        target.unlink()
    db = Database(f"sqlite:///{target}")
    try:
        yield db, existing
    finally:
        db.engine.dispose()
        if folder:
            folder.cleanup()


def run(db: Database, backend: str, args: argparse.Namespace, existing: bool = False) -> None:
    counts, build_s = None, None
    if not existing:
        started = time.perf_counter()
        upgrade(db.engine)
        counts = fill(db, size=Size.scaled(args.contacts))
        build_s = time.perf_counter() - started
    else:
        upgrade(db.engine)  # a database built before a new migration gets it
    rows = time_all(db, args.repeat, args.plans)
    show(backend, counts, build_s, rows, args.repeat)
    floor = next(median for label, median, _, _ in rows if label == "floor: SELECT 1")
    SUMMARY.extend(Row("dashboard", f"{label}, {backend}", round(median, 1), "ms", floor=round(floor, 2),
                       floor_what="SELECT 1, same run")
                   for label, median, _, _ in rows if not label.startswith("floor"))


SUMMARY: list[Row] = []  # the rows for --summary-json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL, in a schema dropped afterwards")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--sqlite-path", type=Path, help="build the SQLite database here (default: a temp folder)")
    parser.add_argument("--reuse", action="store_true", help="with --sqlite-path: time an existing database")
    parser.add_argument("--plans", action="store_true", help="print each function's query plans")
    parser.add_argument("--contacts", type=int, default=Size.contacts, help="history size (deliveries scale with it)")
    add_summary_argument(parser)
    args = parser.parse_args()
    print("reproduce: .venv/bin/python bench/dashboard.py " + " ".join(sys.argv[1:]))
    if not args.skip_sqlite:
        with sqlite_database(args.sqlite_path, args.reuse) as (db, existing):
            run(db, "SQLite", args, existing)
    if args.postgres:
        with postgres_database(args.postgres, "bench_dashboard") as db:
            run(db, "PostgreSQL", args)
    write_summary(args.summary_json, SUMMARY)


if __name__ == "__main__":
    main()
