"""'View in your browser': the email a delivery carried, as that recipient received it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from newsletter.urls import delivery_values
from newsletter.models import Issue
from newsletter.optin import delivery_of
from newsletter.compose.personalize import substitute
from newsletter.web.pages import message
from subscribers.models import Contact

router = APIRouter()


@router.get("/v/{token}", response_class=HTMLResponse)
def view_online(request: Request, token: str) -> HTMLResponse:
    state = request.app.state
    with state.db.session() as session:
        delivery = delivery_of(session, state.settings, token)
        issue = session.get(Issue, delivery.issue_id) if delivery and delivery.issue_id else None
        if delivery is None or issue is None:
            return message(request, "This link does not work", "The link may be incomplete: some email programs "
                           "break long links across lines. Try copying the whole link.", 404)
        contact = session.get(Contact, delivery.contact_id) if delivery.contact_id else None
        values = delivery_values(state.settings, delivery.id, contact.name if contact else None)
        return HTMLResponse(substitute(issue.html, values))
