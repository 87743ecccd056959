"""Personalising with a contact's custom field, as staff rely on it: a merge tag written in a post
(``{{ field.city | default: "your area" }}``) or a sequence step is compiled once into a placeholder,
and each recipient gets their own value (HTML-escaped in the HTML part, plain in the text part) or
the fallback, through every transport; never in a subject or a URL; and the health-information
policy refuses it under *minimal* when staff marked the field sensitive."""

from __future__ import annotations

import email.policy
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from newsletter import issues as issue_service
from newsletter import sensitive
from newsletter.compose.personalize import custom_fields_in
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.errors import InputError
from newsletter.models import Issue, SequenceStep
from newsletter.posts.service import import_post
from newsletter.posts.source import RawSource
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.sending.test_emails import TestEmailSender, queue_test_emails
from newsletter.sequences.definition import parse_definition
from newsletter.sequences.engine import enroll, process_due
from newsletter.sequences.install import install
from newsletter.transports import MemoryTransport, get_transport
from subscribers.contacts import upsert_contact
from subscribers.db import utcnow
from subscribers.states import ConfirmationStatus
from subscribers.models import Contact
from tests.sendgrid_fake import FakeSendGrid
from tests.sendkit import add_audience
from tests.test_sending_sendgrid import sendgrid_settings

POST = b"""# Evenings at the clinic

Our team in {{ field.city | default: "your area" }} now sees people until eight.

- Parking near {{ field.city | default: "your area" }} is free after six.
"""
ALWAYS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"}
# Contacts and their city: one with markup and an ampersand, one without the field at all.
READERS = {"reader0@example.org": "Portland", "reader1@example.org": "Salt <Lake> & Co %%first_name%%",
           "reader2@example.org": None}


def parts(message: EmailMessage) -> tuple[str, str]:
    return (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content())


def authored_issue(db: Database, settings: Settings, post: bytes = POST, subject: str = "Longer evening hours") -> int:
    """An issue made from a post imported from Markdown, as staff do."""
    with db.session() as s:
        imported = import_post(s, RawSource("evenings.md", post, None, None))
        return issue_service.create_issue(s, settings, imported.post.id, subject,
                                          "Later appointments this month, and where to park").id


def readers(db: Database) -> None:
    """Confirmed subscribers ``READERS``, with their city (the last has other fields only)."""
    ids = add_audience(db, len(READERS))
    with db.session() as s:
        for contact_id, city in zip(ids, READERS.values()):
            s.get(Contact, contact_id).custom_fields = {"city": city} if city else {"visits": "3"}


def scheduled_and_sent(db: Database, settings: Settings, issue_id: int) -> None:
    """Scheduled (which compiles the issue again from its post), its time comes, and it is sent."""
    then = utcnow() - timedelta(minutes=10)  # scheduled a while ago: its time has come now
    with db.session() as s:
        schedule.schedule_issue(s, settings, s.get(Issue, issue_id), at=then + timedelta(minutes=5), now=then,
                                zone="UTC")
    with db.session() as s:
        assert schedule.due_work(s, utcnow(), settings).started == [issue_id]
    Dispatcher(settings, db, get_transport(settings), sleep=lambda _: None).run_until_idle()


def mark_city(db: Database) -> None:
    with db.session() as s:
        sensitive.mark(s, "field", "city", "cli")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue("postgres_db" if request.param == "postgresql" else "db")


@pytest.fixture
def covered_outbox(settings: Settings) -> Settings:
    return settings.model_copy(update={"transport": "outbox", "health_information_policy": "covered"})


# Compiling -----------------------------------------------------------------------------------------


def test_a_merge_tag_is_compiled_once_into_a_placeholder_that_survives_scheduling(db: Database,
                                                                                  settings: Settings) -> None:
    issue_id = authored_issue(db, settings)
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        assert "{{" not in issue.html and "{{" not in issue.text
        assert custom_fields_in(issue.html) == custom_fields_in(issue.text) == {"city"}
        assert not [f for f in issue_service.preflight(issue, settings) if f.level == "error"]
        issue_service.recompile(s, issue, settings)
        assert custom_fields_in(issue.html, issue.text) == {"city"}


