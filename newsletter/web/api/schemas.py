"""The API's request and response bodies, as Pydantic models: they are what the served OpenAPI
description says, and every answer is made through them. Text fields are bounded and refuse NUL
characters and lone surrogates (which no database stores) with an error naming the field; the
services then apply their own rules (addresses, phones, time zones, names) with their own messages."""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from newsletter.reports.follow_up import DEFAULT_DAYS
from newsletter.urls import MAX_ID
from subscribers.contacts import MAX_FIELD_KEY, MAX_FIELD_VALUE, MAX_TAG, MAX_TYPED_FIELDS, MAX_TYPED_TAGS
from subscribers.languages import LANGUAGES, MAX_LANGUAGE_TAG
from subscribers.leads import CONTACT_METHODS, MAX_EXTERNAL_ID, MAX_UTM, SOURCES, STAGES
from subscribers.names import MAX_NAME
from subscribers.states import SubscribeOutcome


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (a lone surrogate is not)") from None
    return value


def bounded(most: int, least: int = 0) -> object:
    """A string of ``least`` to ``most`` characters that a database can store."""
    return Annotated[str, StringConstraints(min_length=least, max_length=most), AfterValidator(_storable)]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)  # stored as UTC: 9999-12-31T23:00-05:00 does not exist there
    except OverflowError:
        raise ValueError("must be within the years 1 to 9999 in UTC") from None


# A date-time with an offset (a naive one is refused, never guessed), given back in UTC.
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]
Email = bounded(320, 1)
Name = bounded(MAX_NAME)
Slug = bounded(100, 1)

Source = Literal[SOURCES]  # type: ignore[valid-type]
Stage = Literal[STAGES]  # type: ignore[valid-type]
ContactMethod = Literal[CONTACT_METHODS]  # type: ignore[valid-type]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class ConsentIn(Body):
    """The caller's proof that the person opted in (needs the `contacts:consent` scope). Kept in the
    contact's consent history with the token that brought it; no confirmation email is sent."""

    proof: bounded(2000, 1) = Field(description="How and when the person agreed, e.g. 'ticked the newsletter box "  # type: ignore[valid-type]
                                 "on the intake form at 2026-12-01T10:00Z'.")
    text: bounded(5000, 1) | None = Field(None, description="The exact consent wording they agreed to.")  # type: ignore[valid-type]
    version: bounded(50) | None = Field(None, description="A version label of that wording.")  # type: ignore[valid-type]


class ContactIn(Body):
    email: Email = Field(description="The address; matched case-insensitively with stored contacts.")  # type: ignore[valid-type]
    name: Name | None = None  # type: ignore[valid-type]
    timezone: bounded(64) | None = Field(None, description="IANA time zone, e.g. Europe/Lisbon.")  # type: ignore[valid-type]
    language: bounded(MAX_LANGUAGE_TAG) | None = Field(None, description="The language to write to them in: "  # type: ignore[valid-type]
                                               f"{', '.join(LANGUAGES)} (a regional tag such as es-MX is read as es); "
                                               "none: the newsletter's language.")
    tags: list[bounded(MAX_TAG, 1)] | None = Field(None, max_length=MAX_TYPED_TAGS,  # type: ignore[valid-type]
                                                  description="Tags to add (kept ones stay).")
    custom_fields: dict[bounded(MAX_FIELD_KEY, 1), bounded(MAX_FIELD_VALUE)] | None = Field(  # type: ignore[valid-type]
        None, max_length=MAX_TYPED_FIELDS, description="Values to set; other stored fields stay.")
    lists: list[Slug] | None = Field(None, max_length=20, description="Lists to subscribe the contact to "  # type: ignore[valid-type]
                                     "(slugs); none: the contact is only saved.")
    consent: ConsentIn | None = Field(None, description="Proof of opt-in for `lists`: without it, double "
                                      "opt-in applies (a confirmation email is sent).")


class SubscribeIn(Body):
    list: Slug | None = Field(None, description="The list's slug; default: the newsletter's list.")  # type: ignore[valid-type]
    consent: ConsentIn | None = None


class UnsubscribeIn(Body):
    list: Slug | None = Field(None, description="Leave this list (its slug).")  # type: ignore[valid-type]
    all_lists: bool = Field(False, description="Leave every list: the address is also suppressed (never mailed "
                            "again), as the unsubscribe link in an email does.")


class SubscriptionOut(BaseModel):
    list: str
    state: SubscribeOutcome = Field(description="pending: a confirmation email is queued (double opt-in); "
                                    "confirmed; already: was subscribed; withdrawn: left before and is not "
                                    "brought back; suppressed: the address may not be mailed, nothing changed.")
    confirmation_queued: bool


class ContactOut(BaseModel):
    id: int | None = Field(description="The contact's id; null when the address is suppressed and was not "
                           "stored (nothing is stored about such an address).")
    created: bool
    suppressed: bool
    subscriptions: list[SubscriptionOut]


class UnsubscribeOut(BaseModel):
    id: int
    changed: bool = Field(description="False: they were off the list already.")


class UtmIn(Body):
    source: bounded(MAX_UTM) | None = None  # type: ignore[valid-type]
    medium: bounded(MAX_UTM) | None = None  # type: ignore[valid-type]
    campaign: bounded(MAX_UTM) | None = None  # type: ignore[valid-type]
    term: bounded(MAX_UTM) | None = None  # type: ignore[valid-type]
    content: bounded(MAX_UTM) | None = None  # type: ignore[valid-type]


