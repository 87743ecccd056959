"""The emails sent to one lead, with what they did with each: for clinic staff about to call them.

- **emails**: the lead's deliveries (issues and sequence steps), newest first, at most ``limit``,
  read by the deliveries' contact index; the ones still queued or skipped are shown with their state.
- **opens / clicks**: human ones only (a mail privacy proxy or a link scanner is not the person),
  counted per delivery from the events' (delivery, type) index; with the last human click's link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from newsletter.models import Delivery, Event, Issue, Link, Sequence, SequenceStep
from newsletter.reports.email_stats import HUMAN, count_if
from subscribers.states import ENGAGEMENT, EventType

RECENT_EMAILS = 50


@dataclass
class LeadEmail:
    delivery_id: int
    name: str  # the issue's subject, or "sequence / step" with the step's subject after it
    status: str  # a DeliveryStatus
    sent_at: datetime | None  # when the provider accepted it (None: not yet, or never)
    opens: int
    clicks: int
    last_open_at: datetime | None
    last_click_at: datetime | None
    last_clicked: str  # the label (or URL) of the last link clicked


def lead_emails(session: Session, contact_id: int, *, limit: int = RECENT_EMAILS) -> list[LeadEmail]:
    deliveries = list(session.execute(
        select(Delivery.id, Delivery.status, Delivery.submitted_at, Issue.subject, Sequence.name,
               SequenceStep.key, SequenceStep.subject.label("step_subject"))
        .outerjoin(Issue, Issue.id == Delivery.issue_id)
        .outerjoin(SequenceStep, SequenceStep.id == Delivery.step_id)
        .outerjoin(Sequence, Sequence.id == SequenceStep.sequence_id)
        .where(Delivery.contact_id == contact_id)
        .order_by(Delivery.id.desc()).limit(limit)))
    ids = [d.id for d in deliveries]
    is_open, is_click = Event.type == EventType.OPEN, Event.type == EventType.CLICK
    figures = {row.delivery_id: row for row in session.execute(
        select(Event.delivery_id, count_if(is_open).label("opens"), count_if(is_click).label("clicks"),
               func.max(case((is_open, Event.occurred_at))).label("last_open_at"),
               func.max(case((is_click, Event.occurred_at))).label("last_click_at"))
        .where(Event.delivery_id.in_(ids), Event.type.in_(ENGAGEMENT), HUMAN)
        .group_by(Event.delivery_id))} if ids else {}
    last_links: dict[int, str] = {}
    if figures:
        # By (delivery, type): only these few emails' clicks. The machine flag is read, not filtered
        # in SQL, and there is no ORDER BY: either would steer the planner to the (type, machine,
        # time) index, every person's clicks.
        clicked = (select(Event.delivery_id, Event.occurred_at, Event.id, Event.machine,
                          func.coalesce(func.nullif(Link.label, ""), Link.url, Event.url))
                   .outerjoin(Link, Link.id == Event.link_id)
                   .where(Event.delivery_id.in_(list(figures)), is_click))
        latest: dict[int, tuple[datetime, int]] = {}
        for delivery_id, at, event_id, machine, label in session.execute(clicked):
            if not machine and (delivery_id not in latest or (at, event_id) > latest[delivery_id]):
                latest[delivery_id], last_links[delivery_id] = (at, event_id), label or ""
    emails = []
    for d in deliveries:
        name = d.subject if d.subject is not None else (
            f"{d.name} / {d.key}: {d.step_subject}" if d.name is not None else "(email removed)")
        f = figures.get(d.id)
        emails.append(LeadEmail(d.id, name, d.status, d.submitted_at, int(f.opens) if f else 0,
                                int(f.clicks) if f else 0, f.last_open_at if f else None,
                                f.last_click_at if f else None, last_links.get(d.id, "")))
    return emails
