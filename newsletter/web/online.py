"""'View in your browser': the email a delivery carried, as that recipient received it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from newsletter.archive import web_parts
from newsletter.view_online import online_copy
from newsletter.web.pages import message, render

router = APIRouter()


@router.get("/v/{token}", response_class=HTMLResponse)
def view_online(request: Request, token: str) -> HTMLResponse:
    state = request.app.state
    with state.db.session() as session:
        html = online_copy(session, state.settings, token)
    if html is None:
        return message(request, "This link does not work", "The link may be incomplete: some email programs "
                       "break long links across lines. Try copying the whole link.", 404)
    return render(request, "online.html", parts=web_parts(html))
