"""Run every benchmark that writes ``--summary-json`` at a small and a large size, one after another,
and print one table: benchmark, what, figure, floor, ratio, target, met; then each run's command line.

Each script runs as a subprocess of its own (its memory and its threads are its own, and one that
fails does not stop the rest: its row says so), in the order of ``BENCHMARKS``. PostgreSQL rows run
when ``--postgres URL`` or ``NEWSLETTER_BENCH_POSTGRES_URL`` gives a server (each script makes and
drops schemas of its own there). HTTP benchmarks that drive load with wrk say so in their row when
wrk is not installed, instead of failing the run. ``make bench`` runs all of it (under about 30
minutes on a 2-core machine); ``--only NAME`` (repeatable) and ``--size small|large`` run part.

    .venv/bin/python bench/run_all.py [--size small|large] [--only import_contacts ...] [--postgres URL] \
        [--json results.json]

Nothing here is a test: figures depend on the machine and on what else runs on it (the load average
at the start is printed with the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.summary import Row, read_summary

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
POSTGRES_ENV = "NEWSLETTER_BENCH_POSTGRES_URL"


@dataclass(frozen=True)
class Benchmark:
    name: str  # the script, bench/NAME.py
    small: tuple[str, ...]
    large: tuple[str, ...]
    postgres: bool = True  # takes --postgres URL
    needs: tuple[str, ...] = ()  # programs it needs on PATH (e.g. wrk)
    note: str = ""  # printed under the table, e.g. arguments still to be confirmed


# script, small arguments, large arguments. Sizes are chosen so that the whole suite (both sizes, both
# backends) stays near 30 minutes on 2 cores: the large sizes are those the README's targets speak of
# where they are cheap enough (100,000 contacts for the staff pages, 1,000,000 rows for the import's
# memory), a third of the README's figures' size for the history-building benchmarks (reports,
# metrics, segments), whose build dominates their time.
BENCHMARKS = (
    Benchmark("import_contacts", ("--rows", "100000", "--repeat", "1"),
              ("--rows", "1000000", "--repeat", "1", "--skip-again")),
    Benchmark("send_issue", ("--contacts", "10000", "--workers", "2", "--repeat", "3"),
              ("--contacts", "100000", "--workers", "2", "--repeat", "3")),
    Benchmark("click_redirects", ("--contacts", "1000", "--duration", "10"),
              ("--contacts", "100000", "--duration", "10"), needs=("wrk",)),
    Benchmark("smtp_send", ("--messages", "2000", "--repeat", "3"), ("--messages", "20000", "--repeat", "1"),
              postgres=False),
    Benchmark("ses_transport", ("--recipients", "1000", "--repeat", "3"), ("--recipients", "1000", "--repeat", "5"),
              postgres=False),
    Benchmark("webhook_events", ("--deliveries", "20000", "--events", "10000", "--repeat", "1"),
              ("--deliveries", "100000", "--events", "40000", "--repeat", "3")),
    Benchmark("reports", ("--deliveries", "100000", "--events", "300000", "--repeat", "3"),
              ("--deliveries", "300000", "--events", "900000", "--repeat", "3")),
    Benchmark("staff_pages", ("--contacts", "10000", "--repeat", "5"), ("--contacts", "100000", "--repeat", "5")),
    Benchmark("dashboard", ("--contacts", "10000", "--repeat", "10"), ("--contacts", "100000", "--repeat", "10")),
    Benchmark("contact_search", ("--contacts", "10000", "--repeat", "5"), ("--contacts", "100000", "--repeat", "5")),
    Benchmark("segment_count", ("--contacts", "30000", "--repeat", "3"), ("--contacts", "300000", "--repeat", "3")),
    Benchmark("sequence_tick", ("--enrolments", "10000", "--repeat", "3"), ("--enrolments", "100000", "--repeat", "3")),
    Benchmark("metrics_scrape", ("--deliveries", "100000", "--events", "300000", "--queued", "10000",
                                 "--recent", "10000", "--repeat", "3"),
              ("--deliveries", "300000", "--events", "900000", "--queued", "30000", "--recent", "30000",
               "--repeat", "3")),
)


@dataclass
class Run:
    benchmark: str
    size: str
    command: list[str]
    seconds: float = 0.0
    rows: list[Row] = field(default_factory=list)
    problem: str = ""  # why there are no rows: a missing program, a failure (its last line)


def command_for(bench: Benchmark, size: str, postgres: str | None, summary: Path) -> list[str]:
    args = list(bench.small if size == "small" else bench.large)
    if postgres and bench.postgres:
        args += ["--postgres", postgres]
    return [sys.executable, str(HERE / f"{bench.name}.py"), *args, "--summary-json", str(summary)]


def run_one(bench: Benchmark, size: str, postgres: str | None, folder: Path, log: Path) -> Run:
    summary = folder / f"{bench.name}-{size}.json"
    command = command_for(bench, size, postgres, summary)
    run = Run(bench.name, size, command)
    if not (HERE / f"{bench.name}.py").exists():
        run.problem = f"bench/{bench.name}.py is not in this checkout"
        return run
    if missing := [program for program in bench.needs if shutil.which(program) is None]:
        run.problem = f"not run: {', '.join(missing)} is not installed (Debian package {missing[0]})"
        return run
    print(f"[{time.strftime('%H:%M:%S')}] {bench.name} ({size}) ...", flush=True)
    started = time.perf_counter()
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\n$ {shlex.join(command)}\n")
        out.flush()
        result = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
    run.seconds = time.perf_counter() - started
    if result.returncode != 0:
        run.problem = f"failed (exit {result.returncode}; see {log})"
    elif not summary.exists():
        run.problem = "wrote no --summary-json"
    else:
        run.rows = read_summary(summary)
    print(f"    {run.seconds:.0f} s" + (f": {run.problem}" if run.problem else f", {len(run.rows)} rows"), flush=True)
    return run


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    return f"{shown} {unit}".strip()


def table(runs: list[Run]) -> str:
    header = ("benchmark", "size", "what", "figure", "floor", "ratio", "target", "met")
    lines = []
    for run in runs:
        if run.problem:
            lines.append((run.benchmark, run.size, run.problem, "", "", "", "", ""))
        for row in run.rows:
            met = "" if row.met is None else "✓" if row.met else "✗"
            ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
            lines.append((row.benchmark, run.size, row.what, number(row.figure, row.unit), number(row.floor, row.unit),
                          ratio, row.target, met))
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines]
    return "\n".join(out)


def machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the start, "
            f"Python {sys.version.split()[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "large", "both"), default="both")
    parser.add_argument("--only", action="append", metavar="NAME", choices=[b.name for b in BENCHMARKS],
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get(POSTGRES_ENV) or None,
                        help=f"PostgreSQL server for the PostgreSQL rows (default: ${POSTGRES_ENV}; none: SQLite only)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every run and row to PATH")
    parser.add_argument("--log", type=Path, metavar="PATH", help="the scripts' own output (default: a temp file)")
    args = parser.parse_args()

    at_start = machine()
    sizes = ("small", "large") if args.size == "both" else (args.size,)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    reproduce = "make bench" if len(sys.argv) == 1 else ".venv/bin/python bench/run_all.py " + shlex.join(sys.argv[1:])
    print(f"reproduce: {reproduce}\n{at_start}\nPostgreSQL: {'yes' if args.postgres else f'no (set {POSTGRES_ENV})'}")
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        log = args.log or Path(tmp) / "bench.log"
        if args.log:
            args.log.write_text("", encoding="utf-8")
        print(f"each script's output: {log}" + ("" if args.log else " (removed at the end; --log keeps it)"))
        began = time.perf_counter()
        runs = [run_one(bench, size, args.postgres, Path(tmp), log) for size in sizes for bench in chosen]
        total = time.perf_counter() - began

    print(f"\n{at_start}; {total / 60:.0f} min in all\n")
    print(table(runs))
    print("\ncommands:")
    for run in runs:
        shown = [str(Path(part).relative_to(ROOT)) if part.startswith(str(ROOT)) else part for part in run.command]
        shown[0] = ".venv/bin/python"
        print(f"  {run.benchmark} ({run.size}, {run.seconds:.0f} s): {shlex.join(shown[:-2])}")
    for note in sorted({b.note for b in chosen if b.note}):
        print(f"note: {note}")
    if args.json:
        args.json.write_text(json.dumps({"machine": at_start, "runs": [
            {**asdict(run), "rows": [asdict(row) for row in run.rows]} for run in runs]}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
