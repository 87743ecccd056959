"""Time the reports (issue, sequence, funnel, follow-up) on a large synthetic history, on SQLite and
PostgreSQL.

Builds, by bulk insert into a fresh database, a year of weekly issues and a five-step lead-nurture
sequence: ``--deliveries`` ledger rows (90% from issues, 10% from the sequence) and ``--events``
events (delivered, bounce, dropped, human and machine opens and clicks, unsubscribes, complaints,
some anonymous), with leads, stage changes, bookings and attributions. Then runs each report
``--repeat`` times and prints the median, with a few of its figures (the same on both backends).
Nothing here is a test: timings depend on the machine; ``--plans`` prints the query plans.

    .venv/bin/python bench/reports.py [--deliveries 1000000] [--events 3000000] [--repeat 3] \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--skip-sqlite] [--plans] \
        [--extra-indexes]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.common import captured, explain, floor_ms, postgres_database
from bench.summary import Row, add_summary_argument, slowest, write_summary
from newsletter.database import Database, upgrade
from newsletter.reports.email_stats import issue_report, sequence_report
from newsletter.reports.follow_up import follow_up_report
from newsletter.reports.funnel import funnel_report
from newsletter.sequences.service import get_sequence

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # one anchor for both backends
ISSUES = 18
STEPS = 5
LINKS_PER_ISSUE = 6
BOOK = "https://clinic.example/book"
SOURCES = ["web_form"] * 5 + ["phone"] * 2 + ["referral", "campaign", "import"]
CHUNK = 100_000

COLUMNS = {
    "contacts": "id, email, email_hash, name, timezone, custom_fields, status, source, created_at, updated_at",
    "posts": "id, title, excerpt, source_format, tags, blocks, reading_minutes, content_hash, created_at",
    "issues": "id, post_id, subject, preheader, status, tracking, html, text, compiled_at, created_at, updated_at",
    "sequences": "id, name, status, trigger_type, definition, created_at, updated_at, triggers_since, tracking",
    "sequence_steps": "id, sequence_id, key, position, active, delay_seconds, subject, preheader, html, text, "
                      "compiled_at",
    "links": "id, issue_id, step_id, position, url, label, is_booking",
    "leads": "id, contact_id, phone, preferred_contact, requested_at, source, stage, created_at, updated_at",
    "lead_stage_changes": "lead_id, from_stage, to_stage, by, at",
    "enrollments": "id, sequence_id, contact_id, generation, state, enrolled_at, source",
    "deliveries": "id, issue_id, enrollment_id, step_id, contact_id, status, due_at, attempts, created_at, "
                  "submitted_at",
    "events": "delivery_id, contact_id, issue_id, step_id, link_id, type, machine, source, url, occurred_at, "
              "recorded_at",
    "bookings": "id, lead_id, recorded_at, origin, source",
    "attributions": "booking_id, delivery_id, issue_id, step_id, kind, event_at",
}

# The indexes suggested to the lead (not in the migrations yet), as they would be: the two email
# indexes replace the single-column ones they start with. --extra-indexes applies them.
EXTRA_INDEXES = (
    "DROP INDEX ix_events_issue_id",
    "DROP INDEX ix_events_step_id",
    "CREATE INDEX ix_events_issue_kind ON events (issue_id, type, machine, delivery_id)",
    "CREATE INDEX ix_events_step_kind ON events (step_id, type, machine, delivery_id)",
    "CREATE INDEX ix_events_type_time ON events (type, occurred_at)",
)


def _status(n: int) -> str:
    """A delivery's status, from its id (so the pre-pass and the events agree without storing it)."""
    r = (n * 7919) % 1000
    for limit, status in ((940, "delivered"), (960, "bounced"), (970, "submitted"), (980, "suppressed"),
                          (985, "unknown"), (990, "dropped")):
        if r < limit:
            return status
    return "failed"


def _engaged(n: int) -> bool:
    return _status(n) == "delivered" and (n * 104729) % 100 < 45


