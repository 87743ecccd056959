"""First-party tracking endpoints: the open pixel and the click redirect."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from newsletter.tracking.first_party import Request as Seen
from newsletter.tracking.first_party import record_click, record_open
from newsletter.urls import pixel_email
from newsletter.web.pages import message
from subscribers.db import utcnow

router = APIRouter()
# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
BROKEN = "The link may be incomplete: some email programs break long links across lines. Try copying the whole link."


def _seen(request: Request) -> Seen:
    return Seen(request.method, request.headers.get("user-agent"), request.client.host if request.client else None)


@router.api_route("/o/{token}/{key}.gif", methods=["GET", "HEAD"], include_in_schema=False)
def open_pixel(request: Request, token: str, key: str) -> Response:
    if pixel_email(key) is None:
        return message(request, "This link does not work", BROKEN, 404)
    state = request.app.state
    with state.db.session() as session:
        record_open(session, state.settings, token, key, _seen(request), utcnow())
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store, private"})


@router.api_route("/c/{token}/{link_id}", methods=["GET", "HEAD"], include_in_schema=False)
def click(request: Request, token: str, link_id: str) -> Response:
    state = request.app.state
    with state.db.session() as session:
        target = record_click(session, state.settings, token, link_id, _seen(request), utcnow())
    if target is None:  # no such link, or not one of the email this token came with
        return message(request, "This link does not work", BROKEN, 404)
    return RedirectResponse(target, status_code=302)
