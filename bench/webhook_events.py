"""SendGrid Event Webhook throughput: events stored per second through the real app over HTTP.

Builds N submitted deliveries in a fresh database (SQLite in a temp folder; PostgreSQL too with
``--postgres``, in a schema dropped afterwards), serves the app with uvicorn on loopback in a
subprocess (so the client does not share its GIL), and posts signed batches of SendGrid events the
way SendGrid does: ``--batch`` events per POST, in time order (processed, then delivered, then opens
(half of them machine opens), then clicks). Each round uses deliveries of its own, so every round does
the same ledger work. It then replays the same batches (re-signed, as SendGrid's retries are) and
measures duplicates per second. Rounds run with signature verification on and off; the median of
``--repeat`` rounds is printed. Nothing here is a test: figures depend on the machine.

    .venv/bin/python bench/webhook_events.py --deliveries 100000 --events 40000 --batch 1000 --repeat 3 \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.common import postgres_database, sent_issue
from bench.summary import Row, add_summary_argument, write_summary
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Event
from tests.liveserver import wait_for_health
from tests.webhook_signer import Signer

NOW = datetime.now(UTC)
CHUNK = 20_000  # rows per bulk insert while building
WARM_UP = 200  # deliveries per warm-up round


# Building the ledger ----------------------------------------------------------------------------


def build(db: Database, deliveries: int) -> list[int]:
    """``deliveries`` contacts, one issue, one submitted delivery each (1000 per provider request)."""
    return sent_issue(db, deliveries, "Hello.", NOW, chunk=CHUNK, message_ids=True)[1]


# Events -----------------------------------------------------------------------------------------


def events_for(delivery_ids: list[int], epoch: int) -> list[dict[str, Any]]:
    """SendGrid's events for these deliveries, in the order it would send them."""
    out: list[dict[str, Any]] = []

    def event(kind: str, did: int, **extra: Any) -> dict[str, Any]:
        return {"email": f"reader{did}@example.org", "timestamp": epoch, "event": kind, "delivery_id": str(did),
                "sg_event_id": secrets.token_urlsafe(16), "sg_message_id": f"bench{did // 1000:06d}.filterdrecv-1",
                "smtp-id": "<bench@ismtpd0001p1las1.sendgrid.net>", "category": ["issue-1"], **extra}

    out += [event("processed", d) for d in delivery_ids]
    out += [event("delivered", d, response="250 OK", ip="203.0.113.9") for d in delivery_ids]
    opened = delivery_ids[: len(delivery_ids) * 6 // 10]
    out += [event("open", d, sg_machine_open=i % 2 == 0, useragent="Mozilla/5.0", ip="198.51.100.7")
            for i, d in enumerate(opened)]
    out += [event("click", d, url="https://clinic.example/blog/small-steps", useragent="Mozilla/5.0")
            for d in delivery_ids[: len(delivery_ids) * 2 // 10]]
    return out


EVENTS_PER_DELIVERY = 2 + 0.6 + 0.2


# The server -------------------------------------------------------------------------------------


def _serve(url: str, var_dir: str, port: int, public_key: str | None) -> None:
    """The app as ``newsletter serve`` runs it (in a spawned process)."""
    import logging

    import uvicorn

    from newsletter.web.app import create_app
    from newsletter.web.server import server_config

    os.environ.update({"NEWSLETTER_DATABASE_URL": url, "NEWSLETTER_VAR_DIR": var_dir, "NEWSLETTER_TRANSPORT": "outbox"})
    if public_key:
        os.environ["SENDGRID_WEBHOOK_PUBLIC_KEY"] = public_key
    else:  # the round that measures what verification costs: unsigned posts, the development setting
        os.environ["NEWSLETTER_ALLOW_UNSIGNED_WEBHOOKS"] = "true"
    logging.getLogger("newsletter.webhooks.sendgrid").setLevel(logging.WARNING)
    settings = Settings()
    uvicorn.Server(server_config(create_app(settings, Database(url)), settings, "127.0.0.1", port)).run()


@dataclass
class Server:
    base: str
    pid: int
    signer: Signer | None

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (Linux /proc): what a busy, shared machine's other
        load does not inflate, unlike wall time."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(url: str, var_dir: str, signer: Signer | None) -> Iterator[Server]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    public_key = signer.public if signer else None
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(url, var_dir, port, public_key))
    process.start()
    base = f"http://127.0.0.1:{port}"
    wait_for_health(base, process.is_alive, 30)
    try:
        assert process.pid is not None
        yield Server(base, process.pid, signer)
    finally:
        process.terminate()
        process.join(10)


# Rounds -----------------------------------------------------------------------------------------


@dataclass
class Round:
    verified: bool
    events: int
    stored_per_s: float
    duplicates_per_s: float
    ms_per_post: float
    cpu_ms_per_post: float  # the server's CPU time per POST of new events


def post_all(client: httpx.Client, app: Server, bodies: list[bytes]) -> tuple[float, float, dict[str, int]]:
    """Post every body once; returns (wall seconds, server CPU seconds, summed counts)."""
    totals = {"stored": 0, "duplicates": 0, "unmatched": 0, "rejected": 0}
    # Signed just before sending, as SendGrid does; signing is the client's cost, so it is done first.
    signed = [(body, app.signer.headers(body) if app.signer else {"Content-Type": "application/json"})
              for body in bodies]
    cpu, started = app.cpu_seconds(), time.perf_counter()
    for body, headers in signed:
        answer = client.post(app.base + "/webhooks/sendgrid", content=body, headers=headers)
        answer.raise_for_status()
        result = answer.json()
        for key in ("stored", "duplicates", "unmatched"):
            totals[key] += result[key]
        totals["rejected"] += len(result["rejected"])
    return time.perf_counter() - started, app.cpu_seconds() - cpu, totals


def run_round(app: Server, delivery_ids: list[int], batch: int) -> Round:
    events = events_for(delivery_ids, int(NOW.timestamp()))
    bodies = [json.dumps(events[i:i + batch]).encode() for i in range(0, len(events), batch)]
    with httpx.Client(timeout=120) as client:
        elapsed, cpu, first = post_all(client, app, bodies)
        replay_elapsed, _, again = post_all(client, app, bodies)  # SendGrid's retries: duplicates
    if first["stored"] != len(events) or first["unmatched"] or first["rejected"]:
        raise RuntimeError(f"first pass: {first} for {len(events)} events")
    if again["duplicates"] != len(events) or again["stored"]:
        raise RuntimeError(f"replay: {again} for {len(events)} events")
    return Round(app.signer is not None, len(events), len(events) / elapsed, len(events) / replay_elapsed,
                 elapsed * 1000 / len(bodies), cpu * 1000 / len(bodies))


def bench(db: Database, url: str, args: argparse.Namespace, label: str) -> None:
    started = time.perf_counter()
    ids = build(db, args.deliveries)
    print(f"\n{label}: {len(ids):,} deliveries built in {time.perf_counter() - started:.0f} s")
    per_round = max(1, int(args.events / EVENTS_PER_DELIVERY))
    rounds: list[Round] = []
    offset = 0
    with tempfile.TemporaryDirectory(prefix="webhook-bench-var-") as var_dir, \
            server(url, var_dir, Signer()) as verifying, server(url, var_dir, None) as trusting:
        for app in (verifying, trusting):  # warm-up, not counted: first statements compile and cache
            run_round(app, ids[offset:offset + WARM_UP], args.batch)
            offset += WARM_UP
        # Interleaved, so that a change in the machine's other load falls on both alike.
        for _ in range(args.repeat):
            for app in (verifying, trusting):
                if offset + per_round > len(ids):
                    print("  (not enough deliveries for fresh rounds: later rounds reuse rows)")
                    offset = 0
                rounds.append(run_round(app, ids[offset:offset + per_round], args.batch))
                offset += per_round
    with db.session() as s:
        stored = s.scalar(select(func.count()).select_from(Event))
    print(f"median of {args.repeat} rounds, {args.batch} events per POST; server CPU = the app process's own time")
    print(f"{'signature':<10} {'events/round':>12} {'stored/s':>9} {'duplicates/s':>13} {'ms/POST':>8} "
          f"{'server CPU ms/POST':>19} {'stored/s per CPU':>17}")
    for verified in (True, False):
        mine = [r for r in rounds if r.verified == verified]
        cpu = statistics.median(r.cpu_ms_per_post for r in mine)
        print(f"{'on' if verified else 'off':<10} {mine[0].events:>12,} "
              f"{statistics.median(r.stored_per_s for r in mine):>9,.0f} "
              f"{statistics.median(r.duplicates_per_s for r in mine):>13,.0f} "
              f"{statistics.median(r.ms_per_post for r in mine):>8.1f} {cpu:>19.1f} "
              f"{args.batch * 1000 / cpu if cpu else float('nan'):>17,.0f}")
    print(f"events rows in the database: {stored:,}")
    verifying = [r for r in rounds if r.verified]
    SUMMARY.append(Row("webhook_events", f"events stored/s, {args.batch} per signed POST, {label}",
                       round(statistics.median(r.stored_per_s for r in verifying)), "events/s",
                       floor=round(statistics.median(r.duplicates_per_s for r in verifying)),
                       floor_what="the same posts replayed (duplicates: nothing stored), same run"))


SUMMARY: list[Row] = []  # the rows for --summary-json


@contextmanager
def sqlite_database() -> Iterator[tuple[Database, str]]:
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        db = Database(url)
        try:
            yield db, url
        finally:
            db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=40_000, help="events posted per round (about)")
    parser.add_argument("--batch", type=int, default=1000, help="events per POST")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL, in a schema dropped afterwards")
    parser.add_argument("--skip-sqlite", action="store_true")
    add_summary_argument(parser)
    args = parser.parse_args()
    print("reproduce: .venv/bin/python bench/webhook_events.py " + " ".join(sys.argv[1:]))
    print(f"machine: {os.cpu_count()} CPUs; server: uvicorn in a subprocess on 127.0.0.1; one client, keep-alive")
    if not args.skip_sqlite:
        with sqlite_database() as (db, url):
            bench(db, url, args, "SQLite")
    if args.postgres:
        with postgres_database(args.postgres, "bench_webhook") as db:
            bench(db, db.url, args, "PostgreSQL")
    write_summary(args.summary_json, SUMMARY)


if __name__ == "__main__":
    main()
