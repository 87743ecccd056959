"""The public consultation request form (/consultation). Thin: the checks, the lead and the emails
are ``newsletter.consultation``'s. Like the sign-up form it answers the same, by the same path,
whether or not the address is known (no provider call: the emails are queued), keeps what was typed
with each error beside its field, and may be embedded in the clinic's site (``embed``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter import consultation
from newsletter.web import embed
from newsletter import optin
from newsletter.i18n import N_, spoken
from newsletter.web.pages import allowed, email_error, form_text, page_gettext, render, too_many, visitor_language
from subscribers.db import utcnow

router = APIRouter()
PATH = "/consultation"
RECEIVED = N_("Thank you: we have your request and will contact you soon.")


def _page(request: Request, lang: str | None, status: int = 200, *, values: dict[str, str], utm: dict[str, str],
          errors: dict[str, str] | None = None, posted: bool = False) -> HTMLResponse:
    """The form in the visitor's language ``lang``: its labels are msgids, its consents that language's wordings."""
    settings = request.app.state.settings
    language = spoken(lang, settings.language)
    return render(request, "consultation.html", status, lang=lang, values=values, utm=utm, errors=errors or {},
                  posted=posted, contact_labels=consultation.CONTACT_LABELS, window_labels=consultation.WINDOW_LABELS,
                  heard_labels=consultation.HEARD_LABELS,
                  consent_text=optin.consent_wording(settings, language)[0],
                  consultation_consent_text=consultation.consultation_consent_wording(settings, language)[0])


@router.get(PATH, response_class=HTMLResponse)
def consultation_form(request: Request) -> HTMLResponse:
    settings = request.app.state.settings
    return _page(request, visitor_language(request), values=consultation.blank_form(settings),
                 utm=consultation.carried_utm(request.query_params))


@router.post(PATH, response_class=HTMLResponse)
async def request_consultation(request: Request) -> Response:
    if (refused := embed.foreign_json_refused(request)) is not None:
        return refused
    if not allowed(request, "consultation"):
        return too_many(request)
    form = await request.form()
    fields = {name: form_text(form, name) for name in consultation.FIELDS}
    lang = visitor_language(request, form)
    _ = page_gettext(request, lang)

    def received() -> Response:
        return embed.reply(request, 200, {"ok": True, "message": _(RECEIVED)},
                           lambda: render(request, "consultation_received.html", lang=lang,
                                          newsletter=fields["newsletter"] == "yes"))

    if form.get("website"):  # the honeypot only bots fill in: answer as usual, store nothing
        return received()
    checked, errors = consultation.check_request(fields)
    errors = {field: _(error) for field, error in errors.items()}  # msgids (a few name their field: English)
    if "email" not in errors and (problem := email_error(fields["email"])):
        errors, checked = {"email": _(problem), **errors}, None
    if checked is None:
        utm = {key: value for key, value in fields.items() if key.startswith("utm_") and key not in errors}
        return embed.reply(request, 400, {"ok": False, "errors": errors},
                           lambda: _page(request, lang, 400, values=fields, utm=utm, errors=errors, posted=True))
    state = request.app.state
    ip = request.client.host if request.client else None
    agent = request.headers.get("user-agent")

    def store() -> None:
        with state.db.session() as session:
            consultation.request_consultation(session, state.settings, checked, now=utcnow(), ip_address=ip,
                                              user_agent=agent, language=lang)

    await run_in_threadpool(store)
    return received()
