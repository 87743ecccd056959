"""Helpers for the Leads pages' tests: a lead made as the website's form makes one, a person's
click on an email's "Book a consultation" button (an issue, its delivery to the lead, the events),
and an email only opened."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from newsletter.database import Database
from newsletter.models import Delivery, Event, Issue, Link, Post
from subscribers.db import utcnow
from subscribers.leads import add_lead
from subscribers.models import Contact

BOOK_URL = "https://clinic.example/book"


def web_lead(db: Database, email: str, name: str, *, timezone: str = "America/Chicago",
             requested_time: str | None = "weekday_mornings", phone: str | None = "+1 415 555 0100") -> int:
    """A lead from the public form (origin api, source web_form); returns its contact id."""
    with db.session() as s:
        lead = add_lead(s, email, default_timezone="America/Los_Angeles", source="web_form", consent_method="form",
                        origin="api", name=name, phone=phone, preferred_contact="phone",
                        requested_time=requested_time, timezone=timezone,
                        utm={"utm_source": "newsletter", "utm_campaign": "spring"}).lead
        return lead.contact_id


def plain_contact(db: Database, email: str = "reader@example.org") -> int:
    """A contact who never asked for a consultation (a newsletter reader)."""
    with db.session() as s:
        contact = Contact(email=email, email_hash=f"hash-{email}", name="Reader", timezone="UTC", source="form")
        s.add(contact)
        s.flush()
        return contact.id


def _sent_issue(s: Session, contact_id: int, subject: str, sent: datetime) -> tuple[Issue, Link, Delivery]:
    """Issue ``subject`` with its booking button, and its delivery to ``contact_id`` at ``sent``."""
    post = Post(title=subject, source_format="text", blocks=[], reading_minutes=1, content_hash=f"post-{subject}-{contact_id}")
    s.add(post)
    s.flush()
    issue = Issue(post_id=post.id, subject=subject, status="sent", html="<p>x</p>", text="x")
    s.add(issue)
    s.flush()
    link = Link(issue_id=issue.id, position=1, url=BOOK_URL, label="Book a consultation", is_booking=True)
    delivery = Delivery(issue_id=issue.id, contact_id=contact_id, status="delivered", due_at=sent,
                        created_at=sent, submitted_at=sent)
    s.add_all([link, delivery])
    s.flush()
    return issue, link, delivery


def booking_click(db: Database, contact_id: int, subject: str = "Small steps for steadier days", *,
                  at: datetime | None = None) -> None:
    """``contact_id`` was sent issue ``subject`` and a person clicked its booking button at ``at``."""
    at = at or utcnow() - timedelta(hours=2)
    with db.session() as s:
        issue, link, delivery = _sent_issue(s, contact_id, subject, at - timedelta(hours=1))
        for kind in ("open", "click"):
            s.add(Event(delivery_id=delivery.id, contact_id=contact_id, issue_id=issue.id,
                        link_id=link.id if kind == "click" else None, url=BOOK_URL if kind == "click" else None,
                        type=kind, machine=False, source="first_party", occurred_at=at))


def opened(db: Database, contact_id: int, subject: str, *, at: datetime, machine: bool = False) -> None:
    """``contact_id`` was sent issue ``subject`` and it was opened at ``at`` (by a person, or a machine)."""
    with db.session() as s:
        issue, _, delivery = _sent_issue(s, contact_id, subject, at - timedelta(hours=1))
        s.add(Event(delivery_id=delivery.id, contact_id=contact_id, issue_id=issue.id, type="open", machine=machine,
                    source="first_party", occurred_at=at))
