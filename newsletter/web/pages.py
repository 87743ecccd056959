"""Public pages: sign-up, confirmation, preferences and unsubscribe.

A GET never changes anything (mail scanners follow links): confirm and unsubscribe pages show a
button, and only the POST acts. Handlers that must be ``async`` (to read a form) do their database
work in a worker thread, never on the event loop. Answers to the public forms are the same, and take
the same path, whether or not an address is known, so the pages cannot be used to find out who is on
a list: no form calls the email provider (confirmation emails are queued and a dispatcher sends them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from newsletter import optin, urls
from newsletter.config import Settings
from newsletter.compose.email_look import email_look
from newsletter.compose.templating import templates_dir
from newsletter.i18n import N_, add_i18n, asked_language, gettext_for, spoken, template_words
from newsletter.web import embed
from subscribers.consent import FREQUENCIES, Proof
from subscribers.contacts import UnsupportedAddress, sendable_email
from subscribers.errors import InputError, NotFound
from subscribers.models import Contact
from subscribers.names import MAX_NAME, clean_name
from subscribers.tokens import LinkExpired
from subscribers.states import ContactStatus, SubscribeOutcome

router = APIRouter()
templates = Jinja2Templates(directory=f"{templates_dir()}/web")
templates.env.globals["email_look"] = email_look  # pages around an email (the archive) match its dark design
add_i18n(templates.env)


def visitor_language(request: Request, form: FormData | None = None) -> str | None:
    """The language a visitor asked for: a form's ``lang`` field (the page it was sent from), else
    ``?lang=``, else their browser's Accept-Language; None: the newsletter's language."""
    chosen = form_text(form, "lang") if form is not None else ""
    return asked_language(chosen or request.query_params.get("lang"), request.headers.get("accept-language"))


def render(request: Request, template: str, status: int = 200, lang: str | None = None,
           **context: Any) -> HTMLResponse:
    """A public page in ``lang``: the visitor's for the forms (``visitor_language``), the contact's
    for pages reached from an email; None: the newsletter's (pages not translated, such as the
    archive, stay in it). ``page_lang`` is what the page's forms and links carry on, so the next
    page speaks the same language."""
    settings: Settings = request.app.state.settings
    words = {**template_words(spoken(lang, settings.language)), "page_lang": lang}
    return templates.TemplateResponse(request, template, {"settings": settings, **words, **context}, status_code=status)


def message(request: Request, title: str, body: str, status: int = 200, lang: str | None = None,
            **extra: Any) -> HTMLResponse:
    """A page with one title and one sentence, both msgids (marked ``N_`` where written)."""
    return render(request, "message.html", status, lang=lang, title=title, body=body, **extra)


TOO_MANY = N_("We received too many requests from your connection. Please wait a while and try again.")
SIGNED_UP = N_("Check your inbox: we sent a link to confirm your address.")


def page_gettext(request: Request, lang: str | None) -> Callable[[str], str]:
    """``_`` in the language a page in ``lang`` speaks (for words answered as JSON)."""
    return gettext_for(spoken(lang, request.app.state.settings.language))


def too_many(request: Request) -> Response:
    lang = visitor_language(request)
    return embed.reply(request, 429, {"ok": False, "error": page_gettext(request, lang)(TOO_MANY)},
                       lambda: message(request, N_("Please try again later"), TOO_MANY, 429, lang=lang))


def allowed(request: Request, form: str) -> bool:
    client = request.client.host if request.client else "unknown"
    return request.app.state.limiter.allow(form, client)


def proof(request: Request, method: str, *, with_text: bool = False, language: str | None = None) -> Proof:
    """The consent proof of a request; ``with_text``: the wording the page showed, in ``language``."""
    settings: Settings = request.app.state.settings
    keep = settings.record_ip_and_agent
    text, version = optin.consent_wording(settings, spoken(language, settings.language))
    return Proof(
        method,
        form_id=optin.FORM_ID if with_text else None,
        form_version=optin.FORM_VERSION if with_text else None,
        text=text if with_text else None,
        text_version=version if with_text else None,
        ip_address=(request.client.host if request.client else None) if keep else None,
        user_agent=request.headers.get("user-agent") if keep else None,
    )


def bad_link(request: Request, exc: Exception) -> HTMLResponse:
    expired = isinstance(exc, LinkExpired)  # no contact is known from a bad link: the visitor's language
    return render(request, "link_problem.html", 410 if expired else 404, lang=visitor_language(request),
                  expired=expired)


# Sign-up ----------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request) -> HTMLResponse:
    return subscribe_page(request, visitor_language(request))


def subscribe_page(request: Request, lang: str | None, status: int = 200, **context: Any) -> HTMLResponse:
    """The sign-up form in ``lang``, with the consent wording of that language."""
    settings: Settings = request.app.state.settings
    text, _version = optin.consent_wording(settings, spoken(lang, settings.language))
    return render(request, "subscribe.html", status, lang=lang, consent_text=text, **context)


def form_text(form: FormData, key: str) -> str:
    """One text field of a posted form: "" when missing or not text (a file)."""
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def email_error(email: str) -> str | None:
    """What to say beside the email field (a msgid), or None when the address is one we can send to."""
    try:
        sendable_email(email)
    except UnsupportedAddress:
        return N_("We cannot send to an address with accented or non-Latin letters before the @ yet. "
                  "Please use another address.")
    except InputError:
        return N_("Please enter an email address like name@example.com.")
    return None


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request) -> Response:
    """Every valid sign-up gets the same answer by the same path (one transaction, the confirmation
    email queued in it, no provider request), whether the address is new, pending or subscribed.
    The form may be embedded in another site (``embed``): JSON when asked for, errors by field."""
    if (refused := embed.foreign_json_refused(request)) is not None:
        return refused
    if not allowed(request, "subscribe"):
        return too_many(request)
    form = await request.form()
    email, name = form_text(form, "email"), form_text(form, "name")
    lang = visitor_language(request, form)
    _ = page_gettext(request, lang)

    def done() -> Response:  # the one answer to every sign-up taken (or dropped by the honeypot)
        return embed.reply(request, 200, {"ok": True, "message": _(SIGNED_UP)},
                           lambda: render(request, "check_inbox.html", lang=lang))

    if form.get("website"):  # the honeypot only bots fill in: answer as usual, do nothing
        return done()
    errors: dict[str, str] = {}
    if problem := email_error(email):
        errors["email"] = _(problem)
    try:
        clean_name(name)
    except InputError:
        errors["name"] = _("Please keep your name to %(max)d characters or fewer.") % {"max": MAX_NAME}
    if form.get("consent") != "yes":
        errors["consent"] = _("Please tick the box to agree, so we may email you.")
    if errors:
        return embed.reply(request, 400, {"ok": False, "errors": errors},
                           lambda: subscribe_page(request, lang, 400, errors=errors, email=email, name=name))
    state, consent_proof = request.app.state, proof(request, "form", with_text=True, language=lang)

    def store() -> None:  # a new contact keeps the language of the page they signed up on
        with state.db.session() as session:
            optin.sign_up(session, state.settings, email, name=name or None, proof=consent_proof, language=lang)

    await run_in_threadpool(store)
    return done()


@router.post("/confirm/resend", response_class=HTMLResponse)
async def resend(request: Request) -> HTMLResponse:
    """Queues a new link for a pending address; answers the same for any address, by the same path."""
    if not allowed(request, "resend"):
        return too_many(request)
    form = await request.form()
    state, email = request.app.state, form_text(form, "email")

    def queue() -> None:
        with state.db.session() as session:
            optin.resend_confirmation(session, email)

    await run_in_threadpool(queue)
    return render(request, "check_inbox.html", lang=visitor_language(request, form), resent=True)


# Confirmation -----------------------------------------------------------------------------------


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> HTMLResponse:
    state = request.app.state
    try:
        with state.db.session() as session:
            sub = optin.subscription_from_confirm_token(session, state.settings, token)
            list_name, lang = sub.mailing_list.name, sub.contact.language
    except (InputError, NotFound) as exc:
        return bad_link(request, exc)
    return render(request, "confirm.html", lang=lang, token=token, list_name=list_name)


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm(request: Request, token: str) -> HTMLResponse:
    state = request.app.state
    try:
        with state.db.session() as session:
            sub = optin.subscription_from_confirm_token(session, state.settings, token)
            result = optin.confirm_subscription(session, state.settings, token, proof(request, "email_link"))
            prefs = urls.preferences_url(state.settings, sub.contact)
            list_name, lang = sub.mailing_list.name, sub.contact.language
    except (InputError, NotFound) as exc:
        return bad_link(request, exc)
    if result in (SubscribeOutcome.CONFIRMED, SubscribeOutcome.ALREADY):
        return render(request, "confirmed.html", lang=lang, list_name=list_name, preferences_url=prefs)
    return message(request, N_("This subscription was cancelled"),
                   N_("You unsubscribed after asking to join, so we have not added you. "
                      "If you would like to join again, please sign up once more."), 409, lang=lang,
                   link=("/subscribe" + (f"?lang={lang}" if lang else ""), N_("Sign up again")))


# Preferences ------------------------------------------------------------------------------------


def _preferences(request: Request, session: Session, contact: Contact, token: str, *, saved: bool) -> HTMLResponse:
    """The preferences page, in the contact's language with that language's consent wording."""
    settings: Settings = request.app.state.settings
    text, _version = optin.consent_wording(settings, spoken(contact.language, settings.language))
    return render(request, "preferences.html", lang=contact.language, token=token, consent_text=text,
                  choices=optin.preference_choices(session, contact), frequencies=FREQUENCIES,
                  globally_out=contact.status == ContactStatus.UNSUBSCRIBED, saved=saved,
                  unsubscribe_all=urls.unsubscribe_token(settings, contact, None))


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str, saved: bool = False) -> HTMLResponse:
    state = request.app.state
    try:
        with state.db.session() as session:
            contact = optin.contact_from_preferences_token(session, state.settings, token)
            return _preferences(request, session, contact, token, saved=saved)
    except (InputError, NotFound) as exc:
        return bad_link(request, exc)


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(request: Request, token: str) -> HTMLResponse:
    if not allowed(request, "preferences"):
        return too_many(request)
    form = await request.form()
    state = request.app.state
    # List ids are read like ids in URLs (ASCII digits within range): anything else names no list.
    keep = {list_id for v in form.getlist("list") if (list_id := urls.url_id(str(v))) is not None}
    frequency = {
        list_id: str(value)
        for key, value in form.items()
        if key.startswith("frequency-") and (list_id := urls.url_id(key.split("-", 1)[1])) is not None
        and value in FREQUENCIES
    }
    link_proof = proof(request, "email_link")

    def save() -> HTMLResponse:
        try:
            with state.db.session() as session:
                contact = optin.contact_from_preferences_token(session, state.settings, token)
                optin.save_preferences(session, contact, keep=keep, frequency=frequency, proof=link_proof)
                return _preferences(request, session, contact, token, saved=True)
        except (InputError, NotFound) as exc:
            return bad_link(request, exc)

    return await run_in_threadpool(save)


# Unsubscribe ------------------------------------------------------------------------------------


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    state = request.app.state
    try:
        with state.db.session() as session:
            contact, mailing_list = optin.unsubscribe_target(session, state.settings, token)
            prefs = urls.preferences_url(state.settings, contact)
            list_name, lang = (mailing_list.name if mailing_list else None), contact.language
    except (InputError, NotFound) as exc:
        return bad_link(request, exc)
    return render(request, "unsubscribe.html", lang=lang, token=token, list_name=list_name, preferences_url=prefs)


@router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str) -> HTMLResponse:
    """Also the RFC 8058 one-click target: a POST with ``List-Unsubscribe=One-Click`` unsubscribes
    and is answered 200 with no redirect."""
    form = await request.form()
    method = "one_click" if form.get("List-Unsubscribe") == "One-Click" else "email_link"
    state, link_proof = request.app.state, proof(request, method)

    def unsubscribe_now() -> tuple[str | None, str, str | None]:
        with state.db.session() as session:
            contact, mailing_list = optin.unsubscribe_with_token(session, state.settings, token, link_proof)
            return ((mailing_list.name if mailing_list else None), urls.preferences_url(state.settings, contact),
                    contact.language)

    try:
        list_name, prefs, lang = await run_in_threadpool(unsubscribe_now)
    except (InputError, NotFound) as exc:
        return bad_link(request, exc)
    return render(request, "unsubscribed.html", lang=lang, list_name=list_name, preferences_url=prefs)
