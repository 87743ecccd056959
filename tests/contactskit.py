"""Helpers for the contacts pages' tests: a person with a whole history (consent, an email, an open,
a click, a consultation booked, a suppression), as the send path and the webhooks would leave it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from sqlalchemy import select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Delivery, Event, Issue, Link
from subscribers.leads import add_lead, record_booking
from subscribers.states import DeliveryStatus, EventType
from subscribers.suppression import SuppressionReason, suppress
from tests.audience import subscriber
from tests.liveserver import LiveServer, serving
from tests.sendkit import make_issue

SUBJECT = "Small steps for steadier days"
CLICKED = "https://example.org/walk"


@dataclass(frozen=True)
class Seeded:
    contact_id: int
    email: str
    issue_id: int


def seed_person(db: Database, settings: Settings, email: str = "rosa.marin@example.org", *,
                name: str = "Rosa Marin", suppressed: bool = True) -> Seeded:
    """A confirmed subscriber with one delivered issue, a human open and click, a lead with a booking,
    and (``suppressed``) a manual suppression: every kind of timeline entry."""
    issue_id = make_issue(db, settings, SUBJECT)
    sent = datetime.now(timezone.utc) - timedelta(days=3)
    with db.session() as s:
        contact = subscriber(s, settings, email, name=name, tags=["vip"])
        issue = s.get(Issue, issue_id)
        link = s.scalar(select(Link).where(Link.issue_id == issue_id, Link.url == CLICKED))
        if link is None:
            link = Link(issue_id=issue_id, position=99, url=CLICKED, label="a walking guide")
            s.add(link)
            s.flush()
        delivery = Delivery(issue_id=issue.id, contact_id=contact.id, status=DeliveryStatus.DELIVERED, due_at=sent,
                            created_at=sent, submitted_at=sent)
        s.add(delivery)
        s.flush()
        for kind, minutes, link_id in ((EventType.OPEN, 10, None), (EventType.CLICK, 12, link.id)):
            s.add(Event(delivery_id=delivery.id, contact_id=contact.id, issue_id=issue.id, link_id=link_id,
                        type=kind, machine=False, source="first_party", occurred_at=sent + timedelta(minutes=minutes)))
        add_lead(s, email, default_timezone=settings.default_timezone, source="web_form", consent_method="form",
                 origin="api", phone="+1 415 555 0100")
        record_booking(s, email, booked_for=sent + timedelta(days=7), origin="staff", external_id=f"cal-{contact.id}",
                       recorded_at=sent + timedelta(hours=2))
        if suppressed:
            suppress(s, email, SuppressionReason.MANUAL, "asked by phone to pause")
        return Seeded(contact.id, email, issue_id)


BACKENDS = ["sqlite", "postgresql"]


def serve_on(request: pytest.FixtureRequest, settings: Settings) -> Iterator[LiveServer]:
    """The body of a test module's server fixture parametrized over ``BACKENDS``: the app on SQLite,
    then on PostgreSQL (skipped without NEWSLETTER_TEST_POSTGRES_URL)."""
    database = request.getfixturevalue("db" if request.param == "sqlite" else "postgres_db")
    with serving(settings, database) as server:
        yield server
