"""The ledger's uniqueness after issue 19 slimmed its indexes and foreign keys, on both backends: one
row per (issue, contact) and per (enrolment, step), an issue's rows never in the step index's way,
and an enqueue that still adds nothing the second time."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import ENROLLMENT_STEP_CONFLICT, Delivery, Enrollment, Issue, Sequence, SequenceStep
from newsletter.sending import enqueue, ledger, schedule
from subscribers.contacts import find_contact
from subscribers.db import insert_ignoring_conflicts
from subscribers.models import Subscription
from subscribers.states import DeliveryStatus
from tests.sendkit import add_audience, make_issue

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue("postgres_db" if request.param == "postgresql" else "db")


def step_row(enrollment_id: int, step_id: int, contact_id: int) -> dict:
    return {"enrollment_id": enrollment_id, "step_id": step_id, "contact_id": contact_id,
            "status": DeliveryStatus.QUEUED.value, "due_at": NOW, "attempts": 0, "created_at": NOW}


def test_a_step_is_queued_once_per_enrolment(database: Database) -> None:
    add_audience(database, 1)
    with database.session() as s:
        contact_id = find_contact(s, "reader0@example.org").id
        sequence = Sequence(name="Welcome", trigger_type="manual", definition={})
        s.add(sequence)
        s.flush()
        step = SequenceStep(sequence_id=sequence.id, key="hello", position=1, delay_seconds=0, subject="Hello",
                            html="<p>Hello</p>", text="Hello")
        enrollment = Enrollment(sequence_id=sequence.id, contact_id=contact_id)
        s.add_all([step, enrollment])
        s.flush()
        ids = (enrollment.id, step.id, contact_id)
    with database.session() as s:
        s.execute(insert(Delivery), [step_row(*ids)])
    with pytest.raises(IntegrityError), database.session() as s:
        s.execute(insert(Delivery), [step_row(*ids)])
    with database.session() as s:  # the engine's own insert relies on the same index, and adds nothing
        s.execute(insert_ignoring_conflicts(s, Delivery).values(**step_row(*ids))
                  .on_conflict_do_nothing(**ENROLLMENT_STEP_CONFLICT))
        assert s.scalar(select(func.count()).select_from(Delivery)) == 1


def test_an_issue_is_enqueued_once_per_contact_and_sent_to_all(database: Database, settings: Settings) -> None:
    """Many rows without an enrolment (NULL, outside the partial step index) are all welcome, and a
    second enqueue adds none: (issue, contact) stays unique without the issue's foreign key."""
    issue_id = make_issue(database, settings)
    add_audience(database, 25)
    with database.session() as s:
        assert schedule.start_now(s, settings, s.get(Issue, issue_id), NOW) == 25
    with database.session() as s:
        assert enqueue.enqueue_issue(s, s.get(Issue, issue_id), NOW) == 0
        assert ledger.status_counts(s, issue_id) == {"queued": 25}
        assert s.scalar(select(func.count()).where(Delivery.issue_id == issue_id,
                                                   Delivery.list_id == s.get(Issue, issue_id).list_id)) == 25


def test_a_first_enqueue_that_finds_rows_already_there_adds_only_the_others(database: Database,
                                                                             settings: Settings) -> None:
    """An issue's first enqueue is a plain INSERT on PostgreSQL (no speculative insertion); when
    another enqueue got in first, the unique constraint refuses it and the rows missing are added."""
    issue_id = make_issue(database, settings)
    add_audience(database, 10)
    with database.session() as s:
        contact_id = find_contact(s, "reader3@example.org").id
        list_id = s.scalar(select(Subscription.list_id).where(Subscription.contact_id == contact_id))
        s.get(Issue, issue_id).list_id = list_id
        s.execute(insert(Delivery), [{"issue_id": issue_id, "contact_id": contact_id, "list_id": list_id,
                                      "status": DeliveryStatus.QUEUED.value, "due_at": NOW, "attempts": 0,
                                      "created_at": NOW}])
    with database.session() as s:
        issue = s.get(Issue, issue_id)
        assert issue.enqueued_at is None
        assert enqueue.enqueue_issue(s, issue, NOW) == 9
        assert issue.enqueued_at == NOW
    with database.session() as s:
        assert ledger.status_counts(s, issue_id) == {"queued": 10}