class LeadIn(Body):
    """A consultation request. Contact fields and a preferred contact method only: there is no field
    for free text, which at a clinic would hold health details."""

    email: Email  # type: ignore[valid-type]
    source: Source = "web_form"  # type: ignore[valid-type]
    name: Name | None = None  # type: ignore[valid-type]
    phone: bounded(40) | None = None  # type: ignore[valid-type]
    preferred_contact: ContactMethod | None = None  # type: ignore[valid-type]
    requested_time: bounded(60) | None = Field(None, description="weekday_mornings, weekday_afternoons, "  # type: ignore[valid-type]
                                            "weekday_evenings, weekends, any_time, or an ISO 8601 date-time with offset.")
    utm: UtmIn | None = None
    timezone: bounded(64) | None = None  # type: ignore[valid-type]
    language: bounded(MAX_LANGUAGE_TAG) | None = Field(None, description="The language to write to them in: "  # type: ignore[valid-type]
                                               f"{', '.join(LANGUAGES)} (a regional tag such as es-MX is read as es); "
                                               "none: the newsletter's language.")


class LeadOut(BaseModel):
    id: int = Field(description="The lead's id: its contact's id, as the staff app's /staff/leads/{id}.")
    stage: Stage  # type: ignore[valid-type]
    created: bool
    reopened: bool = Field(description="A lost lead enquired again and is new once more.")


class StageIn(Body):
    stage: Stage  # type: ignore[valid-type]


class StageOut(BaseModel):
    id: int
    stage: Stage  # type: ignore[valid-type]
    changed: bool = Field(description="False: the lead was in that stage already.")


class BookingIn(Body):
    external_id: bounded(MAX_EXTERNAL_ID, 1) = Field(description="The booking system's id: the same id again "  # type: ignore[valid-type]
                                                  "is the same booking.")
    lead_id: int | None = Field(None, ge=1, le=MAX_ID, description="The lead (its id); or give `email`.")
    email: Email | None = Field(None, description="The person's address, when the lead's id is not known: "  # type: ignore[valid-type]
                                "a lead is made for someone who booked without enquiring.")
    booked_for: Moment | None = Field(None, description="When the consultation is, with an offset.")


class BookingOut(BaseModel):
    id: int
    lead_id: int | None
    booked_for: datetime | None
    created: bool = Field(description="False: this booking was recorded before (the same external id).")


class IssueOut(BaseModel):
    id: int
    subject: str
    status: str = Field(description="As stored: draft, awaiting_approval, scheduled, sending, paused, sent, …")
    state: str = Field(description="The status, except sent_with_unknown for a send that is over while some "
                       "deliveries are held as unknown.")
    unknown: int
    label: str = Field(description="What people read: 'sent', 'sent, 2 unknown'.")
    created_at: datetime


class IssuePage(BaseModel):
    issues: list[IssueOut]
    next: str | None = Field(description="Pass as `cursor` for the next page; null: this is the last.")


class LinkOut(BaseModel):
    url: str
    label: str
    is_booking: bool
    unique_clickers: int
    clicks: int


class LanguageResultOut(BaseModel):
    language: str
    default: bool = Field(description="The issue's own version (also every contact without a version in their language).")
    recipients: int
    sent: int
    unique_opens: int
    unique_clicks: int
    bookings: int
    open_rate: float | None
    click_rate: float | None


class IssueResultsOut(BaseModel):
    issue_id: int
    subject: str
    status: str
    state: str
    label: str
    recipients: int
    sent: int
    delivered: int
    bounced: int
    dropped: int
    pending: int
    failed: int
    unknown: int
    suppressed: int
    unique_opens: int = Field(description="Deliveries opened by a person (machine opens apart).")
    machine_opens: int
    unique_clicks: int
    machine_clicks: int
    unsubscribes: int
    complaints: int
    anonymous_opens: int
    anonymous_clicks: int
    bookings: int
    ctr: float | None
    ctor: float | None
    top_links: list[LinkOut]
    by_language: list[LanguageResultOut] = Field(
        description="The results of each language version the issue was sent in, its own version first.")


class StageFigure(BaseModel):
    stage: str
    count: int
    rate_from_previous: float | None
    rate_overall: float | None


class FunnelOut(BaseModel):
    leads: int
    emailed: int
    engaged: int
    booked: int
    attended: int
    attributed: int
    median_hours_to_book: float | None
    stages: list[StageFigure]


class IssueBookings(BaseModel):
    issue_id: int
    name: str
    subject: str
    bookings: int
    by_click: int
    by_open: int


class StepBookings(BaseModel):
    step_id: int
    name: str
    subject: str
    bookings: int
    by_click: int
    by_open: int


class FunnelReportOut(BaseModel):
    since: datetime | None
    until: datetime | None
    source: str | None
    total: FunnelOut
    by_source: dict[str, FunnelOut]
    by_month: dict[str, FunnelOut]
    by_sequence: dict[str, FunnelOut]
    bookings_by_issue: list[IssueBookings]
    bookings_by_step: list[StepBookings]


class ClickedOut(BaseModel):
    url: str
    label: str
    is_booking: bool
    clicks: int
    last_at: datetime
    email: str


class ReasonOut(BaseModel):
    kind: str
    email: str
    at: datetime
    text: str


class WarmLeadOut(BaseModel):
    lead_id: int
    contact_id: int | None
    name: str | None
    email: str
    phone: str | None
    preferred_contact: str
    source: str
    stage: str
    timezone: str | None
    requested_time: str | None
    last_active_at: datetime
    last_click_at: datetime | None
    booking_click: bool
    links_clicked: int
    clicked: list[ClickedOut]
    last_opened_at: datetime | None
    opened_email: str
    reason: ReasonOut


class FollowUpOut(BaseModel):
    days: int = Field(DEFAULT_DAYS)
    since: datetime
    total: int = Field(description="Warm leads in all; `leads` is this page of them.")
    leads: list[WarmLeadOut]
    next: str | None = Field(description="Pass as `cursor` for the next page; null: this is the last.")
