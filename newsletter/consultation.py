"""Consultation requests from the public form: check a request field by field, record the lead (and,
when the person ticked it, the newsletter sign-up), and queue the emails about it.

The form takes contact fields and fixed choices only (``subscribers.leads``: no free text that could
hold health details). A request is recorded by ``subscribers.leads.add_lead`` (source "web_form",
origin "api", consent method "form"), with the consultation consent's own wording and version kept
with the lead; the newsletter box is a separate consent, asked by double opt-in (``optin.sign_up``).

Emails are queued in the request's transaction and sent by the dispatchers
(``newsletter.sending.consultation_emails``), never inside the web request, so the answer takes the
same path whether or not the address is known:

- an **acknowledgement** to the lead, unless the address is suppressed (checked again when sent);
- an **intake notification** to NEWSLETTER_INTAKE_EMAIL when it is set, carrying the lead's name
  and a link to the lead in the staff app only (no address, no phone, nothing health-related).

Replay rule: at most one email of each kind per lead per ``REPLAY_WINDOW`` (24 hours), whatever
became of it; a form sent again (a double click, a back button, a bot) within it queues nothing more.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from newsletter import optin, urls
from newsletter.compose.personalize import RecipientValues, safe_first_name
from newsletter.compose.render import CompiledEmail, EmailContent, render_email
from newsletter.config import Settings
from newsletter.i18n import N_, gettext_for, spoken
from newsletter.models import ConsultationEmail
from newsletter.transports import Recipient
from subscribers.consent import Proof
from subscribers.contacts import check_timezone
from subscribers.errors import InputError
from subscribers.leads import (
    CONTACT_METHODS,
    HEARD_FROM,
    MAX_UTM,
    REQUESTED_WINDOWS,
    UTM_KEYS,
    LeadResult,
    add_lead,
    normalise_phone,
)
from subscribers.models import Lead
from subscribers.names import MAX_NAME
from subscribers.states import ConfirmationStatus
from subscribers.suppression import is_suppressed

FORM_ID = "consultation-page"
FORM_VERSION = "1"
ACKNOWLEDGEMENT, INTAKE = "acknowledgement", "intake"
KINDS = (ACKNOWLEDGEMENT, INTAKE)
REPLAY_WINDOW = timedelta(hours=24)
INTAKE_SUBJECT = "New consultation request"

# What a person sees for each fixed choice (the stored values are the keys): msgids, translated where shown.
CONTACT_LABELS = {"email": N_("Email"), "phone": N_("Phone call"), "text": N_("Text message")}
WINDOW_LABELS = {"any_time": N_("Any time"), "weekday_mornings": N_("Weekday mornings"),
                 "weekday_afternoons": N_("Weekday afternoons"), "weekday_evenings": N_("Weekday evenings"),
                 "weekends": N_("Weekends")}
HEARD_LABELS = {"search_engine": N_("A search engine"), "social_media": N_("Social media"),
                "friend_or_family": N_("A friend or family member"),
                "healthcare_provider": N_("A doctor or therapist"), "news_or_article": N_("A news story or article"),
                "newsletter": N_("Our newsletter"), "other": N_("Somewhere else")}
assert set(CONTACT_LABELS) == set(CONTACT_METHODS) and set(WINDOW_LABELS) == set(REQUESTED_WINDOWS)
assert set(HEARD_LABELS) == set(HEARD_FROM)
# Said when a call or a text is asked for without a number (whole sentences, so each translates).
PHONE_NEEDED = {"phone": N_("Please give a phone number, so we can reach you by phone call."),
                "text": N_("Please give a phone number, so we can reach you by text message.")}

# The longest value each text field takes (the column's size); longer is refused, never cut. The
# fields of fixed choices take one of their choices, whatever its length.
MAX_LENGTHS = {"email": 320, "name": MAX_NAME, "phone": 40, "timezone": 64, **{f"utm_{key}": MAX_UTM for key in UTM_KEYS}}
CHOICE_FIELDS = ("preferred_contact", "requested_time", "heard_from")
FIELDS = tuple(MAX_LENGTHS) + CHOICE_FIELDS + ("consent_contact", "newsletter")
# The labels errors use to name a field.
FIELD_NAMES = {"email": "Email address", "name": "Name", "phone": "Phone number", "timezone": "Time zone",
               "preferred_contact": "How to contact you", "requested_time": "Best time", "heard_from":
               "How you heard of us", **{f"utm_{key}": f"utm_{key}" for key in UTM_KEYS}}


@dataclass
class ConsultationRequest:
    """A request as checked: every value is one the lead rules accept."""

    email: str
    name: str
    phone: str | None
    preferred_contact: str
    requested_time: str
    timezone: str
    heard_from: str | None
    newsletter: bool
    utm: dict[str, str] = field(default_factory=dict)


def blank_form(settings: Settings) -> dict[str, str]:
    """The values a new form starts with: email contact, any time, the clinic's time zone (the
    page's script puts the browser's own zone in its place)."""
    return {"preferred_contact": "email", "requested_time": "any_time", "timezone": settings.default_timezone}


def carried_utm(query: Mapping[str, str]) -> dict[str, str]:
    """The UTM values of the page's address, to carry in hidden fields: only those the form will
    accept (a value too long or holding control characters is dropped here, not refused later)."""
    carried = {}
    for key in UTM_KEYS:
        value = (query.get(f"utm_{key}") or "").strip()
        if value and len(value) <= MAX_UTM and _printable(value):
            carried[f"utm_{key}"] = value
    return carried


def check_request(fields: Mapping[str, str]) -> tuple[ConsultationRequest | None, dict[str, str]]:
    """The request, or what is wrong with it, by field (a sentence to show beside that field). The
    address's syntax is the caller's to check with the sign-up form's rule; here its size only."""
    errors: dict[str, str] = {}
    for name in (*MAX_LENGTHS, *CHOICE_FIELDS):
        value = fields.get(name, "")
        if not _printable(value):
            errors[name] = f"{FIELD_NAMES[name]} holds characters that are not text (such as a null byte)."
        elif len(value) > MAX_LENGTHS.get(name, len(value)):
            errors[name] = f"Please keep {FIELD_NAMES[name].lower()} to {MAX_LENGTHS[name]} characters or fewer."
    get = {name: fields.get(name, "") for name in FIELDS}
    if "name" not in errors and not get["name"]:
        errors["name"] = N_("Please tell us your name, so we know whom to ask for.")
    if "email" not in errors and not get["email"]:
        errors["email"] = N_("Please enter an email address like name@example.com.")
    method = get["preferred_contact"]
    if "preferred_contact" not in errors and method not in CONTACT_METHODS:
        errors["preferred_contact"] = N_("Please choose how we should contact you.")
    phone = None
    if "phone" not in errors and get["phone"]:
        try:
            phone = normalise_phone(get["phone"])
        except InputError:
            errors["phone"] = N_("Please enter a phone number with digits only (and a + for the country), e.g. +1 415 555 0100.")
    elif "phone" not in errors and method in ("phone", "text"):
        errors["phone"] = PHONE_NEEDED[method]
    if "requested_time" not in errors and get["requested_time"] not in REQUESTED_WINDOWS:
        errors["requested_time"] = N_("Please choose the best time to reach you.")
    zone = get["timezone"]
    if "timezone" not in errors and not zone:
        errors["timezone"] = N_("Please enter your time zone, such as America/New_York.")
    elif "timezone" not in errors:
        try:
            check_timezone(zone)
        except InputError:
            errors["timezone"] = N_("Please enter a time zone such as America/New_York or Europe/London.")
    heard = get["heard_from"] or None
    if "heard_from" not in errors and heard is not None and heard not in HEARD_FROM:
        errors["heard_from"] = N_("Please choose one of the answers, or leave it empty.")
    if get["consent_contact"] != "yes":
        errors["consent_contact"] = N_("Please tick the box, so we may contact you about your consultation.")
    if errors:
        return None, errors
    utm = {key.removeprefix("utm_"): get[key] for key in MAX_LENGTHS if key.startswith("utm_") and get[key]}
    return ConsultationRequest(email=get["email"], name=get["name"], phone=phone, preferred_contact=method,
                               requested_time=get["requested_time"], timezone=zone, heard_from=heard,
                               newsletter=get["newsletter"] == "yes", utm=utm), {}


