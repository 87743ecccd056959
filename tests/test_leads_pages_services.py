"""The services under the Leads pages, on SQLite and PostgreSQL: a stage's leads paged by keyset, a
contact's lead (or NotFound), a date and time typed in the clinic's zone (daylight saving changes
included), the funnel by month in that zone, the follow-up list's reason (which email was clicked or opened),
and the emails sent to a lead with human opens and clicks only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.database import Database
from newsletter.models import Delivery, Event, Sequence, SequenceStep
from newsletter.reports.follow_up import follow_up_report
from newsletter.reports.funnel import funnel_report
from newsletter.reports.lead_emails import lead_emails
from subscribers import leads
from subscribers.errors import InputError, NotFound
from subscribers.models import Lead
from tests.leadskit import BOOK_URL, booking_click, opened, plain_contact, web_lead

LA = "America/Los_Angeles"


def test_a_stage_is_paged_newest_first_by_keyset(any_db: Database) -> None:
    ids = [web_lead(any_db, f"p{n}@example.org", f"P{n}") for n in range(7)]
    same = datetime(2026, 11, 1, 12, tzinfo=UTC)
    with any_db.session() as s:  # ties on the time are broken by id, newest first
        s.execute(update(Lead).where(Lead.contact_id.in_(ids[:4])).values(requested_at=same))
        s.execute(update(Lead).where(Lead.contact_id.in_(ids[4:])).values(requested_at=same - timedelta(days=1)))
    seen: list[str | None] = []
    after = None
    with any_db.session() as s:
        while True:
            page = leads.leads_in_stage(s, "new", after=after, limit=3)
            seen += [lead.contact.name for lead in page.leads]
            if page.after is None:
                break
            after = page.after
        assert leads.leads_in_stage(s, "contacted").leads == []
        with pytest.raises(InputError, match="stage must be one of"):
            leads.leads_in_stage(s, "cured")
        with pytest.raises(NotFound):
            leads.leads_in_stage(s, "new", after=999_999)
    assert seen == ["P3", "P2", "P1", "P0", "P6", "P5", "P4"]


def test_only_a_lead_is_found_by_its_contact(db: Database) -> None:
    lead = web_lead(db, "ivy@example.org", "Ivy")
    reader = plain_contact(db)
    with db.session() as s:
        assert leads.lead_of_contact(s, lead).contact.email == "ivy@example.org"
        with pytest.raises(NotFound, match="not a lead"):
            leads.lead_of_contact(s, reader)


def test_a_local_date_and_time_and_daylight_saving() -> None:
    summer = leads.local_datetime("2031-07-01", "15:30", LA, "booking time")
    assert summer.astimezone(UTC) == datetime(2031, 7, 1, 22, 30, tzinfo=UTC)
    with pytest.raises(leads.FieldError, match="does not exist in America/Los_Angeles") as gap:
        leads.local_datetime("2031-03-09", "02:30", LA, "booking time")  # clocks go from 02:00 to 03:00
    assert gap.value.field == "time"
    twice = leads.local_datetime("2031-11-02", "01:30", LA, "booking time")  # happens twice: the first (PDT)
    assert twice.astimezone(UTC) == datetime(2031, 11, 2, 8, 30, tzinfo=UTC)
    for day, clock, field in (("", "10:00", "date"), ("2031-13-01", "10:00", "date"), ("2031-01-01", "", "time"),
                              ("2031-01-01", "noon", "time"), ("2031-01-01", "10:00+02:00", "time")):
        with pytest.raises(leads.FieldError) as error:
            leads.local_datetime(day, clock, LA, "booking time")
        assert error.value.field == field, (day, clock)


def test_the_funnel_by_month_is_in_the_clinic_time_zone(any_db: Database) -> None:
    early, late = web_lead(any_db, "a@example.org", "A"), web_lead(any_db, "b@example.org", "B")
    with any_db.session() as s:  # 03:00 UTC on 1 December is still 30 November in Los Angeles
        s.execute(update(Lead).where(Lead.contact_id == early).values(created_at=datetime(2026, 12, 1, 3, tzinfo=UTC)))
        s.execute(update(Lead).where(Lead.contact_id == late).values(created_at=datetime(2026, 12, 2, 3, tzinfo=UTC)))
        lead = leads.lead_of_contact(s, late)
        leads.record_booking(s, lead, booked_for=datetime(2027, 1, 5, 17, tzinfo=UTC), origin="staff", external_id=None)
    with any_db.session() as s:
        local = funnel_report(s, zone=LA)
        utc = funnel_report(s)
    assert {m: (f.leads, f.booked) for m, f in local.by_month.items()} == {"2026-11": (1, 0), "2026-12": (1, 1)}
    assert {m: (f.leads, f.booked) for m, f in utc.by_month.items()} == {"2026-12": (2, 1)}
    assert local.as_dict()["by_month"]["2026-12"]["booked"] == 1


def _step_event(s: Session, contact_id: int, now: datetime, **event: Any) -> None:
    """Step "welcome" of sequence "lead-nurture" (made once) sent to ``contact_id``, and ``event`` about it."""
    sequence = s.scalar(select(Sequence).where(Sequence.name == "lead-nurture"))
    if sequence is None:
        sequence = Sequence(name="lead-nurture", trigger_type="lead_created", definition={})
        s.add(sequence)
        s.flush()
        s.add(SequenceStep(sequence_id=sequence.id, key="welcome", position=1, delay_seconds=0,
                           subject="Welcome", html="x", text="x"))
        s.flush()
    step = s.scalar(select(SequenceStep).where(SequenceStep.sequence_id == sequence.id))
    delivery = Delivery(step_id=step.id, contact_id=contact_id, status="delivered", due_at=now, submitted_at=now)
    s.add(delivery)
    s.flush()
    s.add(Event(delivery_id=delivery.id, contact_id=contact_id, step_id=step.id, **event))


def test_the_follow_up_reason_names_the_email(any_db: Database) -> None:
    ivy, jo = web_lead(any_db, "ivy@example.org", "Ivy"), web_lead(any_db, "jo@example.org", "Jo")
    now = datetime.now(UTC)
    booking_click(any_db, ivy, "Small steps", at=now - timedelta(hours=3))
    with any_db.session() as s:  # Jo clicked the button in a sequence's step
        _step_event(s, jo, now, url=BOOK_URL, type="click", machine=False, source="sendgrid",
                    occurred_at=now - timedelta(hours=1))
    with any_db.session() as s:
        report = follow_up_report(s, now=now)
    assert [(w.name, w.reason.kind, w.reason.links, w.reason.email, w.timezone, w.requested_time, w.contact_id)
            for w in report.leads] == [  # Jo's provider click carries only the URL: a booking button's
        ("Jo", "booking_click", [BOOK_URL], "lead-nurture / welcome", "America/Chicago", "weekday_mornings", jo),
        ("Ivy", "booking_click", ["Book a consultation"], "Small steps", "America/Chicago", "weekday_mornings", ivy)]


def test_an_open_is_a_follow_up_reason_and_a_machine_open_is_not(any_db: Database) -> None:
    ivy, jo = web_lead(any_db, "ivy@example.org", "Ivy"), web_lead(any_db, "jo@example.org", "Jo")
    now = datetime.now(UTC).replace(microsecond=0)
    with any_db.session() as s:  # Ivy opened a sequence's step; only Apple's proxy opened Jo's
        for contact, machine in ((ivy, False), (jo, True)):
            _step_event(s, contact, now, type="open", machine=machine, source="first_party",
                        occurred_at=now - timedelta(hours=3))
    with any_db.session() as s:
        report = follow_up_report(s, now=now)
    assert [(w.name, w.reason.kind, w.reason.email, w.reason.at, w.last_click_at) for w in report.leads] == [
        ("Ivy", "opened", "lead-nurture / welcome", now - timedelta(hours=3), None)]
    assert report.leads[0].reason.text("3 hours ago") == "opened “lead-nurture / welcome” 3 hours ago"


def test_the_emails_of_a_lead_count_people_not_machines(any_db: Database) -> None:
    ivy = web_lead(any_db, "ivy@example.org", "Ivy")
    booking_click(any_db, ivy, "Small steps")
    with any_db.session() as s:
        delivery = s.query(Delivery).filter_by(contact_id=ivy).one()
        s.add(Event(delivery_id=delivery.id, contact_id=ivy, issue_id=delivery.issue_id, type="open", machine=True,
                    source="first_party", occurred_at=datetime.now(UTC)))
    reader = plain_contact(any_db)
    with any_db.session() as s:
        emails = lead_emails(s, ivy)
        assert lead_emails(s, reader) == []
    assert [(e.name, e.status, e.opens, e.clicks, e.last_clicked) for e in emails] == [
        ("Small steps", "delivered", 1, 1, "Book a consultation")]
    assert emails[0].sent_at is not None and emails[0].sent_at.tzinfo is not None


def test_the_follow_up_list_pages_by_keyset_with_ties_on_the_time(any_db: Database) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    contacts = [web_lead(any_db, f"p{n}@example.org", f"P{n}") for n in range(5)]
    for n, contact in enumerate(contacts):  # P3 and P4 the latest, at the same moment; then P2, P1, P0
        opened(any_db, contact, f"Issue {n}", at=now - timedelta(hours=max(0, 3 - n)))
    seen, after, totals = [], None, set()
    with any_db.session() as s:
        while True:
            report = follow_up_report(s, now=now, limit=2, after=after)
            seen.append([w.name for w in report.leads])
            totals.add(report.total)
            if report.more is None:
                break
            after = report.more
    assert seen == [["P4", "P3"], ["P2", "P1"], ["P0"]] and totals == {5}
