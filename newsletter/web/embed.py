"""The public forms embedded in the clinic's own site: a plain HTML form there posts to /subscribe or
/consultation (no cookie, no CSRF token: the honeypot, the rate limit and double opt-in guard them)
and gets this app's own page back; a script there may ask for JSON instead (``Accept:
application/json``) and read it only from an origin listed in NEWSLETTER_EMBED_ORIGINS (CORS).

A JSON request that names another site's origin is refused (403, nothing stored): a site that is not
listed cannot use the forms as an API. Plain form posts are taken from anywhere, as a form is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from newsletter.config import Settings

router = APIRouter()
EMBEDDABLE = ("/subscribe", "/consultation")
PREFLIGHT_SECONDS = 600


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "").lower()


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def listed_origin(request: Request) -> str | None:
    """The request's Origin when NEWSLETTER_EMBED_ORIGINS lists it (None otherwise)."""
    origin = request.headers.get("origin", "").strip().lower()
    settings: Settings = request.app.state.settings
    return origin if origin and origin in settings.embed_origins else None


def _own_origin(request: Request, origin: str) -> bool:
    settings: Settings = request.app.state.settings
    return origin in (_origin_of(settings.public_base_url), _origin_of(str(request.base_url)))


def foreign_json_refused(request: Request) -> Response | None:
    """A 403 for a JSON request from a site that is not listed (and not this app); None to go on."""
    origin = request.headers.get("origin", "").strip().lower()
    if not wants_json(request) or not origin or _own_origin(request, origin) or listed_origin(request):
        return None
    return JSONResponse({"ok": False, "error": "this site may not use this form's JSON answers "
                         "(NEWSLETTER_EMBED_ORIGINS does not list it)"}, 403)


def with_cors(request: Request, response: Response) -> Response:
    """The CORS headers for a listed origin; ``Vary: Origin`` always, so no cache mixes them up."""
    response.headers.append("Vary", "Origin")
    if (origin := listed_origin(request)) is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


def reply(request: Request, status: int, body: dict[str, Any], page: Callable[[], Response]) -> Response:
    """JSON (``body``, with CORS headers) when the request asks for it, else the page."""
    if wants_json(request):
        return with_cors(request, JSONResponse(body, status))
    return page()


def preflight(request: Request) -> Response:
    """The answer to a browser's CORS preflight: allowed for a listed origin only."""
    if listed_origin(request) is None:
        return Response(status_code=403, headers={"Vary": "Origin"})
    return with_cors(request, Response(status_code=204, headers={
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Accept, Content-Type",
        "Access-Control-Max-Age": str(PREFLIGHT_SECONDS),
    }))


for _path in EMBEDDABLE:
    router.add_api_route(_path, preflight, methods=["OPTIONS"], include_in_schema=False)


def snippets(settings: Settings) -> dict[str, str]:
    """The forms to paste into the clinic's site, pointed at this app (the README shows the same
    with a stand-in address): "subscribe" and "consultation"."""
    from newsletter.consultation import CONTACT_LABELS, WINDOW_LABELS
    from newsletter.web.pages import templates

    values = {"base_url": settings.public_base_url, "consent_text": settings.consent_text,
              "consultation_consent_text": settings.consultation_consent_text, "timezone": settings.default_timezone,
              "contact_labels": CONTACT_LABELS, "window_labels": WINDOW_LABELS}
    return {name: templates.get_template(f"embed/{name}.html").render(values).strip() + "\n"
            for name in ("subscribe", "consultation")}
