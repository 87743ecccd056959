"""Statuses and exit codes tell the truth: a send that leaves deliveries held as unknown (the request
left, no answer came) reads "sent, N unknown" in every face (issues status, list, show, the reports,
as text, JSON and CSV) and makes `issues send` and `tick` exit 3, until the rows are settled; then it
reads "sent" again. Real CLI, real SQLite (PostgreSQL too), the SendGrid fake on loopback."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings, get_settings
from newsletter.database import Database, upgrade
from newsletter.models import Delivery
from tests.conftest import postgres_schema
from tests.liveserver import LiveServer
from tests.webhook_kit import SIGNER, post_sendgrid, webhook_server
from tests.sendgrid_fake import FakeSendGrid
from tests.sendkit import add_audience, make_issue

runner = CliRunner()
EXIT_UNSETTLED = 3  # the documented exit code of a send that left rows unknown


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def run(*args: str, code: int = 0) -> str:
    result = invoke(*args)
    assert result.exit_code == code, result.output
    return result.stdout


def use_sendgrid(fake: FakeSendGrid, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Point the CLI at the fake. One dispatcher and batches of 2, so the hung request is the first
    batch, whatever the machine's speed; a 2 s timeout leaves room for a busy machine."""
    settings = {"SENDGRID_API_KEY": fake.api_key, "SENDGRID_API_HOST": fake.url, "NEWSLETTER_SENDGRID_TIMEOUT": "2",
                "SENDGRID_WEBHOOK_PUBLIC_KEY": SIGNER.public,
                "NEWSLETTER_SEND_CONCURRENCY": "1", "NEWSLETTER_BATCH_SIZE": "2", **env}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def csv_rows(text: str) -> list[dict[str, str]]:
    """The first table of a report's CSV (tables are separated by a blank line)."""
    return list(csv.DictReader(io.StringIO(text.split("\n\n")[0])))


def listed(issue_id: int) -> dict[str, Any]:
    return next(r for r in json.loads(run("issues", "list", "--json")) if r["id"] == issue_id)


def assert_every_face_says(issue_id: int, label: str, state: str, unknown: int) -> None:
    """issues status / list / show and the issue report, as text, JSON and CSV."""
    truth = {"status": "sent", "state": state, "unknown": unknown, "label": label}
    first_line = run("issues", "status", str(issue_id)).splitlines()[0]
    assert re.fullmatch(rf"issue {issue_id}: {re.escape(label)}( \(scheduled for [^)]+\))?", first_line)
    status = json.loads(run("issues", "status", str(issue_id), "--json"))
    assert {k: status[k] for k in truth} == truth and status["deliveries"]["unknown"] == unknown
    assert re.search(rf"│ {issue_id} +│ \d+ +│ {re.escape(label)} +│", run("issues", "list"))
    assert {k: listed(issue_id)[k] for k in truth} == truth
    assert f"status: {label}\n" in run("issues", "show", str(issue_id))
    shown = json.loads(run("issues", "show", str(issue_id), "--json"))
    assert {k: shown[k] for k in truth} == truth
    report = run("report", "issue", str(issue_id))
    assert re.search(rf"│ status +│ {re.escape(label)} +│", report)
    assert ("held as unknown" in report) == bool(unknown)
    reported = json.loads(run("report", "issue", str(issue_id), "--json"))
    assert {k: reported[k] for k in truth} == truth
    (row,) = csv_rows(run("report", "issue", str(issue_id), "--csv"))
    assert {k: row[k] for k in truth} == {k: str(v) for k, v in truth.items()}


