"""The Leads pages in chromium on a real server, as clinic staff would walk them: a new lead from the
website clicks "Book a consultation" in an email, another only opens one; they appear on the board
and on the follow-up list, each with why (a lead only a privacy proxy opened for does not); staff
move another lead on the board, record the booking on the lead's page, and see the lead leave the
follow-up list and the funnel's booked figure go up. Every page is checked with axe and kept as
screenshots at 390 and 1280 px; at 390 px the board's columns stack; no request leaves the app."""

from __future__ import annotations

import pytest

from newsletter.staff.roles import Role
from datetime import timedelta

from subscribers.db import utcnow
from tests.leadskit import booking_click, opened, web_lead
from tests.liveserver import LiveServer
from tests.staffkit import browser_sign_in, make_user, visited

pytestmark = pytest.mark.browser



def test_a_new_lead_is_called_booked_and_counted(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    db = live_server.db
    ivy = web_lead(db, "ivy@example.org", "Ivy Park")  # as the website's form records it
    booking_click(db, ivy, "Small steps for steadier days")  # she clicked the booking button 2 hours ago
    jo = web_lead(db, "jo@example.org", "Jo Lin", requested_time=None, phone=None)
    opened(db, jo, "Sleep and mood", at=utcnow() - timedelta(hours=1), machine=True)  # Apple's proxy, not Jo
    rea = web_lead(db, "rea@example.org", "Rea Der", requested_time="weekday_evenings")
    opened(db, rea, "Sleep and mood", at=utcnow() - timedelta(hours=3))  # she read it
    login = make_user(db, "dr.lee@clinic.example", Role.CLINIC)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    elsewhere: list[str] = []
    page.on("request", lambda r: elsewhere.append(r.url)
            if not r.url.startswith((live_server.url, "data:", "about:")) else None)
    browser_sign_in(page, live_server.url, login, next_path="/staff/leads")

    # The board: the leads in New, newest first.
    new = page.get_by_role("region", name="New")
    assert new.get_by_role("heading", level=3).all_inner_texts() == ["Rea Der", "Jo Lin", "Ivy Park"]
    card = page.locator(f"#lead-{ivy}")
    assert "web form" in card.inner_text() and "Phone call" in card.inner_text()
    visited(page, "staff-leads-board")
    page.set_viewport_size({"width": 390, "height": 900})  # the columns stack
    lefts = {round(page.get_by_role("region", name=n).bounding_box()["x"]) for n in ("New", "Contacted", "Lost")}
    assert len(lefts) == 1
    page.set_viewport_size({"width": 1280, "height": 900})

    # Move Jo to Contacted with the card's own form (no script needed).
    jo_card = page.locator("li.card", has_text="Jo Lin")
    jo_card.get_by_label("Move to stage").select_option("contacted")
    jo_card.get_by_role("button", name="Move Jo Lin").click()
    page.wait_for_url(live_server.url + "/staff/leads#lead-*")  # back at the card, now in its new column
    assert page.get_by_role("status").inner_text() == "Lead moved from New to Contacted."
    assert page.evaluate("document.activeElement.textContent").count("Jo Lin")  # the keyboard carries on there
    assert "Jo Lin" in page.get_by_role("region", name="Contacted").inner_text()

    # The follow-up list: Ivy (2 hours ago), then Rea (3 hours ago), and why; not Jo.
    page.get_by_role("navigation", name="Leads pages").get_by_role("link", name="Follow-up").click()
    page.wait_for_url(live_server.url + "/staff/leads/follow-up")
    assert page.locator("ul.warm h2").all_inner_texts() == ["Ivy Park", "Rea Der"]
    item = page.locator("ul.warm li", has_text="Ivy Park")
    assert "clicked “Book a consultation” in “Small steps for steadier days” 2 hours ago" in item.inner_text()
    assert "weekday mornings" in item.inner_text() and "America/Chicago" in item.inner_text()
    item = page.locator("ul.warm li", has_text="Rea Der")
    assert "Why: opened “Sleep and mood” 3 hours ago." in item.inner_text()
    assert "weekday evenings" in item.inner_text()
    assert "Jo Lin" not in page.locator("main").inner_text()
    visited(page, "staff-leads-follow-up")

    # The funnel before: nobody booked.
    page.get_by_role("navigation", name="Leads pages").get_by_role("link", name="Funnel").click()
    page.wait_for_url(live_server.url + "/staff/leads/funnel")
    assert page.locator("#total-booked").inner_text() == "0"
    assert page.locator("svg[role=img]").count() == 2
    assert page.get_by_role("region", name="Leads by source: the figures").is_visible()
    visited(page, "staff-leads-funnel")

    # Ivy's page: record the booking (first without a time: the error sits beside the field).
    page.get_by_role("navigation", name="Leads pages").get_by_role("link", name="Follow-up").click()
    page.get_by_role("link", name="Ivy Park").click()
    page.wait_for_url(f"{live_server.url}/staff/leads/{ivy}")
    assert page.get_by_text("ivy@example.org").is_visible() and page.get_by_text("+14155550100").is_visible()
    assert page.get_by_role("region", name="Emails with opens and clicks").get_by_text("Small steps for steadier days").is_visible()
    visited(page, "staff-leads-lead")
    page.get_by_label("Date of the consultation").fill("2031-07-01")
    page.get_by_role("button", name="Record the booking").click()
    assert page.locator("#time-error").inner_text() == "booking time: enter the time of day"
    assert page.get_by_label("Date of the consultation").input_value() == "2031-07-01"
    visited(page, "staff-leads-lead-error")
    page.get_by_label("Time of the consultation").fill("15:30")
    page.get_by_label("Booking system id (optional)").fill("cal-77")
    page.get_by_role("button", name="Record the booking").click()
    page.wait_for_url(f"{live_server.url}/staff/leads/{ivy}")
    assert page.get_by_role("status").inner_text() == "Booking 1 recorded."
    bookings = page.get_by_role("region", name="Bookings recorded").inner_text()
    assert "Tue 01 Jul 2031, 15:30" in bookings and "cal-77" in bookings
    assert page.locator(f"#stage-{ivy}").input_value() == "booked"
    visited(page, "staff-leads-lead-booked")

    # She leaves the follow-up list; the funnel counts her booking.
    page.goto(live_server.url + "/staff/leads/follow-up")
    assert page.locator("ul.warm h2").all_inner_texts() == ["Rea Der"]
    page.goto(live_server.url + "/staff/leads/funnel")
    assert page.locator("#total-booked").inner_text() == "1"
    assert elsewhere == []
    context.close()
