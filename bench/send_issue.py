"""Send one issue to N contacts through the SendGrid transport to a SendGrid-compatible server on loopback.

For each backend (SQLite always, PostgreSQL with ``--postgres``), audience size and worker count, a fresh
database gets N confirmed subscribers (bulk insert, plus 1% suppressions of other addresses so the
anti-join has work to do). A separate process then does what production does and is measured:

- render:  ``issues.create_issue`` (draft time, not counted end to end) and the compile and preflight
           that ``schedule.start_now`` does before enqueueing (counted end to end);
- enqueue: the one INSERT ... SELECT (``enqueue.enqueue_issue``, timed inside ``start_now``);
- dispatch: ``Dispatcher.pool`` with NEWSLETTER_SEND_CONCURRENCY=K (what ``newsletter worker`` runs),
           each dispatcher in its thread until idle, split into claim, build (recipient values), request
           body (``SendGridTransport.build_body``), JSON encoding (``encode_body``), HTTP, record (ledger updates) and
           other (what the dispatcher does outside its timed phases: the per-batch "is the issue done?"
           check).

End to end = start_now + dispatch wall time; recipients/s = N / end to end. Peak RSS is the send
process's ``ru_maxrss`` (fresh process, so the bulk load does not count) before ``start_now`` and at
the end. One extra, untimed run per configuration traces Python allocations (tracemalloc) during
dispatch only: its peak is what must not grow with the audience. SendGrid's fake runs in a process of
its own (no shared GIL) without validating or recording, and every send is checked: N accepted by the
fake, N rows submitted in the ledger.

    .venv/bin/python bench/send_issue.py [--contacts 100000 ...] [--million] [--workers 1] [--repeat 3] [--latency-ms 0] \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--skip-sqlite] [--no-tracemalloc] [--baseline REV] \
        [--summary-json PATH]

Between the runs of each configuration, the floor: the same batches sent bare in one process (plain
sqlite3, orjson, the ``sendgrid`` client posting to the same fake, one UPDATE per batch; ``child_floor``).
``--summary-json PATH`` writes the headline rows for bench/run_all.py: SQLite against ">= 60% of the
floor", PostgreSQL with 2 dispatchers against ">= 30,000/s", and the traced memory peak (with
``--million``: 1,000,000 beside 100,000, "flat: 1M peak <= 1.5 x 100k peak").

``--baseline REV`` runs REV's own send (exported with git archive) beside this checkout's, runs
interleaved, and prints both rows: a refactor's before and after in one run.
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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from bench.cpu import BackendCpu, cpu_of, cpu_since, postgres_cpu, with_application_name  # noqa: E402
from bench.summary import Row as SummaryRow, add_summary_argument, write_summary  # noqa: E402

LOAD_BATCH = 50_000
JSON_UTF8 = {"Content-Type": "application/json; charset=utf-8"}  # as the transport sends it
ZONES = ["America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Paris", "UTC"]
PHASES = ("render", "enqueue", "claim", "build", "body", "json", "http", "record", "other")


# Building the audience (in the parent: its memory does not count) ---------------------------------

COLUMNS = {
    "contacts": "id, email, email_hash, name, timezone, custom_fields, status, source, created_at, updated_at",
    "subscriptions": "contact_id, list_id, status, frequency, created_at, confirmed_at, confirmation_sends",
    "suppressions": "email_hash, email, reason, created_at",
}


def audience_rows(n: int, salt: str, *, suppressed_share: float = 0.01) -> Iterator[dict[str, list[tuple]]]:
    """N active contacts confirmed on list 1, LOAD_BATCH at a time; plus suppressions of *other*
    addresses (so every contact is mailed, but the NOT EXISTS has a real table to probe)."""
    from subscribers.suppression import hash_with_salt

    rnd = random.Random(7)
    created = datetime(2025, 1, 1, tzinfo=UTC)
    for first in range(1, n + 1, LOAD_BATCH):
        out: dict[str, list[tuple]] = {k: [] for k in COLUMNS}
        for i in range(first, min(first + LOAD_BATCH, n + 1)):
            email = f"reader{i}@example.org"
            out["contacts"].append((i, email, hash_with_salt(salt, email), f"Reader {i}", rnd.choice(ZONES), "{}",
                                    "active", "import", created, created))
            out["subscriptions"].append((i, 1, "confirmed", "every", created, created, 0))
            if rnd.random() < suppressed_share:
                gone = f"former{i}@example.org"
                out["suppressions"].append((hash_with_salt(salt, gone), gone, "hard_bounce", created))
        yield out


def bulk_load(engine: Any, chunks: Iterator[dict[str, list[tuple]]], columns: dict[str, str] = COLUMNS, *,
              make_list: bool = True) -> None:
    """COPY on PostgreSQL; executemany in one transaction on SQLite. ``make_list``: list 1 first."""
    from bench.common import write_rows  # after the settings' environment is in place

    postgres = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    loaded = {"lists"} if make_list else set()
    try:
        cursor = raw.cursor()
        if not postgres:
            cursor.execute("BEGIN")  # the driver runs in autocommit here: one transaction, not one per row
        if make_list:
            cursor.execute("INSERT INTO lists (id, slug, name, description, double_opt_in, created_at) VALUES "
                           "(1, 'newsletter', 'The Limbic Letter', '', true, CURRENT_TIMESTAMP)")
        for chunk in chunks:
            for table, rows in chunk.items():
                if not rows:
                    continue
                loaded.add(table)
                write_rows(cursor, table, columns[table], rows, postgres=postgres)
        if postgres:  # rows came with explicit ids (or none): move the sequences past them
            for table in sorted(loaded):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
        raw.commit()
    finally:
        raw.close()


def analyze(engine: Any) -> None:
    """PostgreSQL: VACUUM ANALYZE, as autovacuum would on a live server. SQLite: nothing (the app never
    runs ANALYZE)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


