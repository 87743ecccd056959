"""Time the figures behind ``/metrics`` (``newsletter.reports.operations``) at 1,000,000 deliveries, on
SQLite and PostgreSQL, with each statement's time and query plan.

Builds the history of ``bench/reports.py`` (a year of issues and a sequence: ``--deliveries`` ledger rows,
``--events`` events), then puts a send in progress on top of it: an issue that is sending with
``--queued`` rows due over the last hour, a batch claimed, ``--recent`` rows submitted in the last
five minutes with as many SendGrid events, batches (one per thousand issue rows, one per sequence row,
some with errors, some held as unknown) and the scheduler's lease. Then reads the figures
``--repeat`` times and prints the median, and the slowest statements with their plans.

    .venv/bin/python bench/metrics_scrape.py [--deliveries 1000000] [--events 3000000] [--repeat 5] \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.common import floor_ms, postgres_database, write_rows
from bench.summary import Row, add_summary_argument, write_summary
from bench.reports import ISSUES, NOW, Plan, explain, load, sqlite_database
from newsletter.database import Database, upgrade
from newsletter.reports.operations import figures

LIVE_ISSUE = ISSUES + 1
ERRORS = ["gave up after 6 attempts: SendGrid server error (503)",
          "refused by the provider: SendGrid refused the request (400): subject: required",
          "gave up after 6 attempts: SendGrid could not be reached (timed out)"]


def add_live_send(db: Database, plan: Plan, queued: int, recent: int) -> dict[str, int]:
    """A send in progress on top of the history; returns the rows added per table."""
    postgres = db.engine.dialect.name == "postgresql"
    first = plan.total + 1
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if not postgres:
            cursor.execute("BEGIN")
        write_rows(cursor, "issues", "id, post_id, subject, preheader, status, tracking, html, text, compiled_at, "
                   "created_at, updated_at",
                   [(LIVE_ISSUE, 1, "Live", "", "sending", "full", "<p/>", "x", NOW, NOW, NOW)], postgres=postgres)
        # One batch per thousand issue rows and one per sequence row (steps go out a few at a time).
        batches = plan.issue_deliveries // 1000 + plan.step_deliveries + (recent + 1) // 1000 + 1
        rows = []
        for n in range(1, batches + 1):
            error, status = None, "submitted"
            if n % 97 == 0:
                error, status = ERRORS[n % len(ERRORS)], "failed"
            if n % 997 == 0:
                error, status = "no answer from SendGrid after the request was sent (timed out)", "unknown"
            rows.append((n, "sendgrid", "w", status, 1000, error, NOW - timedelta(days=1), NOW - timedelta(days=1)))
        write_rows(cursor, "send_batches", "id, transport, worker, status, size, error, created_at, finished_at", rows,
                   postgres=postgres)
        live = []
        for k in range(queued):
            live.append((first + k, LIVE_ISSUE, "queued", NOW - timedelta(seconds=3600 * k / queued), None, None, 0, NOW))
        for k in range(recent):
            at = NOW - timedelta(seconds=300 * k / recent)
            live.append((first + queued + k, LIVE_ISSUE, "submitted", at, at, batches - 1 - k // 1000, 1, NOW))
        live.append((first + queued + recent, LIVE_ISSUE, "claimed", NOW, None, batches, 1, NOW))
        write_rows(cursor, "deliveries", "id, issue_id, status, due_at, submitted_at, batch_id, attempts, created_at",
                   live, postgres=postgres)
        events = [(first + queued + k, LIVE_ISSUE, "processed" if k % 2 else "delivered", "sendgrid", f"live{k}",
                   NOW - timedelta(seconds=300 * k / recent), NOW - timedelta(seconds=300 * k / recent - 5), False)
                  for k in range(recent)]
        write_rows(cursor, "events", "delivery_id, issue_id, type, source, provider_event_id, occurred_at, recorded_at, "
                   "machine",
                   events, postgres=postgres)
        write_rows(cursor, "leases", "name, holder, expires_at", [("scheduler", "host:1:abc", NOW)], postgres=postgres)
        raw.commit()
        # The history's unknown rows belong to batches held as unknown.
        cursor = raw.cursor()
        if not postgres:
            cursor.execute("BEGIN")
        cursor.execute("UPDATE deliveries SET batch_id = 997 * (1 + id % 20) WHERE status = 'unknown'")
        raw.commit()
    finally:
        raw.close()
    return {"send_batches": batches, "deliveries": len(live), "events": len(events)}


@contextmanager
def timed_statements(db: Database) -> Iterator[dict[str, list[float]]]:
    """Seconds per statement (by its text) for the statements run inside the block."""
    times: dict[str, list[float]] = defaultdict(list)
    params: dict[str, Any] = {}

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        conn.info["started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        times[statement].append(time.perf_counter() - conn.info.pop("started"))
        params[statement] = parameters

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        yield times
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)
        times["__params__"] = params  # type: ignore[assignment]


def run(db: Database, plan: Plan, args: argparse.Namespace, backend: str) -> None:
    started = time.perf_counter()
    upgrade(db.engine)
    counts = load(db, plan)
    added = add_live_send(db, plan, args.queued, args.recent)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum would have done on a live server
    build = time.perf_counter() - started
    totals = []
    with timed_statements(db) as times:
        for _ in range(args.repeat):
            with db.snapshot() as session:
                began = time.perf_counter()
                result = figures(session, NOW)
                totals.append((time.perf_counter() - began) * 1000)
    params = times.pop("__params__")  # type: ignore[arg-type]
    floor = statistics.median(floor_ms(db) for _ in range(args.repeat))
    SUMMARY.append(Row("metrics_scrape", f"all /metrics figures, {counts['deliveries'] + added['deliveries']:,} "
                       f"deliveries, {backend}", round(statistics.median(totals), 1), "ms", floor=round(floor, 2),
                       floor_what="SELECT 1, same run"))
    print(f"\n{backend}: {counts['deliveries'] + added['deliveries']:,} deliveries, "
          f"{counts['events'] + added['events']:,} events, {added['send_batches']:,} batches (built in {build:.0f} s)")
    print(f"all figures: median {statistics.median(totals):.1f} ms of {args.repeat} "
          f"(min {min(totals):.1f}, max {max(totals):.1f})")
    print(f"  queued/issue {result.deliveries[('queued', 'issue')]:,}, oldest due {result.oldest_due_seconds['issue']:.0f} s, "
          f"submitted 1m/5m {result.submitted[60]:,}/{result.submitted[300]:,}, unknown batches "
          f"{result.unknown_batches} ({result.unknown_rows:,} rows), errors {result.provider_errors}, "
          f"events 5m {sum(result.webhook_events.values()):,}, lag {result.webhook_lag_seconds} s")
    print(f"{'median ms':>10}  statement")
    ranked = sorted(times.items(), key=lambda item: -statistics.median(item[1]))
    for statement, seconds in ranked:
        print(f"{statistics.median(seconds) * 1000:>10.1f}  {' '.join(statement.split())[:150]}")
        if args.plans or statistics.median(seconds) * 1000 >= args.plan_over_ms:
            print(explain(db, statement, params[statement]))


SUMMARY: list[Row] = []  # the rows for --summary-json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--queued", type=int, default=100_000, help="rows of the live send still queued")
    parser.add_argument("--recent", type=int, default=100_000, help="rows submitted (and events) in the last 5 min")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL, in a schema dropped afterwards")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--plans", action="store_true", help="print every statement's plan")
    parser.add_argument("--plan-over-ms", type=float, default=5.0, help="print the plans of statements slower than this")
    add_summary_argument(parser)
    args = parser.parse_args()
    print("reproduce: .venv/bin/python bench/metrics_scrape.py " + " ".join(sys.argv[1:]))
    plan = Plan(args.deliveries, args.events)
    if not args.skip_sqlite:
        with sqlite_database(None) as db:
            run(db, plan, args, "SQLite")
    if args.postgres:
        with postgres_database(args.postgres, "bench_metrics") as db:
            run(db, plan, args, "PostgreSQL")
    write_summary(args.summary_json, SUMMARY)


if __name__ == "__main__":
    main()
