"""The health-information policy: what of a contact's health details may reach the provider.

A ketamine clinic's list implies mental-health treatment, so the product treats it as protected
health information and keeps health details out of subjects, URLs and provider metadata whatever the
policy. ``NEWSLETTER_HEALTH_INFORMATION_POLICY`` decides the rest:

- **minimal** (the default for every transport): also nothing staff marked sensitive
  (``newsletter.sensitive``) is sent: no email personalises with a sensitive custom field, and no
  sensitive tag's or segment's name rides in the provider metadata (categories, List-Id). Right for a
  provider that signs no business associate agreement (BAA), such as SendGrid.
- **covered**: the clinic has a BAA with the provider its transport sends through, so an email may
  personalise with those fields. Refused for a provider that will not sign one.

The per-transport rules live in ``PROVIDERS`` and nowhere else: a new transport is one entry (a
transport not listed is named by its setting and may be covered: choosing it says the clinic has a
BAA with whoever it sends through).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from newsletter.compose.personalize import FIELD_PLACEHOLDER_START, custom_fields_in
from newsletter.compose.preflight import Finding
from newsletter.compose.render import CompiledEmail
from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.models import EmailVersion, SequenceStep
from newsletter.sensitive import Marks, marks_of
from newsletter.transports.base import provider_metadata, sequence_categories
from newsletter.versions import versions_of

MINIMAL, COVERED = "minimal", "covered"
POLICIES = (MINIMAL, COVERED)
SETTING = "NEWSLETTER_HEALTH_INFORMATION_POLICY"

# The preflight's codes for a refusal (named in ``preflight.CHECKS``).
SENSITIVE_FIELD = "sensitive-field"
SENSITIVE_METADATA = "sensitive-metadata"


@dataclass(frozen=True)
class Provider:
    """Who a transport hands emails to, as staff read it, and whether it may carry health information."""

    label: str
    no_baa: str | None = None  # why the covered policy is refused with it (None: it may be chosen)


# One entry per transport: the only place a transport's health-information rule is written.
PROVIDERS: dict[str, Provider] = {
    "sendgrid": Provider("SendGrid", no_baa="SendGrid does not sign a business associate agreement (BAA) and its "
                                            "terms do not allow protected health information"),
    "smtp": Provider("the SMTP relay (NEWSLETTER_SMTP_HOST)"),
    "ses": Provider("Amazon SES"),
    "outbox": Provider("the outbox folder (development)"),
    "memory": Provider("memory (tests)"),
}


def provider(transport: str | None) -> Provider:
    return PROVIDERS.get(transport or "", Provider(transport or "no transport"))


def setting_problem(transport: str | None, policy: str) -> str | None:
    """The one-line reason the settings may not pair ``policy`` with ``transport``, or None."""
    if policy not in POLICIES:
        return f"{SETTING} must be minimal or covered, not {policy!r}"
    reason = provider(transport).no_baa
    if policy == COVERED and reason:
        return (f"{SETTING}=covered cannot be used with NEWSLETTER_TRANSPORT={transport}: {reason}; keep the minimal "
                "policy, or send through a provider that signed a BAA with the clinic (see the README's "
                "\"Sending for a covered entity\")")
    return None


def summary(settings: Settings) -> str:
    """One line for preflight: "Goes out through SendGrid under the minimal health-information policy"."""
    return (f"Goes out through {provider(settings.transport).label} under the "
            f"{settings.health_information_policy} health-information policy")


def marks_effect(settings: Settings) -> str:
    """What sensitive marks do under the policy in use, in one sentence for staff."""
    who = provider(settings.transport).label
    if settings.health_information_policy == COVERED:
        return (f"Under the covered health-information policy (the clinic has a BAA with {who}) emails may "
                "personalise with marked fields; the marks apply again if the policy goes back to minimal.")
    return (f"Under the minimal health-information policy nothing marked is sent to {who}: an email that "
            "personalises with a marked field, or would tell the provider a marked tag or segment name, is refused.")


def check_email(email: CompiledEmail, metadata: Iterable[str], marks: Marks, settings: Settings) -> list[Finding]:
    """What the policy refuses in one email as it is sent: the custom fields it personalises with and
    the provider metadata it carries (``metadata``: its categories and list header). Names what is
    sensitive (a field's name, never a contact's value)."""
    if settings.health_information_policy == COVERED or marks.empty:
        return []
    who = provider(settings.transport).label
    findings = []
    used = custom_fields_in(email.subject, email.preheader, email.html, email.text)
    for name in sorted(used & marks.fields):
        findings.append(Finding("error", SENSITIVE_FIELD, (
            f"The email personalises with the custom field “{name}”, which staff marked sensitive: under the "
            f"minimal health-information policy its values are not sent to {who}. Take the field out of the "
            "email, or send through a provider with a BAA under the covered policy.")))
    values = list(metadata)
    for kind, name in marks.metadata_names():
        if any(_names(name, value) for value in values):
            findings.append(Finding("error", SENSITIVE_METADATA, (
                f"The {kind} “{name}”, marked sensitive, would be in what {who} is told about the email "
                "(its categories or list header): under the minimal health-information policy it stays here.")))
    return findings


def findings_for(session: Session, settings: Settings, email: CompiledEmail, categories: list[str],
                 marks: Marks | None = None) -> list[Finding]:
    """``check_email`` with the marks (as stored now, unless given) and the metadata the email's
    batches carry."""
    if settings.health_information_policy == COVERED:
        return []  # not even the marks are read
    marks = marks if marks is not None else marks_of(session)
    return check_email(email, provider_metadata(categories, settings), marks, settings)


def ensure_allowed(session: Session, settings: Settings, email: CompiledEmail, categories: list[str],
                   what: str) -> None:
    """Refuse (InputError naming ``what``) to start sending an email the policy refuses."""
    if reason := refusal(findings_for(session, settings, email, categories)):
        raise InputError(f"{what} cannot be sent: {reason}")


def step_refusal(session: Session, settings: Settings, step: SequenceStep, marks: Marks | None = None) -> str | None:
    """Why the policy refuses a sequence step's email (or one of its language versions), or None."""
    if settings.health_information_policy == COVERED:
        return None
    marks = marks if marks is not None else marks_of(session)
    categories = sequence_categories(step.sequence_id)
    emails = [CompiledEmail(step.subject, step.preheader, step.html, step.text),
              *(CompiledEmail(v.subject, v.preheader, v.html, v.text) for v in versions_of(session, step_id=step.id))]
    return refusal(f for email in emails for f in findings_for(session, settings, email, categories, marks))


