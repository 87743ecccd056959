"""Click redirects and open pixels at burst speed: requests/s, mean and p99 latency under wrk, beside the
floor measured in the same run (a bare uvicorn ASGI app answering 302, served the same way).

Mail filters (Safe Links, Mimecast, Proofpoint) fetch every link of every message within minutes of
delivery: a 100,000-recipient issue with ten links can bring ~1,700 requests/s. This builds an issue
with ten tracked links sent to ``--contacts`` contacts (submitted deliveries, bulk-inserted), starts the
real server as ``newsletter serve --web-only [--workers N]`` runs it (with its tracking-drain process),
and drives it with wrk (``--connections`` connections, ``--duration`` seconds, a Lua script spreading the
requests over random recipients' tokens and links; a browser's user agent). Every answer must be the 302 (or the pixel's
200); after each run the server's backlog is drained and the events stored are counted against the
answers wrk saw. SQLite with one process; with ``--postgres URL`` PostgreSQL (a schema of its own,
dropped afterwards) with one process and with ``--workers`` processes.

    .venv/bin/python bench/click_redirects.py [--contacts 1000] [--duration 10] [--connections 20] \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--workers 2] [--summary-json PATH]

wrk is required (Debian package ``wrk``). Figures depend on the machine: nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from bench.common import postgres_database, sent_issue  # noqa: E402
from bench.summary import Row, add_summary_argument, write_summary  # noqa: E402
from newsletter.config import Settings  # noqa: E402
from newsletter.database import Database  # noqa: E402
from newsletter.models import Delivery, Event, Link  # noqa: E402
from newsletter.urls import DeliveryLinks, pixel_key  # noqa: E402

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
CHUNK = 20_000
PATHS = 200_000  # at most this many distinct request paths in a wrk script
# Files whose frames wrap everything (the command line, the event loop, threads): left out of "total".
WRAPPERS = {"core.py", "main.py", "_compat.py", "base_events.py", "server.py", "system.py", "common.py",
            "threading.py", "contextlib.py", "events.py", "runners.py", "_asyncio.py", "_api.py"}
PROFILE_MODE = os.environ.get("CLICKS_PROFILE_MODE", "--gil").split()
SHARE, P99_MS = 0.25, 50.0  # targets: at least a quarter of the floor's rate; p99 under 50 ms

LUA = r"""
local threads, counter = {}, 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(seed * 7919)
  paths, bad, expect = {}, 0, tonumber(args[2])
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  wrk.headers["User-Agent"] = args[3]
end
function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
function response(status, headers, body)
  if status ~= expect then bad = bad + 1 end
end
function done(summary, latency, requests)
  local wrong = 0
  for _, t in ipairs(threads) do wrong = wrong + t:get("bad") end
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"mean_us":%f,"p99_us":%f,"bad":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency.mean, latency:percentile(99), wrong,
    e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Result:
    rate: float  # requests/s
    mean_ms: float
    p99_ms: float
    requests: int


# Building -----------------------------------------------------------------------------------------


def build(db: Database, contacts: int) -> tuple[int, list[int], list[int]]:
    """An issue with ten tracked links sent to ``contacts`` contacts (submitted long ago: read later,
    as people do); returns (issue id, link ids, delivery ids)."""
    links = " ".join(f'<a href="https://clinic.example/read/{n}?utm_source=email">part {n}</a>' for n in range(10))
    issue_id, _ = sent_issue(db, contacts, f"Read on: {links}.", datetime.now(UTC) - timedelta(hours=2), chunk=CHUNK)
    with db.session() as s:
        link_ids = list(s.scalars(select(Link.id).where(Link.issue_id == issue_id).order_by(Link.id)))
        delivery_ids = list(s.scalars(select(Delivery.id).order_by(Delivery.id)))
    assert len(link_ids) >= 10, link_ids
    return issue_id, link_ids, delivery_ids


def write_paths(folder: Path, settings: Settings, issue_id: int, link_ids: list[int],
                delivery_ids: list[int]) -> tuple[Path, Path]:
    tokens = DeliveryLinks(settings)
    rng = random.Random(19)
    clicks = [f"/c/{tokens.token(rng.choice(delivery_ids))}/{rng.choice(link_ids)}"
              for _ in range(min(PATHS, len(delivery_ids) * len(link_ids)))]
    opens = [f"/o/{tokens.token(d)}/{pixel_key(issue_id, None)}.gif" for d in delivery_ids[:PATHS]]
    (folder / "clicks.txt").write_text("\n".join(clicks) + "\n")
    (folder / "opens.txt").write_text("\n".join(opens) + "\n")
    return folder / "clicks.txt", folder / "opens.txt"


