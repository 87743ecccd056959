"""Time what the staff segments pages ask of the database on a large synthetic audience: the counts
beside the saved segments (``segment_counts.count_all``: one ``count`` each, then kept five minutes),
and the builder's answer for a definition (``count`` and the first 10 contacts).

The audience is bench/segment_count.py's (same generator, same bulk load); its definitions stand for
the saved segments. Prints medians in ms; nothing here is a test.

    .venv/bin/python bench/segment_pages.py --contacts 100000 --repeat 5 \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.common import postgres_database
from bench.segment_count import (
    NOW,
    SEGMENTS,
    analyze_postgres,
    analyze_sqlite,
    chunks,
    load,
    sqlite_database,
)
from newsletter.database import Database, upgrade
from subscribers import segments
from subscribers.models import Installation

SAMPLE = 10  # what the builder shows beside the count (newsletter/web/staff/segments.py)


def median_ms(db: Database, repeat: int, work: Callable[[Any], Any]) -> tuple[float, Any]:
    timings, result = [], None
    for _ in range(repeat):
        with db.session() as session:
            started = time.perf_counter()
            result = work(session)
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), result


def run(db: Database, contacts: int, repeat: int, backend: str, analyze: Callable[[Database], None]) -> None:
    upgrade(db.engine)
    with db.session() as session:
        salt = session.scalar(select(Installation.hash_salt))
    assert salt
    load(db.engine, chunks(contacts, salt))
    analyze(db)
    definitions = list(SEGMENTS.values())
    print(f"\n{backend}: {contacts:,} contacts; median of {repeat}, ms")
    one_by_one, _ = median_ms(db, repeat, lambda s: [segments.count(s, d, now=NOW) for d in definitions])
    print(f"{'list counts: ' + str(len(definitions)) + ' saved segments':<40} all {one_by_one:8.1f} "
          "(made by the list's script, then kept five minutes)")
    for label, definition in SEGMENTS.items():
        counted, _ = median_ms(db, repeat, lambda s, d=definition: segments.count(s, d, now=NOW))
        sampled, _ = median_ms(db, repeat, lambda s, d=definition: segments.contacts(s, d, limit=SAMPLE, now=NOW))
        print(f"{'builder: ' + label:<40} count {counted:8.1f}   sample of {SAMPLE} {sampled:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL, in a schema dropped afterwards")
    args = parser.parse_args()
    print("reproduce: .venv/bin/python bench/segment_pages.py " + " ".join(sys.argv[1:]))
    with sqlite_database(None, False) as db:
        run(db, args.contacts, args.repeat, "SQLite", analyze_sqlite(False))
    if args.postgres:
        with postgres_database(args.postgres, "bench_segment_pages") as db:
            run(db, args.contacts, args.repeat, "PostgreSQL", analyze_postgres)


if __name__ == "__main__":
    main()