@contextmanager
def database_url(backend: str, postgres: str | None, folder: Path) -> Iterator[str]:
    """A fresh database: a new SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if backend == "sqlite":
        path = folder / f"bench-{secrets.token_hex(4)}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    from tests.pgschema import postgres_schema

    assert postgres
    with postgres_schema(postgres, "bench_send") as url:
        yield url


def prepare(url: str, contacts: int) -> float:
    """Migrate and load the audience; returns seconds taken."""
    from sqlalchemy import select

    from newsletter.database import Database, upgrade
    from subscribers.models import Installation

    started = time.perf_counter()
    db = Database(url)
    try:
        upgrade(db.engine)
        with db.session() as session:
            salt = session.scalar(select(Installation.hash_salt))
        assert salt
        bulk_load(db.engine, audience_rows(contacts, salt))
        analyze(db.engine)
    finally:
        db.engine.dispose()
    return time.perf_counter() - started


# The measured send (in a fresh child process) -----------------------------------------------------


def max_rss_mb() -> float:
    """ru_maxrss. Caveat: Linux carries it over fork and exec, so a child reports at least the RSS its
    parent had when it was started; ``status_mb`` below does not have that problem."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def status_mb(field: str) -> float | None:
    """VmRSS (now) or VmHWM (peak since exec or since ``reset_peak_rss``) from /proc/self/status."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux: writing 5 to clear_refs), so the peak is the send's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def child_send(config: dict[str, Any]) -> dict[str, Any]:
    """Render, enqueue and dispatch one issue; settings come from the environment the parent set."""
    import tracemalloc

    from newsletter import issues as issue_service
    from newsletter.config import Settings
    from newsletter.database import Database
    from newsletter.demo import DEMO_POST, DEMO_PREHEADER, DEMO_SUBJECT
    from newsletter.models import Issue
    from newsletter.posts import service as post_service
    from newsletter.posts.source import RawSource
    from newsletter.sending import ledger, schedule
    from newsletter.sending.dispatch import Dispatcher
    from newsletter.transports.sendgrid import SendGridTransport
    from tests.sendgrid_fake import STATS

    contacts, workers, trace = config["contacts"], config["workers"], config["tracemalloc"]
    settings = Settings(send_concurrency=workers)  # K requests in flight, as NEWSLETTER_SEND_CONCURRENCY=K
    assert settings.transport == "sendgrid", settings.transport
    db = Database.from_settings(settings)

    class TimedSendGridTransport(SendGridTransport):
        """The real transport (one, shared by the dispatcher threads); only ``build_body`` and
        ``encode_body`` are timed."""

        def __init__(self, settings: Settings) -> None:
            super().__init__(settings)
            self.seconds = {"body": 0.0, "json": 0.0}
            self.lock = threading.Lock()

        def timed(self, phase: str, started: float) -> None:
            with self.lock:
                self.seconds[phase] += time.perf_counter() - started

        def build_body(self, batch):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return super().build_body(batch)
            finally:
                self.timed("body", started)

        def encode_body(self, body):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return super().encode_body(body)
            finally:
                self.timed("json", started)

    enqueue_seconds = [0.0]
    real_enqueue = schedule.enqueue_issue

    def timed_enqueue(*args: Any, **kwargs: Any) -> int:
        started = time.perf_counter()
        try:
            return real_enqueue(*args, **kwargs)
        finally:
            enqueue_seconds[0] += time.perf_counter() - started

    schedule.enqueue_issue = timed_enqueue  # start_now -> begin_sending -> enqueue_issue

    import urllib.request

    def fake_accepted() -> int:
        with urllib.request.urlopen(settings.sendgrid_api_host + STATS, timeout=10) as response:
            return json.loads(response.read())["accepted_personalizations"]

    accepted_before = fake_accepted()
    rss_before = max_rss_mb()
    vm_before = status_mb("VmRSS")
    reset_peak_rss()

    # Render (draft time).
    data = (ROOT / "newsletter" / "samples" / DEMO_POST).read_bytes()
    started = time.perf_counter()
    with db.session() as session:
        post = post_service.import_post(session, RawSource(name=DEMO_POST, data=data, content_type="text/plain",
                                                           url=None), "text").post
        issue_id = issue_service.create_issue(session, settings, post.id, DEMO_SUBJECT, DEMO_PREHEADER).id
    render_seconds = time.perf_counter() - started

    # Enqueue (schedule for now: re-render, preflight, INSERT ... SELECT).
    on_postgres = db.engine.dialect.name == "postgresql"
    db_cpu_started = postgres_cpu() if on_postgres else {}
    cpu_started = time.process_time()
    started = time.perf_counter()
    with db.session() as session:
        added = schedule.start_now(session, settings, session.get(Issue, issue_id), datetime.now(UTC))
    start_now_seconds = time.perf_counter() - started
    # (start_now's count is not trusted: the ledger and the fake are checked after the send.)

    # Dispatch.
    transport = TimedSendGridTransport(settings)
    dispatchers = Dispatcher.pool(settings, db, transport, worker="bench")
    walls = [0.0] * workers
    errors: list[BaseException] = []

    def work(index: int) -> None:
        started = time.perf_counter()
        try:
            dispatchers[index].run_until_idle()
        except BaseException as exc:  # noqa: BLE001 - reported by the parent
            errors.append(exc)
        walls[index] = time.perf_counter() - started

    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    if config.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(work, 0)  # one worker, in this thread (cProfile does not follow threads)
        profiler.dump_stats(config["profile"])
    else:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    dispatch_seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    db_cpu_seconds = cpu_since(db_cpu_started) if on_postgres else None
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    if trace:
        tracemalloc.stop()
    rss_after = max_rss_mb()
    vm_peak = status_mb("VmHWM")
    if errors:
        raise errors[0]

    with db.session() as session:
        counts = ledger.status_counts(session, issue_id)
        status = session.get(Issue, issue_id).status
    accepted = fake_accepted() - accepted_before
    assert counts == {"submitted": contacts} and status == "sent", (counts, status)
    assert accepted == contacts, (accepted, contacts)

    phases = {name: 0.0 for name in PHASES}
    phases["render"] = render_seconds + (start_now_seconds - enqueue_seconds[0])
    phases["enqueue"] = enqueue_seconds[0]
    for dispatcher, wall in zip(dispatchers, walls):
        t = dispatcher.timings
        phases["claim"] += t["claim"]
        phases["build"] += t["build"]
        phases["send_total"] = phases.get("send_total", 0.0) + t["send"]
        phases["record"] += t["record"]
        phases["other"] += wall - sum(t.values())
    phases["body"], phases["json"] = transport.seconds["body"], transport.seconds["json"]
    phases["http"] = phases.pop("send_total") - phases["body"] - phases["json"]
    db.engine.dispose()
    return {
        "render_draft": render_seconds, "start_now": start_now_seconds, "dispatch": dispatch_seconds,
        "end_to_end": start_now_seconds + dispatch_seconds, "phases": phases,
        "rss_before": rss_before, "rss_after": rss_after, "traced_peak": traced_peak, "added": added,
        "vm_before": vm_before, "vm_peak": vm_peak,
        "cpu": cpu_seconds, "db_cpu": db_cpu_seconds,
    }


def child_floor(config: dict[str, Any]) -> dict[str, Any]:
    """The floor: the same send done bare in one process, with nothing of the app. Plain sqlite3 (a
    file of N contacts and a ledger of N queued rows, made untimed), then per batch of 1000: one
    SELECT of the next queued rows joined to their contacts, a SendGrid body with the same fields per
    personalization (to, substitutions, custom_args, List-Unsubscribe headers), orjson, the
    ``sendgrid`` client's POST to the same fake, and one UPDATE marking the rows submitted."""
    import sqlite3

    import orjson
    import sendgrid

    contacts, folder = config["contacts"], Path(config["folder"])
    path = folder / f"floor-{secrets.token_hex(4)}.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
        db.execute("CREATE TABLE deliveries (id INTEGER PRIMARY KEY, contact_id INTEGER, status TEXT, "
                   "message_id TEXT)")
        db.execute("CREATE INDEX queued ON deliveries (id) WHERE status = 'queued'")
        db.execute("BEGIN")
        db.executemany("INSERT INTO contacts VALUES (?, ?, ?)",
                       ((i, f"reader{i}@example.org", f"Reader {i}") for i in range(1, contacts + 1)))
        db.executemany("INSERT INTO deliveries VALUES (?, ?, 'queued', NULL)",
                       ((i, i) for i in range(1, contacts + 1)))
        db.execute("COMMIT")
        client = sendgrid.SendGridAPIClient(config["api_key"], host=config["host"]).client
        html = "<p>" + "x" * config["html_chars"] + "</p>"  # as long as the issue's compiled HTML
        sent = 0
        started = time.perf_counter()
        while True:
            rows = db.execute("SELECT d.id, c.email, c.name FROM deliveries d JOIN contacts c ON c.id = d.contact_id "
                              "WHERE d.status = 'queued' ORDER BY d.id LIMIT 1000").fetchall()
            if not rows:
                break
            personalizations = []
            for delivery_id, email, name in rows:
                token = f"{delivery_id}.{secrets.token_urlsafe(16)}"
                unsubscribe = f"https://clinic.example/u/{token}"
                personalizations.append({
                    "to": [{"email": email, "name": name}],
                    "substitutions": {"-first_name-": name.split()[0], "-unsubscribe_url-": unsubscribe,
                                      "-preferences_url-": f"https://clinic.example/p/{token}",
                                      "-view_online_url-": f"https://clinic.example/v/{token}"},
                    "custom_args": {"delivery_id": str(delivery_id), "send_batch": "0123456789abcdef"},
                    "headers": {"List-Unsubscribe": f"<{unsubscribe}>, <mailto:unsubscribe@clinic.example>",
                                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
                })
            body = orjson.dumps({
                "personalizations": personalizations, "from": {"email": "news@clinic.example", "name": "Clinic"},
                "subject": "The Limbic Letter", "content": [{"type": "text/plain", "value": "x" * 4000},
                                                            {"type": "text/html", "value": html}],
            }).decode()
            response = client.mail.send.post(request_body=body, request_headers=JSON_UTF8, timeout=30)
            assert response.status_code == 202, response.status_code
            message_id = str(response.headers.get("X-Message-Id") or "")
            db.execute("BEGIN")
            db.execute("UPDATE deliveries SET status = 'submitted', message_id = ? WHERE id BETWEEN ? AND ?",
                       (message_id, rows[0][0], rows[-1][0]))
            db.execute("COMMIT")
            sent += len(rows)
        seconds = time.perf_counter() - started
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert sent == contacts, (sent, contacts)
    return {"end_to_end": seconds}


# The parent: configurations, repeats, table --------------------------------------------------------


@dataclass
class Row:
    backend: str
    contacts: int
    workers: int
    runs: list[dict[str, Any]]
    traced_peak: float | None
    floors: list[float]  # the bare floor's recipients/s, measured between this configuration's runs

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)