@dataclass
class Plan:
    """The shape of the history, derived from the two sizes asked for."""

    deliveries: int
    events: int

    def __post_init__(self) -> None:
        self.step_deliveries = self.deliveries // 10 // STEPS * STEPS
        self.per_issue = (self.deliveries - self.step_deliveries) // ISSUES
        self.issue_deliveries = self.per_issue * ISSUES
        self.enrolled = self.step_deliveries // STEPS
        self.leads = self.enrolled * 5 // 4  # a quarter of the leads are never enrolled
        self.contacts = max(self.per_issue * 5 // 4, self.leads)
        self.total = self.issue_deliveries + self.step_deliveries
        fixed = sum(1 for n in range(1, self.total + 1) if _status(n) in ("delivered", "bounced", "dropped"))
        self.pool = sum(1 for n in range(1, self.total + 1) if _engaged(n))
        self.extra = max(0, self.events - fixed)  # engagement events, dealt out over the engaged pool


def _t(value: datetime, sqlite: bool) -> Any:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else value


def generate(plan: Plan, sqlite: bool) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """(table, rows) in foreign-key order, CHUNK rows at a time. Deterministic (seeded)."""
    rnd = random.Random(7)

    def t(value: datetime) -> Any:
        return _t(value, sqlite)

    def b(value: bool) -> Any:
        return int(value) if sqlite else value  # SQLite stores booleans as 0/1
    year = NOW - timedelta(days=365)
    yield "contacts", [(i, f"c{i}@example.org", f"h{i}", None, "UTC", "{}", "active", "import", t(year), t(year))
                       for i in range(1, plan.contacts + 1)]
    yield "posts", [(i, f"Post {i}", "", "text", "[]", "[]", 3, f"p{i}", t(year)) for i in range(1, ISSUES + 1)]
    sent_at = {i: NOW - timedelta(days=7 * (ISSUES - i) + 1) for i in range(1, ISSUES + 1)}
    yield "issues", [(i, i, f"Issue {i}", "", "sent", "full", "<p/>", "x", t(sent_at[i]), t(sent_at[i]), t(sent_at[i]))
                     for i in range(1, ISSUES + 1)]
    yield "sequences", [(1, "lead-nurture", "active", "lead_created", "{}", t(year), t(year), t(year), "full")]
    yield "sequence_steps", [(s, 1, f"step-{s}", s, b(True), 3 * 86400 * (s - 1), f"Step {s}", "", "<p/>", "x", t(year))
                             for s in range(1, STEPS + 1)]
    links: dict[tuple[str, int], list[tuple[int, str]]] = {}
    rows = []
    for kind, count, per in (("issue", ISSUES, LINKS_PER_ISSUE), ("step", STEPS, 2)):
        for owner in range(1, count + 1):
            for position in range(1, per + 1):
                url = BOOK if position == per else f"https://clinic.example/{kind}{owner}/{position}"
                rows.append((len(rows) + 1, owner if kind == "issue" else None, owner if kind == "step" else None,
                             position, url, "Book a consultation" if url == BOOK else f"Link {position}",
                             b(url == BOOK)))
                links.setdefault((kind, owner), []).append((len(rows), url))
    yield "links", rows

    # Leads of the past year, old enough for all five steps to have gone out (none due in the future).
    lead_created = {lead: NOW - timedelta(days=13, seconds=rnd.randrange(352 * 86400))
                    for lead in range(1, plan.leads + 1)}
    stage = {lead: rnd.choices(["new", "contacted", "booked", "attended", "lost"], [64, 20, 8, 3, 5])[0]
             for lead in lead_created}
    source = {lead: rnd.choice(SOURCES) for lead in lead_created}
    yield "leads", [(lead, lead, None, "email", t(at), source[lead], stage[lead], t(at), t(at))
                    for lead, at in lead_created.items()]
    booked_at = {lead: min(NOW, lead_created[lead] + timedelta(hours=rnd.randrange(1, 30 * 24)))
                 for lead in lead_created if stage[lead] in ("booked", "attended")}
    changes = [(lead, None, "new", "api", t(at)) for lead, at in lead_created.items()]
    changes += [(lead, "new", "booked", "booking", t(at)) for lead, at in booked_at.items()]
    changes += [(lead, "booked", "attended", "staff", t(booked_at[lead] + timedelta(days=3)))
                for lead in booked_at if stage[lead] == "attended"]
    changes += [(lead, "new", stage[lead], "staff", t(lead_created[lead] + timedelta(days=1)))
                for lead in lead_created if stage[lead] in ("contacted", "lost")]
    yield "lead_stage_changes", changes
    yield "enrollments", [(lead, 1, lead, 1, "completed", t(lead_created[lead]), "trigger")
                          for lead in range(1, plan.enrolled + 1)]

    # The ledger and its events, streamed: delivery n's events follow it in the same chunk.
    deliveries: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    first_step_delivery: dict[int, tuple[int, datetime]] = {}
    dealt = 0
    engaged_seen = 0

    def ledger() -> Iterator[tuple[int, int | None, int | None, int, datetime, int | None]]:
        n = 0
        for issue in range(1, ISSUES + 1):
            start = (issue * 7001) % plan.contacts
            for k in range(plan.per_issue):
                n += 1
                yield n, issue, None, (start + k) % plan.contacts + 1, sent_at[issue], None
        for lead in range(1, plan.enrolled + 1):
            for step in range(1, STEPS + 1):
                n += 1
                yield n, None, step, lead, lead_created[lead] + timedelta(days=3 * (step - 1), hours=1), lead

    for n, issue, step, contact, at, enrollment in ledger():
        status = _status(n)
        sent = status not in ("queued", "suppressed", "failed")
        deliveries.append((n, issue, enrollment, step, contact, status, t(at), 1, t(at), t(at) if sent else None))
        if step == 1:
            first_step_delivery[contact] = (n, at)
        email_links = links[("issue", issue) if issue else ("step", step)]  # type: ignore[index]
        provider = {"delivered": "delivered", "bounced": "bounce", "dropped": "dropped"}.get(status)
        if provider:
            events.append((n, contact, issue, step, None, provider, b(False), "sendgrid", None,
                           t(at + timedelta(minutes=1)), t(at + timedelta(minutes=1))))
        if status == "delivered" and _engaged(n):
            engaged_seen += 1
            count = engaged_seen * plan.extra // plan.pool - dealt
            dealt += count
            for j in range(count):
                when = min(NOW, at + timedelta(seconds=rnd.randrange(7 * 86400)))
                kind = "open" if j == 0 else rnd.choices(
                    ["open", "click", "unsubscribe", "spamreport", "group_unsubscribe"], [93, 4, 1.5, 0.5, 1])[0]
                machine = kind in ("open", "click") and rnd.random() < (0.3 if kind == "open" else 0.08)
                link_id, url = rnd.choice(email_links) if kind == "click" else (None, None)
                anonymous = issue == ISSUES and rnd.random() < 0.05  # some of one issue under anonymous tracking
                events.append((None if anonymous else n, None if anonymous else contact, issue, step, link_id, kind,
                               b(machine), "first_party", url, t(when), t(when)))
        if len(deliveries) >= CHUNK:
            yield "deliveries", deliveries
            yield "events", events
            deliveries, events = [], []
    yield "deliveries", deliveries
    yield "events", events

    bookings, attributions = [], []
    for booking_id, (lead, at) in enumerate(sorted(booked_at.items()), start=1):
        bookings.append((booking_id, lead, t(at), "api", source[lead]))
        if lead in first_step_delivery and rnd.random() < 0.6:
            delivery, sent = first_step_delivery[lead]
            attributions.append((booking_id, delivery, None, 1, "click", t(min(at, sent + timedelta(hours=2)))))
    yield "bookings", bookings
    yield "attributions", attributions


def load(db: Database, plan: Plan) -> dict[str, int]:
    """Bulk insert: COPY on PostgreSQL, executemany in one transaction on SQLite. Returns row counts."""
    postgres = db.engine.dialect.name == "postgresql"
    counts: dict[str, int] = {}
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if not postgres:
            cursor.execute("PRAGMA cache_size = -1000000")  # 1 GB for this load only
            cursor.execute("BEGIN")
        for table, rows in generate(plan, sqlite=not postgres):
            counts[table] = counts.get(table, 0) + len(rows)
            if not rows:
                continue
            if postgres:
                with cursor.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(COLUMNS[table].split(", ")))
                cursor.executemany(f"INSERT INTO {table} ({COLUMNS[table]}) VALUES ({marks})", rows)
        raw.commit()
    finally:
        raw.close()
    return counts


