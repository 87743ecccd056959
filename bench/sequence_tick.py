"""Time one round of due work (``due.run_round``) over N active sequence enrolments, on SQLite and PostgreSQL.

A fresh database gets N confirmed subscribers (bulk insert), the shipped Welcome sequence (installed by
``sequences.install``, so its steps are compiled as in production) and one active enrolment per contact,
inserted in bulk: each has had the first step (a submitted delivery 3 to 10 days ago, so the ledger
and the frequency cap have real rows to look at) and waits for the second, with ``next_due_at`` spread
so that the chosen share is due at the measured instant (due ones within the past hour, the others
over the next 9 days). Scenarios: 0% due (the common tick), 1% and 10% due. The last sweep of every
enrolment for goals is recorded as half an hour ago, as on a running installation (it sweeps hourly).
The subscriptions were confirmed before the sequence started listening, so the trigger check finds no
candidates; with ``--recent-triggers`` each was confirmed when its enrolment began (as a trigger enrols
them), and every round's trigger check looks at all N of them.

Each scenario times ``run_round`` and ``process_due`` alone ``--repeat`` times inside a transaction that
is rolled back (the same due rows every time), ``process_due`` again with the hourly goal sweep
(the "+ sweep" line), then one ``run_round`` that commits. Query time is the
sum of the time spent in the driver's ``execute``, measured with SQLAlchemy's ``before_cursor_execute``
/ ``after_cursor_execute`` events; on SQLite a SELECT's rows are produced while they are fetched,
after ``after_cursor_execute``, so "incl. fetch" also times the sqlite3 cursor's fetch calls (psycopg
reads a result whole in ``execute``, so on PostgreSQL the two are the same).

    .venv/bin/python bench/sequence_tick.py [--enrolments 100000] [--repeat 5] \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--skip-sqlite] [--recent-triggers]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers in bench/send_issue.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.summary import Row, add_summary_argument, write_summary
from send_issue import (
    COLUMNS,
    LOAD_BATCH,
    analyze,
    audience_rows,
    bulk_load,
    database_url,
)

SHARES = (0.0, 0.01, 0.10)
NOW = datetime.now(UTC).replace(microsecond=0)
ENROLMENT_COLUMNS = {
    "enrollments": "id, sequence_id, contact_id, generation, state, next_step_id, next_due_at, last_step_id, "
                   "last_sent_at, enrolled_at, source",
    "deliveries": "id, enrollment_id, step_id, contact_id, list_id, status, due_at, attempts, created_at, "
                  "submitted_at",
}


# Timing the driver ---------------------------------------------------------------------------------


class Clock:
    """Seconds in the driver: ``events`` from SQLAlchemy's cursor events, ``fetch`` from sqlite3's
    fetch calls (see TimedConnection)."""

    def __init__(self) -> None:
        self.events = 0.0
        self.fetch = 0.0
        self.statements = 0
        self._started: dict[int, float] = {}

    def reset(self) -> None:
        self.events = self.fetch = 0.0
        self.statements = 0

    def before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        self._started[id(cursor)] = time.perf_counter()

    def after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        self.events += time.perf_counter() - self._started.pop(id(cursor))
        self.statements += 1


CLOCK = Clock()


class TimedCursor(sqlite3.Cursor):
    def fetchone(self) -> Any:
        started = time.perf_counter()
        try:
            return super().fetchone()
        finally:
            CLOCK.fetch += time.perf_counter() - started

    def fetchmany(self, size: int | None = None) -> list[Any]:
        started = time.perf_counter()
        try:
            return super().fetchmany(size) if size is not None else super().fetchmany()
        finally:
            CLOCK.fetch += time.perf_counter() - started

    def fetchall(self) -> list[Any]:
        started = time.perf_counter()
        try:
            return super().fetchall()
        finally:
            CLOCK.fetch += time.perf_counter() - started


class TimedConnection(sqlite3.Connection):
    def cursor(self, factory: Any = None) -> sqlite3.Cursor:  # type: ignore[override]
        return super().cursor(factory or TimedCursor)


def timed_engine(url: str) -> Any:
    from sqlalchemy import event

    from newsletter.database import make_engine

    engine = make_engine(url)  # the project's engine: its pragmas and BEGIN IMMEDIATE on SQLite
    if engine.dialect.name == "sqlite":
        def use_timed_connection(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            cparams["factory"] = TimedConnection

        event.listen(engine, "do_connect", use_timed_connection)
    event.listen(engine, "before_cursor_execute", CLOCK.before)
    event.listen(engine, "after_cursor_execute", CLOCK.after)
    return engine


# Building the data ---------------------------------------------------------------------------------


def enrolment_rows(n: int, share_due: float, sequence_id: int, first_step: int, second_step: int,
                   ) -> Iterator[dict[str, list[tuple]]]:
    """One active enrolment per contact, waiting for the second step; ``share_due`` of them due at NOW.
    Each has a submitted delivery of the first step, 3 to 10 days old."""
    rnd = random.Random(11)
    due_every = round(1 / share_due) if share_due else 0
    for first in range(1, n + 1, LOAD_BATCH):
        out: dict[str, list[tuple]] = {"enrollments": [], "deliveries": []}
        for i in range(first, min(first + LOAD_BATCH, n + 1)):
            sent = NOW - timedelta(days=3) - timedelta(seconds=rnd.randrange(7 * 86400))
            if due_every and i % due_every == 0:
                next_due = NOW - timedelta(seconds=rnd.randrange(3600))
            else:
                next_due = NOW + timedelta(seconds=1 + rnd.randrange(9 * 86400))
            out["enrollments"].append((i, sequence_id, i, 1, "active", second_step, next_due, first_step, sent,
                                       sent, "trigger"))
            out["deliveries"].append((i, i, first_step, i, 1, "submitted", sent, 1, sent, sent))
        yield out


def build(url: str, n: int, share_due: float, *, recent_triggers: bool = False) -> float:
    """Migrate, load contacts, install the Welcome sequence, load enrolments. Returns seconds taken."""
    from sqlalchemy import select, text
    from sqlalchemy.orm import Session

    from newsletter.config import Settings
    from newsletter.database import make_engine, upgrade
    from newsletter.models import Lease
    from newsletter.sequences.engine import GOAL_SWEEP_LEASE, steps_of
    from newsletter.sequences.install import install
    from newsletter.sequences.library import shipped_definitions
    from subscribers.models import Installation

    started = time.perf_counter()
    engine = make_engine(url)
    try:
        upgrade(engine)
        with Session(engine) as session:
            salt = session.scalar(select(Installation.hash_salt))
        assert salt
        bulk_load(engine, audience_rows(n, salt, suppressed_share=0.0))
        welcome = next(d for d in shipped_definitions() if d.name == "Welcome")
        with Session(engine) as session:
            sequence = install(session, Settings(), welcome, now=NOW - timedelta(days=30)).sequence
            steps = steps_of(session, sequence)
            ids = sequence.id, steps[0].id, steps[1].id
            session.commit()
        bulk_load(engine, enrolment_rows(n, share_due, *ids), {**COLUMNS, **ENROLMENT_COLUMNS}, make_list=False)
        with Session(engine) as session:  # the hourly goal sweep ran half an hour ago
            session.add(Lease(name=GOAL_SWEEP_LEASE, holder="bench", expires_at=NOW + timedelta(minutes=30)))
            if recent_triggers:
                session.execute(text("UPDATE subscriptions SET confirmed_at = (SELECT e.enrolled_at FROM enrollments e"
                                     " WHERE e.contact_id = subscriptions.contact_id)"))
            session.commit()
        analyze(engine)
    finally:
        engine.dispose()
    return time.perf_counter() - started


# Measuring -----------------------------------------------------------------------------------------


def tick(engine: Any, settings: Any, what: str, *, commit: bool) -> dict[str, float]:
    from sqlalchemy import delete
    from sqlalchemy.orm import Session

    from newsletter.due import run_round
    from newsletter.models import Lease
    from newsletter.sequences.engine import GOAL_SWEEP_LEASE, process_due

    with Session(engine) as session:
        if what == "+ sweep":  # as if the last sweep was more than an hour ago (rolled back with the rest)
            session.execute(delete(Lease).where(Lease.name == GOAL_SWEEP_LEASE))
        CLOCK.reset()
        started = time.perf_counter()
        if what == "run_round":
            report = run_round(session, settings, NOW).sequences
        else:
            report = process_due(session, settings, NOW)
        if commit:
            session.commit()
        total = time.perf_counter() - started
        if not commit:
            session.rollback()
    return {"total": total, "events": CLOCK.events, "db": CLOCK.events + CLOCK.fetch, "statements": CLOCK.statements,
            "queued": report.queued, "postponed": report.postponed, "completed": report.completed}


def measure(url: str, repeat: int) -> dict[str, Any]:
    from newsletter.config import Settings

    settings = Settings()
    engine = timed_engine(url)
    try:
        tick(engine, settings, "run_round", commit=False)  # warm: imports, caches, compiled statements
        results: dict[str, Any] = {}
        for what in ("run_round", "process_due", "+ sweep"):
            runs = [tick(engine, settings, what, commit=False) for _ in range(repeat)]
            results[what] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        results["committed"] = tick(engine, settings, "run_round", commit=True)
    finally:
        engine.dispose()
    return results


def report(backend: str, n: int, rows: list[tuple[float, float, dict[str, Any]]]) -> None:
    print(f"\n{backend}: {n:,} active enrolments; median of the rolled-back repeats (ms; '+ sweep': process_due "
          "in a round that also sweeps every enrolment for goals, as one does hourly)")
    head = (f"{'due':>5} {'timed':<12} {'total':>8} {'query':>8} {'incl.fetch':>10} {'python':>8} {'stmts':>6} "
            f"{'queued':>7} {'postponed':>9}  {'committed run_round':>19}")
    print(head)
    print("-" * len(head))
    for share, build_s, results in rows:
        committed = results["committed"]
        for what in ("run_round", "process_due", "+ sweep"):
            r = results[what]
            tail = (f"{committed['total'] * 1000:>8.0f} (query {committed['db'] * 1000:.0f})"
                    if what == "run_round" else "")
            print(f"{share * 100:>4.0f}% {what:<12} {r['total'] * 1000:>8.0f} {r['events'] * 1000:>8.0f} "
                  f"{r['db'] * 1000:>10.0f} {(r['total'] - r['db']) * 1000:>8.0f} {r['statements']:>6.0f} "
                  f"{r['queued']:>7.0f} {r['postponed']:>9.0f}  {tail:>19}")
    print("query: time in the driver's execute (cursor events); incl.fetch: plus sqlite3's fetch calls;"
          " python: total - incl.fetch")
    # Headline: process_due per share, beside the round with nothing due (what every tick pays).
    idle = next((results["process_due"]["total"] for share, _, results in rows if share == 0), None)
    for share, _, results in rows:
        SUMMARY.append(Row("sequence_tick", f"process_due, {share * 100:.0f}% of {n:,} enrolments due, {backend}",
                           round(results["process_due"]["total"] * 1000, 1), "ms",
                           floor=round(idle * 1000, 1) if idle is not None and share else None,
                           floor_what="process_due with nothing due, same run" if idle is not None and share else ""))


SUMMARY: list[Row] = []  # the rows for --summary-json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrolments", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shares", type=float, nargs="+", default=list(SHARES), metavar="SHARE",
                        help="shares of the enrolments due at the measured tick (0.01 = 1%%)")
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL, in schemas dropped afterwards")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--recent-triggers", action="store_true",
                        help="subscriptions confirmed when their enrolment began: the trigger check sees them all")
    add_summary_argument(parser)
    args = parser.parse_args()
    if args.summary_json:
        args.summary_json = args.summary_json.resolve()  # the run changes directory
    print("reproduce: .venv/bin/python bench/sequence_tick.py " + " ".join(sys.argv[1:]), flush=True)
    backends = ([] if args.skip_sqlite else ["sqlite"]) + (["postgresql"] if args.postgres else [])
    with tempfile.TemporaryDirectory(prefix="sequence-bench-") as tmp:
        folder = Path(tmp)
        for key in [k for k in os.environ if k.startswith(("NEWSLETTER_", "SENDGRID_"))]:
            del os.environ[key]
        os.environ["NEWSLETTER_VAR_DIR"] = str(folder / "var")  # Settings(): defaults, nothing from the caller
        os.chdir(folder)  # no stray .env
        for backend in backends:
            rows = []
            for share in args.shares:
                with database_url(backend, args.postgres, folder) as url:
                    build_s = build(url, args.enrolments, share, recent_triggers=args.recent_triggers)
                    results = measure(url, args.repeat)
                print(f"  {backend} {share * 100:.0f}% due: built in {build_s:.0f} s; run_round "
                      f"{results['run_round']['total'] * 1000:.0f} ms", flush=True)
                rows.append((share, build_s, results))
            report("SQLite" if backend == "sqlite" else "PostgreSQL", args.enrolments, rows)
    write_summary(args.summary_json, SUMMARY)
    load = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end "
          "(other processes add noise)")


if __name__ == "__main__":
    main()