# Serving --------------------------------------------------------------------------------------------


async def floor_app(scope, receive, send) -> None:  # noqa: ANN001 - the bare ASGI floor
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 302,
                "headers": [(b"location", b"https://clinic.example/read/0"), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def floor_factory():  # noqa: ANN201 - for uvicorn: the floor app, served as the product is
    return floor_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(env: dict[str, str], workers: int, floor: bool) -> Iterator[tuple[str, int]]:
    """``newsletter serve --web-only`` (or the floor app with the same server configuration)."""
    port = free_port()
    if floor:
        code = ("import sys; from newsletter.config import Settings; from newsletter.web.server import run, "
                "server_config\ntry: run(server_config('bench.click_redirects:floor_factory', Settings(), "
                f"'127.0.0.1', {port}, {workers}))\nexcept KeyboardInterrupt: pass")
        command = [sys.executable, "-c", code]
    else:
        command = [sys.executable, "-c", "from newsletter.cli import app; app()", "serve", "--web-only",
                   "--port", str(port)] + (["--workers", str(workers)] if workers > 1 else [])
    errors = open(Path(env["NEWSLETTER_VAR_DIR"]) / f"serve-{port}.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, cwd=ROOT if floor else env.get("PYTHONPATH", ROOT), env=env,
                               stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start: {' '.join(command)}") from None
                time.sleep(0.2)
        yield base, process.pid
    finally:
        os.killpg(process.pid, signal.SIGINT)  # a graceful stop: the web processes seal their logs, the drain takes them
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        errors.close()
        for line in Path(errors.name).read_text().splitlines():
            if "tracking log:" in line or "ERROR" in line:
                print("  server: " + line.split(": ", 1)[-1] if "tracking log:" in line else "  server: " + line)


def wrk(base: str, path: str, lua: Path, paths: Path | None, expect: int, args: argparse.Namespace) -> Result:
    if paths is None:  # one path
        paths = lua.parent / f"one-{abs(hash(path))}.txt"
        paths.write_text(path + "\n")
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
               "-s", str(lua), base, "--", str(paths), str(expect), BROWSER]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    figures = json.loads(line.removeprefix("RESULT "))
    if figures["bad"] or figures["errors"]:
        raise SystemExit(f"{figures['bad']} wrong answers and {figures['errors']} socket errors at {base}: {figures}")
    return Result(figures["requests"] / (figures["duration_us"] / 1e6), figures["mean_us"] / 1000,
                  figures["p99_us"] / 1000, figures["requests"])


def stored(db: Database, kind: str) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Event).where(Event.type == kind)) or 0


def wait_drained(db: Database, kind: str, at_least: int) -> float:
    """Seconds until the events table holds ``at_least`` events of ``kind`` (the server's backlog)."""
    started = time.monotonic()
    while stored(db, kind) < at_least and time.monotonic() - started < 300:
        time.sleep(0.2)
    return time.monotonic() - started