def run_child(config: dict[str, Any], env: dict[str, str], cwd: Path, script: Path = Path(__file__)) -> dict[str, Any]:
    """One send in a fresh process, by this tree's code or (``script``) another tree's, e.g. a baseline."""
    done = subprocess.run([sys.executable, str(script), "--_send", json.dumps(config)], env=env, cwd=cwd,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the send process failed ({config})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def webhook_key() -> str:
    """Sending through SendGrid needs its Event Webhook's verification key: a key pair of our own."""
    from tests.webhook_signer import Signer

    return Signer().public


def measure(backend: str, contacts: int, workers: int, args: argparse.Namespace, fake: Any, folder: Path,
            trees: dict[str, Path]) -> list[Row]:
    """The timed runs of one configuration, for each tree (this checkout, and a baseline's when given),
    their runs interleaved so both meet the same machine load."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    base_env.update({
        "NEWSLETTER_VAR_DIR": str(folder / "var"), "NEWSLETTER_SECRET_KEY": secrets.token_urlsafe(32),
        "SENDGRID_API_KEY": fake.api_key, "SENDGRID_API_HOST": fake.url, "NEWSLETTER_TRANSPORT": "sendgrid",
        "SENDGRID_WEBHOOK_PUBLIC_KEY": webhook_key(),
    })
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    traced: dict[str, float | None] = {name: None for name in trees}
    plan = [False] * args.repeat + ([True] if args.tracemalloc else [])
    floors: list[float] = []
    for index, trace in enumerate(plan):
        order = list(trees.items())
        if index % 2:  # every other round the baseline goes first: neither always meets the floor's after-effects
            order.reverse()
        for name, script in order:
            if not trace and name == "this":  # the floor, between the real runs: same machine load
                floor = run_floor(contacts, fake, folder)
                floors.append(floor)
                print(f"  floor {contacts:,} run {index + 1}/{args.repeat}: {floor:,.0f}/s", flush=True)
            with database_url(backend, args.postgres, folder) as url:
                load_s = prepare(url, contacts)
                tag = f"bench_send_{secrets.token_hex(4)}"
                env = {**base_env, "NEWSLETTER_DATABASE_URL": with_application_name(url, tag)}
                fake_cpu = cpu_of(fake._process.pid)
                with BackendCpu(args.postgres, tag) if backend == "postgresql" else nullcontext() as backends:
                    result = run_child({"contacts": contacts, "workers": workers, "tracemalloc": trace}, env, folder,
                                       script)
                result["fake_cpu"] = cpu_of(fake._process.pid) - fake_cpu
                result["own_db_cpu"] = backends.seconds if backends is not None else None
            label = "tracemalloc run" if trace else f"run {index + 1}/{args.repeat}"
            print(f"  {name} {backend} {contacts:,} x{workers} {label}: loaded in {load_s:.1f} s; start_now "
                  f"{result['start_now']:.2f} s, dispatch {result['dispatch']:.2f} s"
                  + (f", traced peak {result['traced_peak']:.1f} MB" if trace else
                     f", {contacts / result['end_to_end']:,.0f}/s; CPU s: sender {result['cpu']:.1f}, fake "
                     f"{result['fake_cpu']:.1f}"
                     + (f", PostgreSQL {result['db_cpu']:.1f} (the send's own backends "
                        f"{result['own_db_cpu']:.1f})" if result["db_cpu"] is not None else "")
                     + f"; ru_maxrss {result['rss_before']:.0f} -> {result['rss_after']:.0f} MB"),
                  flush=True)
            if result["added"] != contacts:
                print(f"  note: start_now said {result['added']} recipients were added, not {contacts:,} "
                      "(the ledger has them all)")
            if trace:
                traced[name] = result["traced_peak"]
            else:
                runs[name].append(result)
    return [Row(backend if name == "this" else f"{backend}@{name}", contacts, workers, runs[name], traced[name],
                floors) for name in trees]


def run_floor(contacts: int, fake: Any, folder: Path) -> float:
    """One run of ``child_floor`` in a fresh process; returns its recipients/s."""
    config = {"contacts": contacts, "folder": str(folder), "api_key": fake.api_key, "host": fake.url,
              "html_chars": ISSUE_HTML_CHARS}
    done = subprocess.run([sys.executable, str(Path(__file__)), "--_floor", json.dumps(config)], cwd=folder,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit("the floor process failed")
    return contacts / json.loads(done.stdout.strip().splitlines()[-1])["end_to_end"]


def profile(backend: str, contacts: int, args: argparse.Namespace, fake: Any, folder: Path) -> None:
    import pstats

    stats_file = folder / "send.pstats"
    with database_url(backend, args.postgres, folder) as url:
        prepare(url, contacts)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
        env.update({"NEWSLETTER_VAR_DIR": str(folder / "var"), "NEWSLETTER_SECRET_KEY": secrets.token_urlsafe(32),
                    "SENDGRID_API_KEY": fake.api_key, "SENDGRID_API_HOST": fake.url, "NEWSLETTER_TRANSPORT": "sendgrid",
                    "SENDGRID_WEBHOOK_PUBLIC_KEY": webhook_key(), "NEWSLETTER_DATABASE_URL": url})
        result = run_child({"contacts": contacts, "workers": 1, "tracemalloc": False, "profile": str(stats_file)},
                           env, folder)
    print(f"\ncProfile of one {backend} dispatch of {contacts:,} (under the profiler: {result['dispatch']:.1f} s)")
    pstats.Stats(str(stats_file)).sort_stats("tottime").print_stats(args.profile)


def report(rows: list[Row]) -> None:
    print("\nmedian of the timed runs (each on a fresh database); shares of render + enqueue + dispatch thread time")
    head = (f"{'backend':<10} {'contacts':>9} {'wk':>2} {'e2e s':>7} {'rcpt/s':>8} {'spread':>7} {'CPU s':>13} "
            f"{'RSS MB':>9} {'traced':>7}  " + " ".join(f"{p:>6}" for p in PHASES))
    print(head)
    print("-" * len(head))
    for row in rows:
        e2e = row.median("end_to_end")
        rates = [row.contacts / r["end_to_end"] for r in row.runs]
        spread = (max(rates) - min(rates)) / statistics.median(rates) * 100 if len(rates) > 1 else 0.0
        phases = {p: statistics.median(r["phases"][p] for r in row.runs) for p in PHASES}
        total = sum(phases.values())
        traced = f"{row.traced_peak:7.1f}" if row.traced_peak is not None else f"{'-':>7}"
        rss = (f"{row.median('vm_before'):.0f}->{row.median('vm_peak'):.0f}" if row.runs[0]["vm_peak"] is not None
               else f"{row.median('rss_before'):.0f}->{row.median('rss_after'):.0f}")
        cpu = f"{row.median('cpu'):.1f}/{row.median('fake_cpu'):.1f}" + (
            f"/{row.median('own_db_cpu'):.1f}" if row.runs[0]["own_db_cpu"] is not None else "")
        print(f"{row.backend:<10} {row.contacts:>9,} {row.workers:>2} {e2e:>7.2f} {row.contacts / e2e:>8,.0f} "
              f"{spread:>6.0f}% {cpu:>13} {rss:>9} {traced}  "
              + " ".join(f"{phases[p] / total * 100:>5.1f}%" for p in PHASES))
    print(f"\nfloor ({FLOOR_WHAT}), measured between each configuration's runs:")
    for row in rows:
        if row.floors:
            floor = statistics.median(row.floors)
            rate = row.contacts / row.median("end_to_end")
            print(f"  {row.backend:<18} {row.contacts:>9,} x{row.workers}: floor {floor:>8,.0f}/s (median of "
                  f"{len(row.floors)}), send {rate:>8,.0f}/s = {rate / floor * 100:5.1f}% of it")
    print("\ne2e: start_now (compile again, preflight of the stored email, INSERT ... SELECT) + dispatch wall time; rcpt/s = contacts / e2e;"
          "\nspread: (max - min) / median of the runs' rates; CPU s: the send process / the SendGrid fake during"
          " start_now + dispatch\n(/ the send's own PostgreSQL backends, by application_name, the same span); RSS: the send process's resident memory before start_now -> its"
          " peak during\nstart_now + dispatch (VmRSS -> VmHWM reset at the start; ru_maxrss, in the run lines, is"
          " inherited from the parent at\nfork/exec on Linux, so it cannot show the send's own peak);\ntraced: tracemalloc peak during dispatch (one extra, untimed run); render includes the"
          " draft's create_issue\n(not in e2e); body: SendGridTransport.build_body; json: SendGridTransport.encode_body"
          " (orjson); http: the rest\nof transport.send (python_http_client and the wait); other: dispatcher time outside its phases"
          " (the per-batch finish_if_done check).")


SQLITE_SHARE = 0.60  # of the floor
POSTGRES_RATE = 30_000  # recipients/s with 2 dispatchers
FLAT_MEMORY = 1.5  # the 1M traced peak may be at most this many times the 100k one
# The demo issue's compiled HTML is this long (21,584 characters); the floor's requests carry as much.
ISSUE_HTML_CHARS = 21_600
FLOOR_WHAT = "sqlite3 + orjson + sendgrid client, same batches, one process"


def summary_rows(rows: list[Row], args: argparse.Namespace) -> list[SummaryRow]:
    """The headline figures for bench/run_all.py: SQLite against its floor, PostgreSQL with 2
    dispatchers against its rate, and the traced memory peak (with --million, beside 100k's)."""
    out = []
    mine = [row for row in rows if "@" not in row.backend]
    for row in mine:
        rate = row.contacts / row.median("end_to_end")
        floor = statistics.median(row.floors) if row.floors else None
        what = f"send {row.contacts:,}, {'SQLite' if row.backend == 'sqlite' else 'PostgreSQL'}, {row.workers} dispatchers"
        if row.backend == "sqlite":
            out.append(SummaryRow("send_issue", what, rate, "recipients/s", floor, FLOOR_WHAT, ">= 60% of floor",
                                  None if floor is None else rate >= SQLITE_SHARE * floor))
        elif row.workers == 2:
            out.append(SummaryRow("send_issue", what, rate, "recipients/s", floor, FLOOR_WHAT, ">= 30,000/s",
                                  rate >= POSTGRES_RATE))
    for row in mine:
        if row.traced_peak is None:
            continue
        what = f"traced peak, send {row.contacts:,}, {row.backend}, {row.workers} dispatchers"
        small = next((other.traced_peak for other in mine if other.contacts == 100_000 and other.backend == row.backend
                      and other.workers == row.workers), None)
        if row.contacts == 1_000_000:
            out.append(SummaryRow("send_issue", what, row.traced_peak, "MB", small, "traced peak at 100,000",
                                  "flat: 1M peak <= 1.5 x 100k peak",
                                  None if small is None else row.traced_peak <= FLAT_MEMORY * small))
        else:
            out.append(SummaryRow("send_issue", what, row.traced_peak, "MB"))
    return out


def export_baseline(rev: str, folder: Path) -> Path:
    """REV's tree (``git archive``) in ``folder``; returns its bench/send_issue.py."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "bench" / "send_issue.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, nargs="+", default=[100_000], metavar="N")
    parser.add_argument("--million", action="store_true",
                        help="send to 100,000 and then 1,000,000 contacts (instead of --contacts): is memory flat?")
    parser.add_argument("--latency-ms", type=float, default=0.0, metavar="MS",
                        help="the fake answers each request this much later (SendGrid's own response time)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], metavar="K",
                        help="requests in flight (NEWSLETTER_SEND_CONCURRENCY, dispatcher threads); PostgreSQL also runs with 2")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per configuration, each on a fresh database")
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL, in schemas dropped afterwards")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--no-tracemalloc", dest="tracemalloc", action="store_false",
                        help="skip the extra run that traces Python allocations during dispatch")
    parser.add_argument("--profile", type=int, nargs="?", const=30, metavar="TOP",
                        help="one extra single-worker send per backend under cProfile; print the TOP costs")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the send of git revision REV (its own code, exported with git archive), "
                             "interleaved with this checkout's runs: before and after in one run")
    parser.add_argument("--_send", help=argparse.SUPPRESS)
    parser.add_argument("--_floor", help=argparse.SUPPRESS)
    add_summary_argument(parser)
    args = parser.parse_args()
    if args._send:
        print(json.dumps(child_send(json.loads(args._send))))
        return
    if args._floor:
        print(json.dumps(child_floor(json.loads(args._floor))))
        return
    print("reproduce: .venv/bin/python bench/send_issue.py " + " ".join(sys.argv[1:]), flush=True)
    sizes = [100_000, 1_000_000] if args.million else args.contacts  # 1M's memory beside 100k's
    backends = ([] if args.skip_sqlite else ["sqlite"]) + (["postgresql"] if args.postgres else [])
    from tests.sendgrid_fake import run_in_subprocess

    fake = run_in_subprocess(validate=False, record=False, latency=args.latency_ms / 1000)
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="send-bench-") as tmp:
            trees = {"this": Path(__file__)}
            if args.baseline:
                trees[args.baseline] = export_baseline(args.baseline, Path(tmp) / "baseline")
            for backend in backends:
                worker_counts = sorted(set(args.workers) | ({2} if backend == "postgresql" else set()))
                for contacts in sizes:
                    for workers in worker_counts:
                        rows.extend(measure(backend, contacts, workers, args, fake, Path(tmp), trees))
                    if args.profile:
                        profile(backend, contacts, args, fake, Path(tmp))
    finally:
        fake.stop()
    report(rows)
    write_summary(args.summary_json, summary_rows(rows, args))
    load = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end "
          "(other processes add noise; compare medians and ratios)")


if __name__ == "__main__":
    main()
