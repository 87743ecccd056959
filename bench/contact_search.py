"""The contacts pages' queries at 100,000 contacts and 1,000,000 deliveries: the search (an address
prefix, a whole address, a name prefix, nothing found), filters, a page deep in the keyset walk, and
the timeline of the contact with the longest history; median time per query and each query's plan.

Fills a database with ``bench.staff_data.fill`` (or reuses one filled by ``bench/staff_pages.py
--sqlite-path FILE``; its contacts have names, tags and custom fields), then times the service
functions the pages call. Nothing here is a test: the target is every page under 300 ms.

    .venv/bin/python bench/contact_search.py [--sqlite-path FILE [--reuse]] [--postgres URL] [--repeat 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.common import captured, explain, floor_ms, postgres_database
from bench.staff_data import Size, fill
from bench.summary import Row, add_summary_argument, slowest, write_summary
from newsletter.contact_timeline import timeline
from newsletter.database import Database, upgrade
from newsletter.models import Delivery
from subscribers.contact_search import ContactQuery, search_contacts
from subscribers.models import Contact

def _time(db: Database, label: str, work: Callable[[Any], object], repeat: int) -> None:
    timings = []
    for n in range(repeat + 1):
        with db.session() as s:
            started = time.perf_counter()
            if n == repeat:
                with captured(db) as seen:
                    work(s)
            else:
                work(s)
            if n:
                timings.append((time.perf_counter() - started) * 1000)
    median = statistics.median(timings)
    print(f"\n{label:<52} {median:8.1f} ms{'  over 300 ms' if median >= 300 else ''}")
    MEDIANS[label] = median
    for statement, parameters in seen:
        if "FROM lists" not in statement.split("WHERE")[0] and "FROM segments" not in statement:  # look-ups by key
            print(explain(db, statement, parameters))


SUMMARY: list[Row] = []  # the rows for --summary-json
MEDIANS: dict[str, float] = {}  # label -> median ms, of the backend being timed
TARGET_MS = 300


def run(db: Database, backend: str, repeat: int, reuse: bool, size: Size = Size()) -> None:
    upgrade(db.engine)
    MEDIANS.clear()
    if not reuse:
        counts = fill(db, size=size)
        print(f"{backend}: {counts['contacts']:,} contacts, {counts['deliveries']:,} deliveries")
    with db.session() as s:
        middle = s.scalar(select(func.max(Contact.id))) // 2
        heaviest = s.scalar(select(Delivery.contact_id).where(Delivery.contact_id.is_not(None))
                            .group_by(Delivery.contact_id).order_by(func.count().desc()).limit(1))
        contact = s.get(Contact, heaviest)
        address = contact.email
    print(f"\n{backend}; median of {repeat}")
    cases: list[tuple[str, ContactQuery, int | None]] = [
        ("the first page, no filter", ContactQuery(), None),
        ("a page half-way down", ContactQuery(), middle),
        ("address prefix 'reader5'", ContactQuery(term="reader5"), None),
        ("address prefix 'reader12345'", ContactQuery(term="reader12345"), None),
        ("a whole address", ContactQuery(term=address), None),
        ("name prefix 'ana ga'", ContactQuery(term="ana ga"), None),
        ("nothing found 'zzz'", ContactQuery(term="zzz"), None),
        ("status unsubscribed", ContactQuery(status="unsubscribed"), None),
        ("list newsletter, status suppressed", ContactQuery(list_slug="newsletter", status="suppressed"), None),
        ("search 'ana' within list newsletter", ContactQuery(term="ana", list_slug="newsletter"), None),
    ]
    for label, query, before in cases:
        _time(db, label, lambda s, q=query, b=before: search_contacts(s, q, before=b), repeat)
    _time(db, f"timeline of contact {heaviest}",
          lambda s: timeline(s, s.get(Contact, heaviest)), repeat)
    floor = statistics.median(floor_ms(db) for _ in range(repeat))
    SUMMARY.append(slowest("contact_search", "queries", MEDIANS, backend, floor=floor, floor_what="SELECT 1, same run",
                           target_ms=TARGET_MS, each="page"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--sqlite-path", type=Path)
    parser.add_argument("--reuse", action="store_true", help="with --sqlite-path: an existing database")
    parser.add_argument("--contacts", type=int, default=Size.contacts, help="history size (deliveries scale with it)")
    add_summary_argument(parser)
    args = parser.parse_args()
    size = Size.scaled(args.contacts)
    print("reproduce: .venv/bin/python bench/contact_search.py " + " ".join(sys.argv[1:]))
    if not args.skip_sqlite:
        folder = tempfile.TemporaryDirectory(prefix="contact-search-")
        path = args.sqlite_path or Path(folder.name) / "bench.db"
        reuse = args.reuse and path.exists()
        if path.exists() and not reuse:
            path.unlink()
        db = Database(f"sqlite:///{path}")
        try:
            run(db, "SQLite", args.repeat, reuse, size)
        finally:
            db.engine.dispose()
            folder.cleanup()
    if args.postgres:
        with postgres_database(args.postgres, "bench_contact_search") as db:
            run(db, "PostgreSQL", args.repeat, False, size)
    write_summary(args.summary_json, SUMMARY)


if __name__ == "__main__":
    main()
