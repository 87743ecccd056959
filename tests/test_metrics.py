"""GET /metrics over real HTTP: each figure read from a ledger in a known state (SQLite, and PostgreSQL
when NEWSLETTER_TEST_POSTGRES_URL is set), the provider errors the SendGrid transport really records,
and who may read them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError
from sqlalchemy import update
from typer.testing import CliRunner

from newsletter.cli import app as cli
from newsletter.config import Settings, get_settings
from newsletter.database import Database
from newsletter.models import Delivery, Event, Issue, Lease, SendBatch, SendPause, Sequence, SequenceStep
from newsletter.reports.operations import error_kind
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher, SendingStopped
from newsletter.transports import get_transport
from newsletter.web.app import create_app
from subscribers.db import utcnow
from tests.liveserver import free_port, serving_app
from tests.webhook_signer import Signer
from tests.sendgrid_fake import FakeSendGrid
from tests.sendkit import add_audience, make_issue

TOKEN = secrets.token_urlsafe(32)
SLACK = 30.0  # seconds the scrape may come after the data was written, on a busy machine

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metrics_app(settings: Settings, db: Database, token: str | None = TOKEN):  # noqa: ANN201 - a FastAPI app
    configured = settings.model_copy(update={"metrics_token": SecretStr(token) if token else None})
    return create_app(configured, db)


def scrape(url: str, token: str = TOKEN) -> tuple[Samples, str]:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, response.text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def family(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


# A ledger in a known state -------------------------------------------------------------------------


def build_history(db: Database, settings: Settings, now: datetime) -> None:
    """Deliveries of two issues and two sequences in every interesting state, batches and pauses with
    the errors the dispatcher records, SendGrid and first-party events, and two leases."""
    sending_issue, paused_issue = make_issue(db, settings), make_issue(db, settings, "Another week")
    ago = lambda seconds: now - timedelta(seconds=seconds)  # noqa: E731
    with db.session() as s:
        s.get(Issue, sending_issue).status = "sending"
        s.get(Issue, paused_issue).status = "paused"
        active = Sequence(name="nurture", status="active", trigger_type="manual", definition={})
        paused = Sequence(name="welcome", status="paused", trigger_type="manual", definition={})
        s.add_all([active, paused])
        s.flush()
        steps = [SequenceStep(sequence_id=seq.id, key="one", position=1, delay_seconds=0, subject="Hello",
                              html="<p>x</p>", text="x") for seq in (active, paused)]
        s.add_all(steps)
        batches = {
            "timed_out": SendBatch(transport="sendgrid", worker="w", status="unknown", size=2, finished_at=ago(7200),
                                   error="no answer from SendGrid after the request was sent (timed out); "
                                         "it may have been accepted"),
            "worker_died": SendBatch(transport="sendgrid", worker="w", status="unknown", size=1,
                                     finished_at=ago(1800),
                                     error="the worker stopped while this request was in flight"),
            "gave_up": SendBatch(transport="sendgrid", worker="w", status="failed", size=1, finished_at=ago(900),
                                 error="gave up after 6 attempts: SendGrid server error (503)"),
            "refused": SendBatch(transport="sendgrid", worker="w", status="split", size=2, finished_at=ago(800),
                                 error="SendGrid refused the request (400): personalizations.0.to.0.email: "
                                       "Does not contain a valid address."),
            "claimed": SendBatch(transport="sendgrid", worker="w", status="sending", size=1),
            "fine": SendBatch(transport="sendgrid", worker="w", status="submitted", size=6, finished_at=ago(20)),
        }
        s.add_all(batches.values())
        s.flush()

        def rows(n: int, status: str, *, issue: int | None = sending_issue, step: int | None = None,
                 due: float = 3600, submitted: float | None = None, batch: str | None = None,
                 error: str | None = None) -> list[Delivery]:
            return [Delivery(issue_id=issue, step_id=step, status=status, due_at=ago(due),
                             submitted_at=ago(submitted) if submitted is not None else None,
                             batch_id=batches[batch].id if batch else None, error=error) for _ in range(n)]

        s.add_all([
            *rows(2, "queued", due=600),  # the oldest due row of an issue that is sending
            *rows(1, "queued", due=-3600),  # not due yet
            *rows(1, "queued", issue=paused_issue, due=10800),  # held by a paused issue: not counted as due
            *rows(1, "claimed", due=700, batch="claimed"),
            *rows(3, "submitted", submitted=20, batch="fine"),
            *rows(2, "submitted", submitted=180, batch="fine"),
            *rows(1, "submitted", submitted=900, batch="fine"),
            *rows(2, "delivered", submitted=2000),
            *rows(1, "failed", batch="gave_up", error="gave up after 6 attempts: SendGrid server error (503)"),
            *rows(2, "unknown", batch="timed_out", error="no answer from SendGrid"),
            *rows(1, "unknown", batch="worker_died", error="the worker stopped"),
            *rows(1, "suppressed"),
            *rows(1, "queued", issue=None, step=steps[0].id, due=300),
            *rows(1, "queued", issue=None, step=steps[1].id, due=4000),  # a paused sequence's row waits
            *rows(1, "submitted", issue=None, step=steps[0].id, submitted=10),
            *rows(1, "bounced", issue=None, step=steps[0].id, submitted=5000),
        ])
        s.add_all([
            SendPause(reason="Sending stopped: SendGrid refused the API key (401): SENDGRID_API_KEY is wrong, "
                             "revoked, or lacks the Mail Send permission. Fix SENDGRID_API_KEY, then run "
                             "'newsletter sending resume'.", active=True),
            SendPause(reason="Sending stopped: SendGrid refused the API key (403): …", active=False),
            SendPause(issue_id=sending_issue, reason="paused by staff", active=False),
        ])

        def event(kind: str, occurred: float, recorded: float, source: str = "sendgrid") -> Event:
            return Event(type=kind, source=source, occurred_at=ago(occurred), recorded_at=ago(recorded),
                         provider_event_id=secrets.token_hex(8) if source == "sendgrid" else None)

        s.add_all([
            *(event("processed", 120, 110) for _ in range(3)),
            event("delivered", 100, 10),  # SendGrid's newest: 90 seconds on its way
            event("blocked", 200, 190),
            event("delivered", 900, 890),  # older than the window
            event("open", 5, 5, source="first_party"),  # newer, but our own
        ])
        s.add_all([Lease(name="scheduler", holder="host-a:4242:abcdef", expires_at=now + timedelta(seconds=600)),
                   Lease(name="old-job", holder="host-b:7:123456", expires_at=ago(30))])


EXPECTED_DELIVERIES = {
    ("queued", "issue"): 4, ("claimed", "issue"): 1, ("submitted", "issue"): 6, ("delivered", "issue"): 2,
    ("failed", "issue"): 1, ("unknown", "issue"): 3, ("suppressed", "issue"): 1,
    ("queued", "step"): 2, ("submitted", "step"): 1, ("bounced", "step"): 1,
}


def test_each_figure_of_a_known_ledger(any_db: Database, settings: Settings) -> None:
    now = utcnow()
    build_history(any_db, settings, now)
    with serving_app(metrics_app(settings, any_db)) as url:
        samples, text = scrape(url)

    deliveries = family(samples, "newsletter_deliveries")
    assert len(deliveries) == 9 * 2  # every state for both kinds, zeros included
    assert {(dict(k)["state"], dict(k)["kind"]): v for k, v in deliveries.items() if v} == EXPECTED_DELIVERIES
    assert value(samples, "newsletter_deliveries", state="dropped", kind="issue") == 0

    assert 600 <= value(samples, "newsletter_oldest_due_seconds", kind="issue") < 600 + SLACK
    assert 300 <= value(samples, "newsletter_oldest_due_seconds", kind="step") < 300 + SLACK

    assert value(samples, "newsletter_unknown_batches") == 2
    assert value(samples, "newsletter_unknown_deliveries") == 3
    assert 7200 <= value(samples, "newsletter_unknown_oldest_seconds") < 7200 + SLACK

    assert value(samples, "newsletter_submitted_recipients", window="1m") == 4
    assert value(samples, "newsletter_submitted_recipients", window="5m") == 6

    assert {dict(k)["kind"]: v for k, v in family(samples, "newsletter_provider_errors").items()} == {
        "auth": 2, "bad_request": 1, "server_error": 1, "timeout_or_connection": 1, "too_large": 0,
        "unexpected_answer": 0, "other": 0,
    }

    events = {dict(k)["type"]: v for k, v in family(samples, "newsletter_webhook_events").items()}
    assert {t: n for t, n in events.items() if n} == {"processed": 3, "delivered": 1, "blocked": 1}
    assert set(events) >= {"bounce", "dropped", "spamreport", "deferred"}
    assert all(dict(k)["window"] == "5m" for k in family(samples, "newsletter_webhook_events"))
    newest = value(samples, "newsletter_webhook_last_event_timestamp_seconds")
    assert newest == pytest.approx((now - timedelta(seconds=100)).timestamp(), abs=0.01)
    assert value(samples, "newsletter_webhook_lag_seconds") == pytest.approx(90, abs=0.01)

    assert value(samples, "newsletter_lease_info", lease="scheduler", holder="host-a:4242:abcdef") == 1
    assert 600 - SLACK < value(samples, "newsletter_lease_expires_in_seconds", lease="scheduler") <= 600
    assert -30 - SLACK < value(samples, "newsletter_lease_expires_in_seconds", lease="old-job") <= -30

    assert value(samples, "newsletter_sending_stopped") == 1
    assert value(samples, "newsletter_issues", status="sending") == 1
    assert value(samples, "newsletter_issues", status="paused") == 1
    assert value(samples, "newsletter_metrics_read_seconds") > 0
    assert "@" not in text  # counts only


def test_an_empty_database_has_every_series_at_zero(db: Database, settings: Settings) -> None:
    with serving_app(metrics_app(settings, db)) as url:
        samples, _ = scrape(url)
    assert set(family(samples, "newsletter_deliveries").values()) == {0}
    assert value(samples, "newsletter_oldest_due_seconds", kind="issue") == 0
    assert value(samples, "newsletter_unknown_batches") == 0
    assert value(samples, "newsletter_sending_stopped") == 0
    assert set(family(samples, "newsletter_provider_errors").values()) == {0}
    # No event yet: no lag and no last-event time rather than a made-up one.
    assert not family(samples, "newsletter_webhook_lag_seconds")
    assert not family(samples, "newsletter_webhook_last_event_timestamp_seconds")


def test_a_scrape_reads_beside_a_writer_holding_sqlite(db: Database, settings: Settings) -> None:
    """SQLite has one writer: the figures are read in a transaction of their own that does not queue
    behind it (a dispatcher recording a batch goes on, and so does the scrape)."""
    build_history(db, settings, utcnow())
    with serving_app(metrics_app(settings, db)) as url, db.session() as writer:
        writer.execute(update(Issue).values(subject="Held"))  # holds the write lock until the block ends
        samples, _ = scrape(url)
    assert value(samples, "newsletter_deliveries", state="queued", kind="issue") == 4


def test_a_database_that_cannot_be_read_fails_the_scrape_with_one_line(settings: Settings, tmp_path: Path) -> None:
    unreadable = tmp_path / "a-folder-not-a-database"
    unreadable.mkdir()
    with serving_app(metrics_app(settings, Database(f"sqlite:///{unreadable}"))) as url:
        response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 503
    assert response.text == "the database could not be read\n"


# What the dispatcher really records, through the SendGrid transport ----------------------------------


def test_provider_errors_as_the_sendgrid_transport_records_them(db: Database, settings: Settings,
                                                                fake_sendgrid: FakeSendGrid,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"SENDGRID_API_KEY": fake_sendgrid.api_key, "SENDGRID_API_HOST": fake_sendgrid.url,
           "SENDGRID_WEBHOOK_PUBLIC_KEY": Signer().public,
           "NEWSLETTER_BATCH_SIZE": "2", "NEWSLETTER_SEND_RETRIES": "1", "NEWSLETTER_SENDGRID_TIMEOUT": "3"}
    for key, val in env.items():
        monkeypatch.setenv(key, val)
    get_settings.cache_clear()
    settings = get_settings()
    issue_id = make_issue(db, settings)
    add_audience(db, 16)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), utcnow())
    waits: list[float] = []
    # Nobody listens on this port: the request never leaves (a connection error, retried, then given up).
    unreachable = settings.model_copy(update={"sendgrid_api_host": f"http://127.0.0.1:{free_port()}"})
    Dispatcher(unreachable, db, get_transport(unreachable), sleep=waits.append).run_once()
    fake_sendgrid.fail_next(2, 503)  # retried once, then given up
    fake_sendgrid.fail_next(2, 404)  # a wrong host or path
    fake_sendgrid.fail_next(1, 413)  # split into halves...
    fake_sendgrid.hang_next(2, 0.0, accept=True)  # ...which go
    fake_sendgrid.fail_next(1, 400)  # no recipient named: split to find them...
    fake_sendgrid.hang_next(2, 0.0, accept=True)  # ...and the halves go
    fake_sendgrid.hang_next(1, 8.0, accept=True)  # accepted, but the answer comes too late: unknown
    fake_sendgrid.fail_next(1, 401)  # the key is refused: all sending stops
    with pytest.raises(SendingStopped):
        Dispatcher(settings, db, get_transport(settings), sleep=waits.append).run_until_idle()

    with serving_app(metrics_app(settings, db)) as url:
        samples, text = scrape(url)
    assert {dict(k)["kind"]: v for k, v in family(samples, "newsletter_provider_errors").items()} == {
        "auth": 1, "bad_request": 1, "server_error": 1, "timeout_or_connection": 2, "too_large": 1,
        "unexpected_answer": 1, "other": 0,
    }
    assert value(samples, "newsletter_unknown_batches") == 1
    assert value(samples, "newsletter_unknown_deliveries") == 2
    assert value(samples, "newsletter_sending_stopped") == 1
    assert value(samples, "newsletter_deliveries", state="failed", kind="issue") == 6
    assert value(samples, "newsletter_deliveries", state="submitted", kind="issue") == 4
    assert value(samples, "newsletter_deliveries", state="queued", kind="issue") == 4  # the stop gave 2 back
    assert value(samples, "newsletter_submitted_recipients", window="1m") == 4
    assert "@" not in text


@pytest.mark.parametrize(("message", "kind"), [
    ("Sending stopped: SendGrid refused the API key (401): …", "auth"),
    ("SendGrid: rate limit reached (429)", "rate_limited"),
    ("SendGrid: request too large (413, 1000 recipients)", "too_large"),
    ("too large", "too_large"),
    ("refused by the provider: SendGrid refused the request (400): subject: required", "bad_request"),
    ("gave up after 6 attempts: SendGrid server error (502)", "server_error"),
    ("gave up after 6 attempts: SendGrid could not be reached (timed out)", "timeout_or_connection"),
    ("no answer from SendGrid after the request was sent (Connection reset by peer); it may have been accepted",
     "timeout_or_connection"),
    ("unexpected answer from SendGrid (200) instead of 202", "unexpected_answer"),
    ("something new", "other"),
    ("the worker stopped while this request was in flight", None),
    ("stopped before sending; rows queued again", None),
])
def test_error_kinds(message: str, kind: str | None) -> None:
    assert error_kind(message) == kind


# Who may read them ----------------------------------------------------------------------------------


@pytest.fixture
def metrics_url(db: Database, settings: Settings) -> Iterator[str]:
    with serving_app(metrics_app(settings, db)) as url:
        yield url


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer",
    f"Bearer {TOKEN[:-1]}",
    f"Bearer {TOKEN}x",
    f"Bearer {secrets.token_urlsafe(32)}",
    f"Basic {TOKEN}",
    TOKEN,
])
def test_without_the_right_token_nothing_is_shown(metrics_url: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = httpx.get(f"{metrics_url}/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "newsletter_" not in response.text


def test_the_token_in_the_query_string_is_not_accepted(metrics_url: str) -> None:
    assert httpx.get(f"{metrics_url}/metrics", params={"token": TOKEN}).status_code == 401


def test_with_the_right_token_the_figures_are_shown(metrics_url: str) -> None:
    for scheme in ("Bearer", "bearer"):
        response = httpx.get(f"{metrics_url}/metrics", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert response.status_code == 200
        assert "newsletter_deliveries" in response.text
        assert response.headers["cache-control"] == "no-store"


def test_unset_the_endpoint_does_not_exist(db: Database, settings: Settings) -> None:
    with serving_app(metrics_app(settings, db, token=None)) as url:
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            response = httpx.get(f"{url}/metrics", headers=headers)
            assert response.status_code == 404
            assert "newsletter_" not in response.text


@pytest.mark.parametrize("token", ["", "short", "x" * 31, "a" * 31 + " ", "é" * 40, "a" * 20 + " " + "b" * 20])
def test_a_weak_or_malformed_token_is_refused(token: str, settings: Settings,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_METRICS_TOKEN", token)
    with pytest.raises(ValidationError, match="NEWSLETTER_METRICS_TOKEN"):
        Settings()


def test_serve_refuses_to_start_with_a_short_token(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_METRICS_TOKEN", "too-short-to-be-safe")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["serve", "--web-only", "--port", str(free_port())])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: NEWSLETTER_METRICS_TOKEN is shorter than 32 bytes: make one with: "
        'python -c "import secrets; print(secrets.token_urlsafe(48))"'
    ]
    assert TOKEN not in result.stderr


def test_a_long_enough_token_is_taken(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_METRICS_TOKEN", TOKEN)
    assert Settings().metrics_token.get_secret_value() == TOKEN  # type: ignore[union-attr]
