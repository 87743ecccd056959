"""Time ``subscribers.segments.count`` on a large synthetic audience, on SQLite and PostgreSQL.

Builds N contacts (with tags, custom fields, two lists, leads and suppressions) by bulk insert straight
into the tables of a fresh database, then counts a few typical segments ``--repeat`` times and prints
the median per segment with the query plan's summary. Nothing here is a test: figures depend on the
machine; the plans are what to compare.

    .venv/bin/python bench/segment_count.py --contacts 1000000 --repeat 5 \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--analyze] [--keep]
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.common import captured, floor_ms, postgres_database, write_rows
from bench.summary import Row, add_summary_argument, slowest, write_summary
from newsletter.database import Database, upgrade
from subscribers import segments
from subscribers.models import Installation
from subscribers.suppression import hash_with_salt

SEGMENTS: dict[str, dict[str, Any]] = {
    "list member": {"list": "newsletter"},
    "list + tag": {"all": [{"list": "newsletter"}, {"tag": "vip"}]},
    "field age >= 65": {"field": "age", "op": "gte", "value": 65},
    "field clinic = LA": {"field": "clinic", "op": "eq", "value": "LA"},
    "lead stage": {"lead_stage": ["new", "contacted"]},
    "created 30 days": {"created": {"within_days": 30}},
    "nested any/not": {"all": [{"list": "newsletter"},
                               {"any": [{"tag": "vip"}, {"lead_stage": "booked"},
                                        {"field": "clinic", "op": "eq", "value": "LA"}]},
                               {"not": {"tag": "events"}}]},
}
ZONES = ["America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Paris", "UTC"]
CLINICS = ["LA", "NYC", "SF", "London"]
STAGES = ["new"] * 8 + ["contacted"] * 5 + ["booked"] * 3 + ["attended"] * 2 + ["lost"] * 2
START = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime.now(UTC)
BATCH = 50_000


def chunks(n: int, salt: str) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """Deterministic audience, BATCH contacts at a time: about 70% confirmed newsletter subscribers,
    5% VIPs, 8% leads, 1.5% suppressed."""
    rnd = random.Random(42)
    span = int((NOW - START).total_seconds())
    for first in range(1, n + 1, BATCH):
        out: dict[str, list[tuple[Any, ...]]] = {k: [] for k in COLUMNS}
        for i in range(first, min(first + BATCH, n + 1)):
            email = f"contact{i}@example.org"
            created = START + timedelta(seconds=rnd.randrange(span))
            fields = {"clinic": rnd.choice(CLINICS), "age": rnd.randint(18, 85), "score": round(rnd.random() * 10, 1)}
            status = "active" if rnd.random() < 0.97 else rnd.choice(["unsubscribed", "bounced"])
            out["contacts"].append((i, email, hash_with_salt(salt, email), None, rnd.choice(ZONES),
                                    json.dumps(fields), status, rnd.choice(["form", "import", "api"]), created, created))
            for tag, share in (("blog", 0.30), ("vip", 0.05), ("events", 0.10)):
                if rnd.random() < share:
                    out["contact_tags"].append((i, tag))
            roll = rnd.random()
            if roll < 0.85:
                state = "confirmed" if roll < 0.70 else "pending" if roll < 0.80 else "unsubscribed"
                confirmed = created + timedelta(hours=rnd.randrange(48)) if state != "pending" else None
                out["subscriptions"].append((i, 1, state, "every", created, confirmed, 0))
            if rnd.random() < 0.15:
                out["subscriptions"].append((i, 2, "confirmed", "every", created, created, 0))
            if rnd.random() < 0.08:
                out["leads"].append((i, "email", "web_form", rnd.choice(STAGES), created, created, created))
            if rnd.random() < 0.015:
                out["suppressions"].append((hash_with_salt(salt, email), email, "hard_bounce", created))
        yield out


COLUMNS = {
    "contacts": "id, email, email_hash, name, timezone, custom_fields, status, source, created_at, updated_at",
    "contact_tags": "contact_id, tag",
    "subscriptions": "contact_id, list_id, status, frequency, created_at, confirmed_at, confirmation_sends",
    "leads": "contact_id, preferred_contact, source, stage, requested_at, created_at, updated_at",
    "suppressions": "email_hash, email, reason, created_at",
}


def load(engine: Engine, data: Iterator[dict[str, list[tuple[Any, ...]]]]) -> None:
    """Bulk insert: COPY on PostgreSQL, executemany in one transaction on SQLite."""
    postgres = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if not postgres:
            cursor.execute("PRAGMA cache_size = -1000000")  # 1 GB for this load only: random unique hashes
            cursor.execute("BEGIN")  # the driver runs in autocommit here: one transaction, not one per row
        cursor.execute("INSERT INTO lists (id, slug, name, description, double_opt_in, created_at) VALUES "
                       "(1, 'newsletter', 'Newsletter', '', true, CURRENT_TIMESTAMP), "
                       "(2, 'events', 'Events', '', true, CURRENT_TIMESTAMP)")
        for chunk in data:
            for table, batch in chunk.items():
                write_rows(cursor, table, COLUMNS[table], batch, postgres=postgres)
        if postgres:
            cursor.execute("SELECT setval(pg_get_serial_sequence('contacts', 'id'), max(id)) FROM contacts")
        raw.commit()
    finally:
        raw.close()


def plan(db: Database, statement: str, parameters: Any) -> str:
    """EXPLAIN of the exact statement ``count`` ran, cut to one line."""
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if db.engine.dialect.name == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return " / ".join(row[3] for row in cursor.fetchall())
        cursor.execute(f"EXPLAIN {statement}", parameters)
        lines = [row[0] for row in cursor.fetchall()]
    finally:
        raw.close()
    return " > ".join(line.lstrip(" ->").split("  (cost=")[0] for line in lines if "(cost=" in line)


def time_counts(db: Database, repeat: int) -> list[tuple[str, int, float, str]]:
    results = []
    for label, definition in SEGMENTS.items():
        timings, total = [], 0
        for _ in range(repeat):
            with db.session() as session, captured(db) as statements:
                started = time.perf_counter()
                total = segments.count(session, definition, now=NOW)  # one anchor for both backends
                timings.append((time.perf_counter() - started) * 1000)
        (statement, parameters), = [q for q in statements if "count(*)" in q[0]]  # one query per count
        results.append((label, total, statistics.median(timings), plan(db, statement, parameters)))
    return results


def report(backend: str, n: int, build_s: float, results: list[tuple[str, int, float, str]]) -> None:
    print(f"\n{backend}: {n:,} contacts (built in {build_s:.0f} s); median of the repeats, mailable only")
    print(f"{'segment':<20} {'count':>9} {'median ms':>10}  plan")
    for label, total, median, summary in results:
        print(f"{label:<20} {total:>9,} {median:>10.1f}  {summary}")


@contextmanager
def sqlite_database(path: Path | None, keep: bool) -> Iterator[Database]:
    folder = None if path else tempfile.TemporaryDirectory(prefix="segment-bench-")
    target = path or Path(folder.name) / "bench.db"  # type: ignore[union-attr]
    if target.exists():
        target.unlink()
    db = Database(f"sqlite:///{target}")
    try:
        yield db
    finally:
        db.engine.dispose()
        if folder and not keep:
            folder.cleanup()
        elif keep:
            print(f"kept {target}")


def run(db: Database, args: argparse.Namespace, backend: str,
        analyze: Callable[[Database], None]) -> list[tuple[str, int, float, str]]:
    started = time.perf_counter()
    upgrade(db.engine)
    with db.session() as session:
        salt = session.scalar(select(Installation.hash_salt))
    assert salt
    load(db.engine, chunks(args.contacts, salt))
    analyze(db)
    results = time_counts(db, args.repeat)
    report(backend, args.contacts, time.perf_counter() - started, results)
    floor = statistics.median(floor_ms(db, "SELECT count(*) FROM contacts") for _ in range(args.repeat))
    print(f"{'floor: count(*) contacts':<20} {'':>9} {floor:>10.1f}")
    SUMMARY.append(slowest("segment_count", "segments", {label: median for label, _, median, _ in results},
                           f"{args.contacts:,} contacts, {backend}", floor=floor,
                           floor_what="SELECT count(*) FROM contacts, same run"))
    return results


SUMMARY: list[Row] = []  # the rows for --summary-json


def analyze_sqlite(enabled: bool) -> Callable[[Database], None]:
    def go(db: Database) -> None:
        if enabled:
            with db.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
    return go


def analyze_postgres(db: Database) -> None:
    # Autovacuum would do this on a live server; VACUUM also sets the visibility map for index-only scans.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL, in a schema dropped afterwards")
    parser.add_argument("--sqlite-path", type=Path, help="build the SQLite database here (default: a temp folder)")
    parser.add_argument("--analyze", action="store_true", help="run ANALYZE on SQLite (never run by the app)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the databases for a closer look")
    add_summary_argument(parser)
    args = parser.parse_args()
    print("reproduce: .venv/bin/python bench/segment_count.py " + " ".join(sys.argv[1:]))
    counts: dict[str, list[int]] = {}
    if not args.skip_sqlite:
        with sqlite_database(args.sqlite_path, args.keep) as db:
            results = run(db, args, "SQLite" + (" (ANALYZE)" if args.analyze else ""), analyze_sqlite(args.analyze))
            counts["SQLite"] = [r[1] for r in results]
    if args.postgres:
        with postgres_database(args.postgres, "bench_segments", keep=args.keep) as db:
            counts["PostgreSQL"] = [r[1] for r in run(db, args, "PostgreSQL", analyze_postgres)]
    if len(counts) == 2:
        same = counts["SQLite"] == counts["PostgreSQL"]
        print(f"\ncounts identical on both backends: {'yes' if same else 'NO'}")
    write_summary(args.summary_json, SUMMARY)

if __name__ == "__main__":
    main()
