"""The whole send path through boto3 to a real HTTP server speaking the SES v2 API (tests/ses_fake.py),
which checks every call's SigV4 signature against the test secret."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from newsletter.config import Settings, SettingsError, environment_settings, get_settings
from newsletter.database import Database
from newsletter.models import Delivery, Issue
from newsletter.sending import ledger, stops
from newsletter.sending.dispatch import Dispatcher, SendingStopped
from newsletter.transports import get_transport
from newsletter.transports import ses as ses_module
from tests.sendkit import add_audience, make_issue
from tests.ses_fake import FakeSes
from tests.test_sending_sendgrid import start

TOPIC = "arn:aws:sns:us-east-1:123456789012:clinic-ses-events"


def ses_settings(fake: FakeSes, monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    values = {**fake.environment(), "NEWSLETTER_TRANSPORT": "ses", "NEWSLETTER_SES_CONFIGURATION_SET": "clinic-news",
              "NEWSLETTER_SES_SNS_TOPIC_ARN": TOPIC, **env}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    configured = get_settings()
    assert configured.transport == "ses"
    return configured


def test_2000_recipients_each_once_with_the_tags_and_configuration_set(
        db: Database, settings: Settings, fake_ses: FakeSes, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ses_settings(fake_ses, monkeypatch)
    issue_id = make_issue(db, settings)
    add_audience(db, 2000)
    start(db, settings, issue_id)
    total = Dispatcher(settings, db, get_transport(settings)).run_until_idle()
    assert total.submitted == 2000
    received = Counter(d.to for d in fake_ses.deliveries)
    assert len(received) == 2000 and set(received.values()) == {1}
    assert fake_ses.refused == []  # every call's signature was the account's
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 2000}
        assert s.get(Issue, issue_id).status == "sent"
        stored = dict(s.execute(select(Delivery.id, Delivery.provider_message_id).where(Delivery.issue_id == issue_id)).all())
    sent_ids = {int(d.tags["delivery_id"]): d.message_id for d in fake_ses.deliveries}
    assert sent_ids == stored  # each delivery keeps its own SES MessageId
    for sent in fake_ses.deliveries[:50]:
        assert set(sent.tags) == {"delivery_id", "send_batch"}  # nothing personal, nothing about health
        assert sent.tags["delivery_id"].isdigit() and len(sent.tags["send_batch"]) >= 16
        assert sent.configuration_set == "clinic-news"
        assert sent.message["To"].addresses[0].addr_spec == sent.to  # the personalised message, to its one reader
        assert sent.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"/u/{sent.tags['delivery_id']}." in sent.message["List-Unsubscribe"]  # this reader's own link
        assert sent.message["To"].addresses[0].display_name.startswith("Reader ")
        text = sent.message.get_body(("plain",)).get_content()
        assert f"/v/{sent.tags['delivery_id']}." in text  # the reader's own view-online and unsubscribe links


def test_throttling_a_rejected_recipient_and_a_hang_after_acceptance(
        db: Database, settings: Settings, fake_ses: FakeSes, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ses_settings(fake_ses, monkeypatch, NEWSLETTER_SES_TIMEOUT="1", NEWSLETTER_SES_CONCURRENCY="4")
    issue_id = make_issue(db, settings)
    add_audience(db, 2000)
    start(db, settings, issue_id)
    fake_ses.throttle_next(6)  # waited out inside the batch
    fake_ses.reject_addresses = {"reader1234@example.org"}
    fake_ses.hang_next(1, 2.5)  # SES took it; the answer comes after our read timeout
    dispatcher = Dispatcher(settings, db, get_transport(settings))
    total = dispatcher.run_until_idle()
    with db.session() as s:
        counts = ledger.status_counts(s, issue_id)
        ((unknown_batch, unknown_rows, error, *_),) = ledger.unknown_batches(s, issue_id)
        failed = s.scalar(select(Delivery.error).where(Delivery.issue_id == issue_id, Delivery.status == "failed"))
        unknown_error = s.scalar(select(Delivery.error).where(Delivery.issue_id == issue_id,
                                                              Delivery.status == "unknown"))
    assert counts == {"submitted": 1998, "failed": 1, "unknown": 1}
    assert total.submitted == 1998 and total.failed == 1 and total.unknown == 1 and unknown_rows == 1
    assert "no answer from Amazon SES" in error and "may have been accepted" in unknown_error
    assert "refused by Amazon SES (MessageRejected)" in failed and "reader1234" not in failed
    assert [code for code, _ in fake_ses.refused].count("TooManyRequestsException") == 6
    received = Counter(d.to for d in fake_ses.deliveries)
    assert set(received.values()) == {1}  # nobody twice: not the throttled, not the one whose answer was lost
    assert len(received) == 1999 and "reader1234@example.org" not in received
    again = Dispatcher(settings, db, get_transport(settings)).run_until_idle()  # a later round resends nothing
    assert again.handled == 0 and len(fake_ses.deliveries) == 1999


def test_ses_that_keeps_throttling_sends_the_rest_later_never_twice(
        db: Database, settings: Settings, fake_ses: FakeSes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ses_module, "THROTTLE_PATIENCE", 0.3)
    monkeypatch.setattr(ses_module, "THROTTLE_MAX_PAUSE", 0.1)
    settings = ses_settings(fake_ses, monkeypatch, NEWSLETTER_SES_CONCURRENCY="2", NEWSLETTER_BATCH_SIZE="100")
    issue_id = make_issue(db, settings)
    add_audience(db, 300)
    start(db, settings, issue_id)
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the dispatcher's waits, recorded; SES's limit lifts meanwhile
        waits.append(seconds)
        fake_ses.lift_throttle()

    # The limit comes after some messages of the first batch went: the rest go back, to be sent again
    # as a batch of their own once the wait is over.
    transport = get_transport(settings)
    original = transport._call
    calls = 0

    def call(request, address):  # noqa: ANN001, ANN202 - wraps the real call
        nonlocal calls
        calls += 1
        if calls == 40:
            fake_ses.throttle_next(10_000)
        return original(request, address)

    monkeypatch.setattr(transport, "_call", call)
    total = Dispatcher(settings, db, transport, sleep=wait).run_until_idle()
    assert total.submitted == 300
    received = Counter(d.to for d in fake_ses.deliveries)
    assert len(received) == 300 and set(received.values()) == {1}
    assert waits and max(waits) >= 1  # waited for SES's rate before sending the rest
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 300}


@pytest.mark.parametrize("code", ["AccountSuspendedException", "SendingPausedException"])
def test_a_suspended_account_stops_all_sending_with_nothing_marked_failed(
        db: Database, settings: Settings, fake_ses: FakeSes, monkeypatch: pytest.MonkeyPatch,
        code: str) -> None:
    settings = ses_settings(fake_ses, monkeypatch)
    issue_id = make_issue(db, settings)
    add_audience(db, 30)
    start(db, settings, issue_id)
    fake_ses.stop_with(code)
    with pytest.raises(SendingStopped, match="Amazon SES"):
        Dispatcher(settings, db, get_transport(settings)).run_until_idle()
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"queued": 30}
        assert "the AWS credentials or the SES account" in stops.active_stop(s).reason
    assert fake_ses.deliveries == []


def test_a_wrong_secret_is_refused_by_the_signature_check_and_stops_sending(
        db: Database, settings: Settings, fake_ses: FakeSes, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ses_settings(fake_ses, monkeypatch, AWS_SECRET_ACCESS_KEY="not-the-account-secret-at-all")
    issue_id = make_issue(db, settings)
    add_audience(db, 5)
    start(db, settings, issue_id)
    with pytest.raises(SendingStopped, match="AWS_SECRET_ACCESS_KEY does not match"):
        Dispatcher(settings, db, get_transport(settings)).run_until_idle()
    # The calls already in flight when the first refusal came back, and no more.
    assert set(fake_ses.refused) == {("SignatureDoesNotMatch", 403)} and len(fake_ses.refused) <= settings.ses_concurrency
    assert fake_ses.deliveries == []


def test_a_refused_connection_is_retried_and_nothing_is_lost(
        db: Database, settings: Settings, fake_ses: FakeSes, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ses_settings(fake_ses, monkeypatch, NEWSLETTER_SES_ENDPOINT_URL="http://127.0.0.1:9",
                            NEWSLETTER_SEND_RETRIES="1")
    issue_id = make_issue(db, settings)
    add_audience(db, 5)
    start(db, settings, issue_id)
    waits: list[float] = []
    total = Dispatcher(settings, db, get_transport(settings), sleep=waits.append).run_until_idle()
    assert total.failed == 5 and len(waits) == 1  # one retry, then the batch fails with the reason
    with db.session() as s:
        error = s.scalar(select(Delivery.error).where(Delivery.issue_id == issue_id))
    assert "Amazon SES could not be reached (EndpointConnectionError)" in error


@pytest.mark.parametrize(("missing", "named"), [
    ("NEWSLETTER_SES_SNS_TOPIC_ARN", "NEWSLETTER_SES_SNS_TOPIC_ARN"),
    ("NEWSLETTER_SES_CONFIGURATION_SET", "NEWSLETTER_SES_CONFIGURATION_SET"),
    ("NEWSLETTER_SES_REGION", "NEWSLETTER_SES_REGION"),
])
def test_a_missing_setting_is_one_clear_line_at_start(settings: Settings, fake_ses: FakeSes,
                                                      monkeypatch: pytest.MonkeyPatch, missing: str, named: str) -> None:
    ses_settings(fake_ses, monkeypatch)
    monkeypatch.delenv(missing)
    get_settings.cache_clear()
    with pytest.raises(SettingsError) as raised:
        environment_settings()
    assert named in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("missing", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_missing_aws_credentials_refuse_to_start(settings: Settings, fake_ses: FakeSes,
                                                monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    ses_settings(fake_ses, monkeypatch)
    monkeypatch.delenv(missing)
    get_settings.cache_clear()
    with pytest.raises(SettingsError) as raised:
        environment_settings()
    assert str(raised.value).startswith(f"NEWSLETTER_TRANSPORT=ses needs {missing} in the environment")
    assert fake_ses.secret_key not in str(raised.value)


def test_on_postgresql_each_delivery_keeps_its_own_message_id_and_a_lost_answer_is_unknown(
        postgres_db: Database, settings: Settings, fake_ses: FakeSes, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ses_settings(fake_ses, monkeypatch, NEWSLETTER_SES_TIMEOUT="1", NEWSLETTER_BATCH_SIZE="100")
    issue_id = make_issue(postgres_db, settings)
    add_audience(postgres_db, 300)
    start(postgres_db, settings, issue_id)
    fake_ses.hang_next(1, 2.5)
    total = Dispatcher(settings, postgres_db, get_transport(settings)).run_until_idle()
    assert total.submitted == 299 and total.unknown == 1
    with postgres_db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 299, "unknown": 1}
        stored = dict(s.execute(select(Delivery.id, Delivery.provider_message_id)
                                .where(Delivery.issue_id == issue_id, Delivery.status == "submitted")).all())
    sent_ids = {int(d.tags["delivery_id"]): d.message_id for d in fake_ses.deliveries}
    assert len(sent_ids) == 300 and all(sent_ids[row] == message_id for row, message_id in stored.items())


def test_a_batch_throttled_from_its_first_call_waits_whole_for_ses_s_rate(
        db: Database, settings: Settings, fake_ses: FakeSes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ses_module, "THROTTLE_PATIENCE", 0.2)
    monkeypatch.setattr(ses_module, "THROTTLE_MAX_PAUSE", 0.05)
    settings = ses_settings(fake_ses, monkeypatch)
    issue_id = make_issue(db, settings)
    add_audience(db, 20)
    start(db, settings, issue_id)
    fake_ses.throttle_next(10_000)
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        fake_ses.lift_throttle()

    total = Dispatcher(settings, db, get_transport(settings), sleep=wait).run_until_idle()
    # Nothing of the batch went: it is RateLimited as a whole, and waits for SES's rate to recover.
    assert len(waits) == 1 and 25 <= waits[0] <= ses_module.RATE_LIMIT_RETRY
    assert total.submitted == 20 and Counter(d.to for d in fake_ses.deliveries).most_common(1)[0][1] == 1
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 20}


def test_a_worker_that_dies_while_waiting_to_send_the_rest_leaves_them_queued(
        db: Database, settings: Settings, fake_ses: FakeSes, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime, timedelta, timezone

    monkeypatch.setattr(ses_module, "THROTTLE_PATIENCE", 0.2)
    monkeypatch.setattr(ses_module, "THROTTLE_MAX_PAUSE", 0.05)
    settings = ses_settings(fake_ses, monkeypatch, NEWSLETTER_SES_CONCURRENCY="1")
    issue_id = make_issue(db, settings)
    add_audience(db, 30)
    start(db, settings, issue_id)
    transport = get_transport(settings)
    original, calls = transport._call, []

    def call(request, address):  # noqa: ANN001, ANN202 - wraps the real call
        calls.append(address)
        if len(calls) == 10:
            fake_ses.throttle_next(10_000)  # SES slows down for good after nine messages
        return original(request, address)

    def killed(seconds: float) -> None:  # the worker dies while it waits to send the rest
        raise RuntimeError("killed")

    monkeypatch.setattr(transport, "_call", call)
    with pytest.raises(RuntimeError, match="killed"):
        Dispatcher(settings, db, transport, sleep=killed).run_until_idle()
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 9, "claimed": 21}
        later = datetime.now(timezone.utc) + timedelta(seconds=settings.lease_seconds + 60)
        assert ledger.recover_expired(s, later) == (21, 0)  # queued again: none of them went
    fake_ses.lift_throttle()
    Dispatcher(settings, db, get_transport(settings)).run_until_idle()
    received = Counter(d.to for d in fake_ses.deliveries)
    assert len(received) == 30 and set(received.values()) == {1}
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 30}