# --- timing -----------------------------------------------------------------------------------------


def reports(plan: Plan) -> dict[str, Callable[[Session], tuple[str, dict[str, Any]]]]:
    middle = ISSUES // 2

    def issue(s: Session) -> tuple[str, dict[str, Any]]:
        d = issue_report(s, middle).as_dict()
        return f"recipients {d['recipients']:,}, opens {d['unique_opens']:,}, clicks {d['unique_clicks']:,}", d

    def sequence(s: Session) -> tuple[str, dict[str, Any]]:
        d = sequence_report(s, get_sequence(s, "lead-nurture")).as_dict()
        tot = d["totals"]
        return f"recipients {tot['recipients']:,}, clicks {tot['unique_clicks']:,}, bookings {tot['bookings']:,}", d

    def funnel(**kw: Any) -> Callable[[Session], tuple[str, dict[str, Any]]]:
        def go(s: Session) -> tuple[str, dict[str, Any]]:
            d = funnel_report(s, **kw).as_dict()
            tot = d["total"]
            return (f"leads {tot['leads']:,}, engaged {tot['engaged']:,}, booked {tot['booked']:,}, "
                    f"median {tot['median_hours_to_book']} h"), d
        return go

    def follow_up(s: Session) -> tuple[str, dict[str, Any]]:
        d = follow_up_report(s, now=NOW).as_dict()
        return f"warm leads {len(d['leads']):,}", d

    return {
        f"issue {middle} ({plan.per_issue:,} deliveries)": issue,
        f"sequence ({STEPS} steps)": sequence,
        "funnel (all leads)": funnel(),
        "funnel (90 days, web_form)": funnel(since=NOW - timedelta(days=90), source="web_form"),
        "follow-up (14 days)": follow_up,
    }


