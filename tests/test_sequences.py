"""Sequences driven through 30 simulated days (with daylight-saving changes) by the same round of due
work that the scheduler and ``newsletter tick --at`` run."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.due import run_round
from newsletter.models import Enrollment, Event, Issue, SequenceStep
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.sequences.definition import parse_definition
from newsletter.sequences.install import install
from newsletter.transports.base import Batch, BatchResult
from subscribers.consent import Proof, request_subscription, unsubscribe
from subscribers.contacts import find_contact, upsert_contact
from subscribers.leads import add_lead, record_booking
from subscribers.lists import ensure_list
from tests.sendkit import make_issue

START = datetime(2026, 10, 19, 0, 0, tzinfo=timezone.utc)  # Europe leaves summer time on 25 Oct, the US on 1 Nov
ZONES = {"la": "America/Los_Angeles", "london": "Europe/London", "tokyo": "Asia/Tokyo", "sydney": "Australia/Sydney"}

NURTURE = {
    "name": "Follow-up",
    "trigger": {"type": "lead_created"},
    "window": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
    "goals": [{"type": "booking"}, {"type": "unsubscribed"}],
    "steps": [
        {"delay": "0m", "subject": "What happens at a first visit", "body": "Hello."},
        {"delay": "2d", "subject": "Your questions, answered", "body": "Answers."},
        {"delay": "4d", "subject": "A visit, step by step", "body": "Steps."},
        {"delay": "5d", "subject": "Costs and practicalities", "body": "Costs."},
        {"delay": "6d", "subject": "We're here when you're ready", "body": "Bye."},
    ],
}
WELCOME = {
    "name": "Welcome",
    "trigger": {"type": "list_confirmed", "list": "newsletter"},
    "window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "08:00", "end": "20:00"},
    "goals": [{"type": "unsubscribed"}],
    "steps": [
        {"delay": "0m", "subject": "Welcome aboard", "body": "Hi."},
        {"delay": "5d", "subject": "Our most read articles", "body": "Read."},
        {"delay": "9d", "subject": "How to reach us", "body": "Call."},
    ],
}


class Recorder:
    """A transport that notes who got which subject, and when (the simulated clock)."""

    name, max_batch = "recorder", 1000

    def __init__(self) -> None:
        self.now = START
        self.sent: list[tuple[str, str, datetime]] = []

    def send(self, batch: Batch) -> BatchResult:
        self.sent.extend((r.email, batch.email.subject, self.now) for r in batch.recipients)
        return BatchResult(accepted={i: "m" for i in range(len(batch.recipients))})


def simulate(db: Database, settings: Settings, recorder: Recorder, until: datetime, *, step: timedelta,
             events: dict[datetime, callable] | None = None) -> None:
    events = dict(events or {})
    while recorder.now <= until:
        for when in sorted(list(events)):
            if when <= recorder.now:
                with db.session() as s:
                    events.pop(when)(s)
        with db.session() as s:
            run_round(s, settings, recorder.now)
        moment = recorder.now
        Dispatcher(settings, db, recorder, sleep=lambda _: None, clock=lambda: moment).run_until_idle()
        recorder.now += step


def people(db: Database, settings: Settings, at: datetime) -> None:
    with db.session() as s:
        for key, zone in ZONES.items():
            add_lead(s, f"lead-{key}@example.org", default_timezone="UTC", timezone=zone, source="web_form",
                     consent_method="form", origin="api")
            contact = upsert_contact(s, f"reader-{key}@example.org", default_timezone="UTC", timezone=zone,
                                     source="form").contact
            request_subscription(s, contact, ensure_list(s, "newsletter"), Proof("form"), confirmed=True)


@pytest.fixture
def loaded(db: Database, settings: Settings) -> Database:
    with db.session() as s:
        for definition in (NURTURE, WELCOME):
            install(s, settings, parse_definition(definition, source="test"), now=START)
    return db


def test_thirty_days_every_step_once_inside_its_window_in_each_zone(loaded: Database, settings: Settings,
                                                                   wired: Settings) -> None:
    # wired: a booking ends nurture at once, as in a process that started (CLI, web app, scheduler)
    db = loaded
    recorder = Recorder()
    people(db, settings, START)
    booked_at = START + timedelta(days=4, hours=3)
    left_at = START + timedelta(days=2, hours=1)

    def book(s) -> None:
        record_booking(s, "lead-la@example.org", booked_for=START + timedelta(days=9), origin="api", external_id="cal-1")

    def leave(s) -> None:
        unsubscribe(s, find_contact(s, "lead-london@example.org"), None, Proof("one_click"))

    simulate(db, settings, recorder, START + timedelta(days=30), step=timedelta(hours=1),
             events={booked_at: book, left_at: leave})

    by_person = defaultdict(list)
    for email, subject, when in recorder.sent:
        by_person[email].append((subject, when))
    nurture = [s["subject"] for s in NURTURE["steps"]]
    welcome = [s["subject"] for s in WELCOME["steps"]]
    for key in ("tokyo", "sydney"):
        assert [s for s, _ in by_person[f"lead-{key}@example.org"]] == nurture  # each step once, in order
    for key in ZONES:
        assert [s for s, _ in by_person[f"reader-{key}@example.org"]] == welcome
    # The lead who booked on day 4 gets nothing after the booking; the one who left gets nothing after leaving.
    assert all(when <= booked_at for _, when in by_person["lead-la@example.org"])
    assert len(by_person["lead-la@example.org"]) < len(nurture)
    assert all(when <= left_at for _, when in by_person["lead-london@example.org"])
    with db.session() as s:
        reasons = dict(s.execute(select(Enrollment.contact_id, Enrollment.exit_reason)
                                 .where(Enrollment.state == "exited")).all())
    assert sorted(reasons.values()) == ["goal: booking", "goal: unsubscribed"]
    # Every email went out inside its sequence's window, read in the recipient's own zone (DST included).
    for email, sends in by_person.items():
        zone = ZoneInfo(ZONES[email.split("-", 1)[1].split("@")[0]])
        window = NURTURE["window"] if email.startswith("lead") else WELCOME["window"]
        for subject, when in sends:
            local = when.astimezone(zone)
            assert local.strftime("%a").lower() in window["days"], (email, subject, local)
            assert window["start"] <= local.strftime("%H:%M") < window["end"], (email, subject, local)
    # The frequency cap: never two marketing emails to one person within 24 hours.
    for email, sends in by_person.items():
        times = sorted(when for _, when in sends)
        assert all(b - a >= timedelta(hours=24) for a, b in zip(times, times[1:])), email


def test_the_cap_postpones_a_step_after_an_issue_rather_than_dropping_it(loaded: Database, settings: Settings) -> None:
    db = loaded
    recorder = Recorder()
    people(db, settings, START)
    issue_id = make_issue(db, settings)

    def send_issue(s) -> None:
        schedule.start_now(s, settings, s.get(Issue, issue_id), recorder.now)

    # The issue reaches the readers at the moment their second welcome email (day 5) would be due.
    simulate(db, settings, recorder, START + timedelta(days=20), step=timedelta(hours=1),
             events={START + timedelta(days=4, hours=23): send_issue})
    for key in ZONES:
        mine = sorted((when, subject) for email, subject, when in recorder.sent if email == f"reader-{key}@example.org")
        subjects = [s for _, s in mine]
        assert subjects.count("Small steps for steadier days") == 1
        assert [s for s in subjects if s != "Small steps for steadier days"] == [s["subject"] for s in WELCOME["steps"]]
        times = [w for w, _ in mine]
        assert all(b - a >= timedelta(hours=24) for a, b in zip(times, times[1:]))


def test_conditions_skip_or_send(loaded: Database, settings: Settings) -> None:
    db = loaded
    definition = {
        "name": "Engaged only",
        "trigger": {"type": "manual"},
        "window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"},
        "steps": [
            {"delay": "0m", "subject": "First", "body": "x"},
            {"delay": "1d", "subject": "Only if opened", "body": "x", "condition": {"opened_previous": True}},
            {"delay": "1d", "subject": "Only for VIPs", "body": "x", "condition": {"has_tag": "vip"}},
        ],
    }
    with db.session() as s:
        sequence = install(s, settings, parse_definition(definition, source="test"), now=START).sequence
        from newsletter.sequences.engine import enroll

        for email, tags in (("opener@example.org", ["vip"]), ("quiet@example.org", [])):
            contact = upsert_contact(s, email, default_timezone="UTC", source="admin", tags=tags).contact
            enroll(s, sequence, contact, START)
    recorder = Recorder()
    simulate(db, settings, recorder, START + timedelta(hours=2), step=timedelta(hours=1))
    with db.session() as s:  # the opener's first email was opened by a person
        from newsletter.models import Delivery

        delivery = s.scalar(select(Delivery).join(SequenceStep, SequenceStep.id == Delivery.step_id)
                            .where(SequenceStep.position == 1, Delivery.contact_id == find_contact(s, "opener@example.org").id))
        s.add(Event(delivery_id=delivery.id, contact_id=delivery.contact_id, type="open", source="first_party",
                    occurred_at=START + timedelta(hours=1)))
    simulate(db, settings, recorder, START + timedelta(days=3), step=timedelta(hours=1))
    got = defaultdict(list)
    for email, subject, _ in recorder.sent:
        got[email].append(subject)
    assert got["opener@example.org"] == ["First", "Only if opened", "Only for VIPs"]
    assert got["quiet@example.org"] == ["First"]


def test_editing_a_sequence_with_people_in_it(loaded: Database, settings: Settings) -> None:
    db = loaded
    recorder = Recorder()
    people(db, settings, START)
    simulate(db, settings, recorder, START + timedelta(days=16), step=timedelta(hours=2))
    finished = {e for e, s, _ in recorder.sent if s == "How to reach us"}
    assert len(finished) == 4
    changed = {**WELCOME, "steps": [*WELCOME["steps"], {"delay": "3d", "subject": "One more thing", "body": "x"}]}
    with db.session() as s:  # without --reach-completed, those who finished get nothing new
        install(s, settings, parse_definition(changed, source="test"), now=recorder.now)
    simulate(db, settings, recorder, START + timedelta(days=22), step=timedelta(hours=2))
    assert not any(s == "One more thing" for _, s, _ in recorder.sent)
    later = {**changed, "steps": [*changed["steps"], {"delay": "1d", "subject": "And finally", "body": "y",
                                                       "key": "finally"}]}
    with db.session() as s:  # staff choose to reach those already past the old end
        report = install(s, settings, parse_definition(later, source="test"), now=recorder.now, reach_completed=True)
    assert report.reopened == 4
    simulate(db, settings, recorder, START + timedelta(days=26), step=timedelta(hours=2))
    assert sorted(e for e, s, _ in recorder.sent if s == "And finally") == sorted(finished)
    # Removing a step: nobody waiting for it ever receives it.
    with db.session() as s:
        upsert_contact(s, "late@example.org", default_timezone="UTC", source="form")
        request_subscription(s, find_contact(s, "late@example.org"), ensure_list(s, "newsletter"), Proof("form"),
                             confirmed=True)
    simulate(db, settings, recorder, recorder.now + timedelta(hours=4), step=timedelta(hours=2))
    trimmed = {**later, "steps": [later["steps"][0], later["steps"][2], later["steps"][4]]}  # drop step 2
    with db.session() as s:
        install(s, settings, parse_definition(trimmed, source="test"), now=recorder.now)
    simulate(db, settings, recorder, recorder.now + timedelta(days=20), step=timedelta(hours=3))
    late = [s for e, s, _ in recorder.sent if e == "late@example.org"]
    assert "Our most read articles" not in late and late[0] == "Welcome aboard" and "How to reach us" in late


def test_pausing_holds_everyone_where_they_are(loaded: Database, settings: Settings) -> None:
    db = loaded
    recorder = Recorder()
    people(db, settings, START)
    simulate(db, settings, recorder, START + timedelta(hours=20), step=timedelta(hours=1))
    before = len(recorder.sent)
    with db.session() as s:
        from newsletter.sequences.service import get_sequence, set_status

        set_status(get_sequence(s, "welcome"), "paused")
        set_status(get_sequence(s, "follow-up"), "paused")
    simulate(db, settings, recorder, START + timedelta(days=12), step=timedelta(hours=3))
    assert len(recorder.sent) == before
    with db.session() as s:
        set_status(get_sequence(s, "welcome"), "active")
    simulate(db, settings, recorder, START + timedelta(days=13), step=timedelta(hours=3))
    assert len(recorder.sent) > before
