"""``POST /webhooks/ses`` over real HTTP: SNS notifications signed with a test key (SignatureVersion 1
and 2), their certificate fetched over TLS from a loopback server (tests/sns_kit.py); mail sent
through the SES transport to its stand-in (tests/ses_fake.py) first, so the events name real tags
and message ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from newsletter.config import Settings, get_settings
from newsletter.database import Database
from newsletter.models import Delivery, Event
from newsletter.sending import ledger
from newsletter.sending.dispatch import Dispatcher
from newsletter.tracking.sns import SnsVerifier
from newsletter.transports import get_transport
from subscribers.models import Contact, Suppression
from subscribers.suppression import reason_for
from tests.liveserver import LiveServer, serving
from tests.sendkit import add_audience, make_issue
from tests.ses_fake import FakeSes
from tests.sns_kit import CERT_PATH, CERT_URL, TOPIC, FakeSns, ses_event
from tests.test_sending_ses import ses_settings, start


@pytest.fixture
def sns() -> Iterator[FakeSns]:
    fake = FakeSns().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def sent(db: Database, settings: Settings, fake_ses: FakeSes,
         monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An issue sent through the SES transport to reader0..reader4; each address's SentMessage."""
    settings = ses_settings(fake_ses, monkeypatch)
    issue_id = make_issue(db, settings)
    add_audience(db, 5)
    start(db, settings, issue_id)
    Dispatcher(settings, db, get_transport(settings)).run_until_idle()
    return {d.to: d for d in fake_ses.deliveries}


@pytest.fixture
def hooked(sent: dict[str, Any], db: Database, sns: FakeSns) -> Iterator[LiveServer]:
    with serving(get_settings(), db) as server:
        server.app.state.sns_verifier = SnsVerifier(TOPIC, get=sns.getter())  # the tests' CA and loopback server
        yield server


def post(server: LiveServer, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.url}/webhooks/ses", content=content, timeout=10,
                      headers={"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"})


def event_for(sent: dict[str, Any], address: str, kind: str, **details: Any) -> dict[str, Any]:
    message = sent[address]
    return ses_event(kind, message_id=message.message_id, to=address, delivery_id=message.tags["delivery_id"],
                     **details)


def stored(db: Database) -> tuple[int, int]:
    with db.session() as s:
        return (s.scalar(select(func.count()).select_from(Event).where(Event.source == "ses")),
                s.scalar(select(func.count()).select_from(Suppression)))


def delivery_status(db: Database, address: str) -> str:
    with db.session() as s:
        return s.scalar(select(Delivery.status).join(Contact, Contact.id == Delivery.contact_id)
                        .where(Contact.email == address))


def test_a_permanent_bounce_and_a_complaint_suppress_the_address(hooked: LiveServer, sns: FakeSns,
                                                                 sent: dict[str, Any], db: Database) -> None:
    bounce = event_for(sent, "reader1@example.org", "Bounce", bounceType="Permanent", bounceSubType="General",
                       bouncedRecipients=[{"emailAddress": "reader1@example.org", "status": "5.1.1",
                                           "diagnosticCode": "smtp; 550 5.1.1 <reader1@example.org> unknown"}])
    complaint = event_for(sent, "reader2@example.org", "Complaint", complaintFeedbackType="abuse",
                          complainedRecipients=[{"emailAddress": "reader2@example.org"}])
    transient = event_for(sent, "reader3@example.org", "Bounce", bounceType="Transient", bounceSubType="MailboxFull",
                          bouncedRecipients=[{"emailAddress": "reader3@example.org"}])
    delivered = event_for(sent, "reader0@example.org", "Delivery", recipients=["reader0@example.org"],
                          smtpResponse="250 ok")
    answers = [post(hooked, sns.notification(bounce, version="1")), post(hooked, sns.notification(complaint, version="2")),
               post(hooked, sns.notification(transient)), post(hooked, sns.notification(delivered, version="2"))]
    assert [a.status_code for a in answers] == [200] * 4
    assert all(a.json()["stored"] == 1 and a.json()["unmatched"] == 0 for a in answers)
    with db.session() as s:
        assert reason_for(s, "reader1@example.org") == "hard_bounce"
        assert reason_for(s, "reader2@example.org") == "spam_complaint"
        assert reason_for(s, "reader3@example.org") is None  # a soft bounce is only recorded
        statuses = dict(s.execute(select(Contact.email, Contact.status)).all())
        reasons = list(s.scalars(select(Event.reason).where(Event.source == "ses", Event.reason.is_not(None))))
        notes = set(s.scalars(select(Suppression.note)))
    assert statuses["reader1@example.org"] == "bounced" and statuses["reader2@example.org"] == "complained"
    assert delivery_status(db, "reader1@example.org") == "bounced"
    assert delivery_status(db, "reader0@example.org") == "delivered"
    assert notes == {"via Amazon SES"}
    assert reasons and not any("reader" in r for r in reasons)  # the diagnostic kept, its address not
    assert sns.fetches.count(CERT_PATH) == 1  # the certificate is fetched once and cached


