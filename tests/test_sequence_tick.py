"""One round of sequence work (``process_due``) as it scales: goals checked for whoever is due in the
round, the hourly sweep of every enrolment, due steps written in groups, trigger enrolment. On SQLite,
and on PostgreSQL when NEWSLETTER_TEST_POSTGRES_URL is set."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Delivery, Enrollment, Lease, Sequence, SequenceStep
from newsletter.sequences.definition import parse_definition
from newsletter.sequences.engine import GOAL_SWEEP_LEASE, DueReport, enroll, goal_sweep_due, process_due
from newsletter.sequences.install import install
from subscribers.contacts import find_contact, upsert_contact
from subscribers.models import ContactTag
from subscribers.suppression import suppress

MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
ALWAYS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue("postgres_db" if request.param == "postgresql" else "db")


def load(db: Database, settings: Settings, definition: dict) -> int:
    with db.session() as s:
        return install(s, settings, parse_definition(definition, source="test"), now=MONDAY).sequence.id


def enrol(db: Database, sequence_id: int, email: str, at: datetime, *, zone: str = "UTC") -> None:
    with db.session() as s:
        contact = upsert_contact(s, email, default_timezone="UTC", timezone=zone, source="admin").contact
        enroll(s, s.get(Sequence, sequence_id), contact, at)


def tag(db: Database, email: str, name: str, at: datetime) -> None:
    with db.session() as s:
        s.add(ContactTag(contact_id=find_contact(s, email).id, tag=name, added_at=at))


def tick(db: Database, settings: Settings, at: datetime) -> DueReport:
    with db.session() as s:
        return process_due(s, settings, at)


def sent(db: Database, email: str) -> list[str]:
    with db.session() as s:
        return list(s.scalars(
            select(SequenceStep.subject).join(Delivery, Delivery.step_id == SequenceStep.id)
            .where(Delivery.contact_id == find_contact(s, email).id).order_by(Delivery.id)
        ))


def enrolment(db: Database, email: str) -> Enrollment:
    with db.session() as s:
        return s.scalars(select(Enrollment).where(Enrollment.contact_id == find_contact(s, email).id)).one()


def test_a_goal_reached_by_someone_due_is_honoured_in_that_round_and_the_sweep_catches_the_rest(
    database: Database, settings: Settings
) -> None:
    db = database
    sequence_id = load(db, settings, {
        "name": "Drip", "trigger": {"type": "manual"}, "window": ALWAYS, "goals": [{"type": "tag", "tag": "done"}],
        "steps": [{"delay": "0m", "subject": "One", "body": "x"}, {"delay": "2d", "subject": "Two", "body": "x"}],
    })
    for email in ("due@example.org", "control@example.org"):
        enrol(db, sequence_id, email, MONDAY)
    enrol(db, sequence_id, "waiting@example.org", MONDAY + timedelta(days=1))
    tick(db, settings, MONDAY)
    tick(db, settings, MONDAY + timedelta(days=1))
    two_days = MONDAY + timedelta(days=2)
    tick(db, settings, two_days - timedelta(minutes=10))  # a full sweep: the next is due an hour later
    for email in ("due@example.org", "waiting@example.org"):  # both reach the goal between rounds
        tag(db, email, "done", two_days - timedelta(minutes=5))

    report = tick(db, settings, two_days)  # no sweep in this round; "Two" is due for two of them
    assert (report.exited, report.queued) == (1, 1)
    assert sent(db, "due@example.org") == ["One"]
    assert sent(db, "control@example.org") == ["One", "Two"]
    due = enrolment(db, "due@example.org")
    assert (due.state, due.exit_reason, due.next_due_at) == ("exited", "goal: tag", None)
    assert enrolment(db, "waiting@example.org").state == "active"  # not due, and no sweep yet

    assert tick(db, settings, two_days + timedelta(minutes=30)).exited == 0
    assert tick(db, settings, two_days + timedelta(minutes=50)).exited == 1  # the hourly sweep
    waiting = enrolment(db, "waiting@example.org")
    assert (waiting.state, waiting.exit_reason) == ("exited", "goal: tag")
    assert sent(db, "waiting@example.org") == ["One"]


def test_one_sweep_an_hour_whoever_asks_and_a_lost_or_future_mark_sweeps_now(database: Database) -> None:
    db = database

    def due(at: datetime, *, keep: bool = True) -> bool:
        with db.session() as s:
            answer = goal_sweep_due(s, at)
            if not keep:
                s.rollback()
            return answer

    assert due(MONDAY)  # the first round ever
    assert not due(MONDAY + timedelta(minutes=5))  # another process, or after a restart
    assert not due(MONDAY + timedelta(minutes=59))
    assert due(MONDAY + timedelta(hours=1))
    assert due(MONDAY + timedelta(hours=2), keep=False)  # a round rolled back has not swept ...
    assert due(MONDAY + timedelta(hours=2))  # ... so the next one does
    assert due(MONDAY)  # the clock went back by more than the period
    with db.session() as s:
        s.execute(delete(Lease).where(Lease.name == GOAL_SWEEP_LEASE))
    assert due(MONDAY + timedelta(minutes=1))  # the row lost: sweep at once


def test_steps_due_together_are_written_together_each_in_its_own_zone(database: Database, settings: Settings) -> None:
    db = database
    sequence_id = load(db, settings, {
        "name": "Office hours", "trigger": {"type": "manual"},
        "window": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
        "steps": [{"delay": "0m", "subject": "One", "body": "x"}, {"delay": "1d", "subject": "Two", "body": "x"}],
    })
    london = [f"london-{n}@example.org" for n in range(12)]  # one UPDATE for the lot
    tokyo = [f"tokyo-{n}@example.org" for n in range(3)]  # few enough to go one by one
    for email in london:
        enrol(db, sequence_id, email, MONDAY, zone="Europe/London")
    for email in tokyo:
        enrol(db, sequence_id, email, MONDAY, zone="Asia/Tokyo")  # 19:00 there: Tuesday 09:00 JST
    tuesday_tokyo = datetime(2026, 3, 3, 0, 0, tzinfo=timezone.utc)

    assert tick(db, settings, MONDAY).queued == 12
    for email in london:
        e = enrolment(db, email)
        assert (e.state, e.next_due_at, e.last_sent_at) == ("active", MONDAY + timedelta(days=1), MONDAY)
    assert tick(db, settings, tuesday_tokyo).queued == 3
    for email in tokyo:
        e = enrolment(db, email)
        assert (e.state, e.next_due_at, e.last_sent_at) == ("active", tuesday_tokyo + timedelta(days=1), tuesday_tokyo)
    assert tick(db, settings, MONDAY + timedelta(days=1)).completed == 12
    assert tick(db, settings, tuesday_tokyo + timedelta(days=1)).completed == 3
    with db.session() as s:
        two = s.scalar(select(SequenceStep.id).where(SequenceStep.subject == "Two"))
    for email in london + tokyo:
        assert sent(db, email) == ["One", "Two"]
        e = enrolment(db, email)
        assert (e.state, e.next_step_id, e.next_due_at, e.last_step_id) == ("completed", None, None, two)
        assert e.finished_at == e.last_sent_at


def test_a_trigger_enrols_once_or_again_after_it_fires_again(database: Database, settings: Settings) -> None:
    db = database
    steps = [{"delay": "0m", "subject": "Hello", "body": "x"}]
    for name, reenroll in (("Again", True), ("Once", False)):
        load(db, settings, {"name": name, "trigger": {"type": "tag_added", "tag": "event"}, "window": ALWAYS,
                            "reenroll": reenroll, "steps": steps})
    with db.session() as s:
        for email in ("ann@example.org", "bob@example.org", "cy@example.org"):
            upsert_contact(s, email, default_timezone="UTC", source="admin")
        suppress(s, "cy@example.org", "manual")
    for email in ("ann@example.org", "bob@example.org", "cy@example.org"):
        tag(db, email, "event", MONDAY + timedelta(hours=1))

    def generations(email: str) -> list[tuple[str, int]]:
        with db.session() as s:
            return sorted(tuple(row) for row in s.execute(
                select(Sequence.name, Enrollment.generation).join(Sequence, Sequence.id == Enrollment.sequence_id)
                .where(Enrollment.contact_id == find_contact(s, email).id)
            ))

    assert tick(db, settings, MONDAY + timedelta(hours=2)).enrolled == 4  # ann and bob, in both; cy is suppressed
    assert tick(db, settings, MONDAY + timedelta(hours=3)).enrolled == 0  # the same firing enrols once
    with db.session() as s:  # ann is tagged again: the trigger fires again
        s.execute(delete(ContactTag).where(ContactTag.contact_id == find_contact(s, "ann@example.org").id))
    tag(db, "ann@example.org", "event", MONDAY + timedelta(hours=4))
    assert tick(db, settings, MONDAY + timedelta(hours=5)).enrolled == 1
    assert generations("ann@example.org") == [("Again", 1), ("Again", 2), ("Once", 1)]
    assert generations("bob@example.org") == [("Again", 1), ("Once", 1)]
    assert generations("cy@example.org") == []
