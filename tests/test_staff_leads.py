"""The Leads pages over HTTP against the real app on uvicorn: the board and its keyset pages, moving
a lead (a bad stage is an error beside the field), recording a booking (bad times beside their
field, the same external id twice is one booking), what each role may open (a contact who is not a
lead is a 404 for everyone), the follow-up list, the funnel, and the audit entries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from newsletter.database import Database
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from subscribers.db import utcnow
from subscribers.models import Booking, Lead
from tests.leadskit import booking_click, opened, plain_contact, web_lead
from tests.liveserver import LiveServer
from tests.staffkit import csrf_of, Login, make_user, post_form, signed_in
from tests.test_staff_posts import error_of

LEADS = "/staff/leads"


@pytest.fixture
def clinic(db: Database) -> Login:
    return make_user(db, "dr.lee@clinic.example", Role.CLINIC)


@pytest.fixture
def http(live_server: LiveServer, clinic: Login) -> Iterator[httpx.Client]:
    with signed_in(live_server, clinic) as c:
        yield c


def audits(db: Database) -> list[tuple[str, str | None, str | None, str]]:
    with db.session() as s:
        rows = s.execute(select(AuditEntry.action, AuditEntry.target, AuditEntry.detail, AuditEntry.actor)
                         .where(AuditEntry.action.in_(("lead_stage_changed", "booking_recorded")))
                         .order_by(AuditEntry.id)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def lead_row(db: Database, contact_id: int) -> Lead:
    with db.session() as s:
        lead = s.scalar(select(Lead).where(Lead.contact_id == contact_id))
        s.expunge(lead)
        return lead


def bookings(db: Database) -> list[tuple[datetime | None, str | None]]:
    with db.session() as s:
        return [tuple(r) for r in s.execute(select(Booking.booked_for, Booking.external_id).order_by(Booking.id))]  # type: ignore[misc]


# Access -----------------------------------------------------------------------------------------------


def test_roles_clinic_sees_leads_only_and_marketing_no_leads(live_server: LiveServer, db: Database, clinic: Login) -> None:
    lead = web_lead(db, "ivy@example.org", "Ivy Park")
    reader = plain_contact(db)
    marketing = make_user(db, "mia@clinic.example", Role.MARKETING)
    admin = make_user(db, "ana@clinic.example", Role.ADMIN)
    pages = [LEADS, f"{LEADS}/follow-up", f"{LEADS}/funnel", f"{LEADS}/{lead}", f"{LEADS}?stage=new"]
    with signed_in(live_server, clinic) as c:
        for path in pages:
            assert c.get(path).status_code == 200, path
        # Contacts who are not leads (and the contact pages of leads), issues and the other areas: refused.
        for path in ("/staff/contacts", f"/staff/contacts/{reader}", f"/staff/contacts/{lead}",
                     "/staff/contacts/import", "/staff/segments", "/staff/issues", "/staff/issues/1", "/staff/posts",
                     "/staff/sequences", "/staff/users", "/staff/audit", "/staff/settings"):
            answer = c.get(path)
            assert answer.status_code == 403, path
            assert "reader@example.org" not in answer.text, path
        assert c.get(f"{LEADS}/{reader}").status_code == 404  # a reader who never enquired is not shown
        assert c.get(f"{LEADS}/999999").status_code == 404
        assert c.get(f"{LEADS}/ivy@example.org").status_code == 404  # ids only, never an address
        token = csrf_of(c.get(LEADS).text)
        assert c.post(f"{LEADS}/{reader}/stage", data={"csrf_token": token, "stage": "contacted"}).status_code == 404
        assert c.post(f"{LEADS}/{reader}/bookings", data={"csrf_token": token, "date": "2030-01-02",
                                                          "time": "10:00"}).status_code == 404
    with signed_in(live_server, admin) as c:
        assert c.get(f"{LEADS}/{reader}").status_code == 404  # for every role
        assert c.get(f"{LEADS}/{lead}").status_code == 200
    with signed_in(live_server, marketing) as c:
        for path in pages:
            assert c.get(path).status_code == 403, path
        assert 'href="/staff/leads"' not in c.get("/staff/").text


def test_the_lead_page_shows_what_a_call_needs_and_nothing_of_the_newsletter(
        live_server: LiveServer, db: Database, http: httpx.Client) -> None:
    lead = web_lead(db, "ivy@example.org", "Ivy Park")
    booking_click(db, lead, "Small steps for steadier days")
    html = http.get(f"{LEADS}/{lead}").text
    for shown in ("Ivy Park", "ivy@example.org", "+14155550100", "Phone call", "weekday mornings",
                  "America/Chicago", "web form", "utm_source", "newsletter", "utm_campaign", "spring",
                  "Small steps for steadier days", "Book a consultation", "No booking yet"):
        assert shown in html, shown
    for hidden in ("Tags", "Custom fields", "Subscriptions", "Lists"):
        assert hidden not in html, hidden



def test_the_contact_and_lead_pages_link_each_other_for_a_role_that_may_open_both(
        live_server: LiveServer, db: Database, http: httpx.Client) -> None:
    lead = web_lead(db, "ivy@example.org", "Ivy Park")
    reader = plain_contact(db)
    contact_link, lead_link = f'href="/staff/contacts/{lead}"', f'href="/staff/leads/{lead}"'
    assert contact_link not in http.get(f"{LEADS}/{lead}").text  # the clinic role may not open contacts
    with signed_in(live_server, make_user(db, "ana@clinic.example", Role.ADMIN)) as c:
        assert contact_link in c.get(f"{LEADS}/{lead}").text
        assert lead_link in c.get(f"/staff/contacts/{lead}").text
        assert "/staff/leads/" not in c.get(f"/staff/contacts/{reader}").text  # a reader is no lead
        post_form(c, LEADS, f"{LEADS}/{lead}/stage", {"stage": "contacted", "back": "lead"})
        assert f'<a href="/staff/leads/{lead}">lead {lead}</a>' in c.get("/staff/audit").text  # the log leads there
    with signed_in(live_server, make_user(db, "mia@clinic.example", Role.MARKETING)) as c:
        page = c.get(f"/staff/contacts/{lead}").text
        assert "stage Contacted" in page and lead_link not in page  # marketing may not open leads

# The board --------------------------------------------------------------------------------------------


def test_the_board_has_a_column_per_stage_newest_first_with_more(live_server: LiveServer, db: Database,
                                                                 http: httpx.Client) -> None:
    ids = [web_lead(db, f"p{n}@example.org", f"Person {n:02d}") for n in range(11)]
    html = http.get(LEADS).text
    assert [m for m in re.findall(r'<h2 id="col-(\w+)">', html)] == ["new", "contacted", "booked", "attended", "lost"]
    card = re.compile(r'<h3><a href="/staff/leads/\d+">Person (\d\d)</a>')
    names = card.findall(html)
    assert names == [f"{n:02d}" for n in range(10, 2, -1)]  # the eight newest, newest first
    more = re.search(r'href="(/staff/leads\?stage=new&amp;after=\d+)"', html)
    assert more, "no link to the rest of the column"
    rest = http.get(more.group(1).replace("&amp;", "&")).text
    assert card.findall(rest) == ["02", "01", "00"]
    assert "More new leads" not in rest
    assert http.get(f"{LEADS}?stage=nonsense").status_code == 404
    assert http.get(f"{LEADS}?stage=new&after=x").status_code == 404
    assert len(ids) == 11


def test_moving_a_lead_is_audited_and_a_bad_stage_is_an_error_beside_the_field(
        live_server: LiveServer, db: Database, http: httpx.Client, clinic: Login) -> None:
    lead = web_lead(db, "ivy@example.org", "Ivy Park")
    moved = post_form(http, LEADS, f"{LEADS}/{lead}/stage", {"stage": "contacted", "back": "board"})
    assert moved.status_code == 303 and moved.headers["location"] == f"{LEADS}#lead-{lead}"  # back at its card
    board = http.get(LEADS).text
    assert "Lead moved from New to Contacted." in board
    column = board.split('id="col-contacted"')[1].split("</section>")[0]
    assert "Ivy Park" in column
    again = post_form(http, LEADS, f"{LEADS}/{lead}/stage", {"stage": "contacted", "back": "lead"})
    assert again.headers["location"] == f"{LEADS}/{lead}"
    bad = post_form(http, LEADS, f"{LEADS}/{lead}/stage", {"stage": "cured", "back": "board"})
    assert bad.status_code == 400
    assert "stage must be one of new, contacted, booked, attended, lost" in error_of(bad.text, f"stage-{lead}")
    assert lead_row(db, lead).stage == "contacted"
    assert audits(db) == [("lead_stage_changed", f"lead {lead}", "new -> contacted", clinic.email)]  # the page's number


# Bookings ---------------------------------------------------------------------------------------------


def test_recording_a_booking_in_the_clinic_time_zone(live_server: LiveServer, db: Database, http: httpx.Client,
                                                     clinic: Login) -> None:
    lead = web_lead(db, "ivy@example.org", "Ivy Park")
    page = f"{LEADS}/{lead}"
    zone = live_server.settings.default_timezone
    assert f"In {zone}" in http.get(page).text
    answer = post_form(http, page, f"{page}/bookings", {"date": "2031-07-01", "time": "15:30", "external_id": "cal-1"})
    assert answer.status_code == 303 and answer.headers["location"] == page
    from zoneinfo import ZoneInfo
    expected = datetime(2031, 7, 1, 15, 30, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    assert bookings(db) == [(expected, "cal-1")]
    assert "Booking 1 recorded." in http.get(page).text
    assert lead_row(db, lead).stage == "booked"
    # The same external id again (a double click, a replayed form) is the same booking.
    again = post_form(http, page, f"{page}/bookings", {"date": "2031-07-01", "time": "15:30", "external_id": "cal-1"})
    assert again.status_code == 303
    assert "was recorded before; nothing changed" in http.get(page).text
    # Without an external id, the same lead at the same time is the same consultation too.
    for _ in range(2):
        post_form(http, page, f"{page}/bookings", {"date": "2031-07-08", "time": "16:00", "external_id": ""})
    assert len(bookings(db)) == 2
    assert [a[0] for a in audits(db)] == ["booking_recorded", "booking_recorded"]


@pytest.mark.parametrize(("values", "field", "words"), [
    ({"date": "", "time": "10:00"}, "date", "enter the date"),
    ({"date": "2031-02-30", "time": "10:00"}, "date", "is not a date"),
    ({"date": "2031-03-01", "time": "25:61"}, "time", "is not a time of day"),
    ({"date": "2031-03-01", "time": ""}, "time", "enter the time"),
    ({"date": "2031-03-09", "time": "02:30"}, "time", "does not exist"),  # clocks go forward in Los Angeles
    ({"date": "2031-03-01", "time": "10:00", "external_id": "x" * 201}, "external_id", "longer than 200"),
])
def test_booking_errors_are_beside_their_field_and_keep_the_values(
        live_server: LiveServer, db: Database, http: httpx.Client, values: dict[str, str], field: str,
        words: str) -> None:
    lead = web_lead(db, "ivy@example.org", "Ivy Park")
    page = f"{LEADS}/{lead}"
    answer = post_form(http, page, f"{page}/bookings", {"external_id": "", **values})
    assert answer.status_code == 400
    assert words in error_of(answer.text, field)
    assert f'value="{values["date"]}"' in answer.text
    assert bookings(db) == [] and lead_row(db, lead).stage == "new" and audits(db) == []


def test_an_external_id_of_another_lead_is_refused(live_server: LiveServer, db: Database, http: httpx.Client) -> None:
    ivy, jo = web_lead(db, "ivy@example.org", "Ivy Park"), web_lead(db, "jo@example.org", "Jo Lin")
    post_form(http, f"{LEADS}/{ivy}", f"{LEADS}/{ivy}/bookings", {"date": "2031-07-01", "time": "09:00", "external_id": "c-9"})
    answer = post_form(http, f"{LEADS}/{jo}", f"{LEADS}/{jo}/bookings",
                  {"date": "2031-07-02", "time": "09:00", "external_id": "c-9"})
    assert answer.status_code == 400
    assert "already used by a booking of another lead" in error_of(answer.text, "external_id")
    assert lead_row(db, jo).stage == "new"


# Follow-up and funnel ---------------------------------------------------------------------------------


def test_follow_up_says_why_and_a_booking_takes_them_off(live_server: LiveServer, db: Database,
                                                         http: httpx.Client) -> None:
    lead = web_lead(db, "ivy@example.org", "Ivy Park")
    web_lead(db, "cold@example.org", "Cold Case")
    reader = web_lead(db, "rea@example.org", "Rea Der")
    booking_click(db, lead, "Small steps for steadier days")
    opened(db, reader, "Sleep and mood", at=utcnow() - timedelta(hours=3))
    html = http.get(f"{LEADS}/follow-up").text
    assert "Ivy Park" in html and "Cold Case" not in html
    assert html.index("Ivy Park") < html.index("Rea Der")  # the most recent first
    assert "clicked “Book a consultation” in “Small steps for steadier days” 2 hours ago" in html
    assert "opened “Sleep and mood” 3 hours ago" in html
    assert "weekday mornings" in html and "America/Chicago" in html and "Phone call" in html
    funnel = http.get(f"{LEADS}/funnel").text
    assert re.search(r'id="total-booked"><strong>0<', funnel)
    post_form(http, f"{LEADS}/{lead}", f"{LEADS}/{lead}/bookings", {"date": "2031-07-01", "time": "09:00"})
    html = http.get(f"{LEADS}/follow-up").text
    assert "Ivy Park" not in html and "Rea Der" in html
    funnel = http.get(f"{LEADS}/funnel").text
    assert re.search(r'id="total-booked"><strong>1<', funnel)
    assert funnel.count("<svg") == 2 and "<title" in funnel and "<desc" in funnel
    month = datetime.now(UTC).strftime("%Y-%m")
    assert month in funnel and "web form" in funnel


def test_follow_up_pages_by_keyset(live_server: LiveServer, db: Database, http: httpx.Client,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("newsletter.web.staff.leads.FOLLOW_UP_PAGE", 2)
    now = utcnow()
    for n in range(5):  # Lea0 opened most recently
        opened(db, web_lead(db, f"lea{n}@example.org", f"Lea{n}"), f"Issue {n}", at=now - timedelta(hours=n + 1))
    names = re.compile(r"Lea\d")
    next_page = re.compile(r'href="(/staff/leads/follow-up\?after=[^"]+)" rel="next"')
    first = http.get(f"{LEADS}/follow-up").text
    assert names.findall(first) == ["Lea0", "Lea1"] and "5 warm leads; this page shows 2 of them." in first
    second = http.get(next_page.search(first).group(1)).text  # type: ignore[union-attr]
    assert names.findall(second) == ["Lea2", "Lea3"] and "Most recent leads" in second
    third = http.get(next_page.search(second).group(1)).text  # type: ignore[union-attr]
    assert names.findall(third) == ["Lea4"] and 'rel="next"' not in third
    nonsense = http.get(f"{LEADS}/follow-up", params={"after": "yesterday"})
    assert nonsense.status_code == 200 and names.findall(nonsense.text) == ["Lea0", "Lea1"]