def _printable(value: str) -> bool:
    return value.isprintable() or not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


@dataclass
class Received:
    lead_id: int
    created: bool
    queued: list[int]  # the consultation emails queued for this request


def consultation_consent_wording(settings: Settings, language: str) -> tuple[str, str]:
    """The consultation form's consent text and version in ``language`` (``optin.consent_wording``)."""
    return optin.consent_wording(settings, language, "consultation_consent")


def request_consultation(session: Session, settings: Settings, request: ConsultationRequest, *, now: datetime,
                         ip_address: str | None = None, user_agent: str | None = None,
                         language: str | None = None) -> Received:
    """Record a checked request: the lead with its consent to be contacted (the form, the wording and
    version, and IP and agent only when NEWSLETTER_RECORD_IP_AND_AGENT is on), the newsletter sign-up
    when ticked (double opt-in; its own consent wording), and the emails about it, all in the
    caller's transaction. ``language``: the form page's (the wordings shown, and a new contact's)."""
    keep = settings.record_ip_and_agent
    page = spoken(language, settings.language)
    text, version = consultation_consent_wording(settings, page)
    proof = Proof("form", form_id=FORM_ID, form_version=FORM_VERSION, text=text, text_version=version,
                  ip_address=ip_address if keep else None, user_agent=user_agent if keep else None)
    result: LeadResult = add_lead(
        session, request.email, default_timezone=settings.default_timezone, source="web_form",
        consent_method="form", origin="api", name=request.name, phone=request.phone,
        preferred_contact=request.preferred_contact, requested_time=request.requested_time, utm=request.utm,
        timezone=request.timezone, heard_from=request.heard_from, proof=proof, language=language,
        unverified=True,  # anyone may type anyone's address: a known lead's details stay as stored
    )
    queued = queue_emails(session, settings, result.lead, now)
    if request.newsletter:
        text, version = optin.consent_wording(settings, page)
        newsletter_proof = Proof("form", form_id=FORM_ID, form_version=FORM_VERSION, text=text, text_version=version,
                                 ip_address=proof.ip_address, user_agent=proof.user_agent)
        optin.sign_up(session, settings, request.email, name=request.name, proof=newsletter_proof, language=language)
    return Received(result.lead.id, result.created, queued)


