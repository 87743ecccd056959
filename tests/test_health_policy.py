"""The health-information policy as a clinic relies on it: under the minimal policy nothing staff
marked sensitive is sent to the provider, whichever way an email goes out (an issue, its language
version, a sequence step, a test email), refused at preflight and again where the send starts; the
covered policy lets emails personalise with those fields; SendGrid, which signs no BAA, cannot be
paired with it.

These tests put ``%%field:diagnosis%%`` straight into the stored compiled email the transport would
send, which is what the policy reads (so every way an email is stored is covered alike);
tests/test_personalise_fields.py goes the way staff do, from a merge tag written in a post."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from newsletter import health_policy, sensitive
from newsletter import issues as issue_service
from newsletter.compose.personalize import custom_field_placeholder
from newsletter.compose.render import CompiledEmail
from newsletter.config import Settings, SettingsError, get_settings
from newsletter.database import Database
from newsletter.errors import InputError, NotFound
from newsletter.models import Delivery, EmailVersion, Issue, SequenceStep, SensitiveMark, TestEmail
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.sending.test_emails import TestEmailSender, queue_test_emails
from newsletter.sequences.definition import parse_definition
from newsletter.sequences.engine import enroll, process_due
from newsletter.sequences.install import install
from newsletter.staff.models import AuditEntry
from newsletter.compose.mime import list_id_header
from newsletter.transports import MemoryTransport
from newsletter.transports.base import issue_categories, provider_metadata
from subscribers.contacts import upsert_contact
from subscribers.db import utcnow
from subscribers.segments import delete_segment, save_segment
from subscribers.states import ConfirmationStatus, IssueStatus
from tests.sendkit import add_audience, make_issue
from tests.test_language_versions import add_spanish_version

FIELD = "diagnosis"
ALWAYS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"}


def personalise(row: Issue | EmailVersion | SequenceStep, field: str = FIELD) -> None:
    """Make a stored email personalise with ``field`` (in its HTML and text parts)."""
    row.html = row.html.replace("</body>", f"<p>Noted: {custom_field_placeholder(field)}</p></body>")
    row.text = row.text + f"\nNoted: {custom_field_placeholder(field)}\n"


def mark(db: Database, kind: str = "field", name: str = FIELD) -> None:
    with db.session() as s:
        sensitive.mark(s, kind, name, "cli")


def codes(findings: list) -> list[str]:  # noqa: ANN001
    return [f.code for f in findings]


def covered(settings: Settings) -> Settings:
    return settings.model_copy(update={"health_information_policy": "covered"})


@pytest.fixture
def memory(settings: Settings) -> Settings:
    return settings.model_copy(update={"transport": "memory"})


# Settings --------------------------------------------------------------------------------------------


def sendgrid_covered(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment that sends through SendGrid and asks for the covered policy."""
    monkeypatch.setenv("SENDGRID_API_KEY", "SG." + "k" * 60)
    monkeypatch.setenv("NEWSLETTER_ALLOW_UNSIGNED_WEBHOOKS", "true")
    monkeypatch.setenv("NEWSLETTER_HEALTH_INFORMATION_POLICY", "covered")
    get_settings.cache_clear()