def test_an_event_is_matched_by_the_stored_message_id_when_it_has_no_tag(
        hooked: LiveServer, sns: FakeSns, sent: dict[str, Any], db: Database) -> None:
    """The SMTP transport's mail: no delivery_id tag, only the message id SES gave in its 250 reply."""
    with db.session() as s:
        s.execute(update(Delivery).values(provider_message_id="0100smtp-reply-id-000000")
                  .where(Delivery.contact_id == select(Contact.id).where(Contact.email == "reader4@example.org")
                         .scalar_subquery()))
    bounce = ses_event("Bounce", message_id="0100smtp-reply-id-000000", to="reader4@example.org",
                       bounceType="Permanent", bouncedRecipients=[{"emailAddress": "reader4@example.org"}])
    answer = post(hooked, sns.notification(bounce))
    assert answer.status_code == 200 and answer.json()["unmatched"] == 0
    assert delivery_status(db, "reader4@example.org") == "bounced"
    with db.session() as s:
        assert reason_for(s, "reader4@example.org") == "hard_bounce"


def test_a_replayed_notification_is_stored_once(hooked: LiveServer, sns: FakeSns, sent: dict[str, Any],
                                                db: Database) -> None:
    complaint = sns.notification(event_for(sent, "reader2@example.org", "Complaint",
                                           complainedRecipients=[{"emailAddress": "reader2@example.org"}]))
    first, second = post(hooked, complaint), post(hooked, complaint)
    assert first.json()["stored"] == 1 and second.json() == {**second.json(), "stored": 0, "duplicates": 1}
    assert stored(db) == (1, 1)


def _tampered(sns: FakeSns, sent: dict[str, Any]) -> dict[str, Any]:
    message = sns.notification(event_for(sent, "reader1@example.org", "Delivery", recipients=["reader1@example.org"]))
    return {**message, "Message": message["Message"].replace('"Delivery"', '"Complaint"')}


def _other_key(sns: FakeSns, sent: dict[str, Any]) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    message = sns.notification(event_for(sent, "reader1@example.org", "Complaint"))
    return sns.sign(message, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))


