"""Batches held as unknown are settled without staff wherever there is evidence: the batch marker
travels with the request, SendGrid's Email Activity API is asked by it after the wait, and what is
left follows the policy (hold for staff, told once with the two commands; or resend). Against the
SendGrid stand-in, through the real client."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Issue, SendBatch
from newsletter.sending import ledger
from newsletter.sending.dispatch import Dispatcher
from newsletter.sending.reconcile import OperatorNotice, reconcile, request_log
from newsletter.transports import get_transport
from tests.sendgrid_fake import FakeSendGrid
from tests.sendkit import add_audience, make_issue
from tests.test_sending_sendgrid import sendgrid_settings, start

LATER = timedelta(hours=1)  # past the default wait of 30 minutes


def held_send(db: Database, settings: Settings, fake: FakeSendGrid, recipients: int, *, accept: bool) -> int:
    """An issue whose one request left and got no answer: accepted by SendGrid (a late answer) or
    never taken (the connection dropped after the request was written)."""
    issue_id = make_issue(db, settings)
    add_audience(db, recipients)
    start(db, settings, issue_id)
    if accept:
        fake.hang_next(1, 5.0, accept=True)
    else:
        fake.reset_next(1, accept=False)
    result = Dispatcher(settings, db, get_transport(settings)).run_until_idle()
    assert result.unknown == recipients
    return issue_id


def counts(db: Database, issue_id: int) -> dict[str, int]:
    with db.session() as s:
        return ledger.status_counts(s, issue_id)


def the_batch(db: Database) -> SendBatch:
    with db.session() as s:
        (batch,) = s.query(SendBatch).all()
        s.expunge(batch)
        return batch


def test_every_request_carries_its_batch_marker(db: Database, settings: Settings, fake_sendgrid: FakeSendGrid,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch)
    issue_id = make_issue(db, settings)
    add_audience(db, 3)
    start(db, settings, issue_id)
    Dispatcher(settings, db, get_transport(settings)).run_until_idle()
    batch = the_batch(db)
    (request,) = fake_sendgrid.requests
    assert "custom_args" not in request.body  # SendGrid's description has the request-level field a string
    assert {p["custom_args"]["send_batch"] for p in request.body["personalizations"]} == {batch.marker}
    assert len(batch.marker) == 16 and batch.began_at is not None
    # Echoed on every recipient's events, beside the delivery id; nothing personal in it.
    assert {d.custom_args["send_batch"] for d in fake_sendgrid.deliveries} == {batch.marker}


def test_the_activity_log_shows_an_accepted_request_so_it_is_settled_as_sent(
        db: Database, settings: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch, NEWSLETTER_SENDGRID_TIMEOUT="1",
                                 NEWSLETTER_SENDGRID_ACTIVITY_API="true")
    issue_id = held_send(db, settings, fake_sendgrid, 4, accept=True)
    transport = get_transport(settings)
    now = datetime.now(timezone.utc)
    early = reconcile(settings, db, now, log_source=request_log(settings, transport))
    assert not early.busy() and counts(db, issue_id) == {"unknown": 4}  # the wait is for events first
    report = reconcile(settings, db, now + LATER, log_source=request_log(settings, transport))
    assert report.confirmed == 4 and report.requeued == 0
    assert counts(db, issue_id) == {"submitted": 4}
    batch = the_batch(db)
    assert batch.status == "submitted" and "activity log holds 4 message(s)" in batch.evidence
    Dispatcher(settings, db, transport).run_until_idle()
    assert set(Counter(d.to for d in fake_sendgrid.deliveries).values()) == {1}  # nobody twice


def test_a_request_the_activity_log_never_saw_is_sent_once(
        db: Database, settings: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch, NEWSLETTER_SENDGRID_ACTIVITY_API="true")
    issue_id = held_send(db, settings, fake_sendgrid, 4, accept=False)
    assert fake_sendgrid.deliveries == []
    transport = get_transport(settings)
    report = reconcile(settings, db, datetime.now(timezone.utc) + LATER, log_source=request_log(settings, transport))
    assert report.requeued == 4 and counts(db, issue_id) == {"queued": 4}
    assert "holds no message of this request" in the_batch(db).evidence
    Dispatcher(settings, db, transport).run_until_idle()
    received = Counter(d.to for d in fake_sendgrid.deliveries)
    assert len(received) == 4 and set(received.values()) == {1}
    assert counts(db, issue_id) == {"submitted": 4}
    with db.session() as s:
        assert s.get(Issue, issue_id).status == "sent"


def test_no_evidence_holds_the_batch_for_staff_told_once_by_log_and_email(
        db: Database, settings: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch, NEWSLETTER_SENDGRID_TIMEOUT="1",
                                 NEWSLETTER_SENDGRID_ACTIVITY_API="true",
                                 NEWSLETTER_OPERATOR_EMAIL="ops@clinic.example")
    issue_id = held_send(db, settings, fake_sendgrid, 3, accept=True)
    fake_sendgrid.activity_status = 403  # the account has no Email Activity add-on
    transport = get_transport(settings)
    later = datetime.now(timezone.utc) + LATER
    with caplog.at_level(logging.WARNING, logger="newsletter.reconcile"):
        report = reconcile(settings, db, later, log_source=request_log(settings, transport),
                           notify=OperatorNotice(settings, transport))
        again = reconcile(settings, db, later + timedelta(minutes=1), log_source=request_log(settings, transport),
                          notify=OperatorNotice(settings, transport))
    batch = the_batch(db)
    assert [held.batch_id for held in report.held] == [batch.id] and again.held == []  # told once
    assert counts(db, issue_id) == {"unknown": 3}  # nothing decided blindly
    (line,) = [r.getMessage() for r in caplog.records if "wait for staff" in r.getMessage()]
    assert f"batch {batch.id} (issue {issue_id}): 3 deliveries held as unknown" in line
    assert "Email Activity API answered 403" in line and f"issues resolve {batch.id} --sent" in line
    assert "@" not in line
    (notice,) = [d for d in fake_sendgrid.deliveries if d.to == "ops@clinic.example"]
    assert notice.categories == ["operations"] and "needs a decision" in notice.subject
    assert "Small steps" not in notice.subject and "reader" not in json.dumps(notice.custom_args)
    # The CLI shows the batch waiting for staff, with the evidence and the two commands.
    shown = CliRunner().invoke(app, ["issues", "status", str(issue_id), "--json"])
    (held,) = json.loads(shown.stdout)["unknown_batches"]
    assert held["waits_for_staff"] and "403" in held["evidence"] and held["rows"] == 3
    text = CliRunner().invoke(app, ["issues", "status", str(issue_id)]).stdout
    assert "waits for staff" in text and f"issues resolve {batch.id} --resend" in text
    # Staff settle it; the record says who did.
    assert CliRunner().invoke(app, ["issues", "resolve", str(batch.id), "--sent"]).exit_code == 0
    assert counts(db, issue_id) == {"submitted": 3} and the_batch(db).evidence == "settled by staff (cli): sent"


def test_the_resend_policy_queues_a_batch_without_evidence_after_the_wait(
        db: Database, settings: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch, NEWSLETTER_UNKNOWN_POLICY="resend",
                                 NEWSLETTER_UNKNOWN_WAIT_SECONDS="600")
    issue_id = held_send(db, settings, fake_sendgrid, 2, accept=False)
    now = datetime.now(timezone.utc)
    assert request_log(settings, get_transport(settings)) is None  # the activity API is off by default
    assert not reconcile(settings, db, now + timedelta(seconds=590)).busy()
    report = reconcile(settings, db, now + timedelta(seconds=610))
    assert report.requeued == 2 and counts(db, issue_id) == {"queued": 2}
    assert "NEWSLETTER_UNKNOWN_POLICY=resend" in the_batch(db).evidence


def test_tick_reconciles_and_sends_what_the_activity_log_never_saw(
        db: Database, settings: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch, NEWSLETTER_SENDGRID_ACTIVITY_API="true")
    issue_id = held_send(db, settings, fake_sendgrid, 5, accept=False)
    later = (datetime.now(timezone.utc) + LATER).isoformat()
    result = CliRunner().invoke(app, ["tick", "--at", later])
    assert result.exit_code == 0, result.output
    assert "5 queued again" in result.stdout
    assert counts(db, issue_id) == {"submitted": 5}
    assert set(Counter(d.to for d in fake_sendgrid.deliveries).values()) == {1}


def test_a_tick_that_leaves_rows_unknown_exits_3(
        db: Database, settings: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch, NEWSLETTER_SENDGRID_TIMEOUT="1")
    issue_id = held_send(db, settings, fake_sendgrid, 2, accept=True)
    result = CliRunner().invoke(app, ["tick", "--at", (datetime.now(timezone.utc) + LATER).isoformat()])
    assert result.exit_code == 3 and "2 delivery(ies) held as unknown" in result.stderr
    assert counts(db, issue_id) == {"unknown": 2}


def test_the_operator_address_must_be_one_we_can_send_to(monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter.config import SettingsError, get_settings

    monkeypatch.setenv("NEWSLETTER_OPERATOR_EMAIL", "not an address")
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match="NEWSLETTER_OPERATOR_EMAIL"):
        get_settings()