def test_a_merge_tag_in_the_subject_a_link_or_misspelt_is_refused_with_the_reason(db: Database,
                                                                                 settings: Settings) -> None:
    issue_id = authored_issue(db, settings)
    with db.session() as s, pytest.raises(InputError, match="the subject holds a merge tag"):
        issue_service.edit_issue(s, settings, s.get(Issue, issue_id), subject="News for {{ field.city }}")
    with db.session() as s:  # stored some other way, preflight refuses it too
        issue = s.get(Issue, issue_id)
        issue.preheader = "Later hours in {{ field.city }}"
        findings = [f for f in issue_service.preflight(issue, settings) if f.code == "merge-tag-in-preheader"]
        assert len(findings) == 1 and findings[0].level == "error"
    for linked in (b'See <a href="https://example.org/map/{{ field.city }}">the map</a>.',
                   b"See [the map](https://example.org/map?q={{ field.city }}).",
                   b'![Our {{ field.city }} office](https://example.org/office.png)'):
        with pytest.raises(InputError, match="a custom field's value never goes into a URL"):
            authored_issue(db, settings, POST + b"\n" + linked + b"\n")
    misspelt = POST + b"\nHello {{ field.city | default: your area }}.\n"
    with pytest.raises(InputError, match=r'cannot be read: write \{\{ field.NAME \| default: "text" \}\}'):
        authored_issue(db, settings, misspelt)


def test_a_title_with_a_merge_tag_is_not_suggested_as_the_subject(db: Database, settings: Settings) -> None:
    post = b"# Evenings in {{ field.city }}\n\nOur team now sees people until eight, every weekday this winter.\n"
    with db.session() as s:
        imported = import_post(s, RawSource("evenings.md", post, None, None)).post
        issue = issue_service.create_issue(s, settings, imported.id)  # the suggested subject and preheader
        assert "{{" not in issue.subject and "{{" not in issue.preheader
        assert custom_fields_in(issue.html, issue.text) == {"city"}


# Sending ------------------------------------------------------------------------------------------


