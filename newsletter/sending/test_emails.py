"""Test emails: a copy of an issue for staff to read in their own inbox before it goes out.

"Send a test" queues one row per address (``queue_test_emails``); a dispatcher sends it as a
one-off email, like a confirmation (``newsletter.sending.one_off``), so no web request waits for
the provider. A test copy is marked as one: its subject starts with "[Test] ", it is not in the
delivery ledger, its links carry ``urls.TEST_TOKEN`` (they work; nothing is counted) and its
category is "test", so it never shows in the issue's results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import health_policy
from newsletter.compose.compile import compiled_of
from newsletter.compose.render import CompiledEmail
from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.issues import SAMPLE_RECIPIENT, TEST_SUBJECT_PREFIX, get_version
from newsletter.models import EmailVersion, Issue, TestEmail
from newsletter.sending.one_off import OneOffSender
from newsletter.transports import Recipient
from newsletter.urls import TEST_TOKEN, test_values, unsubscribe_mailto
from newsletter.versions import compiled_version
from subscribers.contacts import sendable_email
from subscribers.states import ConfirmationStatus

ADDRESS_SEPARATORS = re.compile(r"[\s,;]+")


def parse_addresses(text: str, limit: int) -> list[str]:
    """Addresses typed into one field (separated by commas, semicolons, spaces or lines), checked
    and without repeats; an error names the one at fault."""
    found: list[str] = []
    for raw in (a for a in ADDRESS_SEPARATORS.split(text.strip()) if a):
        try:
            address = sendable_email(raw)
        except InputError as exc:
            raise InputError(str(exc) if repr(raw) in str(exc) else f"{raw!r}: {exc}") from None
        if address not in found:
            found.append(address)
    if not found:
        raise InputError("give at least one address to send the test to")
    if len(found) > limit:
        raise InputError(f"a test goes to at most {limit} addresses; {len(found)} were given")
    return found


def queue_test_emails(session: Session, settings: Settings, issue: Issue, addresses: str, *,
                      requested_by: str, now: datetime, language: str | None = None) -> list[TestEmail]:
    """Queue a test copy of ``issue`` (of its version in ``language``, when given) for each address;
    a dispatcher sends them shortly."""
    if language:
        language = get_version(session, issue, language).language  # NotFound when it has none
    email = compiled_version(issue, get_version(session, issue, language)) if language else compiled_of(issue)
    health_policy.ensure_allowed(session, settings, email, TestEmailSender.categories, "the test")
    rows = [TestEmail(issue_id=issue.id, to_email=address, requested_by=requested_by, language=language or None,
                      status=ConfirmationStatus.QUEUED, due_at=now, attempts=0, created_at=now)
            for address in parse_addresses(addresses, settings.test_send_limit)]
    session.add_all(rows)
    session.flush()
    return rows


def test_emails_of(session: Session, issue_id: int, limit: int = 20) -> list[TestEmail]:
    """The latest test emails of an issue, newest first."""
    return list(session.scalars(select(TestEmail).where(TestEmail.issue_id == issue_id)
                                .order_by(TestEmail.id.desc()).limit(limit)))


@dataclass(frozen=True)
class TestCopy:
    __test__ = False
    email: CompiledEmail
    to: str


class TestEmailSender(OneOffSender):
    __test__ = False
    model = TestEmail
    kind = "test email"
    categories = ["test"]

    def prepare(self, session: Session, row: Any) -> tuple[str | None, Any]:
        issue = session.get(Issue, row.issue_id)
        assert issue is not None  # the foreign key cascades
        if row.language:
            version = session.scalar(select(EmailVersion).where(EmailVersion.issue_id == issue.id,
                                                                EmailVersion.language == row.language))
            if version is None:
                return f"the issue's {row.language} version was removed before the test went", None
            email = compiled_version(issue, version)
        else:
            email = compiled_of(issue)
        # Asked again as it goes: a field may have been marked sensitive since the test was asked for.
        if reason := health_policy.refusal(health_policy.findings_for(session, self.settings, email, self.categories)):
            return reason, None
        # The email as stored now (an edit after the test was asked for is what staff want to see).
        return None, TestCopy(replace(email, subject=TEST_SUBJECT_PREFIX + email.subject), row.to_email)

    def compose(self, to: TestCopy) -> tuple[CompiledEmail, Recipient]:
        values = test_values(self.settings, SAMPLE_RECIPIENT[0])
        return to.email, Recipient(to.to, None, values, unsubscribe_mailto(self.settings, TEST_TOKEN))


test_emails_of.__test__ = False  # type: ignore[attr-defined]


def status_text(row: TestEmail) -> str:
    """A test email's state in words for staff: whether it went, and why not when it did not."""
    status = ConfirmationStatus(row.status)
    if status is ConfirmationStatus.QUEUED:
        return f"queued, to be tried again: {row.error}" if row.error else "queued: a dispatcher sends it shortly"
    if status is ConfirmationStatus.SENDING:
        return "sending"
    if status is ConfirmationStatus.SENT:
        return "sent"
    if status is ConfirmationStatus.FAILED:
        return f"failed: {row.error or 'no reason was given'}"
    if status is ConfirmationStatus.UNKNOWN:
        return "unknown: the request left and no answer came; check your inbox, or send another test"
    return f"not sent: {row.error or 'nothing left to send'}"
