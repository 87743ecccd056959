"""'View in your browser': the copy of an issue a delivery carried, as that recipient received it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.urls import delivery_values
from newsletter.models import Issue
from newsletter.optin import delivery_of
from newsletter.compose.personalize import substitute
from subscribers.models import Contact


def online_copy(session: Session, settings: Settings, token: str) -> str | None:
    """The HTML the delivery named by ``token`` carried, with its recipient's own values (their name,
    their links); None when the token names no delivery of an issue (a sequence step has no online copy)."""
    delivery = delivery_of(session, settings, token)
    issue = session.get(Issue, delivery.issue_id) if delivery and delivery.issue_id else None
    if delivery is None or issue is None:
        return None
    contact = session.get(Contact, delivery.contact_id) if delivery.contact_id else None
    return substitute(issue.html, delivery_values(settings, delivery.id, contact.name if contact else None))
