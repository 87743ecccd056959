"""Where a process starts (newsletter/bootstrap.py): importing registers nothing; ``wire`` registers
the booking listeners once however often it runs (the CLI and the app wire where they start), with
the settings it is given."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.bootstrap import unwire, wire
from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Attribution, Delivery, Event
from newsletter.sequences.engine import end_on_booking
from newsletter.tracking.attribution import Attribute
from newsletter.web.app import create_app
from subscribers import leads
from subscribers.leads import add_lead, record_booking
from tests.sendkit import make_issue

BOOKED = datetime(2026, 12, 10, 9, 0, tzinfo=timezone.utc)


def listeners() -> list:
    return list(leads._booking_listeners)


def test_importing_the_package_and_its_faces_registers_nothing() -> None:
    code = ("import newsletter, newsletter.cli, newsletter.web.app, scheduler\n"
            "from subscribers.leads import _booking_listeners\n"
            "assert _booking_listeners == [], _booking_listeners\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_wire_twice_registers_each_listener_once_with_the_latest_settings(settings: Settings) -> None:
    assert listeners() == []
    wire(settings)
    wire(settings)
    assert listeners() == [Attribute(days=settings.attribution_days), end_on_booking]
    wire(settings.model_copy(update={"attribution_days": 3}))  # replaces, never adds
    assert listeners() == [Attribute(days=3), end_on_booking]
    unwire()
    assert listeners() == []


def test_every_start_wires_once_however_many_starts_a_process_makes(settings: Settings, db: Database) -> None:
    runner = CliRunner()
    for _ in range(3):  # CliRunner runs the app's callback on each invocation, in this one process
        assert runner.invoke(app, ["issues", "list"]).exit_code == 0
    assert listeners() == [Attribute(days=settings.attribution_days), end_on_booking]
    create_app(settings, db)
    create_app(settings, db)
    assert listeners() == [Attribute(days=settings.attribution_days), end_on_booking]


def clicked_days_before_booking(db: Database, settings: Settings, days: int) -> None:
    """A lead who clicked an issue ``days`` before the booking time."""
    issue_id = make_issue(db, settings)
    with db.session() as s:
        lead = add_lead(s, "lee@example.org", default_timezone="UTC", source="web_form", consent_method="form",
                        origin="api").lead
        delivery = Delivery(issue_id=issue_id, contact_id=lead.contact_id, status="submitted", due_at=BOOKED)
        s.add(delivery)
        s.flush()
        s.add(Event(delivery_id=delivery.id, contact_id=lead.contact_id, issue_id=issue_id, type="click",
                    machine=False, source="first_party", occurred_at=BOOKED - timedelta(days=days)))


def book(db: Database) -> list[Attribution]:
    with db.session() as s:
        record_booking(s, "lee@example.org", booked_for=None, origin="api", external_id="cal-1", recorded_at=BOOKED)
    with db.session() as s:
        return list(s.scalars(select(Attribution)))


def test_attribution_reads_the_window_it_was_wired_with(db: Database, settings: Settings) -> None:
    clicked_days_before_booking(db, settings, 10)
    wire(settings.model_copy(update={"attribution_days": 7}))  # the click is outside the window
    assert book(db) == []


def test_a_wired_booking_is_attributed_inside_the_window(db: Database, settings: Settings) -> None:
    clicked_days_before_booking(db, settings, 10)
    wire(settings.model_copy(update={"attribution_days": 14}))
    (attribution,) = book(db)
    assert attribution.kind == "click"


def test_unwired_a_booking_is_only_recorded(db: Database, settings: Settings) -> None:
    clicked_days_before_booking(db, settings, 1)
    assert book(db) == []  # nothing wired: no listener ran
