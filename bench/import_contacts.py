"""Time ``subscribers.csv_import.import_csv`` on a generated CSV file, on SQLite and PostgreSQL.

Writes N rows (names, some time zones and tags, two custom fields, 0.5% bad addresses, 1% repeated
addresses) to a temp folder, then ``--repeat`` times: makes a fresh database (SQLite file, or a
PostgreSQL schema dropped afterwards), imports the file, and imports it again (every row unchanged).
Each import runs in a child process, so the peak RSS and CPU time reported are that import's own
(CPU: this process; on PostgreSQL, the CPU of the backends that served it is read from /proc beside
it, found by their application_name). Prints the median per backend. Nothing here is a
test: figures depend on the machine (and on what else runs on it).

    .venv/bin/python bench/import_contacts.py --rows 100000 --repeat 3 \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--batch-size 10000] [--encoding cp1252] \
        [--baseline /work/main [--baseline-batch-size 1000]]

``--encoding`` writes the file in another encoding than UTF-8 (Windows-1252: the names' accents are
then bytes that are not UTF-8), so the import detects it: the cost of detection, measured.

The floor, measured in the same run on the same database: the same file read with the ``csv`` module
and its rows written bare (no checks, no look-ups) into a table of the same columns with no index, in
the same batches, one transaction each (``bench.common.write_rows``: COPY on PostgreSQL, executemany on
SQLite). With more than 100,000 rows, the first 100,000 are also imported alone (SQLite), so that the
peak RSS of the large run stands next to the 100k one: memory must stay flat in the file's size.
``--baseline DIR`` also imports the same file with another checkout's code (DIR, e.g. the main branch,
run by its own bench/import_contacts.py), into a fresh database of its own, beside each of this
checkout's runs (before it in the first run, after it in the second, and so on): before and after
measured in one run, under the same load. ``--baseline-batch-size`` is the batch size it is given
(default: ``--batch-size``; 1,000 was the import's default before it became 10,000).
``--skip-again`` leaves out the second import of the same file (for the large runs of bench/run_all.py).
``--summary-json PATH`` writes the headline rows for bench/run_all.py.
"""

from __future__ import annotations

import argparse
import csv
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

from bench.common import write_rows
from bench.cpu import BackendCpu, with_application_name
from bench.summary import Row, add_summary_argument, write_summary
from newsletter.database import make_engine, upgrade
from tests.pgschema import postgres_schema
from subscribers.csv_import import BATCH_SIZE, import_csv

TARGET = 20_000  # rows/s (issue 19)
FLAT = 1.25  # the large run's peak RSS may be this many times the 100k run's and still be "flat"
MEMORY_BASE = 100_000  # rows of the prefix imported alone for the memory comparison

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


def floor_worker(url: str, path: Path, batch_size: int, encoding: str) -> None:
    """The floor in this process: ``csv`` reads the file, each batch is written bare into a table
    with the import's columns and no index, one transaction a batch. Prints its seconds as JSON."""
    engine = make_engine(url)
    postgres = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("DROP TABLE IF EXISTS bench_floor_contacts")
        cursor.execute("CREATE TABLE bench_floor_contacts (email VARCHAR(320), name VARCHAR(200), "
                       "timezone VARCHAR(64), tags TEXT, custom_fields TEXT)")
        raw.commit()
        began = time.perf_counter()
        with path.open(encoding=encoding, newline="") as file:
            reader = csv.reader(file)
            next(reader)
            batch: list[tuple[Any, ...]] = []
            for cells in reader:
                batch.append((cells[0], f"{cells[1]} {cells[2]}", cells[3], cells[4],
                              json.dumps({"Clinic": cells[5], "Member since": cells[6]})))
                if len(batch) == batch_size:
                    write_rows(cursor, "bench_floor_contacts", "email, name, timezone, tags, custom_fields", batch,
                               postgres=postgres)
                    raw.commit()
                    batch = []
            if batch:
                write_rows(cursor, "bench_floor_contacts", "email, name, timezone, tags, custom_fields", batch,
                           postgres=postgres)
                raw.commit()
        seconds = time.perf_counter() - began
        cursor.execute("DROP TABLE bench_floor_contacts")
        raw.commit()
    finally:
        raw.close()
    print(json.dumps({"seconds": seconds}))


