"""Leads and bookings: intake without health details, stages with history, idempotent bookings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from subscribers import leads
from subscribers.contacts import find_contact
from subscribers.errors import InputError, NotFound
from subscribers.leads import (
    ErasedAddress,
    BookingResult,
    add_lead,
    change_stage,
    get_lead,
    lead_summary,
    list_leads,
    normalise_phone,
    off_booking,
    on_booking,
    parse_datetime,
    record_booking,
)
from subscribers.models import Booking, ConsentEvent, Contact, Lead, LeadStageChange, Subscription
from subscribers.privacy import erase

AT = datetime(2025, 3, 4, 15, 30, tzinfo=timezone(timedelta(hours=-8)))
runner = CliRunner()


def new_lead(s: Session, email: str = "ann@example.com", **kw: Any) -> Lead:
    kw.setdefault("source", "phone")
    kw.setdefault("consent_method", "phone")
    return add_lead(s, email, default_timezone="UTC", **kw).lead


def count(s: Session, model: type) -> int:
    return s.scalar(select(func.count()).select_from(model)) or 0


def history(lead: Lead) -> list[tuple[str | None, str, str]]:
    return [(c.from_stage, c.to_stage, c.by) for c in lead.stage_changes]


@pytest.fixture
def booked_calls() -> Iterator[list[BookingResult]]:
    """Records what an ``on_booking`` listener (later: end the nurture sequences) is told."""
    calls: list[BookingResult] = []

    def listener(_session: Session, result: BookingResult) -> None:
        calls.append(result)

    on_booking(listener)
    yield calls
    off_booking(listener)


# --- intake -----------------------------------------------------------------------------------------


def test_a_new_lead_is_a_contact_with_consent_to_be_contacted_and_no_subscription(db: Database) -> None:
    with db.session() as s:
        result = add_lead(s, " Ann@Example.COM ", default_timezone="America/New_York", name="Ann",
                          phone="+1 (415) 555-0100", source="web_form", consent_method="form", origin="api",
                          requested_time="Weekday mornings", utm={"utm_source": "google", "campaign": "spring"})
        lead = result.lead
        assert result.created and not result.reopened
        assert lead.stage == "new" and history(lead) == [(None, "new", "api")]
        assert lead.contact.source == "lead" and lead.contact.name == "Ann"
        assert lead.contact.timezone == "America/New_York"
        assert lead.phone == "+14155550100" and lead.preferred_contact == "email"
        assert lead.requested_time == "weekday_mornings"
        assert (lead.utm_source, lead.utm_campaign, lead.utm_medium) == ("google", "spring", None)
        assert lead.contact_consent_method == "form" and lead.contact_consent_at is not None
        # Consent to be contacted about the consultation is not newsletter consent.
        assert count(s, Subscription) == 0 and count(s, ConsentEvent) == 0
        assert not hasattr(lead, "notes")  # no free-text field to hold health details


def test_a_repeat_enquiry_updates_contact_fields_and_keeps_stage_and_first_touch(db: Database) -> None:
    with db.session() as s:
        lead = new_lead(s, source="campaign", utm={"source": "newsletter"})
        change_stage(s, lead, "contacted", by="staff")
        first_requested = lead.requested_at
        again = add_lead(s, "ann@example.com", default_timezone="UTC", source="web_form", consent_method="form",
                         phone="415.555.0199", preferred_contact="text", requested_time="weekends",
                         utm={"source": "google"}, name="Ann B")
        assert not again.created and not again.reopened and again.lead.id == lead.id
        assert lead.stage == "contacted" and len(lead.stage_changes) == 2
        assert (lead.phone, lead.preferred_contact, lead.requested_time) == ("4155550199", "text", "weekends")
        assert lead.contact.name == "Ann B" and lead.contact_consent_method == "form"
        assert (lead.source, lead.utm_source, lead.requested_at) == ("campaign", "newsletter", first_requested)
        assert count(s, Contact) == 1 and count(s, Lead) == 1


def test_a_lost_lead_enquiring_again_is_new_with_the_change_recorded(db: Database) -> None:
    with db.session() as s:
        lead = new_lead(s, source="phone")
        change_stage(s, lead, "lost", by="staff")
        before = lead.requested_at
        result = add_lead(s, "ann@example.com", default_timezone="UTC", source="campaign", consent_method="form",
                          origin="api", utm={"campaign": "autumn"})
        assert result.reopened and not result.created
        assert lead.stage == "new"
        assert history(lead) == [(None, "new", "staff"), ("new", "lost", "staff"), ("lost", "new", "api")]
        # A new enquiry: how it came in is this one's.
        assert (lead.source, lead.utm_campaign) == ("campaign", "autumn") and lead.requested_at >= before


def test_an_attended_lead_enquiring_again_keeps_its_stage(db: Database) -> None:
    with db.session() as s:
        lead = new_lead(s)
        change_stage(s, lead, "attended", by="staff")
        assert not add_lead(s, "ann@example.com", default_timezone="UTC", source="phone",
                            consent_method="phone").reopened
        assert lead.stage == "attended" and len(lead.stage_changes) == 2


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("source", "billboard", "source must be one of web_form, phone, referral, campaign, import"),
        ("phone", "call me maybe", "phone 'call me maybe'"),
        ("phone", "555 0100 x12", "digits with an optional leading"),
        ("phone", "12345", "7 to 15 digits"),
        ("preferred_contact", "fax", "preferred contact method must be one of email, phone, text"),
        ("consent_method", "guess", "consent method must be one of"),
        ("origin", "robot", "origin must be one of staff, api, import"),
        ("utm", {"utm_evil": "x"}, "UTM key 'utm_evil'"),
        ("utm", {"source": "x" * 201}, "longer than 200"),
        ("requested_time", "after my infusion, anxious", "free text is not kept"),
        ("requested_time", "2025-03-04T15:30", "has no time zone"),
        ("timezone", "Mars/Base", "IANA"),
        ("name", "x" * 201, "name is longer than 200"),
    ],
)
def test_bad_intake_is_refused_clearly_and_stores_nothing(db: Database, field: str, value: Any, message: str) -> None:
    with db.session() as s:
        with pytest.raises(InputError, match=message.replace("(", r"\(")):
            new_lead(s, **{field: value})
        assert count(s, Contact) == 0 and count(s, Lead) == 0


@pytest.mark.parametrize(
    "raw, expected",
    [("+1 (415) 555-0100", "+14155550100"), ("020 7946 0958", "02079460958"), ("+44.20.7946.0958", "+442079460958")],
)
def test_phones_are_normalised_lightly(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


def test_a_requested_date_time_is_kept_as_utc(db: Database) -> None:
    with db.session() as s:
        assert new_lead(s, requested_time="2025-03-04T09:00-08:00").requested_time == "2025-03-04T17:00:00+00:00"


# --- stages -----------------------------------------------------------------------------------------


def test_stage_changes_are_kept_in_order_and_repeats_record_nothing(db: Database) -> None:
    with db.session() as s:
        lead = new_lead(s)
        assert change_stage(s, lead, "contacted", by="staff") is True
        assert change_stage(s, lead, "contacted", by="staff") is False
        assert change_stage(s, lead, "lost", by="api") is True
        assert history(lead) == [(None, "new", "staff"), ("new", "contacted", "staff"), ("contacted", "lost", "api")]
        assert count(s, LeadStageChange) == 3
        with pytest.raises(InputError, match="stage must be one of new, contacted, booked, attended, lost, not 'won'"):
            change_stage(s, lead, "won", by="staff")
        with pytest.raises(InputError, match="changed by must be one of"):
            change_stage(s, lead, "new", by="someone")
        assert lead.stage == "lost" and count(s, LeadStageChange) == 3


# --- bookings ---------------------------------------------------------------------------------------


def test_a_booking_is_idempotent_by_external_id(db: Database, booked_calls: list[BookingResult]) -> None:
    with db.session() as s:
        lead = new_lead(s, source="referral")
        first = record_booking(s, "ann@example.com", booked_for=AT, origin="api", external_id="cal-1")
        again = record_booking(s, lead, booked_for=AT + timedelta(hours=1), origin="api", external_id="cal-1")
        assert first.created and not again.created and again.booking.id == first.booking.id
        assert count(s, Booking) == 1 and again.booking.booked_for == AT  # the repeat changed nothing
        assert history(lead) == [(None, "new", "staff"), ("new", "booked", "booking")]
        assert [c.booking.id for c in booked_calls] == [first.booking.id]  # listeners hear it once


def test_an_external_id_of_another_leads_booking_is_refused(db: Database) -> None:
    with db.session() as s:
        new_lead(s, "ann@example.com")
        bob = new_lead(s, "bob@example.com")
        record_booking(s, "ann@example.com", booked_for=AT, origin="api", external_id="cal-1")
        with pytest.raises(InputError, match="external id 'cal-1' is already used by a booking of another lead"):
            record_booking(s, "bob@example.com", booked_for=AT, origin="api", external_id="cal-1")
        assert bob.stage == "new" and count(s, Booking) == 1


def test_a_booking_moves_the_lead_to_booked_and_keeps_its_source(db: Database) -> None:
    with db.session() as s:
        lead = new_lead(s, source="campaign")
        change_stage(s, lead, "lost", by="staff")
        result = record_booking(s, lead, booked_for=AT, origin="staff", external_id=None)
        assert lead.stage == "booked" and history(lead)[-1] == ("lost", "booked", "booking")
        booking = result.booking
        assert (booking.source, booking.origin, booking.lead_id) == ("campaign", "staff", lead.id)
        assert booking.booked_for == AT and booking.booked_for.tzinfo is not None
        assert booking.recorded_at <= datetime.now(UTC)


def test_a_second_booking_of_an_attended_lead_keeps_the_stage(db: Database) -> None:
    with db.session() as s:
        lead = new_lead(s)
        record_booking(s, lead, booked_for=AT, origin="staff", external_id=None)
        change_stage(s, lead, "attended", by="staff")
        follow_up = record_booking(s, lead, booked_for=AT + timedelta(days=14), origin="staff", external_id=None)
        assert follow_up.created and lead.stage == "attended" and count(s, Booking) == 2
        assert [c.to_stage for c in lead.stage_changes] == ["new", "booked", "attended"]


def test_naive_date_times_are_refused_with_a_clear_message(db: Database) -> None:
    with db.session() as s:
        lead = new_lead(s)
        with pytest.raises(InputError, match=r"booked-for time 2025-03-04T15:30:00 has no time zone: give an offset"):
            record_booking(s, lead, booked_for=datetime(2025, 3, 4, 15, 30), origin="staff", external_id=None)
        with pytest.raises(InputError, match="recorded-at time .* has no time zone"):
            record_booking(s, lead, booked_for=AT, origin="staff", external_id=None, recorded_at=datetime(2025, 3, 1))
        assert count(s, Booking) == 0 and lead.stage == "new"
    assert parse_datetime("2025-03-04T23:30Z", "--at") == AT
    with pytest.raises(InputError, match="--at '4 March' is not an ISO 8601 date-time"):
        parse_datetime("4 March", "--at")


def test_the_same_time_without_an_external_id_is_the_same_booking(db: Database) -> None:
    """A double-run of the staff command, then the booking system reporting the same consultation."""
    with db.session() as s:
        lead = new_lead(s)
        by_hand = record_booking(s, lead, booked_for=AT, origin="staff", external_id=None)
        twice = record_booking(s, lead, booked_for=AT.astimezone(UTC), origin="staff", external_id=None)
        reported = record_booking(s, "ann@example.com", booked_for=AT, origin="api", external_id="cal-9")
        replay = record_booking(s, "ann@example.com", booked_for=AT, origin="api", external_id="cal-9")
        assert by_hand.created and not twice.created and not reported.created and not replay.created
        assert count(s, Booking) == 1 and by_hand.booking.external_id == "cal-9"
        assert [c.to_stage for c in lead.stage_changes] == ["new", "booked"]


def test_staff_book_existing_leads_only_and_the_api_may_make_one(
    db: Database, booked_calls: list[BookingResult]
) -> None:
    with db.session() as s:
        with pytest.raises(NotFound, match="no lead has that address") as refused:
            record_booking(s, "new@example.com", booked_for=AT, origin="staff", external_id=None)
        assert "new@example.com" not in str(refused.value)
        assert count(s, Contact) == 0
        made = record_booking(s, "new@example.com", booked_for=AT, origin="api", external_id="cal-2",
                              default_timezone="Europe/London")
        lead = made.lead
        assert made.created and lead is not None and lead.stage == "booked"
        assert (lead.source, lead.contact_consent_method, lead.contact.timezone) == ("web_form", "api", "Europe/London")
        assert history(lead) == [(None, "new", "api"), ("new", "booked", "booking")]
        assert made.booking.source == "web_form"
        imported = record_booking(s, "old@example.com", booked_for=None, origin="import", external_id="x-1",
                                  default_timezone="UTC")
        assert imported.lead is not None and imported.lead.source == "import"
        assert count(s, Subscription) == 0 and count(s, ConsentEvent) == 0
        assert len(booked_calls) == 2


def test_a_replay_for_an_unlinked_booking_returns_it_and_makes_no_lead(db: Database) -> None:
    with db.session() as s:
        new_lead(s, source="campaign")
        booking_id = record_booking(s, "ann@example.com", booked_for=AT, origin="api", external_id="cal-3").booking.id
    with db.session() as s:
        # The contact goes without privacy.erase (which also clears the external id): the booking stays, unlinked.
        s.delete(find_contact(s, "ann@example.com"))
    with db.session() as s:
        replay = record_booking(s, "ann@example.com", booked_for=AT, origin="api", external_id="cal-3",
                                default_timezone="UTC")
        assert not replay.created and replay.lead is None and replay.booking.id == booking_id
        assert replay.booking.lead_id is None and replay.booking.source == "campaign"
        assert count(s, Contact) == 0 and count(s, Lead) == 0


def test_an_erased_address_is_not_brought_back_by_a_replay_or_an_import(db: Database) -> None:
    with db.session() as s:
        new_lead(s)
        record_booking(s, "ann@example.com", booked_for=AT, origin="api", external_id="cal-7")
        assert erase(s, "ann@example.com", also=())  # clears the booking's external id as well
    with db.session() as s:
        with pytest.raises(ErasedAddress, match="erased at the person's request") as refused:
            record_booking(s, "ann@example.com", booked_for=AT, origin="api", external_id="cal-7",
                           default_timezone="UTC")
        assert "ann" not in str(refused.value)
        with pytest.raises(ErasedAddress, match="an import does not add it back"):
            new_lead(s, source="import", consent_method="import", origin="import")
        assert count(s, Contact) == 0 and count(s, Lead) == 0
        assert s.scalar(select(Booking.lead_id)) is None and count(s, Booking) == 1  # an anonymous count
        # The person's own new enquiry is new consent: staff may record it (the address stays suppressed).
        assert new_lead(s, origin="staff").stage == "new"


@pytest.mark.postgres
def test_a_concurrent_duplicate_delivery_returns_the_winners_booking(
    postgres_db: Database, monkeypatch: pytest.MonkeyPatch, booked_calls: list[BookingResult]
) -> None:
    """Two deliveries of one webhook both miss the look-up; the unique constraint settles it.
    (On SQLite, transactions take the write lock at BEGIN, so such deliveries run one after the other.)"""
    db = postgres_db
    with db.session() as s:
        new_lead(s)
    with db.session() as loser:
        lead = get_lead(loser, "ann@example.com")
        with db.session() as winner:  # commits between the loser's look-up and its insert
            won = record_booking(winner, "ann@example.com", booked_for=AT, origin="api", external_id="cal-4")
        real_lookup, lookups = leads._booking_by_external_id, []

        def late_lookup(session: Session, external_id: str) -> Booking | None:
            lookups.append(external_id)  # the first look-up misses, as it would have a moment earlier
            return real_lookup(session, external_id) if len(lookups) > 1 else None

        monkeypatch.setattr(leads, "_booking_by_external_id", late_lookup)
        lost = record_booking(loser, lead, booked_for=AT + timedelta(minutes=5), origin="api", external_id="cal-4")
        assert not lost.created and lost.booking.id == won.booking.id
        assert lookups == ["cal-4", "cal-4"]  # the second look-up came from the IntegrityError path
    with db.session() as s:
        assert count(s, Booking) == 1
        assert s.scalar(select(func.count()).where(LeadStageChange.to_stage == "booked")) == 1
    assert len(booked_calls) == 1


def test_a_failing_listener_leaves_no_booking_half_written(db: Database) -> None:
    def broken(_session: Session, _result: BookingResult) -> None:
        raise RuntimeError("sequence store unavailable")

    with db.session() as s:
        new_lead(s)
    on_booking(broken)
    try:
        with pytest.raises(RuntimeError), db.session() as s:
            record_booking(s, "ann@example.com", booked_for=AT, origin="api", external_id="cal-5")
    finally:
        off_booking(broken)
    with db.session() as s:
        assert count(s, Booking) == 0 and get_lead(s, "ann@example.com").stage == "new"


# --- reading ----------------------------------------------------------------------------------------


def test_lists_filter_by_stage_and_source_newest_first(db: Database) -> None:
    with db.session() as s:
        a = new_lead(s, "a@example.com", source="phone")
        b = new_lead(s, "b@example.com", source="web_form")
        c = new_lead(s, "c@example.com", source="web_form")
        change_stage(s, b, "contacted", by="staff")
        assert [x.id for x in list_leads(s)] == [c.id, b.id, a.id]
        assert [x.id for x in list_leads(s, source="web_form")] == [c.id, b.id]
        assert [x.id for x in list_leads(s, stage="contacted")] == [b.id]
        assert [x.id for x in list_leads(s, stage="new", source="phone")] == [a.id]
        assert [x.id for x in list_leads(s, limit=1)] == [c.id]
        with pytest.raises(InputError, match="stage must be one of"):
            list_leads(s, stage="warm")
        with pytest.raises(InputError, match="source must be one of"):
            list_leads(s, source="tv")


def test_the_summary_holds_contact_fields_bookings_and_history_only(db: Database) -> None:
    with db.session() as s:
        lead = new_lead(s, name="Ann", phone="+14155550100", preferred_contact="phone", source="campaign",
                        utm={"source": "news", "medium": "email"}, requested_time="any time")
        record_booking(s, lead, booked_for=AT, origin="staff", external_id="cal-6")
        data = json.loads(json.dumps(lead_summary(lead)))
    assert set(data) == {
        "id", "email", "name", "phone", "timezone", "preferred_contact", "source", "utm_source", "utm_medium",
        "utm_campaign", "utm_term", "utm_content", "stage", "requested_at", "requested_time",
        "contact_consent_at", "contact_consent_method", "contact_consent_form_id", "contact_consent_text_version",
        "contact_consent_ip", "contact_consent_agent", "heard_from", "bookings", "stage_history",
    }
    assert (data["email"], data["name"], data["phone"], data["preferred_contact"]) == (
        "ann@example.com", "Ann", "+14155550100", "phone")
    assert (data["utm_source"], data["utm_medium"], data["utm_term"]) == ("news", "email", None)
    assert data["stage"] == "booked" and data["requested_time"] == "any_time"
    assert data["bookings"] == [{"id": 1, "booked_for": "2025-03-04T23:30:00+00:00", "origin": "staff",
                                 "external_id": "cal-6", "source": "campaign",
                                 "recorded_at": data["bookings"][0]["recorded_at"]}]
    assert [(h["from"], h["to"], h["by"]) for h in data["stage_history"]] == [
        (None, "new", "staff"), ("new", "booked", "booking")]


def test_an_unknown_lead_is_not_found_without_echoing_the_address(db: Database) -> None:
    with db.session() as s:
        with pytest.raises(NotFound) as missing:
            get_lead(s, "secret@example.com")
        assert "secret" not in str(missing.value)


# --- the command ------------------------------------------------------------------------------------


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_cli_round_trip_add_book_twice_attend_and_list(settings: Settings) -> None:
    assert "No health details are stored" in " ".join(run("leads", "add", "--help").split())
    assert "Added lead 1" in run("leads", "add", "ann@example.com", "--name", "Ann", "--phone", "+1 415 555 0100",
                                 "--utm-source", "google", "--utm-campaign", "spring", "--timezone", "America/Denver")
    run("leads", "add", "bob@example.com", "--source", "web_form")
    assert "booked: booking 1" in run("leads", "book", "ann@example.com", "--at", "2025-03-04T15:30-08:00",
                                      "--external-id", "cal-1")
    assert "already recorded: booking 1" in run("leads", "book", "ann@example.com", "--at",
                                                "2025-03-04T15:30-08:00", "--external-id", "cal-1")
    assert "booked → attended" in run("leads", "stage", "ann@example.com", "attended")
    assert "already attended" in run("leads", "stage", "ann@example.com", "attended")
    rows = json.loads(run("leads", "list", "--stage", "attended", "--json"))
    assert [r["email"] for r in rows] == ["ann@example.com"]
    row = rows[0]
    assert (row["source"], row["utm_source"], row["utm_campaign"], row["phone"]) == ("phone", "google", "spring",
                                                                                     "+14155550100")
    assert row["contact_consent_method"] == "phone" and row["booking_count"] == 1
    assert [(h["from"], h["to"], h["by"]) for h in row["stage_history"]] == [
        (None, "new", "staff"), ("new", "booked", "booking"), ("booked", "attended", "staff")]
    assert [b["external_id"] for b in row["bookings"]] == ["cal-1"]
    shown = json.loads(run("leads", "show", "bob@example.com", "--json"))
    assert (shown["source"], shown["stage"], shown["contact_consent_method"]) == ("web_form", "new", "admin")
    assert [r["email"] for r in json.loads(run("leads", "list", "--source", "web_form", "--json"))] == [
        "bob@example.com"]


def test_cli_errors_are_one_clear_line(settings: Settings) -> None:
    run("leads", "add", "ann@example.com")
    assert "has no time zone" in run("leads", "book", "ann@example.com", "--at", "2025-03-04T15:30", code=2)
    assert "stage must be one of" in run("leads", "stage", "ann@example.com", "won", code=2)
    missing = run("leads", "book", "nobody@example.com", code=1)
    assert "no lead has that address" in missing and "nobody" not in missing
    assert "phone 'abc'" in run("leads", "add", "bob@example.com", "--phone", "abc", code=2)
    assert json.loads(run("leads", "list", "--json"))[0]["email"] == "ann@example.com"  # bob was not stored