@contextmanager
def profiled(folder: Path | None, pid: int, name: str, seconds: int) -> Iterator[None]:
    """With ``--profile DIR``: py-spy samples the server (and its worker processes) meanwhile; a
    flame graph and the frames most often on top are written to DIR."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / f"{name}.txt"
    spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--subprocesses", "--duration", str(seconds),
                            "--rate", "200", *PROFILE_MODE, "--format", "raw", "--output", str(raw), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.wait(timeout=seconds + 60)
    summary = top_frames(raw)
    (folder / f"{name}-top.txt").write_text(summary)
    print(f"  profile {name}: {raw}\n{summary}")


def top_frames(raw: Path, count: int = 15) -> str:
    """The functions most often on top of the stack (self) and on it at all (total), in % of the samples
    (py-spy ``--gil``: of the thread holding the GIL, i.e. where the process's Python time goes)."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for frame in stack.split(";") if frame]
        if not frames:
            continue
        n = int(weight)
        samples += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    lines = [f"    self {100 * n / samples:5.1f}%  {frame}" for frame, n in sorted(own.items(), key=lambda i: -i[1])[:count]]
    lines += [f"    total {100 * n / samples:4.1f}%  {frame}" for frame, n in sorted(total.items(), key=lambda i: -i[1])
              if n < 0.95 * samples and frame.rsplit(" (", 1)[-1].rstrip(")") not in WRAPPERS][:count]
    return "\n".join(lines)


def fsync_ms(folder: Path, count: int = 200) -> tuple[float, float]:
    """Median and p99 of a 100-byte append + fdatasync in ``folder`` (where the tracking logs go): a
    durable answer waits for one, so ``connections / fsync`` bounds the answers per second."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, b"x" * 100)
            os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


GC_PROBE = """
import gc, json, statistics, time
from newsletter.bootstrap import open_database
from newsletter.config import get_settings
from newsletter.web.app import create_app
from newsletter.web.server import freeze_startup, served
settings = get_settings()
app = served(create_app(settings, open_database(settings)))
def full():
    times = []
    for _ in range(5):
        started = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
before = full()
freeze_startup()
print(json.dumps([before, full(), gc.get_freeze_count()]))
"""


def gc_pause_ms(env: dict[str, str]) -> tuple[float, float, int]:
    """A full garbage collection's time (median of 5) in a process holding the app as a web process
    does, before and after ``freeze_startup``; and how many objects it froze. A collection stops the
    event loop: every answer in flight waits for it."""
    done = subprocess.run([sys.executable, "-c", GC_PROBE], env=env, cwd=env.get("PYTHONPATH", ROOT),
                          capture_output=True, text=True, check=True)
    before, after, frozen = json.loads(done.stdout.strip().splitlines()[-1])
    return before, after, frozen


# Running ----------------------------------------------------------------------------------------------


def bench(db: Database, label: str, workers: int, folder: Path, args: argparse.Namespace) -> list[Row]:
    issue_id, link_ids, delivery_ids = build(db, args.contacts)
    if args.app_root:  # another checkout's schema, as far as it knows it
        with db.session() as s:
            if args.app_root_revision < "0028":  # from before the tracking log's table
                s.execute(text("DROP TABLE tracking_log_progress"))
            s.execute(text(f"UPDATE alembic_version SET version_num = '{args.app_root_revision}'"))
    var_dir = folder / f"var-{label.split()[0].lower()}-{workers}"
    var_dir.mkdir()
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": db.url, "NEWSLETTER_VAR_DIR": str(var_dir),
           "NEWSLETTER_TRANSPORT": "outbox", "NEWSLETTER_PUBLIC_BASE_URL": "http://127.0.0.1"}
    settings = Settings(database_url=db.url, var_dir=var_dir)
    clicks, opens = write_paths(folder, settings, issue_id, link_ids, delivery_ids)
    lua = folder / "spread.lua"
    lua.write_text(LUA)
    where = f"{label}, {workers} process{'es' if workers > 1 else ''}"
    with serving(env, workers, floor=True) as (base, _):
        floor = wrk(base, "/", lua, None, 302, args)
    fsync_median, fsync_p99 = fsync_ms(var_dir)
    gc_before, gc_after, frozen = gc_pause_ms(env) if not args.app_root else (0.0, 0.0, 0)
    results: dict[str, Result] = {}
    if args.app_root:
        env["PYTHONPATH"] = str(args.app_root)  # serve another checkout's code (a before/after comparison)
    with serving(env, workers, floor=False) as (base, pid):
        results["healthz"] = wrk(base, "/healthz", lua, None, 200, args)
        before = stored(db, "click")
        with profiled(args.profile, pid, f"{label.split()[0].lower()}-{workers}-clicks", args.duration):
            results["click"] = wrk(base, "", lua, clicks, 302, args)
        lag_click = wait_drained(db, "click", before + results["click"].requests)
        before_opens = stored(db, "open")
        with profiled(args.profile, pid, f"{label.split()[0].lower()}-{workers}-opens", args.duration):
            results["open"] = wrk(base, "", lua, opens, 200, args)
        lag_open = wait_drained(db, "open", before_opens + results["open"].requests)
    clicks_stored, opens_stored = stored(db, "click") - before, stored(db, "open") - before_opens
    print(f"\n{where}: {args.contacts:,} contacts x {len(link_ids)} links; wrk {args.connections} connections, "
          f"{args.duration} s, {args.threads} threads")
    print(f"  {'':32} {'requests/s':>11} {'mean ms':>8} {'p99 ms':>7} {'of floor':>9}")
    print(f"  {'floor: bare ASGI 302':32} {floor.rate:>11,.0f} {floor.mean_ms:>8.2f} {floor.p99_ms:>7.2f} {'100%':>9}")
    for name, title in (("healthz", "GET /healthz (the app)"), ("click", "GET /c/<token>/<link>"),
                        ("open", "GET /o/<token>/<key>.gif")):
        r = results[name]
        print(f"  {title:32} {r.rate:>11,.0f} {r.mean_ms:>8.2f} {r.p99_ms:>7.2f} {r.rate / floor.rate:>9.0%}")
    print(f"  fsync in the var dir (before the runs): median {fsync_median:.2f} ms, p99 {fsync_p99:.2f} ms: at most "
          f"~{args.connections / fsync_median * 1000:,.0f} durable answers/s at {args.connections} connections "
          "(one fsync per group of waiting requests)")
    if frozen:
        print(f"  a full garbage collection in a web process (the event loop waits for it): {gc_before:.0f} ms; "
              f"{gc_after:.2f} ms once start-up's {frozen:,} objects are frozen (newsletter.web.server.freeze_startup)")
    print(f"  answered {results['click'].requests:,} clicks, {clicks_stored:,} stored (drained {lag_click:.1f} s "
          f"after the run); {results['open'].requests:,} opens, {opens_stored:,} stored ({lag_open:.1f} s)")
    if clicks_stored < results["click"].requests or opens_stored < results["open"].requests:
        raise SystemExit("fewer events stored than answers given: an acknowledged click or open was lost")
    rows = []
    floor_what = f"bare uvicorn ASGI app answering 302, same server settings, {workers} process(es)"
    for name, title in (("click", "click redirects"), ("open", "open pixels")):
        r = results[name]
        rows.append(Row("click_redirects", f"{title}/s, {where}, {args.contacts:,} contacts", r.rate, "requests/s",
                        floor.rate, floor_what, f">= {SHARE:.0%} of floor", r.rate >= SHARE * floor.rate))
        rows.append(Row("click_redirects", f"{title} p99, {where}, {args.contacts:,} contacts", r.p99_ms, "ms",
                        floor.p99_ms, floor_what, f"p99 < {P99_MS:.0f} ms", r.p99_ms < P99_MS))
    rows.append(Row("click_redirects", f"/healthz/s, {where}", results["healthz"].rate, "requests/s", floor.rate,
                    floor_what))
    return rows


@contextmanager
def sqlite_database(folder: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{folder / 'bench.db'}")
    try:
        yield db
    finally:
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL (a schema of its own)")
    parser.add_argument("--workers", type=int, nargs="*", default=[2],
                        help="web process counts to run on PostgreSQL besides 1 (default: 2)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="sample the server with py-spy (pip install "
                        "py-spy; not a dependency) during the click and open runs; write the profiles to DIR")
    parser.add_argument("--app-root", type=Path, metavar="CHECKOUT", help="serve the code of another checkout "
                        "(e.g. the main branch, for a before/after comparison); the database is built by this one")
    parser.add_argument("--app-root-revision", default="0025", help="the schema revision --app-root expects")
    add_summary_argument(parser)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (Debian package wrk)", file=sys.stderr)
        raise SystemExit(2)
    print("reproduce: .venv/bin/python bench/click_redirects.py " + " ".join(sys.argv[1:]))
    print(f"machine: {os.cpu_count()} CPUs; server and wrk on 127.0.0.1")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="clicks-") as temp:
        folder = Path(temp)
        if not args.skip_sqlite:
            with sqlite_database(folder) as db:
                rows += bench(db, "SQLite", 1, folder, args)
        if args.postgres:
            for workers in [1, *args.workers]:
                with postgres_database(args.postgres, "bench_clicks") as db:
                    rows += bench(db, "PostgreSQL", workers, folder, args)
    print()
    for row in rows:
        if row.met is not None:
            print(f"  {'met ' if row.met else 'MISSED'} {row.what}: {row.figure:,.1f} {row.unit} ({row.target})")
    write_summary(args.summary_json, rows)


if __name__ == "__main__":
    main()
