"""The fault suite: workers SIGKILLed at random points of a send, with no human afterwards.

``newsletter worker`` processes send an issue through the SendGrid stand-in, which posts signed
"processed" events back to the app's webhook (as a SendGrid account with the Event Webhook on does)
and answers the Email Activity API. A worker is killed with SIGKILL at a random moment after it has
sent something, and started again at once; on PostgreSQL two workers run and either may be the one
killed. At the end every recipient got the issue exactly once, no row is unknown, claimed or queued,
and every face says "sent" -- with no ``issues resolve`` run by anyone.

Short by default (CI); ``NEWSLETTER_FAULT_SUITE=full`` runs the issue's full figures: twenty kills over
a 20,000-recipient send, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Issue, SendBatch
from newsletter.sending import ledger, schedule
from subscribers.states import MAY_HAVE_LEFT, BatchStatus
from tests.liveserver import serving
from tests.sendgrid_fake import FakeSendGrid
from tests.sendkit import add_audience, make_issue
from tests.webhook_kit import SENDGRID_URL, SIGNER

pytestmark = pytest.mark.fault
FULL = os.environ.get("NEWSLETTER_FAULT_SUITE", "").strip().lower() == "full"
RECIPIENTS, KILLS = (20_000, 20) if FULL else (3_000, 5)
BATCH = 100
SETTLE_SECONDS = 600 if FULL else 240  # for the last rows to be settled once the kills are over


@dataclass
class Figures:
    kills: int = 0
    in_flight: int = 0  # batches whose request had begun when their worker was killed
    not_begun: int = 0  # batches claimed by the killed worker whose request had not begun
    unknown_seen: int = 0  # the most rows held as unknown at any check
    seconds: float = 0.0


def worker_env(settings: Settings, fake: FakeSendGrid, database_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))},
        "NEWSLETTER_VAR_DIR": str(settings.var_dir), "NEWSLETTER_DATABASE_URL": database_url,
        "SENDGRID_API_KEY": fake.api_key, "SENDGRID_API_HOST": fake.url,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": SIGNER.public,
        "NEWSLETTER_BATCH_SIZE": str(BATCH), "NEWSLETTER_SEND_CONCURRENCY": "4",
        "NEWSLETTER_LEASE_SECONDS": "10", "NEWSLETTER_RECOVER_SECONDS": "1",
        "NEWSLETTER_UNKNOWN_WAIT_SECONDS": "3", "NEWSLETTER_SENDGRID_ACTIVITY_API": "true",
        "NEWSLETTER_SENDGRID_TIMEOUT": "20",
    }


def start_worker(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    newsletter = str(Path(sys.executable).parent / "newsletter")
    return subprocess.Popen([newsletter, "worker"], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def unknown_rows(db: Database, issue_id: int) -> int:
    with db.session() as s:
        return ledger.status_counts(s, issue_id).get("unknown", 0)


def kill_and_settle(db: Database, settings: Settings, database_url: str, *, workers: int,
                    tmp_path: Path) -> tuple[int, Figures]:
    figures = Figures()
    rng = random.Random(int(os.environ.get("NEWSLETTER_FAULT_SEED", "0")) or None)
    issue_id = make_issue(db, settings)
    add_audience(db, RECIPIENTS)
    configured = settings.model_copy(update={"sendgrid_webhook_public_key": SecretStr(SIGNER.public)})
    started = time.monotonic()
    with FakeSendGrid(latency=0.05) as fake, serving(configured, db) as app:
        fake.post_events_to(app.url + SENDGRID_URL, SIGNER)
        env = worker_env(settings, fake, database_url)
        with db.session() as s:
            schedule.start_now(s, settings, s.get(Issue, issue_id), datetime.now(timezone.utc))
        running = [start_worker(env, tmp_path) for _ in range(workers)]
        try:
            for _ in range(KILLS):
                # A random point of the send: once the running workers have sent something more, then a
                # random fraction of a request's time later (before, during or after a request).
                seen = len(fake.requests)
                deadline = time.monotonic() + 60
                while len(fake.requests) < seen + rng.randint(1, 3) and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.2))
                victim = rng.randrange(workers)
                running[victim].send_signal(signal.SIGKILL)
                running[victim].wait(timeout=30)
                figures.kills += 1
                with db.session() as s:  # what the dead worker had in hand (worker ids hold the pid)
                    mine = SendBatch.worker.like(f"%:{running[victim].pid}:%")
                    figures.in_flight += s.scalar(select(func.count()).where(mine, SendBatch.status.in_(
                        MAY_HAVE_LEFT))) or 0
                    figures.not_begun += s.scalar(select(func.count()).where(
                        mine, SendBatch.status == BatchStatus.CLAIMED)) or 0
                figures.unknown_seen = max(figures.unknown_seen, unknown_rows(db, issue_id))
                running[victim] = start_worker(env, tmp_path)
            deadline = time.monotonic() + SETTLE_SECONDS
            while time.monotonic() < deadline:
                with db.session() as s:
                    counts = ledger.status_counts(s, issue_id)
                    status = s.get(Issue, issue_id).status
                figures.unknown_seen = max(figures.unknown_seen, counts.get("unknown", 0))
                if status == "sent" and set(counts) == {"submitted"} and fake.events_pending() == 0:
                    break
                time.sleep(0.5)
        finally:
            for process in running:
                process.send_signal(signal.SIGTERM)
            for process in running:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
        received = Counter(d.to for d in fake.deliveries)
    figures.seconds = time.monotonic() - started
    assert len(received) == RECIPIENTS, f"{RECIPIENTS - len(received)} recipients never got the issue"
    assert set(received.values()) == {1}, f"{sum(n > 1 for n in received.values())} recipients got it twice"
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": RECIPIENTS}
        assert s.get(Issue, issue_id).status == "sent" and ledger.unknown_batches(s) == []
        batches = dict(s.execute(select(SendBatch.status, func.count()).group_by(SendBatch.status)).all())
        assert set(batches) <= {"submitted", "failed"}, batches  # none left in flight, claimed or unknown
        settled = dict(s.execute(select(SendBatch.evidence, func.count()).where(SendBatch.evidence.is_not(None))
                                 .group_by(SendBatch.evidence)).all())
    assert not any("staff" in evidence for evidence in settled), settled  # nobody settled anything by hand
    print(f"\n{workers} worker(s), {RECIPIENTS:,} recipients, {figures.kills} SIGKILLs with {figures.in_flight} "
          f"requests in flight and {figures.not_begun} claimed batches not begun; at most {figures.unknown_seen} "
          f"rows unknown at a check; {figures.seconds:.0f} s; batches: {batches}; settled without staff: "
          f"{'; '.join(f'{n} x {e[:70]}' for e, n in sorted(settled.items())) or 'none needed'}")
    return issue_id, figures


def every_face_says_sent(issue_id: int, env: dict[str, str], cwd: Path) -> None:
    newsletter = str(Path(sys.executable).parent / "newsletter")
    shown = subprocess.run([newsletter, "issues", "status", str(issue_id), "--json"], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["label"] == "sent" and data["unknown"] == 0 and data["unknown_batches"] == []


def test_sigkills_of_a_sqlite_worker_settle_with_no_human(db: Database, settings: Settings, tmp_path: Path) -> None:
    url = str(db.engine.url)
    issue_id, _ = kill_and_settle(db, settings, url, workers=1, tmp_path=tmp_path)
    every_face_says_sent(issue_id, {**os.environ, "NEWSLETTER_VAR_DIR": str(settings.var_dir),
                                    "NEWSLETTER_DATABASE_URL": url}, tmp_path)


def test_sigkills_of_two_postgresql_workers_settle_with_no_human(postgres_db: Database, settings: Settings,
                                                                 tmp_path: Path) -> None:
    url = postgres_db.engine.url.render_as_string(hide_password=False)
    issue_id, _ = kill_and_settle(postgres_db, settings, url, workers=2, tmp_path=tmp_path)
    every_face_says_sent(issue_id, {**os.environ, "NEWSLETTER_VAR_DIR": str(settings.var_dir),
                                    "NEWSLETTER_DATABASE_URL": url}, tmp_path)