def held_sequences(session: Session, settings: Settings, sequence_ids: Iterable[int]) -> dict[int, str]:
    """The sequences (of ``sequence_ids``) the policy refuses, with the reason: their due steps wait.
    Asked each round, where every step's send starts, since a field may be marked sensitive after the
    sequence was loaded; only the steps that personalise with some custom field are read whole."""
    marks = marks_of(session)
    if settings.health_information_policy == COVERED or marks.empty:
        return {}
    ids = list(sequence_ids)
    held: dict[int, str] = {}
    nothing = CompiledEmail("", "", "", "")
    for sequence_id in ids:  # what the provider is told of every step of it
        if reason := refusal(findings_for(session, settings, nothing, sequence_categories(sequence_id), marks)):
            held[sequence_id] = reason
    steps = select(SequenceStep.id).where(SequenceStep.sequence_id.in_(ids), SequenceStep.active.is_(True))
    personalised = select(SequenceStep).where(SequenceStep.id.in_(steps), or_(
        _holds_field(SequenceStep),
        SequenceStep.id.in_(select(EmailVersion.step_id).where(EmailVersion.step_id.in_(steps),
                                                                _holds_field(EmailVersion)))))
    for step in session.scalars(personalised.order_by(SequenceStep.sequence_id, SequenceStep.position)):
        if step.sequence_id not in held and (reason := step_refusal(session, settings, step, marks)):
            held[step.sequence_id] = f"step {step.key}: {reason}"
    return held


def _holds_field(row: type[SequenceStep] | type[EmailVersion]) -> ColumnElement[bool]:
    """SQL: one of the email's parts holds a custom field's placeholder."""
    return or_(*(column.contains(FIELD_PLACEHOLDER_START, autoescape=True)
                 for column in (row.subject, row.preheader, row.html, row.text)))


def refusal(findings: Iterable[Finding]) -> str | None:
    """The policy's findings as one line for a refused send, or None when it refuses nothing."""
    mine = [f.message for f in findings if f.code in (SENSITIVE_FIELD, SENSITIVE_METADATA)]
    return " ".join(mine) or None


def _names(name: str, value: str) -> bool:
    """``name`` stands in ``value`` as whole words (a tag "ptsd" in "issue-3-ptsd", not in "ptsdx")."""
    return re.search(r"(?<!\w)" + re.escape(name) + r"(?!\w)", value, re.IGNORECASE) is not None