def test_each_recipient_gets_their_own_value_through_sendgrid(db: Database, settings: Settings,
                                                              fake_sendgrid: FakeSendGrid,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The minimal policy with the field not marked: SendGrid fills each personalization's
    substitutions, escaped for the HTML part and plain for the text part."""
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch)
    issue_id = authored_issue(db, settings)
    readers(db)
    scheduled_and_sent(db, settings, issue_id)
    content = {c["type"]: c["value"] for c in fake_sendgrid.requests[0].body["content"]}
    got = {}
    for delivery in fake_sendgrid.deliveries:
        html, text = content["text/html"], content["text/plain"]
        for key, value in delivery.substitutions.items():  # what SendGrid does with them
            html, text = html.replace(key, value), text.replace(key, value)
        assert "%%" not in html and "%%" not in text
        got[delivery.to] = (html, text)
    assert "Our team in Portland now sees" in got["reader0@example.org"][1]
    assert "Our team in Portland now sees" in got["reader0@example.org"][0]
    assert "Our team in Salt <Lake> & Co %\u200b%first_name%\u200b% now" in got["reader1@example.org"][1]
    assert "Salt &lt;Lake&gt; &amp; Co" in got["reader1@example.org"][0] and "<Lake>" not in got["reader1@example.org"][0]
    assert "Our team in your area now sees" in got["reader2@example.org"][1]  # no city: the fallback
    # The value never rides in what SendGrid is told about the email.
    for delivery in fake_sendgrid.deliveries:
        assert "Portland" not in str((delivery.subject, delivery.categories, delivery.custom_args, delivery.headers))


def test_covered_sends_a_sensitive_field_through_the_outbox_with_each_value(database: Database,
                                                                            covered_outbox: Settings) -> None:
    """The batch's contacts' fields are read in one query, on both databases."""
    db, settings = database, covered_outbox
    issue_id = authored_issue(db, settings)
    readers(db)
    mark_city(db)
    scheduled_and_sent(db, settings, issue_id)
    messages = {}
    for path in sorted(settings.outbox_dir.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=email.policy.default)
        messages[message["To"].addresses[0].addr_spec] = parts(message)
    assert set(messages) == set(READERS)
    assert "Parking near Portland is free" in messages["reader0@example.org"][0]
    assert "Salt &lt;Lake&gt; &amp; Co" in messages["reader1@example.org"][1]
    assert "Parking near your area is free" in messages["reader2@example.org"][0]


def test_minimal_refuses_a_sensitive_field_at_preflight_and_at_scheduling(db: Database, settings: Settings) -> None:
    issue_id = authored_issue(db, settings)
    mark_city(db)
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        refused = [f for f in issue_service.preflight(issue, settings) if f.code == "sensitive-field"]
        assert len(refused) == 1 and "custom field “city”" in refused[0].message
        now = utcnow()
        with pytest.raises(InputError, match="the preflight failed: The email personalises with the custom field “city”"):
            schedule.schedule_issue(s, settings, issue, at=now + timedelta(hours=1), now=now, zone="UTC")


# Sequences, test emails ------------------------------------------------------------------------------


def test_a_sequence_step_personalises_with_a_field_and_falls_back(db: Database, settings: Settings) -> None:
    settings = settings.model_copy(update={"transport": "memory"})
    now = utcnow() - timedelta(minutes=10)  # enrolled a while ago: the step is due now
    with db.session() as s:
        sequence = install(s, settings, parse_definition({
            "name": "Welcome", "trigger": {"type": "manual"}, "window": ALWAYS,
            "steps": [{"delay": "0m", "subject": "Welcome", "body": 'Hello from {{ field.city | default: "the clinic" }}.'}],
        }, source="test"), now=now).sequence
        step = s.scalar(select(SequenceStep).where(SequenceStep.sequence_id == sequence.id))
        assert custom_fields_in(step.html, step.text) == {"city"}
        for address, fields in (("lee@example.org", {"city": "Bend"}), ("max@example.org", {})):
            contact = upsert_contact(s, address, default_timezone="UTC", source="admin", custom_fields=fields).contact
            enroll(s, sequence, contact, now)
    with db.session() as s:
        assert process_due(s, settings, utcnow()).queued == 2
    transport = MemoryTransport(settings)
    Dispatcher(settings, db, transport, sleep=lambda _: None).run_until_idle()
    texts = {m["To"].addresses[0].addr_spec: parts(m)[0] for m in transport.sent}
    assert "Hello from Bend." in texts["lee@example.org"]
    assert "Hello from the clinic." in texts["max@example.org"]
    with pytest.raises(ValueError, match="merge tag"):
        with db.session() as s:
            install(s, settings, parse_definition({
                "name": "Bad", "trigger": {"type": "manual"}, "window": ALWAYS,
                "steps": [{"delay": "0m", "subject": "For {{ field.city }}", "body": "Hello."}],
            }, source="test"), now=now)


def test_a_test_email_shows_the_fallback(db: Database, settings: Settings) -> None:
    settings = settings.model_copy(update={"transport": "memory"})
    issue_id = authored_issue(db, settings)
    with db.session() as s:
        row_id = queue_test_emails(s, settings, s.get(Issue, issue_id), "ana@clinic.example",
                                   requested_by="ana@clinic.example", now=utcnow())[0].id
    transport = MemoryTransport(settings)
    assert TestEmailSender(settings, db, transport, worker="test").send_queued([row_id])[row_id][0] == ConfirmationStatus.SENT
    text, html = parts(transport.sent[0])
    assert "Our team in your area now sees" in text and "Our team in your area now sees" in html
    assert "%%" not in text and "%%" not in html


def test_a_test_email_through_sendgrid_carries_the_fallback(db: Database, settings: Settings,
                                                            fake_sendgrid: FakeSendGrid,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch)
    issue_id = authored_issue(db, settings)
    with db.session() as s:
        row_id = queue_test_emails(s, settings, s.get(Issue, issue_id), "ana@clinic.example",
                                   requested_by="ana@clinic.example", now=utcnow())[0].id
    sent = TestEmailSender(settings, db, get_transport(settings), worker="test").send_queued([row_id])
    assert sent[row_id][0] == ConfirmationStatus.SENT
    (delivery,) = fake_sendgrid.deliveries
    fields = {key: value for key, value in delivery.substitutions.items() if key.startswith("%%field:city")}
    assert sorted(fields.values()) == ["your area", "your area"]  # the HTML part's and the text part's