REFUSED = {
    "tampered": (_tampered, "does not match"),
    "signed by another key": (_other_key, "does not match"),
    "another topic": (lambda sns, sent: sns.notification(event_for(sent, "reader1@example.org", "Complaint"),
                                                         topic=TOPIC.replace("clinic-ses-events", "someone-else")),
                      "another SNS topic"),
    "unsigned": (lambda sns, sent: {k: v for k, v in sns.notification(event_for(
        sent, "reader1@example.org", "Complaint")).items() if k != "Signature"}, "not signed"),
    "unknown signature version": (lambda sns, sent: {**sns.notification(event_for(
        sent, "reader1@example.org", "Complaint")), "SignatureVersion": "3"}, "SignatureVersion"),
}
CERT_URLS = {
    "another host": "https://sns.us-east-1.amazonaws.com.attacker.example" + CERT_PATH,
    "http": CERT_URL.replace("https://", "http://"),
    "a port": CERT_URL.replace(".com/", ".com:8443/"),
    "a user": CERT_URL.replace("https://", "https://me@"),
    "another region": CERT_URL.replace("us-east-1", "us-west-2"),
    "another path": CERT_URL.replace(CERT_PATH, "/anything.pem"),
    "a query": CERT_URL + "?x=1",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_message_that_is_not_sns_s_own_is_refused_and_stores_nothing(
        case: str, hooked: LiveServer, sns: FakeSns, sent: dict[str, Any], db: Database) -> None:
    make, words = REFUSED[case]
    answer = post(hooked, make(sns, sent))
    assert answer.status_code == 403 and words in answer.json()["detail"]
    assert stored(db) == (0, 0) and delivery_status(db, "reader1@example.org") == "submitted"


@pytest.mark.parametrize("case", sorted(CERT_URLS))
def test_a_certificate_url_off_sns_s_host_is_refused_without_fetching_it(
        case: str, hooked: LiveServer, sns: FakeSns, sent: dict[str, Any], db: Database) -> None:
    complaint = event_for(sent, "reader2@example.org", "Complaint")
    answer = post(hooked, sns.notification(complaint, cert_url=CERT_URLS[case]))
    assert answer.status_code == 403 and "SNS" in answer.json()["detail"]
    assert sns.fetches == [] and stored(db) == (0, 0)


def test_subscription_confirmation_is_confirmed_for_the_configured_topic_only(
        hooked: LiveServer, sns: FakeSns, caplog: pytest.LogCaptureFixture) -> None:
    other = TOPIC.replace("clinic-ses-events", "someone-else")
    refused = [post(hooked, sns.subscription_confirmation(topic=other)),
               post(hooked, sns.subscription_confirmation(confirm_topic=other))]  # asks to confirm another topic
    assert [a.status_code for a in refused] == [403, 403]
    assert not any(path.startswith("/?Action") for path in sns.fetches)
    with caplog.at_level("INFO", logger="newsletter.webhooks.ses"):
        answer = post(hooked, sns.subscription_confirmation())
    assert answer.status_code == 200 and answer.json() == {"confirmed": True}
    confirmations = [path for path in sns.fetches if path.startswith("/?Action=ConfirmSubscription")]
    assert len(confirmations) == 1 and "confirmed the SNS subscription" in caplog.text


def test_refused_posts_from_one_client_are_slowed_and_bodies_are_bounded(
        hooked: LiveServer, sns: FakeSns, sent: dict[str, Any], db: Database) -> None:
    too_large = post(hooked, b"[" + b" " * hooked.settings.webhook_max_bytes + b"]")
    assert too_large.status_code == 413
    answers = [post(hooked, {"Type": "Notification"}).status_code for _ in range(40)]
    assert answers[:29] == [403] * 29 and answers[-1] == 429
    good = sns.notification(event_for(sent, "reader2@example.org", "Complaint"))
    assert post(hooked, good).status_code == 429 and stored(db) == (0, 0)


def test_without_a_topic_every_post_is_refused(settings: Settings, db: Database, sns: FakeSns) -> None:
    with serving(settings, db) as server:
        answer = post(server, sns.notification(ses_event("Complaint", message_id="x", to="reader1@example.org")))
    assert answer.status_code == 403 and "NEWSLETTER_SES_SNS_TOPIC_ARN" in answer.json()["detail"]


def test_ses_s_send_event_settles_a_message_whose_answer_was_lost(
        db: Database, settings: Settings, fake_ses: FakeSes, sns: FakeSns, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ses_settings(fake_ses, monkeypatch, NEWSLETTER_SES_TIMEOUT="1")
    issue_id = make_issue(db, settings)
    add_audience(db, 3)
    start(db, settings, issue_id)
    fake_ses.hang_next(1, 2.5)  # SES took it; its answer came after our read timeout
    assert Dispatcher(settings, db, get_transport(settings)).run_until_idle().unknown == 1
    with db.session() as s:
        held = s.scalar(select(Delivery.id).where(Delivery.status == "unknown"))
        assert len(ledger.unknown_batches(s, issue_id)) == 1
    (message,) = [d for d in fake_ses.deliveries if d.tags["delivery_id"] == str(held)]
    with serving(get_settings(), db) as server:
        server.app.state.sns_verifier = SnsVerifier(TOPIC, get=sns.getter())
        answer = post(server, sns.notification(ses_event("Send", message_id=message.message_id, to=message.to,
                                                         delivery_id=str(held))))
    assert answer.status_code == 200 and answer.json()["stored"] == 1
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 3}
        assert ledger.unknown_batches(s, issue_id) == []