def queue_emails(session: Session, settings: Settings, lead: Lead, now: datetime) -> list[int]:
    """Queue the acknowledgement (not to a suppressed address) and the intake notification (when an
    intake address is set), each unless one was queued for this lead in the last 24 hours."""
    # The lead's row locked first (PostgreSQL): the same form sent twice at once must queue once.
    session.execute(select(Lead.id).where(Lead.id == lead.id).with_for_update())
    kinds = [] if is_suppressed(session, lead.contact.email) else [ACKNOWLEDGEMENT]
    if settings.intake_email:
        kinds.append(INTAKE)
    rows = [ConsultationEmail(lead_id=lead.id, kind=kind, status=ConfirmationStatus.QUEUED, due_at=now, attempts=0,
                              created_at=now)
            for kind in kinds if not _queued_lately(session, lead.id, kind, now)]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


def _queued_lately(session: Session, lead_id: int, kind: str, now: datetime) -> bool:
    return bool(session.scalar(select(exists().where(
        ConsultationEmail.lead_id == lead_id, ConsultationEmail.kind == kind,
        ConsultationEmail.created_at > now - REPLAY_WINDOW))))


# The emails ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcknowledgementFor:
    """What the acknowledgement needs, read when it is sent (an erased lead gets nothing)."""

    address: str
    name: str | None
    preferred_contact: str
    requested_time: str | None
    language: str | None = None  # the contact's (None: the newsletter's)


@dataclass(frozen=True)
class IntakeFor:
    address: str  # the intake address
    name: str | None  # the lead's name: the only personal detail the notification carries
    contact_id: int


def acknowledgement_email(settings: Settings, to: AcknowledgementFor) -> tuple[CompiledEmail, Recipient]:
    """A short, warm note that the request arrived, in the contact's language. Transactional (no
    list headers); the subject and preheader say nothing about health or about what was asked."""
    language = spoken(to.language, settings.language)
    _ = gettext_for(language)
    how = _(CONTACT_LABELS.get(to.preferred_contact, "Email")).lower()
    when = _(WINDOW_LABELS.get(to.requested_time or "", "")) if to.requested_time in WINDOW_LABELS else ""
    timing = _(", %(when)s if we can") % {"when": when.lower()} if when and to.requested_time != "any_time" else ""
    org = _escape(settings.org_name)
    content = EmailContent(
        subject=_("Thanks for getting in touch"),
        preheader=_("We have your request and will be in touch soon."),
        title=_("Thank you, we have your request"),
        blocks=[
            {"type": "paragraph", "html": _("Thank you for asking to talk with %(org)s. Someone from our team will be "
                                            "in touch soon by %(how)s%(timing)s.")
             % {"org": org, "how": _escape(how), "timing": _escape(timing)}},
            {"type": "paragraph", "html": _("There is nothing you need to prepare. Please do not send medical details "
                                            "by email: we will ask what we need when we talk.")},
            {"type": "paragraph", "html": _("If you did not ask for this, you can ignore this email.")},
        ],
        transactional=True,
        cta={"label": _(settings.cta_label), "url": settings.booking_url,
             "lead": _("Would you rather choose a time yourself?")},
        reason=_("You are receiving this because this address was entered on %(org)s's consultation request form.")
        % {"org": settings.org_name},
    )
    values = RecipientValues(safe_first_name(to.name, _("there")), "", "", "")
    return render_email(content, settings, language), Recipient(to.address, to.name, values, None)


def intake_email(settings: Settings, to: IntakeFor) -> tuple[CompiledEmail, Recipient]:
    """The notification to the clinic's intake address: the lead's name and the staff link only."""
    link = urls.staff_lead_url(settings, to.contact_id)
    who = to.name or "Someone"
    lines = [f"{who} asked for a consultation on the website.",
             f"Open the request in the staff app (sign-in needed): {link}",
             "Their contact details are shown there only, never in this email."]
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines[:1])
    body += f'<p><a href="{html.escape(link)}">Open the request in the staff app</a> (sign-in needed).</p>'
    body += f"<p>{html.escape(lines[2])}</p>"
    email = CompiledEmail(INTAKE_SUBJECT, "", body, "\n\n".join(lines) + "\n")
    return email, Recipient(to.address, None, RecipientValues("", "", "", ""), None)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)
