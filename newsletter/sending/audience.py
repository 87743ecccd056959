"""Who an issue goes to, as SQL: confirmed subscribers of its list, in its segment, not suppressed."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from newsletter.models import Issue
from subscribers.models import Contact, Segment, Subscription
from subscribers.segments import compile_filter
from subscribers.states import ContactStatus, SubscriptionStatus
from subscribers.suppression import not_suppressed


def audience(session: Session, issue: Issue, *columns) -> Select:  # noqa: ANN002 - SQL columns
    """SELECT ``columns`` FROM the issue's recipients. One statement; never a Python loop."""
    assert issue.list_id is not None
    return recipients(session, issue.list_id, issue.segment_id, *columns)


def recipients(session: Session, list_id: int, segment_id: int | None, *columns) -> Select:  # noqa: ANN002
    """SELECT ``columns`` FROM who an issue to this list (and segment) would go to now."""
    query = (
        select(*columns)
        .select_from(Contact)
        .join(Subscription, (Subscription.contact_id == Contact.id) & (Subscription.list_id == list_id))
        .where(Subscription.status == SubscriptionStatus.CONFIRMED, Contact.status == ContactStatus.ACTIVE, not_suppressed())
    )
    if segment_id is not None:
        segment = session.get(Segment, segment_id)
        assert segment is not None
        query = query.where(compile_filter(segment.definition))
    return query


def audience_size(session: Session, list_id: int, segment_id: int | None = None) -> int:
    """How many an issue to this list (and segment) would go to if it were sent now: the live count
    staff see while choosing, by the very query that enqueues."""
    return session.scalar(recipients(session, list_id, segment_id, func.count())) or 0
