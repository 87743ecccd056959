"""Sending as staff run it from the README: schedule, reschedule, cancel, pause, resume, status and
resolve through the command line, and the production processes (`newsletter scheduler` electing
itself, `newsletter worker` sending) as separate programs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Delivery
from newsletter.sending import ledger
from tests.conftest import SAMPLE_POST

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output + result.stderr
    return result.output


def recipients(settings: Settings, subject: str) -> list[str]:
    messages = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in settings.outbox_dir.glob("*.eml")]
    return sorted(m["To"].addresses[0].addr_spec for m in messages if m["Subject"] == subject)


def new_issue(subject: str) -> str:
    post_id = run("posts", "import", str(SAMPLE_POST)).strip()
    return run("issues", "create", "--post", post_id, "--subject", subject, "--preheader", "A walk a day").splitlines()[0]


def audience(n: int) -> list[str]:
    addresses = [f"reader{i}@example.org" for i in range(n)]
    for address in addresses:
        run("contacts", "add", address, "--confirmed", "--consent-note", "asked at the front desk")
    return addresses


def test_schedule_reschedule_cancel_and_the_round_that_sends_it(settings: Settings) -> None:
    everyone = audience(4)
    issue = new_issue("Moving more")
    assert "scheduled at 2030-03-04T09:00:00-08:00 (America/Los_Angeles)" in run(
        "issues", "schedule", issue, "--at", "2030-03-04 09:00", "--tz", "America/Los_Angeles")
    run("issues", "schedule", issue, "--at", "2030-03-05 09:00", "--tz", "America/Los_Angeles")  # rescheduled
    assert "cancelled" in run("issues", "schedule", issue, "--cancel")
    run("tick", "--at", "2030-03-05T18:00:00Z")
    assert recipients(settings, "Moving more") == []  # a cancelled issue never goes
    run("issues", "schedule", issue, "--at", "2030-03-05 09:00", "--tz", "America/Los_Angeles")
    run("tick", "--at", "2030-03-05T16:59:00Z")  # a minute early: nothing yet
    assert recipients(settings, "Moving more") == []
    run("tick", "--at", "2030-03-05T17:00:30Z")
    assert recipients(settings, "Moving more") == everyone
    status = json.loads(run("issues", "status", issue, "--json"))
    assert status["status"] == "sent" and status["deliveries"]["submitted"] == 4


def test_pause_resume_and_resolve_from_the_command_line(settings: Settings) -> None:
    everyone = audience(3)
    issue = new_issue("Held back")
    assert "3 recipient(s) enqueued" in run("issues", "send", issue, "--queue")
    run("issues", "pause", issue)
    run("tick")
    assert recipients(settings, "Held back") == []  # paused: nothing goes
    assert "is sending" in run("issues", "resume", issue)
    run("tick")
    assert recipients(settings, "Held back") == everyone  # each once, nothing twice after resume
    # A batch held as unknown (its request left, no answer came) is settled by staff.
    db = Database.from_settings(settings)
    with db.session() as s:
        s.execute(update(Delivery).where(Delivery.status == "submitted").values(status="unknown"))
        ((batch_id, rows, _, *_),) = ledger.unknown_batches(s, int(issue))
    assert "held as unknown" in run("issues", "status", issue)
    assert f"{rows} deliveries marked submitted" in run("issues", "resolve", str(batch_id), "--sent")
    assert "no deliveries held as unknown" in runner.invoke(app, ["issues", "resolve", str(batch_id), "--sent"]).stderr


def test_a_scheduler_and_a_worker_as_separate_processes_send_a_scheduled_issue(settings: Settings) -> None:
    everyone = audience(5)
    issue = new_issue("On time")
    at = datetime.now(timezone.utc) + timedelta(seconds=3)
    run("issues", "schedule", issue, "--at", at.strftime("%Y-%m-%d %H:%M:%S"), "--tz", "UTC")
    env = {**os.environ, "NEWSLETTER_SCHEDULER_INTERVAL_SECONDS": "1"}
    newsletter = str(Path(sys.executable).parent / "newsletter")
    processes = [subprocess.Popen([newsletter, command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for command in ("scheduler", "scheduler", "worker")]  # two schedulers: one acts
    try:
        deadline = time.monotonic() + 60
        while recipients(settings, "On time") != everyone and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=30) for process in processes]
    assert recipients(settings, "On time") == everyone  # each once
    assert json.loads(run("issues", "status", issue, "--json"))["status"] == "sent"
    assert codes == [0, 0, 0]  # SIGTERM: a clean stop


def test_tick_while_sending_is_stopped_says_so_in_one_line(settings: Settings, db: Database) -> None:
    from newsletter.models import SendPause

    with db.session() as s:
        s.add(SendPause(reason="Sending stopped: the provider refused the API key. Fix SENDGRID_API_KEY, then run "
                               "'newsletter sending resume'."))
    new_issue("Stopped")
    audience(2)
    result = runner.invoke(app, ["tick"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        "error: Sending stopped: the provider refused the API key. Fix SENDGRID_API_KEY, then run "
        "'newsletter sending resume'."]
