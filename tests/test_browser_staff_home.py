"""The staff home in chromium on a real server: what is going out, the last issues with their
figures, this month's counts and two server-drawn charts; each role sees what it may; accessible at
390 and 1280 px; no request leaves the app."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from newsletter import issues as issue_service
from newsletter.sending import schedule
from newsletter.staff.roles import Role
from subscribers.db import utcnow
from subscribers.leads import add_lead, record_booking
from tests.liveserver import LiveServer
from tests.sendkit import add_audience, make_issue
from tests.staffkit import assert_accessible, browser_sign_in, make_user, no_horizontal_scroll, shoot, signed_in_page

pytestmark = pytest.mark.browser


def _sent_and_scheduled(live_server: LiveServer) -> None:
    settings, db = live_server.settings, live_server.db
    sent_id = make_issue(db, settings, "Small steps for steadier days")
    later_id = make_issue(db, settings, "Winter walks")
    add_audience(db, 3)
    with db.session() as s:
        schedule.start_now(s, settings, issue_service.get_issue(s, sent_id), utcnow())
        schedule.schedule_issue(s, settings, issue_service.get_issue(s, later_id), at=utcnow() + timedelta(days=2),
                                now=utcnow(), zone="UTC")
        add_lead(s, "lead@example.org", default_timezone=settings.default_timezone, source="web_form",
                 consent_method="form")
    live_server.send_queued()
    with db.session() as s:
        schedule.due_work(s, utcnow(), settings)
        record_booking(s, "lead@example.org", booked_for=utcnow() + timedelta(days=3), origin="staff", external_id="b-1")


def test_the_home_page_shows_what_goes_out_and_how_it_went(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    _sent_and_scheduled(live_server)
    login = make_user(live_server.db, "ana@clinic.example", Role.MARKETING)
    context, page, elsewhere = signed_in_page(browser, live_server.url, login)
    assert page.get_by_role("heading", name="Home", exact=True).is_visible()
    scheduled = page.get_by_role("region", name="Scheduled issues")
    assert "Winter walks" in scheduled.inner_text()
    last = page.get_by_role("region", name="Last issues")
    row = last.get_by_role("row").filter(has_text="Small steps for steadier days")
    assert row.get_by_role("cell").first.inner_text() == "3"  # sent to the three readers
    figures = page.locator("dl.figures").inner_text()
    assert "New leads\n1" in figures and "Bookings\n1" in figures
    for chart in ("Engagement by week", "Lead funnel"):
        section = page.get_by_role("region", name=chart)
        assert section.locator("svg").count() == 1
        section.get_by_text("The figures as a table").click()
        assert section.get_by_role("table").is_visible()
    assert_accessible(page)
    shoot(page, "staff-home-figures")
    page.set_viewport_size({"width": 390, "height": 900})
    assert no_horizontal_scroll(page)
    assert elsewhere == []
    context.close()


def test_clinic_staff_see_the_month_and_the_funnel_but_no_issues(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    _sent_and_scheduled(live_server)
    login = make_user(live_server.db, "dr.lee@clinic.example", Role.CLINIC)
    context = browser.new_context(viewport={"width": 390, "height": 900})
    page = context.new_page()
    browser_sign_in(page, live_server.url, login)
    text = page.locator("main").inner_text()
    assert "Lead funnel" in text and "This month" in text
    assert "Last issues" not in text and "Winter walks" not in text and "Engagement by week" not in text
    assert_accessible(page)
    shoot(page, "staff-home-clinic")
    context.close()


def test_a_send_in_progress_moves_on_the_home_page_without_a_reload(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    settings, db = live_server.settings, live_server.db
    issue_id = make_issue(db, settings, "Small steps for steadier days")
    add_audience(db, 3)
    with db.session() as s:
        schedule.start_now(s, settings, issue_service.get_issue(s, issue_id), utcnow())  # queued, not sent yet
    login = make_user(db, "ana@clinic.example", Role.MARKETING)
    context = browser.new_context(viewport={"width": 390, "height": 900})
    page = context.new_page()
    browser_sign_in(page, live_server.url, login)
    sending = page.locator("li.sending")
    assert "0 of 3 handled (0%)" in sending.inner_text()
    assert_accessible(page)
    shoot(page, "staff-home-sending")
    live_server.send_queued()  # the dispatchers send it meanwhile
    from playwright.sync_api import expect

    expect(sending.locator(".progress-text")).to_have_text(re.compile(r"^3 of 3 handled \(100%\)"), timeout=15_000)
    expect(sending.locator("progress")).to_have_js_property("value", 3)
    context.close()