def timed_import(url: str, path: Path, batch_size: int, *, floor: bool = False, encoding: str = "utf-8",
                 code: Path | None = None) -> dict[str, Any]:
    """One import (or the floor) in a child process; ``code``: another checkout's import, run by its bench."""
    mode = ["--floor-worker", url, str(path), "--encoding", encoding] if floor else ["--worker", url, str(path)]
    script = str(code / "bench" / "import_contacts.py") if code is not None else __file__
    result = subprocess.run([sys.executable, script, *mode, "--batch-size", str(batch_size)],
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


def server_cpu(result: dict[str, Any]) -> str:
    return f", PostgreSQL's CPU {result['server_cpu']:.2f} s" if "server_cpu" in result else ""


def run(backend: str, databases: Any, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    first, again, floors, baseline = [], [], [], []
    server = args.postgres if backend == "postgresql" else None

    def imported(url: str, batch_size: int, code: Path | None = None) -> dict[str, Any]:
        """One import; on PostgreSQL also the CPU of the backends that served it (by application_name)."""
        if server is None:
            return timed_import(url, path, batch_size, code=code)
        tag = f"bench-import-{secrets.token_hex(4)}"
        with BackendCpu(server, tag) as backends:
            result = timed_import(with_application_name(url, tag), path, batch_size, code=code)
        return {**result, "server_cpu": backends.seconds}

    def baseline_run(n: int) -> None:
        with databases(100 + n) as url:
            baseline.append(imported(url, args.baseline_batch_size, code=args.baseline))
        print(f"  {backend} run {n + 1}, baseline {args.baseline}: {baseline[-1]['seconds']:.2f} s "
              f"(CPU {baseline[-1]['cpu']:.2f} s{server_cpu(baseline[-1])}, peak RSS {baseline[-1]['peak_mb']:.0f} MB)",
              flush=True)

    for n in range(args.repeat):
        if args.baseline and n % 2 == 0:  # first in even runs, after in odd ones: neither always goes first
            baseline_run(n)
        with databases(n) as url:
            floors.append(timed_import(url, path, args.batch_size, floor=True, encoding=args.encoding))
            first.append(imported(url, args.batch_size))
            if not args.skip_again:
                again.append(imported(url, args.batch_size))
        print(f"  {backend} run {n + 1}: {first[-1]['seconds']:.2f} s (CPU {first[-1]['cpu']:.2f} s"
              f"{server_cpu(first[-1])}), floor {floors[-1]['seconds']:.2f} s"
              + (f", again {again[-1]['seconds']:.2f} s" if again else ""), flush=True)
        if args.baseline and n % 2 == 1:
            baseline_run(n)
    counts = first[0]["counts"]
    assert all(r["counts"] == counts for r in first), "every fresh run must give the same counts"
    if any(r["counts"] != counts for r in baseline):  # the same file: a difference is a change in behaviour
        print(f"  counts differ from the baseline's: {baseline[0]['counts']} (baseline) vs {counts}", flush=True)
    # Nothing new the second time. Addresses repeated with other values in a later batch count as
    # updated again (the earlier row is applied, then the later one): the same end state.
    assert not again or (again[0]["counts"]["added"] == 0 and again[0]["counts"]["rejected"] == counts["rejected"])
    return {"backend": backend, "first": statistics.median(r["seconds"] for r in first),
            "floor": statistics.median(r["seconds"] for r in floors),
            "cpu": statistics.median(r["cpu"] for r in first),
            "server_cpu": statistics.median(r["server_cpu"] for r in first) if server else None,
            "again": statistics.median(r["seconds"] for r in again) if again else None,
            "peak_mb": max(r["peak_mb"] for r in first + again), "counts": counts,
            "again_counts": again[0]["counts"] if again else {},
            "baseline": statistics.median(r["seconds"] for r in baseline) if baseline else None,
            "baseline_cpu": statistics.median(r["cpu"] for r in baseline) if baseline else None,
            "baseline_server_cpu": statistics.median(r["server_cpu"] for r in baseline) if baseline and server else None,
            "baseline_peak_mb": max(r["peak_mb"] for r in baseline) if baseline else None}


def memory_base(folder: Path, path: Path, args: argparse.Namespace, databases: Any) -> float:
    """Peak RSS (MB) of importing the file's first ``MEMORY_BASE`` rows alone, on the same backend
    (each holds its own number of batches at once: PostgreSQL's import overlaps three)."""
    prefix = folder / "prefix.csv"
    if not prefix.exists():
        with path.open("rb") as source, prefix.open("wb") as target:
            for n, line in enumerate(source):
                if n > MEMORY_BASE:
                    break
                target.write(line)
    with databases(999) as url:
        return timed_import(url, prefix, args.batch_size)["peak_mb"]


def summary_rows(results: list[dict[str, Any]], rows: int) -> list[Row]:
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    out = []
    for r in results:
        rate = rows / r["first"]
        out.append(Row("import_contacts", f"import {rows:,} rows, {names[r['backend']]}", round(rate), "rows/s",
                       floor=round(rows / r["floor"]), floor_what="csv module + bare bulk insert, same file and batches",
                       target=f">= {TARGET:,} rows/s", met=rate >= TARGET))
    for r in results:
        if r["base_mb"] is not None:
            out.append(Row("import_contacts", f"peak RSS, {rows:,} rows vs {MEMORY_BASE:,}, {names[r['backend']]}",
                           round(r["peak_mb"]), "MB", floor=round(r["base_mb"]),
                           floor_what=f"the same import of the first {MEMORY_BASE:,} rows",
                           target=f"flat (<= {FLAT}x)", met=r["peak_mb"] <= FLAT * r["base_mb"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="also time another checkout's import (e.g. /work/main)")
    parser.add_argument("--baseline-batch-size", type=int, metavar="N", help="default: --batch-size")
    parser.add_argument("--encoding", default="utf-8", help="the file's encoding (default utf-8)")
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL, in schemas dropped afterwards")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-again", action="store_true", help="do not import the same file a second time")
    add_summary_argument(parser)
    parser.add_argument("--worker", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--floor-worker", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.baseline_batch_size = args.baseline_batch_size or args.batch_size
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), args.batch_size)
        return
    if args.floor_worker:
        floor_worker(args.floor_worker[0], Path(args.floor_worker[1]), args.batch_size, args.encoding)
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
        backends = ([] if args.skip_sqlite else [("sqlite", lambda n: sqlite_database(folder, n))]) + \
            ([("postgresql", lambda n: postgres_database(args.postgres))] if args.postgres else [])
        for backend, databases in backends:
            results.append(run(backend, databases, path, args))
            results[-1]["base_mb"] = memory_base(folder, path, args, databases) if args.rows > MEMORY_BASE else None
    counts = results[0]["counts"]
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    print(f"median of {args.repeat}; counts: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v))
    if results[0]["again_counts"]:
        print("again: " + ", ".join(f"{k} {v:,}" for k, v in results[0]["again_counts"].items() if v))
    print(f"{'backend':<11} {'rows':>9} {'import s':>9} {'rows/s':>9} {'floor rows/s':>13} {'CPU s':>6} "
          f"{'server CPU s':>12} {'again s':>8} {'peak RSS MB':>12}")
    for r in results:
        again = f"{r['again']:>8.2f}" if r["again"] is not None else f"{'-':>8}"
        server = f"{r['server_cpu']:>12.2f}" if r["server_cpu"] is not None else f"{'-':>12}"
        print(f"{r['backend']:<11} {args.rows:>9,} {r['first']:>9.2f} {args.rows / r['first']:>9,.0f} "
              f"{args.rows / r['floor']:>13,.0f} {r['cpu']:>6.2f} {server} {again} {r['peak_mb']:>12.0f}")
    print("CPU s: the import's own process; server CPU s: the PostgreSQL backends that served it")
    for r in results:
        if r["baseline"] is not None:
            print(f"baseline ({args.baseline}, batches of {args.baseline_batch_size}) {r['backend']}: "
                  f"{r['baseline']:.2f} s = {args.rows / r['baseline']:,.0f} rows/s, CPU {r['baseline_cpu']:.2f} s, "
                  + (f"server CPU {r['baseline_server_cpu']:.2f} s, " if r["baseline_server_cpu"] is not None else "") +
                  f"peak RSS {r['baseline_peak_mb']:.0f} MB; this checkout {r['baseline'] / r['first']:.2f}x as fast")
    for r in results:
        if r["base_mb"] is not None:
            print(f"{r['backend']}: peak RSS of the first {MEMORY_BASE:,} rows imported alone: {r['base_mb']:.0f} MB")
    write_summary(args.summary_json, summary_rows(results, args.rows))


if __name__ == "__main__":
    main()
