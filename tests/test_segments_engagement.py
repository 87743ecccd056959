"""Engagement segments read human opens and clicks, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Delivery, Event
from subscribers import segments
from subscribers.models import Contact
from tests.sendkit import add_audience, make_issue

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
CASES = [
    ({"engaged": {"within_days": 30}}, {"reader0", "reader1"}),
    ({"opened": {"within_days": 30}}, {"reader0", "reader1"}),  # a click counts as an open
    ({"clicked": {"within_days": 30}}, {"reader1"}),
    ({"engaged": {"within_days": 3}}, {"reader1"}),
    ({"never_opened": True}, {"reader2", "reader3"}),  # sent something, never engaged as a person
    ({"not": {"engaged": {"within_days": 30}}}, {"reader2", "reader3", "reader4"}),
]


def world(db: Database, settings: Settings) -> None:
    """reader0 opened 10 days ago; reader1 clicked yesterday; reader2 only had a machine open;
    reader3 was sent an email and did nothing; reader4 was never sent anything."""
    issue_id = make_issue(db, settings)
    ids = add_audience(db, 5)
    with db.session() as s:
        for n, contact_id in enumerate(ids[:4]):
            s.add(Delivery(issue_id=issue_id, contact_id=contact_id, status="delivered", due_at=NOW, attempts=1))
        s.flush()
        delivery = dict(s.execute(select(Delivery.contact_id, Delivery.id)).all())
        for contact_id, kind, machine, days in ((ids[0], "open", False, 10), (ids[1], "click", False, 1),
                                                (ids[2], "open", True, 1)):
            s.add(Event(delivery_id=delivery[contact_id], contact_id=contact_id, issue_id=issue_id, type=kind,
                        machine=machine, source="first_party", occurred_at=NOW - timedelta(days=days)))


def matching(db: Database, definition: dict) -> set[str]:
    with db.session() as s:
        emails = s.scalars(select(Contact.email).where(segments.compile_filter(definition, now=NOW)))
        return {e.split("@")[0] for e in emails}


@pytest.mark.parametrize("definition, expected", CASES)
def test_engagement_on_sqlite(db: Database, settings: Settings, definition: dict, expected: set[str]) -> None:
    world(db, settings)
    assert matching(db, definition) == expected
    with db.session() as s:
        assert segments.count(s, definition, now=NOW) == len(expected)


@pytest.mark.postgres
@pytest.mark.parametrize("definition, expected", CASES)
def test_engagement_on_postgresql(postgres_db: Database, settings: Settings, definition: dict,
                                  expected: set[str]) -> None:
    world(postgres_db, settings)
    assert matching(postgres_db, definition) == expected