def test_sendgrid_with_the_covered_policy_is_refused_in_one_line(settings: Settings,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    sendgrid_covered(monkeypatch)
    with pytest.raises(SettingsError) as refused:
        get_settings()
    message = str(refused.value)
    assert "\n" not in message
    assert "NEWSLETTER_HEALTH_INFORMATION_POLICY=covered cannot be used with NEWSLETTER_TRANSPORT=sendgrid" in message
    assert "business associate agreement" in message
    # The default stays minimal with SendGrid.
    monkeypatch.delenv("NEWSLETTER_HEALTH_INFORMATION_POLICY")
    get_settings.cache_clear()
    assert get_settings().health_information_policy == "minimal"


def test_covered_is_allowed_for_development_transports_and_any_other_transport_name(settings: Settings) -> None:
    assert settings.health_information_policy == "minimal"  # the default
    for transport in ("outbox", "memory"):
        assert Settings(transport=transport, health_information_policy="covered").health_information_policy == "covered"
    # The transports of providers that sign a BAA may be covered, and are named in the preflight's line.
    assert health_policy.setting_problem("smtp", "covered") is None
    assert health_policy.setting_problem("ses", "covered") is None
    assert health_policy.provider("ses").label == "Amazon SES"
    assert health_policy.provider("another").label == "another"  # a transport not listed: named by its setting
    assert "must be minimal or covered" in health_policy.setting_problem("outbox", "maximal")


def test_preflight_names_the_policy_and_the_transport(settings: Settings) -> None:
    sendgrid = settings.model_copy(update={"transport": "sendgrid"})
    assert health_policy.summary(sendgrid) == "Goes out through SendGrid under the minimal health-information policy"
    assert health_policy.summary(covered(settings)) == ("Goes out through the outbox folder (development) under "
                                                        "the covered health-information policy")


# Issues and their versions ---------------------------------------------------------------------------


def test_minimal_refuses_an_issue_personalised_with_a_sensitive_field(db: Database, memory: Settings) -> None:
    issue_id = make_issue(db, memory)
    add_audience(db, 3)
    now = utcnow()
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        schedule.schedule_issue(s, memory, issue, at=now + timedelta(hours=1), now=now, zone="UTC")
        personalise(issue)  # after scheduling compiled it again from the post
        assert "sensitive-field" not in codes(issue_service.preflight(issue, memory))  # nothing marked yet
    mark(db)
    with db.session() as s:
        findings = [f for f in issue_service.preflight(s.get(Issue, issue_id), memory) if f.code == "sensitive-field"]
        assert len(findings) == 1 and findings[0].level == "error"
        assert "custom field “diagnosis”" in findings[0].message and "memory (tests)" in findings[0].message
        assert "Noted" not in findings[0].message  # the field's name, nothing of the email around it
        check = next(c for c in issue_service.checklist(s.get(Issue, issue_id), memory) if "sensitive" in c.name)
        assert check.label == "Error"
    # Its time comes: the scheduler's round, where every send starts, pauses it with the reason.
    with db.session() as s:
        report = schedule.due_work(s, now + timedelta(hours=2), memory)
        assert report.started == [] and report.held_by_policy == [issue_id]
        issue = s.get(Issue, issue_id)
        assert issue.status == IssueStatus.PAUSED
        assert issue.paused_reason.startswith(f"issue {issue_id} cannot be sent: The email personalises with the "
                                              "custom field “diagnosis”")
        assert s.scalar(select(Delivery.id).where(Delivery.issue_id == issue_id)) is None
        # Resumed as it is: refused again on the next round.
        schedule.resume(s, issue, now + timedelta(hours=2))
        assert schedule.due_work(s, now + timedelta(hours=3), memory).held_by_policy == [issue_id]


def test_minimal_refuses_a_language_version_personalised_with_a_sensitive_field(db: Database,
                                                                               memory: Settings) -> None:
    issue_id = make_issue(db, memory)
    add_spanish_version(db, memory, issue_id)
    now = utcnow()
    with db.session() as s:
        schedule.schedule_issue(s, memory, s.get(Issue, issue_id), at=now + timedelta(hours=1), now=now, zone="UTC")
        personalise(s.scalar(select(EmailVersion).where(EmailVersion.issue_id == issue_id)))
    mark(db)
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        refused = [f.message for f in issue_service.preflight(issue, memory) if f.code == "sensitive-field"]
        assert len(refused) == 1 and refused[0].startswith("[es] The email personalises with the custom field")
        with pytest.raises(schedule.PolicyRefused, match=r"cannot be sent: \[es\] The email personalises"):
            schedule.begin_sending(s, memory, issue, now)


def test_covered_lets_an_issue_personalise_with_a_sensitive_field(db: Database, memory: Settings) -> None:
    settings = covered(memory)
    issue_id = make_issue(db, settings)
    add_audience(db, 3)
    mark(db)
    now = utcnow()
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        schedule.schedule_issue(s, settings, issue, at=now + timedelta(hours=1), now=now, zone="UTC")
        personalise(issue)
        assert "sensitive-field" not in codes(issue_service.preflight(issue, settings))
        assert schedule.start_now(s, settings, issue, now) == 3
    transport = MemoryTransport(settings)
    Dispatcher(settings, db, transport, sleep=lambda _: None).run_until_idle()
    assert len(transport.sent) == 3
    assert all("%%field" not in m.as_string() for m in transport.sent)  # filled (no value: the empty fallback)


def test_a_sensitive_segment_as_audience_is_allowed_and_its_name_never_leaves(db: Database, memory: Settings) -> None:
    """What is sent today names an issue by its number only (categories "issue-N", List-Id from the
    newsletter's name): the segment's name is not among it."""
    issue_id = make_issue(db, memory)
    add_audience(db, 2)
    with db.session() as s:
        save_segment(s, "treatment-resistant-depression", {"source": "import"}, "")
    mark(db, "segment", "treatment-resistant-depression")
    transport = MemoryTransport(memory)
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        assert not [f for f in issue_service.preflight(issue, memory) if f.level == "error"]
        assert schedule.start_now(s, memory, issue, utcnow(), segment="treatment-resistant-depression") == 2
    Dispatcher(memory, db, transport, sleep=lambda _: None).run_until_idle()
    assert len(transport.sent) == 2
    for message in transport.sent:
        assert "treatment-resistant" not in message.as_string().lower()
    with db.session() as s:  # what a provider would be told beside the message
        told = provider_metadata(issue_categories(issue_id), memory)
        assert told == [f"issue-{issue_id}", list_id_header(memory)]
        assert health_policy.check_email(CompiledEmail("", "", "", ""), told, sensitive.marks_of(s), memory) == []


def test_a_sensitive_tag_or_segment_name_in_provider_metadata_is_refused(memory: Settings) -> None:
    marks = sensitive.Marks(tags=frozenset({"ketamine-patient"}), segments=("treatment-resistant-depression",))
    email = CompiledEmail("Subject", "Preheader", "<p>Hi</p>", "Hi")
    findings = health_policy.check_email(email, ["issue-3", "tag-ketamine-patient"], marks, memory)
    assert codes(findings) == ["sensitive-metadata"] and "tag “ketamine-patient”" in findings[0].message
    findings = health_policy.check_email(email, ["treatment-resistant-depression"], marks, memory)
    assert codes(findings) == ["sensitive-metadata"] and "segment “treatment-resistant-depression”" in findings[0].message
    assert health_policy.check_email(email, ["issue-3", "ketamine-patients-news"], marks, memory) == []
    assert health_policy.check_email(email, ["tag-ketamine-patient"], marks, covered(memory)) == []


# Test emails -------------------------------------------------------------------------------------------


def test_minimal_refuses_a_test_email_personalised_with_a_sensitive_field(db: Database, memory: Settings) -> None:
    issue_id = make_issue(db, memory)
    with db.session() as s:
        personalise(s.get(Issue, issue_id))
        queued = queue_test_emails(s, memory, s.get(Issue, issue_id), "ana@clinic.example",
                                   requested_by="ana@clinic.example", now=utcnow())
        queued_id = queued[0].id
    mark(db)
    # Asked for after the mark: refused at once, nothing queued.
    with db.session() as s, pytest.raises(InputError, match="the test cannot be sent: .*“diagnosis”"):
        queue_test_emails(s, memory, s.get(Issue, issue_id), "ana@clinic.example",
                          requested_by="ana@clinic.example", now=utcnow())
    # Asked for before it: refused again as it goes, with the reason.
    transport = MemoryTransport(memory)
    assert TestEmailSender(memory, db, transport, worker="test").send_queued([queued_id])[queued_id][0] == ConfirmationStatus.SKIPPED
    assert transport.sent == []
    with db.session() as s:
        row = s.get(TestEmail, queued_id)
        assert "custom field “diagnosis”" in row.error
        assert s.scalar(select(TestEmail.id).where(TestEmail.id != queued_id)) is None


def test_covered_sends_a_test_email_personalised_with_a_sensitive_field(db: Database, memory: Settings) -> None:
    settings = covered(memory)
    issue_id = make_issue(db, settings)
    mark(db)
    with db.session() as s:
        personalise(s.get(Issue, issue_id))
        row_id = queue_test_emails(s, settings, s.get(Issue, issue_id), "ana@clinic.example",
                                   requested_by="ana@clinic.example", now=utcnow())[0].id
    transport = MemoryTransport(settings)
    assert TestEmailSender(settings, db, transport, worker="test").send_queued([row_id])[row_id][0] == ConfirmationStatus.SENT
    assert len(transport.sent) == 1


# Sequence steps ------------------------------------------------------------------------------------------


def _drip(db: Database, settings: Settings, *, in_spanish: bool = False) -> tuple[int, int]:
    """A one-step sequence with a contact due for it; the step's email (or, ``in_spanish``, only its
    Spanish version) personalises with the field."""
    now = utcnow()
    step_definition = {"delay": "0m", "subject": "Welcome", "body": "Glad you are here.",
                       "translations": {"es": {"subject": "Bienvenida", "body": "Nos alegra verle."}}}
    with db.session() as s:
        sequence = install(s, settings, parse_definition({
            "name": "Drip", "trigger": {"type": "manual"}, "window": ALWAYS, "steps": [step_definition],
        }, source="test"), now=now).sequence
        step = s.scalar(select(SequenceStep).where(SequenceStep.sequence_id == sequence.id))
        personalise(s.scalar(select(EmailVersion).where(EmailVersion.step_id == step.id)) if in_spanish else step)
        contact = upsert_contact(s, "lee@example.org", default_timezone="UTC", source="admin").contact
        enroll(s, sequence, contact, now)
        return sequence.id, step.id


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue("postgres_db" if request.param == "postgresql" else "db")


@pytest.mark.parametrize("in_spanish", [False, True], ids=["step", "its-version"])
def test_minimal_holds_a_sequence_whose_step_personalises_with_a_sensitive_field(database: Database,
                                                                               memory: Settings,
                                                                               in_spanish: bool) -> None:
    """The steps that hold a field's placeholder are found in SQL (a LIKE on both databases)."""
    db = database
    sequence_id, step_id = _drip(db, memory, in_spanish=in_spanish)
    mark(db)
    with db.session() as s:
        assert "custom field “diagnosis”" in health_policy.step_refusal(s, memory, s.get(SequenceStep, step_id))
        report = process_due(s, memory, utcnow() + timedelta(minutes=1))
        assert report.queued == 0 and "step step-1: The email personalises" in report.held_by_policy[sequence_id]
        assert s.scalar(select(Delivery.id).where(Delivery.step_id == step_id)) is None
    # Unmarked: the step goes out on the next round.
    with db.session() as s:
        sensitive.unmark(s, "field", FIELD, "cli")
    with db.session() as s:
        assert process_due(s, memory, utcnow() + timedelta(minutes=2)).queued == 1


def test_covered_queues_a_step_personalised_with_a_sensitive_field(db: Database, memory: Settings) -> None:
    settings = covered(memory)
    _sequence_id, step_id = _drip(db, settings)
    mark(db)
    with db.session() as s:
        assert health_policy.step_refusal(s, settings, s.get(SequenceStep, step_id)) is None
        report = process_due(s, settings, utcnow() + timedelta(minutes=1))
        assert report.queued == 1 and report.held_by_policy == {}


# The marks ---------------------------------------------------------------------------------------------------


def test_marks_are_named_audited_and_follow_their_segment(db: Database, memory: Settings) -> None:
    with db.session() as s:
        save_segment(s, "treatment-resistant-depression", {"source": "import"}, "")
        marked, new = sensitive.mark(s, "tag", "  Ketamine-Patient ", "cli")
        assert new and marked.name == "ketamine-patient"  # stored the way tags are
        assert sensitive.mark(s, "tag", "ketamine-patient", "cli")[1] is False  # a repeat changes nothing
        sensitive.mark(s, "field", FIELD, "cli")
        sensitive.mark(s, "segment", "treatment-resistant-depression", "cli")
        with pytest.raises(NotFound, match="no segment 'Missing'"):
            sensitive.mark(s, "segment", "Missing", "cli")
        with pytest.raises(InputError, match="choose field, tag or segment"):
            sensitive.mark(s, "colour", "red", "cli")
    with db.session() as s:
        assert [(m.kind, m.name) for m in sensitive.listing(s)] == [
            ("field", FIELD), ("tag", "ketamine-patient"), ("segment", "treatment-resistant-depression")]
        audit = [(e.action, e.target) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        segment_id = s.scalar(select(SensitiveMark.segment_id).where(SensitiveMark.kind == "segment"))
        assert audit == [("sensitive_marked", "tag ketamine-patient"), ("sensitive_marked", "custom field diagnosis"),
                         ("sensitive_marked", f"segment {segment_id}")]
        delete_segment(s, "treatment-resistant-depression")
    with db.session() as s:
        assert sensitive.marks_of(s).segments == ()  # the mark went with its segment
        assert sensitive.unmark(s, "tag", "KETAMINE-PATIENT", "cli") == "ketamine-patient"
        with pytest.raises(NotFound, match="not marked sensitive"):
            sensitive.unmark(s, "tag", "ketamine-patient", "cli")
