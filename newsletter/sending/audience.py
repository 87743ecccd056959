"""Who an issue goes to, as SQL: confirmed subscribers of its list, in its segment, not suppressed."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from newsletter.models import Issue
from subscribers.models import Contact, Segment, Subscription
from subscribers.segments import compile_filter
from subscribers.states import ContactStatus, SubscriptionStatus
from subscribers.suppression import not_suppressed


def audience(session: Session, issue: Issue, *columns) -> Select:  # noqa: ANN002 - SQL columns
    """SELECT ``columns`` FROM the issue's recipients. One statement; never a Python loop."""
    assert issue.list_id is not None
    query = (
        select(*columns)
        .select_from(Contact)
        .join(Subscription, (Subscription.contact_id == Contact.id) & (Subscription.list_id == issue.list_id))
        .where(Subscription.status == SubscriptionStatus.CONFIRMED, Contact.status == ContactStatus.ACTIVE, not_suppressed())
    )
    if issue.segment_id is not None:
        segment = session.get(Segment, issue.segment_id)
        assert segment is not None
        query = query.where(compile_filter(segment.definition))
    return query
