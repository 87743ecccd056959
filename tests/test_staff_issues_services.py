"""The service pieces the issue pages read: the preflight as a checklist (every check named once,
passing ones too), each form field's own error, and a test email's state in words."""

from __future__ import annotations

import inspect
import re

from newsletter import health_policy
from newsletter import issues as issue_service
from newsletter.compose.compile import TRACKING_MODES
from newsletter.compose.preflight import CHECKS, ERROR, PASS, WARNING, Finding, check_email, checklist
from newsletter.compose.render import render_email
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import TestEmail
from newsletter.sending.test_emails import status_text
from subscribers.states import ConfirmationStatus, IssueStatus
from tests.emailkit import content
from tests.sendkit import make_issue


def _reported_codes() -> set[str]:
    """Every code ``check_email`` can report, read from its source (f-string codes expanded)."""
    source = inspect.getsource(check_email)
    codes = set()
    for code in re.findall(r'(?:error|warn)\(\s*f?"([a-z{}-]+)"', source):
        codes |= {code.replace("{field}", f) for f in ("subject", "preheader")} if "{field}" in code else {code}
    # The health-information policy's own check of the same email (it reads the marks from the database).
    return codes | {health_policy.SENSITIVE_FIELD, health_policy.SENSITIVE_METADATA}


def test_every_code_the_preflight_reports_belongs_to_exactly_one_named_check() -> None:
    codes = _reported_codes()
    assert len(codes) >= 8
    named = [code for check in CHECKS for code in check.codes]
    assert sorted(named) == sorted(set(named)), "a code is named by two checks"
    assert codes == set(named)
    assert len({check.name for check in CHECKS}) == len(CHECKS)


def test_a_good_email_passes_every_check_and_each_is_listed(settings: Settings) -> None:
    results = checklist(check_email(render_email(content(), settings), settings))
    assert [r.name for r in results] == [c.name for c in CHECKS]
    assert {r.result for r in results} == {PASS} and {r.label for r in results} == {"Passed"}
    assert all(r.findings == () for r in results)


def test_each_finding_sits_under_its_check_with_the_worst_result(settings: Settings) -> None:
    no_address = settings.model_copy(update={"postal_address": ""})
    email = render_email(content(subject="Ketamine news " + "x" * 80, preheader=""), no_address)
    results = {r.name: r for r in checklist(check_email(email, no_address))}
    subject = results["Subject present and short enough for a phone"]
    assert (subject.result, subject.label) == (WARNING, "Warning")
    assert [f.code for f in subject.findings] == ["subject-long"]
    assert results["Preheader present"].result == WARNING
    address = results["Postal address in the HTML and text parts"]
    assert (address.result, address.label) == (ERROR, "Error")
    assert results["No health words in the subject or preheader"].result == WARNING
    assert results["Every image has alt text"].result == PASS


def test_a_finding_no_check_names_is_still_shown() -> None:
    odd = Finding("error", "something-new", "A new check failed.")
    results = checklist([odd])
    assert results[-1].name == "something-new" and results[-1].result == ERROR and results[-1].findings == (odd,)
    assert len(results) == len(CHECKS) + 1


def test_field_errors_name_each_field_and_accept_good_values() -> None:
    assert issue_service.field_errors(subject="Winter walks", preheader="", intro="", tracking="full") == {}
    errors = issue_service.field_errors(subject="  ", preheader="p" * 301, intro="i" * 2001, tracking="loud")
    assert errors == {
        "subject": "The subject is empty; every issue needs one.",
        "preheader": "The preheader is 301 characters; keep it under 300.",
        "intro": "The intro note is 2001 characters; keep it under 2000.",
        "tracking": "Tracking must be one of full, anonymous, off, not 'loud'.",
    }
    assert issue_service.field_errors(subject="a\x00b", preheader="x\x1by", intro="ok\n\nfine\x07") == {
        "subject": "The subject holds a control character; give plain text.",
        "preheader": "The preheader holds a control character; give plain text.",
        "intro": "The intro note holds a control character; give plain text.",
    }
    assert issue_service.field_errors(subject="Tabs\tand\r\nlines", preheader="", intro="a\r\n\r\nb\tc") == {}
    # Not given (a new issue takes the post's title and excerpt): not checked.
    assert issue_service.field_errors(subject=None, preheader=None, intro="") == {}


def test_tracking_labels_cover_every_mode() -> None:
    assert tuple(issue_service.TRACKING_LABELS) == TRACKING_MODES


def test_an_issue_is_editable_only_before_anything_is_queued(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    with db.session() as s:
        issue = issue_service.get_issue(s, issue_id)
        for status in IssueStatus:
            issue.status = status
            assert issue_service.editable(issue) is (status in (IssueStatus.DRAFT, IssueStatus.AWAITING_APPROVAL,
                                                                IssueStatus.SCHEDULED)), status
        issue.status = IssueStatus.DRAFT
        assert [r.result for r in issue_service.checklist(issue, settings)] == [PASS] * len(CHECKS)


def test_a_test_email_state_reads_as_words() -> None:
    def row(status: ConfirmationStatus, error: str | None = None) -> TestEmail:
        return TestEmail(status=status, error=error)

    assert status_text(row(ConfirmationStatus.QUEUED)) == "queued: a dispatcher sends it shortly"
    assert status_text(row(ConfirmationStatus.QUEUED, "timed out")) == "queued, to be tried again: timed out"
    assert status_text(row(ConfirmationStatus.SENT)) == "sent"
    assert status_text(row(ConfirmationStatus.FAILED, "refused by the provider: bad address")) == \
        "failed: refused by the provider: bad address"
    assert status_text(row(ConfirmationStatus.UNKNOWN)).startswith("unknown: the request left")
    assert status_text(row(ConfirmationStatus.SENDING)) == "sending"
    assert status_text(row(ConfirmationStatus.SKIPPED)) == "not sent: nothing left to send"
