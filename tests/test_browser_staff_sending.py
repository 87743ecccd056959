"""Sending an issue from the staff app in chromium, on a real uvicorn server, as staff would: sign in,
open the issue's Send tab, choose the audience and watch its count change, schedule it a minute ahead
(or send it now through the confirm page), let the scheduler's round and the dispatchers run, watch the
progress figures change by themselves, then read the Results tab and settle a batch held as unknown.
Every page visited is checked with axe and kept as screenshots at 390 and 1280 px."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.staff.roles import Role
from newsletter.transports.base import OutcomeUnknown
from subscribers.lists import ensure_list
from tests.liveserver import LiveServer
from tests.sendkit import ScriptedTransport, add_audience, make_issue, raises
from tests.staffkit import assert_accessible, browser_sign_in, make_user, no_horizontal_scroll, shoot

pytestmark = pytest.mark.browser
WAIT = 20_000  # ms: the page asks for progress every 3 s


def _page(browser, width: int = 1280):  # noqa: ANN001, ANN202
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    return context, page


def _watch_requests(page, base: str) -> list[str]:  # noqa: ANN001
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if not r.url.startswith((base, "data:", "about:")) else None)
    return seen


def _check(page, name: str) -> None:  # noqa: ANN001
    assert_accessible(page)
    shoot(page, name)
    page.set_viewport_size({"width": 390, "height": 900})
    assert no_horizontal_scroll(page), f"{name} scrolls sideways at 390 px"
    page.set_viewport_size({"width": 1280, "height": 900})


def test_schedule_a_minute_ahead_watch_it_send_and_read_the_results(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    db, settings = live_server.db, live_server.settings
    issue_id = make_issue(db, settings, "Small steps for steadier days")
    add_audience(db, 3)
    add_audience(db, 2, list_slug="clinic-news", start=100)
    with db.session() as s:
        ensure_list(s, "clinic-news").name = "Clinic news"
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    context, page = _page(browser)
    elsewhere = _watch_requests(page, live_server.url)
    send = f"/staff/issues/{issue_id}/send"
    browser_sign_in(page, live_server.url, login, next_path=send)
    expect(page.get_by_role("heading", level=1)).to_have_text("Send: Small steps for steadier days")
    count = page.locator("#audience-count")
    expect(count).to_contain_text("3 people")
    _check(page, "staff-issue-send")

    # Choose another list with the keyboard: the count follows (JavaScript asks the server).
    page.locator("#list").focus()
    page.keyboard.press("ArrowDown")
    expect(count).to_contain_text("Clinic news: 2 people", timeout=WAIT)
    expect(page.locator("#schedule-form .audience-summary")).to_contain_text("Clinic news: 2 people")
    page.keyboard.press("ArrowUp")
    expect(count).to_contain_text("3 people", timeout=WAIT)

    # A time that has passed is refused beside the date, with what was typed kept.
    zone = settings.default_timezone
    past = datetime.now(ZoneInfo(zone)) - timedelta(hours=2)
    page.fill("#date", f"{past:%Y-%m-%d}")
    page.fill("#time", f"{past:%H:%M}")
    page.get_by_role("button", name="Schedule", exact=True).click()
    expect(page.locator("#date-error")).to_contain_text("has passed")
    assert page.locator("#date").get_attribute("aria-invalid") == "true"
    assert page.locator("#time").input_value() == f"{past:%H:%M}"
    _check(page, "staff-issue-send-error")

    # Schedule it a minute (or two) ahead, in the default zone; submit with the keyboard.
    ahead = datetime.now(ZoneInfo(zone)) + timedelta(minutes=2)
    page.fill("#date", f"{ahead:%Y-%m-%d}")
    page.fill("#time", f"{ahead:%H:%M}")
    assert page.locator("#zone").input_value() == zone
    page.get_by_role("button", name="Schedule", exact=True).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + send)
    expect(page.locator("#issue-state")).to_have_text("scheduled")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel the schedule")).to_be_visible()
    expect(page.locator("#progress-summary")).to_contain_text("Nothing is queued yet")
    _check(page, "staff-issue-scheduled")

    # The scheduler's round once the time has come (the clock moved on five minutes rather than the test
    # waiting for it): the issue is queued; the page sees it by itself.
    def later() -> datetime:
        return datetime.now(timezone.utc) + timedelta(minutes=5)

    with db.session() as s:
        report = schedule.due_work(s, later(), settings)
    assert report.started == [issue_id]
    expect(page.locator("#progress-summary")).to_contain_text("0 of 3 handled (0%)", timeout=WAIT)
    expect(page.locator('[data-count="queued"]')).to_have_text("3")
    _check(page, "staff-issue-queued")

    # The dispatchers send it (what LiveServer.send_queued does, on the same moved-on clock, since the
    # rows are due at the scheduled time): the figures and the <progress> bar follow without a reload.
    Dispatcher(settings, db, live_server.transport, clock=later).run_until_idle()
    with db.session() as s:
        schedule.due_work(s, later(), settings)
    expect(page.locator("#progress-summary")).to_contain_text("3 of 3 handled (100%)", timeout=WAIT)
    expect(page.locator('[data-count="submitted"]')).to_have_text("3")
    expect(page.locator('[data-count="queued"]')).to_have_text("0")
    assert page.locator("#progress-bar").evaluate("bar => [bar.value, bar.max]") == [3, 3]
    _check(page, "staff-issue-sent")
    assert len(live_server.emails()) == 3

    # The Results tab, reached from the issue's tabs with the keyboard.
    page.get_by_role("navigation", name=f"Issue {issue_id}").get_by_role("link", name="Results").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/staff/issues/{issue_id}/results")
    expect(page.get_by_role("heading", level=1)).to_have_text("Results: Small steps for steadier days")
    expect(page.locator(".figures dt", has_text="Recipients").locator("xpath=following-sibling::dd")).to_have_text("3")
    expect(page.get_by_text("None: every request's outcome is known.")).to_be_visible()
    _check(page, "staff-issue-results")
    assert elsewhere == []
    context.close()


def test_send_now_through_the_confirm_page_and_settle_a_held_batch(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    db, settings = live_server.db, live_server.settings
    issue_id = make_issue(db, settings, "A note on sleep")
    add_audience(db, 2)
    login = make_user(db, "ana@clinic.example", Role.ADMIN)
    context, page = _page(browser, 390)
    elsewhere = _watch_requests(page, live_server.url)
    send = f"/staff/issues/{issue_id}/send"
    browser_sign_in(page, live_server.url, login, next_path=send)
    page.get_by_role("button", name="Send now…").click()
    page.wait_for_url(f"**/staff/issues/{issue_id}/send/confirm**")
    expect(page.locator("#confirm-audience")).to_contain_text("2 people")
    _check(page, "staff-issue-send-confirm")
    page.get_by_role("button", name="Yes, send now").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + send)
    expect(page.get_by_role("status").first).to_contain_text("sending to 2 people")
    expect(page.locator("#progress-summary")).to_contain_text("0 of 2 handled")
    _check(page, "staff-issue-send-now")

    # The one request gets no answer: its batch is held as unknown, and the page says so.
    Dispatcher(settings, db, ScriptedTransport(script=[raises(OutcomeUnknown("read timeout"))]),
               sleep=lambda s: None).run_until_idle()
    with db.session() as s:
        schedule.due_work(s, datetime.now(timezone.utc), settings)
    expect(page.locator('[data-count="unknown"]')).to_have_text("2", timeout=WAIT)
    expect(page.locator("#progress-summary")).to_contain_text("sent, 2 unknown")

    page.goto(f"{live_server.url}/staff/issues/{issue_id}/results")
    expect(page.get_by_role("heading", name="Batches held as unknown")).to_be_visible()
    _check(page, "staff-issue-results-held")
    mark_sent = page.get_by_role("button", name="The provider accepted it (mark sent)")
    expect(mark_sent).to_be_visible()
    expect(page.get_by_role("button", name="Send again (may duplicate)")).to_be_visible()
    mark_sent.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/staff/issues/{issue_id}/results")
    expect(page.get_by_role("status").first).to_contain_text("2 deliveries marked sent")
    expect(page.get_by_text("None: every request's outcome is known.")).to_be_visible()
    _check(page, "staff-issue-results-settled")
    assert elsewhere == []
    context.close()


def test_without_javascript_the_count_is_updated_by_the_button(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    db, settings = live_server.db, live_server.settings
    issue_id = make_issue(db, settings)
    add_audience(db, 3)
    add_audience(db, 2, list_slug="clinic-news", start=100)
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    context = browser.new_context(viewport={"width": 390, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    send = f"/staff/issues/{issue_id}/send"
    browser_sign_in(page, live_server.url, login, next_path=send)
    page.select_option("#list", label="Clinic News")
    expect(page.locator("#audience-count")).to_contain_text("Newsletter: 3 people")  # nothing asks the server
    page.get_by_role("button", name="Update count").click()
    page.wait_for_url(f"**{send}?list=*")
    expect(page.locator("#audience-count")).to_contain_text("Clinic News: 2 people")
    expect(page.locator("#schedule-form .audience-summary")).to_contain_text("Clinic News: 2 people")
    shoot(page, "staff-issue-send-no-js")  # axe cannot run with scripts off; the same page passed it above
    page.get_by_role("button", name="Send now…").click()
    expect(page.locator("#confirm-audience")).to_contain_text("Clinic News: 2 people")
    page.get_by_role("button", name="Yes, send now").click()
    page.wait_for_url(live_server.url + send)
    expect(page.locator("#progress-summary")).to_contain_text("0 of 2 handled")  # the figures at load
    live_server.send_queued()
    page.reload()
    expect(page.locator("#progress-summary")).to_contain_text("2 of 2 handled (100%)")
    shoot(page, "staff-issue-sent-no-js")
    context.close()