def time_reports(db: Database, plan: Plan, repeat: int, plans: bool) -> list[tuple[str, float, str, dict[str, Any]]]:
    results = []
    for label, report in reports(plan).items():
        timings: list[float] = []
        summary, data = "", {}
        for n in range(repeat):
            with db.session() as session, captured(db) as statements:
                started = time.perf_counter()
                summary, data = report(session)
                timings.append((time.perf_counter() - started) * 1000)
            if plans and n == 0:
                print(f"\n{label}: {len(statements)} statements")
                for statement, parameters in statements:
                    if statement.lstrip().upper().startswith("SELECT"):
                        print("  " + " ".join(statement.split())[:160] + " ...")
                        print(explain(db, statement, parameters))
        results.append((label, statistics.median(timings), summary, data))
    return results


def print_results(backend: str, counts: dict[str, int], build_s: float,
                  results: list[tuple[str, float, str, dict[str, Any]]]) -> None:
    print(f"\n{backend}: {counts['deliveries']:,} deliveries, {counts['events']:,} events, {counts['leads']:,} leads, "
          f"{counts['bookings']:,} bookings (built in {build_s:.0f} s); median of the repeats")
    print(f"{'report':<34} {'median ms':>10}  figures")
    for label, median, summary, _ in results:
        print(f"{label:<34} {median:>10.1f}  {summary}")


# --- databases --------------------------------------------------------------------------------------


@contextmanager
def sqlite_database(path: Path | None) -> Iterator[Database]:
    folder = None if path else tempfile.TemporaryDirectory(prefix="reports-bench-")
    target = path or Path(folder.name) / "bench.db"  # type: ignore[union-attr]
    if target.exists():
        target.unlink()
    db = Database(f"sqlite:///{target}")
    try:
        yield db
    finally:
        db.engine.dispose()
        if folder:
            folder.cleanup()


def run(db: Database, args: argparse.Namespace, plan: Plan, backend: str) -> list[dict[str, Any]]:
    started = time.perf_counter()
    upgrade(db.engine)
    counts = load(db, plan)
    if args.extra_indexes:
        with db.engine.begin() as conn:
            for statement in EXTRA_INDEXES:
                conn.exec_driver_sql(statement)
    if db.engine.dialect.name == "postgresql":
        # Autovacuum would do this on a live server; VACUUM also sets the visibility map.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    elif args.analyze:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    build_s = time.perf_counter() - started
    results = time_reports(db, plan, args.repeat, args.plans)
    print_results(backend, counts, build_s, results)
    floor = statistics.median(floor_ms(db, "SELECT count(*) FROM deliveries") for _ in range(args.repeat))
    print(f"{'floor: count(*) deliveries':<34} {floor:>10.1f}")
    SUMMARY.append(slowest("reports", "reports", {label: median for label, median, _, _ in results},
                           f"{counts['deliveries']:,} deliveries, {backend}", floor=floor,
                           floor_what="SELECT count(*) FROM deliveries, same run"))
    return [json.loads(json.dumps(r[3], default=str)) for r in results]


SUMMARY: list[Row] = []  # the rows for --summary-json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL, in a schema dropped afterwards")
    parser.add_argument("--sqlite-path", type=Path, help="build the SQLite database here (default: a temp folder)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--analyze", action="store_true", help="run ANALYZE on SQLite (the app never does)")
    parser.add_argument("--plans", action="store_true", help="print each report's query plans")
    parser.add_argument("--extra-indexes", action="store_true", help="add the indexes suggested for the reports")
    add_summary_argument(parser)
    args = parser.parse_args()
    print("reproduce: .venv/bin/python bench/reports.py " + " ".join(sys.argv[1:]))
    plan = Plan(args.deliveries, args.events)
    extra = " + suggested indexes" if args.extra_indexes else ""
    figures: dict[str, list[dict[str, Any]]] = {}
    if not args.skip_sqlite:
        with sqlite_database(args.sqlite_path) as db:
            figures["SQLite"] = run(db, args, plan, "SQLite" + (" (ANALYZE)" if args.analyze else "") + extra)
    if args.postgres:
        with postgres_database(args.postgres, "bench_reports") as db:
            figures["PostgreSQL"] = run(db, args, plan, "PostgreSQL" + extra)
    if len(figures) == 2:
        same = figures["SQLite"] == figures["PostgreSQL"]
        print(f"\nfigures identical on both backends: {'yes' if same else 'NO'}")
    write_summary(args.summary_json, SUMMARY)


if __name__ == "__main__":
    main()
