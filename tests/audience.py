"""Helpers for audience tests."""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.config import Settings
from subscribers.consent import Proof, request_subscription
from subscribers.contacts import upsert_contact
from subscribers.lists import ensure_list
from subscribers.models import Contact


def subscriber(session: Session, settings: Settings, email: str, *, list_slug: str = "newsletter",
               confirmed: bool = True, name: str | None = None, tags: list[str] | None = None) -> Contact:
    contact = upsert_contact(session, email, default_timezone=settings.default_timezone, source="admin",
                             name=name, tags=tags).contact
    request_subscription(session, contact, ensure_list(session, list_slug), Proof("admin", note="test"),
                         confirmed=confirmed)
    return contact