def test_a_send_left_unknown_says_so_everywhere_and_exits_3_until_resolved(
        settings: Settings, db: Database, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> None:
    use_sendgrid(fake_sendgrid, monkeypatch)
    send_left_unknown_then_resolve(db, settings, fake_sendgrid)


@pytest.mark.postgres
def test_a_send_left_unknown_on_postgresql(settings: Settings, fake_sendgrid: FakeSendGrid,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through PostgreSQL (a schema of this test's own), CLI included."""
    with postgres_schema() as url:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
        use_sendgrid(fake_sendgrid, monkeypatch)
        db = Database(url)
        try:
            upgrade(db.engine)
            send_left_unknown_then_resolve(db, get_settings(), fake_sendgrid)
        finally:
            db.engine.dispose()


def send_left_unknown_then_resolve(db: Database, settings: Settings, fake: FakeSendGrid) -> None:
    issue_id = make_issue(db, settings, subject="Walks")
    add_audience(db, 5)
    fake.hang_next(1, 6.0, accept=True)  # SendGrid takes the first batch; its answer never comes in time
    sent = invoke("issues", "send", str(issue_id))
    assert sent.exit_code == EXIT_UNSETTLED, sent.output
    assert "submitted 3, failed 0, unknown 2" in sent.stdout and f"issue {issue_id}: sent, 2 unknown" in sent.stdout
    (warning,) = sent.stderr.splitlines()  # one line: how many, where the batches are, the two ways to settle
    assert warning.startswith("warning: 2 delivery(ies) held as unknown")
    assert f"'newsletter issues status {issue_id}' lists the batches" in warning
    assert "'newsletter issues resolve BATCH --sent'" in warning
    assert "'newsletter issues resolve BATCH --resend'" in warning
    assert_every_face_says(issue_id, "sent, 2 unknown", "sent_with_unknown", 2)

    (batch,) = json.loads(run("issues", "status", str(issue_id), "--json"))["unknown_batches"]
    batch_id = batch["batch"]
    assert batch["rows"] == 2 and f"batch {batch_id}: 2 held as unknown" in run("issues", "status", str(issue_id))
    run("issues", "resolve", str(batch_id), "--sent")  # staff checked SendGrid's activity log
    assert_every_face_says(issue_id, "sent", "sent", 0)
    assert len(fake.deliveries) == 5  # each recipient once: nothing was resent


def test_a_clean_send_exits_0_and_says_sent(settings: Settings, db: Database, fake_sendgrid: FakeSendGrid,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    use_sendgrid(fake_sendgrid, monkeypatch)
    issue_id = make_issue(db, settings, subject="Walks")
    add_audience(db, 5)
    sent = invoke("issues", "send", str(issue_id))
    assert sent.exit_code == 0 and sent.stderr == "", sent.output
    assert "submitted 5, failed 0, unknown 0" in sent.stdout and f"issue {issue_id}: sent\n" in sent.stdout
    assert_every_face_says(issue_id, "sent", "sent", 0)


def test_sendgrids_processed_events_settle_the_label_without_staff(
        settings: Settings, db: Database, fake_sendgrid: FakeSendGrid,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_sendgrid(fake_sendgrid, monkeypatch)
    issue_id = make_issue(db, settings, subject="Walks")
    add_audience(db, 3)
    fake_sendgrid.hang_next(1, 6.0, accept=True)
    assert invoke("issues", "send", str(issue_id)).exit_code == EXIT_UNSETTLED
    unknown = [d for d in fake_sendgrid.deliveries if d.message_id == fake_sendgrid.deliveries[0].message_id]
    assert len(unknown) == 2 and listed(issue_id)["label"] == "sent, 2 unknown"
    processed = [{"event": "processed", "sg_event_id": f"processed-{d.custom_args['delivery_id']}",
                  "timestamp": 1796317200, "email": d.to, "delivery_id": d.custom_args["delivery_id"]} for d in unknown]
    with webhook_server(settings, db) as server:  # SendGrid's signed Event Webhook
        answer = post_sendgrid(server, json.dumps(processed[:1]).encode())
        assert answer.status_code == 200
    # One event proves the request was accepted (SendGrid takes a request whole): both rows settle.
    assert_every_face_says(issue_id, "sent", "sent", 0)


def test_an_open_of_the_email_itself_settles_its_batch(
        live_server: LiveServer, settings: Settings, db: Database, fake_sendgrid: FakeSendGrid,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The tracking pixel fetched with a delivery's own token proves SendGrid accepted that email,
    and so the whole request it travelled in: staff are not asked to resolve (or resend, twice to a
    reader) what a reader has opened, nor the rest of its batch."""
    use_sendgrid(fake_sendgrid, monkeypatch, NEWSLETTER_BATCH_SIZE="1000")
    issue_id = make_issue(db, settings, subject="Walks")
    add_audience(db, 2)
    fake_sendgrid.hang_next(1, 6.0, accept=True)
    assert invoke("issues", "send", str(issue_id)).exit_code == EXIT_UNSETTLED
    assert listed(issue_id)["label"] == "sent, 2 unknown"
    (request,) = fake_sendgrid.requests
    html = next(c["value"] for c in request.body["content"] if c["type"] == "text/html")
    opened = fake_sendgrid.deliveries[0]
    for placeholder, value in opened.substitutions.items():  # as SendGrid fills them for this recipient
        html = html.replace(placeholder, value)
    pixel = re.search(r'<img src="https?://[^/"]+(/o/[^"]+\.gif)"', html).group(1)
    answer = httpx.get(live_server.url + pixel, headers={"User-Agent": "Mozilla/5.0 (iPhone) Mobile/15E148"})
    assert answer.headers["content-type"] == "image/gif"
    live_server.drained()
    with db.session() as s:
        states = dict(s.execute(select(Delivery.id, Delivery.status).where(Delivery.issue_id == issue_id)).all())
    assert states[int(opened.custom_args["delivery_id"])] == "submitted"
    assert sorted(states.values()) == ["submitted", "submitted"]
    assert listed(issue_id)["label"] == "sent"


def test_tick_and_a_sequence_show_the_rows_they_leave_unknown(
        settings: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> None:
    use_sendgrid(fake_sendgrid, monkeypatch)
    run("init")
    run("contacts", "add", "ana@example.org", "--confirmed", "--consent-note", "signed up at reception")
    run("sequences", "resume", "welcome")
    run("sequences", "enroll", "welcome", "ana@example.org")
    fake_sendgrid.hang_next(1, 6.0, accept=True)
    ticked = invoke("tick", "--at", (datetime.now(timezone.utc) + timedelta(days=1)).isoformat())
    assert ticked.exit_code == EXIT_UNSETTLED, ticked.output
    assert "steps queued 1" in ticked.stdout and "submitted 0, failed 0, unknown 1" in ticked.stdout
    (warning,) = ticked.stderr.splitlines()
    assert warning.startswith("warning: 1 delivery(ies) held as unknown") and "issues resolve BATCH --sent" in warning

    shown = json.loads(run("sequences", "show", "welcome", "--json"))
    (batch,) = shown["unknown_batches"]
    batch_id = batch["batch"]
    assert shown["unknown"] == 1 and batch["rows"] == 1
    assert shown["steps"][0]["unknown"] == 1 and shown["steps"][0]["deliveries"] == {"unknown": 1}
    text = run("sequences", "show", "welcome")
    header = next(line for line in text.splitlines() if "subject" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")][-5:] == ["submitted", "delivered", "failed", "unknown",
                                                                      "suppressed"]
    assert re.search(r"│ 0 +│ 0 +│ 0 +│ 1 +│ 0 +│\n", text)  # submitted, delivered, failed, unknown, suppressed
    assert f"batch {batch_id}: 1 held as unknown" in text and f"newsletter issues resolve {batch_id} --resend" in text
    assert "1 delivery(ies) held as unknown" in run("report", "sequence", "welcome")
    assert json.loads(run("report", "sequence", "welcome", "--json"))["totals"]["unknown"] == 1

    run("issues", "resolve", str(batch_id), "--sent")
    shown = json.loads(run("sequences", "show", "welcome", "--json"))
    assert shown["unknown"] == 0 and shown["unknown_batches"] == [] and shown["steps"][0]["unknown"] == 0
    assert "held as unknown" not in run("sequences", "show", "welcome")
    assert "held as unknown" not in run("report", "sequence", "welcome")
