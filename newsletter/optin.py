"""Sign-up, double opt-in, preferences and unsubscribe: the service behind the public pages and the CLI.

The rules live in ``subscribers.consent``; this module adds what needs the newsletter side: signed
links and the confirmation email, which is queued here and sent by the dispatchers
(``newsletter.sending.confirmations``). Public answers never reveal whether an address is already
known: they take the same path, with no provider round trip, whatever the address.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter import urls
from newsletter.models import ConfirmationEmail, Delivery, Event
from newsletter.compose.personalize import RecipientValues, safe_first_name
from newsletter.compose.render import EmailContent, CompiledEmail, render_email
from newsletter.i18n import gettext_for, spoken
from newsletter.transports import Recipient
from subscribers import consent
from subscribers.consent import Proof
from subscribers.db import utcnow
from subscribers.contacts import find_contact, sendable_email, upsert_contact
from subscribers.errors import InputError, NotFound
from subscribers.names import clean_name
from subscribers.lists import all_lists, ensure_list
from subscribers.models import Contact, MailingList, Subscription
from subscribers.suppression import is_suppressed
from subscribers.states import ConfirmationStatus, SubscribeOutcome, SubscriptionStatus

FORM_ID = "subscribe-page"
FORM_VERSION = "1"


def newsletter_list(session: Session, settings: Settings) -> MailingList:
    return ensure_list(session, settings.default_list, settings.newsletter_name)


def consent_wording(settings: Settings, language: str, wording: str = "consent") -> tuple[str, str]:
    """A consent text and its version as shown to someone reading ``language``: ``wording`` names
    the settings (``consent``: NEWSLETTER_CONSENT_TEXT/_VERSION; ``consultation_consent``: the
    consultation form's), which are in the newsletter's own language; another language has its own
    (NEWSLETTER_CONSENT_TEXT_ES). A language with none is shown the newsletter's own."""
    if language != spoken(None, settings.language):
        text = getattr(settings, f"{wording}_text_{language}", None)
        version = getattr(settings, f"{wording}_version_{language}", None)
        if text and version:
            return text, version
    return getattr(settings, f"{wording}_text"), getattr(settings, f"{wording}_version")


# Sign-up ----------------------------------------------------------------------------------------


@dataclass
class SignUp:
    state: str  # see subscribers.consent.Outcome; "suppressed" also when nothing was stored
    confirmation_id: int | None  # the confirmation email queued for it (sent by a dispatcher), if any

    @property
    def email_queued(self) -> bool:
        return self.confirmation_id is not None


def sign_up(
    session: Session,
    settings: Settings,
    email: str,
    *,
    name: str | None,
    proof: Proof,
    mailing_list: MailingList | None = None,
    confirmed: bool = False,
    tags: list[str] | None = None,
    timezone: str | None = None,
    custom_fields: dict[str, str] | None = None,
    language: str | None = None,
) -> SignUp:
    """Someone asks to join a list. A suppressed address gets nothing and nothing is stored about it.

    A public form (proof "form") never changes what is stored about a contact who exists already:
    anyone may type anyone's address, and nothing in the request proves control of it. The only
    proof would be the confirm button, but a confirmed subscriber who fills in the form again gets
    no email at all (nothing may differ between known and unknown addresses, and the form must not
    become a way to mail someone), so a name parked until confirmation could only ever apply to
    contacts still pending, at the cost of keeping strangers' unverified input meanwhile. So the
    form's name is kept for a new contact only; staff (``contacts add``) and imports update names.

    The confirmation email is queued in this transaction (``ConfirmationEmail``), never sent from
    here: no provider round trip happens inside a web request."""
    address = sendable_email(email)
    name = clean_name(name)  # checked for every address alike, known or not
    if is_suppressed(session, address):
        return SignUp(SubscribeOutcome.SUPPRESSED, None)
    mailing_list = mailing_list or newsletter_list(session, settings)
    contact = find_contact(session, address) if proof.method == "form" else None
    if contact is None:
        contact = upsert_contact(
            session, address, default_timezone=settings.default_timezone,
            source="form" if proof.method == "form" else "admin" if proof.method == "admin" else "api",
            name=name, tags=tags, timezone=timezone, custom_fields=custom_fields, language=language,
        ).contact
    outcome = consent.request_subscription(session, contact, mailing_list, proof, confirmed=confirmed)
    queued = queue_confirmation(session, outcome.subscription) if outcome.state == SubscribeOutcome.PENDING else None
    return SignUp(outcome.state, queued)


def add_by_staff(
    session: Session,
    settings: Settings,
    email: str,
    *,
    lists: list[MailingList],
    added_by: str,
    name: str | None = None,
    confirmed: bool = False,
    consent_note: str | None = None,
    tags: list[str] | None = None,
    timezone: str | None = None,
    custom_fields: dict[str, str] | None = None,
    language: str | None = None,
) -> list[tuple[MailingList, SignUp]]:
    """Staff add a contact and subscribe it to ``lists`` (the CLI's ``contacts add`` and the staff
    page). ``added_by`` names who ("cli", "staff user 3") and is kept with the consent records.
    Double opt-in applies unless staff hold proof of opt-in (``confirmed``), which must then be
    described in ``consent_note`` (kept as the proof). Nothing is stored for a suppressed address."""
    if not lists:
        raise InputError("choose at least one list to subscribe them to")
    note = (consent_note or "").strip() or None
    if confirmed and note is None:
        raise InputError("say how this person agreed (it is kept as the proof) to add them as confirmed")
    proof = Proof("admin", form_id=added_by[:100], note=note)
    return [(mailing_list, sign_up(session, settings, email, name=name, proof=proof, mailing_list=mailing_list,
                                   confirmed=confirmed, tags=tags, timezone=timezone, custom_fields=custom_fields,
                                   language=language))
            for mailing_list in lists]


def resend_confirmation(session: Session, email: str) -> list[int]:
    """Queue the confirmation again for every pending subscription of the address (rate limited).
    Returns the confirmation emails queued; the public page answers the same either way."""
    try:
        contact = find_contact(session, email)
    except InputError:
        return []
    if contact is None or is_suppressed(session, contact.email):
        return []
    queued = (queue_confirmation(session, sub) for sub in contact.subscriptions if sub.status == SubscriptionStatus.PENDING)
    return [confirmation_id for confirmation_id in queued if confirmation_id is not None]


def queue_confirmation(session: Session, sub: Subscription) -> int | None:
    """Queue a confirmation email for ``sub`` in the caller's transaction (a sign-up that rolls back
    queues nothing); a dispatcher sends it. None when the resend limit holds it back."""
    if not consent.may_send_confirmation(sub):
        return None
    now = utcnow()
    consent.mark_confirmation_sent(sub, now)
    row = ConfirmationEmail(subscription_id=sub.id, status=ConfirmationStatus.QUEUED, due_at=now, attempts=0)
    session.add(row)
    session.flush()
    return row.id


@dataclass(frozen=True)
class ConfirmationFor:
    """What a confirmation email needs, read when it is sent (so an erased contact gets nothing)."""

    subscription_id: int
    address: str
    name: str | None
    list_name: str
    language: str | None = None  # the contact's (None: the newsletter's)


def confirmation_email(settings: Settings, to: ConfirmationFor) -> tuple[CompiledEmail, Recipient]:
    """The confirmation email and its one recipient, ready for a transport, in the contact's language."""
    language = spoken(to.language, settings.language)
    _ = gettext_for(language)
    link = urls.confirm_url(settings, to.subscription_id)
    names = {"list": _escape(to.list_name), "org": _escape(settings.org_name)}
    content = EmailContent(
        subject=_("Please confirm your subscription to %(list)s") % {"list": to.list_name},
        preheader=_("One click and you're on the list. If it wasn't you, ignore this email."),
        title=_("Please confirm your subscription"),
        blocks=[
            {"type": "paragraph", "html": _("Thanks for signing up to %(list)s from %(org)s. Press the button below "
                                            "to confirm your address.") % names},
            {"type": "paragraph", "html": _("The link works for %(hours)d hours. If you did not ask for this, ignore "
                                            "this email: you will not hear from us again.")
             % {"hours": settings.confirm_link_hours}},
        ],
        transactional=True,
        cta={"label": _("Yes, subscribe me"), "url": link, "lead": ""},
        reason=_("You are receiving this because this address was entered on %(org)s's sign-up form.")
        % {"org": settings.org_name},
    )
    values = RecipientValues(safe_first_name(to.name, _("there")), "", "", "")
    return render_email(content, settings, language), Recipient(to.address, to.name, values, None)


def _escape(text: str) -> str:
    from html import escape

    return escape(text, quote=False)


# Links a person follows -------------------------------------------------------------------------


def subscription_from_confirm_token(session: Session, settings: Settings, token: str) -> Subscription:
    data = urls.page_tokens(settings).read("confirm", token, max_age_seconds=settings.confirm_link_hours * 3600)
    sub = session.get(Subscription, data.get("s"))
    if sub is None:
        raise NotFound("this confirmation link is no longer valid")
    return sub


def confirm_subscription(session: Session, settings: Settings, token: str, proof: Proof) -> str:
    return consent.confirm(session, subscription_from_confirm_token(session, settings, token), proof)


def delivery_of(session: Session, settings: Settings, token: str) -> Delivery | None:
    """The delivery a link in a sent email points at (None: not a delivery token)."""
    delivery_id = urls.delivery_from_token(settings, token)
    return session.get(Delivery, delivery_id) if delivery_id is not None else None


def contact_from_preferences_token(session: Session, settings: Settings, token: str) -> Contact:
    delivery = delivery_of(session, settings, token)
    if delivery is not None:
        contact = session.get(Contact, delivery.contact_id) if delivery.contact_id else None
        if contact is None:
            raise NotFound("this link is no longer valid")
        return contact
    data = urls.page_tokens(settings).read("preferences", token)
    contact = session.get(Contact, data.get("c"))
    if contact is None:
        raise NotFound("this link is no longer valid")
    return contact


def unsubscribe_target(session: Session, settings: Settings, token: str) -> tuple[Contact, MailingList | None]:
    """Whom an unsubscribe link is for, and from which list (None: every list). Links in sent emails
    carry a delivery token (the list it was sent for); pages carry a signed contact token."""
    delivery = delivery_of(session, settings, token)
    if delivery is not None:
        contact = session.get(Contact, delivery.contact_id) if delivery.contact_id else None
        if contact is None:
            raise NotFound("this link is no longer valid")
        return contact, session.get(MailingList, delivery.list_id) if delivery.list_id else None
    data = urls.page_tokens(settings).read("unsubscribe", token)
    contact = session.get(Contact, data.get("c"))
    if contact is None:
        raise NotFound("this link is no longer valid")
    mailing_list = session.get(MailingList, data.get("l")) if data.get("l") else None
    return contact, mailing_list


def unsubscribe_with_token(session: Session, settings: Settings, token: str, proof: Proof) -> tuple[Contact, MailingList | None]:
    contact, mailing_list = unsubscribe_target(session, settings, token)
    changed = consent.unsubscribe(session, contact, mailing_list, proof)
    delivery = delivery_of(session, settings, token)
    if changed and delivery is not None:  # the email that made them leave, for its report
        session.add(Event(delivery_id=delivery.id, contact_id=contact.id, issue_id=delivery.issue_id,
                          step_id=delivery.step_id, type="unsubscribe", source="first_party", occurred_at=utcnow()))
    return contact, mailing_list


@dataclass
class ListChoice:
    mailing_list: MailingList
    subscribed: bool
    frequency: str


def preference_choices(session: Session, contact: Contact) -> list[ListChoice]:
    """Every list the contact is or was on (lists they never joined are not offered here)."""
    by_list = {sub.list_id: sub for sub in contact.subscriptions}
    return [
        ListChoice(lst, by_list[lst.id].status == SubscriptionStatus.CONFIRMED, by_list[lst.id].frequency)
        for lst in all_lists(session)
        if lst.id in by_list
    ]


def save_preferences(
    session: Session, contact: Contact, *, keep: set[int], frequency: dict[int, str], proof: Proof
) -> None:
    """Apply the preferences form: lists not kept are left; frequency is set on those kept. Ticking a
    list the person had left joins it again at once: the link came to their inbox, which proves the
    address, and the page shows the consent text (a globally unsubscribed address stays out)."""
    for sub in list(contact.subscriptions):
        if sub.list_id not in keep:
            if sub.status != SubscriptionStatus.UNSUBSCRIBED:
                consent.unsubscribe(session, contact, sub.mailing_list, proof)
            continue
        if sub.status != SubscriptionStatus.CONFIRMED:
            consent.request_subscription(session, contact, sub.mailing_list, proof, confirmed=True)
        if sub.status == SubscriptionStatus.CONFIRMED and sub.list_id in frequency:
            consent.set_frequency(session, sub, frequency[sub.list_id], proof)
