"""Time ``subscribers.csv_import.import_csv`` on a generated CSV file, on SQLite and PostgreSQL.

Writes N rows (names, some time zones and tags, two custom fields, 0.5% bad addresses, 1% repeated
addresses) to a temp folder, then ``--repeat`` times: makes a fresh database (SQLite file, or a
PostgreSQL schema dropped afterwards), imports the file, and imports it again (every row unchanged).
Each import runs in a child process, so the peak RSS and CPU time reported are that import's own
(CPU: this process, not the database server). Prints the median per backend. Nothing here is a
test: figures depend on the machine (and on what else runs on it).

    .venv/bin/python bench/import_contacts.py --rows 100000 --repeat 3 \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--batch-size 1000] [--encoding cp1252]

``--encoding`` writes the file in another encoding than UTF-8 (Windows-1252: the names' accents are
then bytes that are not UTF-8), so the import detects it: the cost of detection, measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from newsletter.database import make_engine, upgrade
from tests.pgschema import postgres_schema
from subscribers.csv_import import import_csv

FIRST = ["Ann", "Bob", "Chloë", "Dan", "Eve", "Fatima", "Gus", "Hana", "Iñigo", "Jo"]
LAST = ["Lee", "Smith", "García", "Nguyen", "Okafor", "Müller", "Rossi", "Kim"]
ZONES = ["", "", "", "America/New_York", "Europe/London", "Europe/Paris", "Asia/Tokyo"]
TAGS = ["", "", "blog", "vip", "blog;events", "spring-open-day"]
CLINICS = ["LA", "NYC", "SF", "London"]


def write_file(path: Path, rows: int, encoding: str = "utf-8") -> None:
    rnd = random.Random(7)
    with path.open("w", encoding=encoding, newline="") as file:
        file.write("Email,First Name,Last Name,Time Zone,Tags,Clinic,Member since\n")
        for i in range(rows):
            roll = rnd.random()
            if roll < 0.005:
                email = f"broken-{i}.example.org"
            elif roll < 0.015 and i:
                email = f"Contact{rnd.randrange(i)}@Example.org"  # repeats an earlier row
            else:
                email = f"contact{i}@example.org"
            file.write(f"{email},{rnd.choice(FIRST)},{rnd.choice(LAST)},{rnd.choice(ZONES)},{rnd.choice(TAGS)},"
                       f"{rnd.choice(CLINICS)},{2015 + i % 10}\n")


def worker(url: str, path: Path, batch_size: int) -> None:
    """One import in this process; prints its figures as JSON for the parent."""
    engine = make_engine(url)  # the app's engine: SQLite pragmas included
    startup = resource.getrusage(resource.RUSAGE_SELF)
    startup_cpu = startup.ru_utime + startup.ru_stime
    began = time.perf_counter()
    summary = import_csv(engine, path, list_slug="newsletter", default_timezone="America/Los_Angeles",
                         batch_size=batch_size, report_path=path.with_name(f"report-{secrets.token_hex(4)}.csv"))
    seconds = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime - startup_cpu  # this process only: not the database server's
    counts = {k: v for k, v in summary.as_dict().items() if isinstance(v, int) and k not in ("start_line", "last_line")}
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak_mb, "counts": counts}))


def timed_import(url: str, path: Path, batch_size: int) -> dict[str, Any]:
    result = subprocess.run([sys.executable, __file__, "--worker", url, str(path), "--batch-size", str(batch_size)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextmanager
def sqlite_database(folder: Path, n: int) -> Iterator[str]:
    target = folder / f"bench-{n}.db"
    url = f"sqlite:///{target}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)


@contextmanager
def postgres_database(base: str) -> Iterator[str]:
    with postgres_schema(base, "bench_import") as url:
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


def run(backend: str, databases: Any, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    first, again = [], []
    for n in range(args.repeat):
        with databases(n) as url:
            first.append(timed_import(url, path, args.batch_size))
            again.append(timed_import(url, path, args.batch_size))
        print(f"  {backend} run {n + 1}: {first[-1]['seconds']:.2f} s (CPU {first[-1]['cpu']:.2f} s), "
              f"again {again[-1]['seconds']:.2f} s", flush=True)
    counts = first[0]["counts"]
    assert all(r["counts"] == counts for r in first), "every fresh run must give the same counts"
    # Nothing new the second time. Addresses repeated with other values in a later batch count as
    # updated again (the earlier row is applied, then the later one): the same end state.
    assert again[0]["counts"]["added"] == 0 and again[0]["counts"]["rejected"] == counts["rejected"]
    return {"backend": backend, "first": statistics.median(r["seconds"] for r in first),
            "cpu": statistics.median(r["cpu"] for r in first),
            "again": statistics.median(r["seconds"] for r in again),
            "peak_mb": max(r["peak_mb"] for r in first + again), "counts": counts, "again_counts": again[0]["counts"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--encoding", default="utf-8", help="the file's encoding (default utf-8)")
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL, in schemas dropped afterwards")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), args.batch_size)
        return

    print("reproduce: .venv/bin/python bench/import_contacts.py " + " ".join(sys.argv[1:]))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start (other work slows every figure)")
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        folder = Path(tmp)
        path = folder / "contacts.csv"
        write_file(path, args.rows, args.encoding)
        print(f"{args.rows:,} rows, {path.stat().st_size / 1e6:.1f} MB in {args.encoding}, "
              f"batches of {args.batch_size}")
        results = []
        if not args.skip_sqlite:
            results.append(run("sqlite", lambda n: sqlite_database(folder, n), path, args))
        if args.postgres:
            results.append(run("postgresql", lambda n: postgres_database(args.postgres), path, args))
    counts = results[0]["counts"]
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    print(f"median of {args.repeat}; counts: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v))
    print("again: " + ", ".join(f"{k} {v:,}" for k, v in results[0]["again_counts"].items() if v))
    print(f"{'backend':<11} {'rows':>9} {'import s':>9} {'rows/s':>9} {'CPU s':>6} {'again s':>8} {'peak RSS MB':>12}")
    for r in results:
        print(f"{r['backend']:<11} {args.rows:>9,} {r['first']:>9.2f} {args.rows / r['first']:>9,.0f} "
              f"{r['cpu']:>6.2f} {r['again']:>8.2f} {r['peak_mb']:>12.0f}")


if __name__ == "__main__":
    main()
