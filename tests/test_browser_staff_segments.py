"""The segment builder in chromium on a real uvicorn server, as marketing staff would use it: build
a two-condition segment, watch the count and the sample follow the form (the first-party script
posts it, debounced), save it, and find it in the list with its count. Then the same without
JavaScript: the Count button. Every page is checked with axe and kept as screenshots at 390 and
1280 px; no request leaves for another host."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from newsletter.staff.roles import Role
from tests.liveserver import LiveServer
from tests.staffkit import make_user, signed_in_page, visited
from tests.test_staff_segments import audience

pytestmark = pytest.mark.browser



def _count_becomes(page: Any, text: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if page.locator("#segment-count").inner_text() == text:
            return
        time.sleep(0.05)
    raise AssertionError(f"the count says {page.locator('#segment-count').inner_text()!r}, not {text!r}")


def test_build_a_segment_and_see_its_count(browser: Any, live_server: LiveServer) -> None:
    audience(live_server.db)
    login = make_user(live_server.db, "mia@clinic.example", Role.MARKETING)
    context, page, elsewhere = signed_in_page(browser, live_server.url, login, next_path="/staff/segments")
    assert page.get_by_text("No segments yet").is_visible()
    visited(page, "staff-segments-empty")

    page.get_by_role("link", name="Make a segment").click()
    page.wait_for_url(live_server.url + "/staff/segments/new")
    visited(page, "staff-segments-new")

    # First condition: confirmed subscribers of the newsletter. The count follows as it is typed.
    page.locator("#kind-0").select_option("list")
    page.locator("#op-0").select_option("confirmed")
    page.locator("#value-0").fill("newsletter")
    _count_becomes(page, "3 mailable contacts")
    assert page.locator("#segment-sample tr").count() == 3

    # A second condition (the button re-draws the form with one more row), then the custom field.
    page.get_by_role("button", name="Add a condition").click()
    page.locator("#kind-1").wait_for()
    page.locator("#kind-1").select_option("field")
    page.locator("#op-1").select_option("eq")
    page.locator("#key-1").fill("clinic")
    page.locator("#value-1").fill("LA")
    _count_becomes(page, "2 mailable contacts")
    assert page.locator("#value-1-hint").inner_text() == "the value to compare with"  # follows the condition
    assert "field: clinic" in page.locator("#definition").input_value()  # the rows as the definition text
    sample = page.locator("#segment-sample tr").all_inner_texts()
    assert len(sample) == 2 and "p0@example.com" in sample[0] and "Person 1" in sample[1]

    # "any" widens it; a bad value says what is wrong instead of a count.
    page.get_by_label("any of them").check()
    _count_becomes(page, "5 mailable contacts")
    page.locator("#op-1").select_option("gt")
    _count_becomes(page, "Condition 2: “is more than” compares numbers: give a number, e.g. 65.")
    page.locator("#op-1").select_option("eq")
    page.get_by_label("all of the conditions").check()
    _count_becomes(page, "2 mailable contacts")
    visited(page, "staff-segments-builder")

    page.locator("#name").fill("la-confirmed")
    page.get_by_role("button", name="Save the segment").click()
    page.wait_for_url(live_server.url + "/staff/segments")
    assert "Segment la-confirmed made." in page.get_by_role("status").inner_text()
    row = page.get_by_role("row", name=re.compile("la-confirmed"))
    cell = row.locator("td").first
    for _ in range(200):  # filled in by the page's script
        if cell.inner_text() != "counting…":
            break
        time.sleep(0.05)
    assert cell.inner_text() == "2"
    visited(page, "staff-segments-list")

    # Open it again: the rows come back with the count; a bad list is shown beside its condition.
    page.get_by_role("link", name="la-confirmed", exact=True).click()
    assert page.locator("#segment-count").inner_text() == "2 mailable contacts"
    assert page.locator("#key-1").input_value() == "clinic"
    page.locator("#value-0").fill("newsleter")
    page.get_by_role("button", name="Save the segment").click()
    assert "there is no list 'newsleter'" in page.locator("#condition-0-error").inner_text()
    visited(page, "staff-segments-error")
    assert elsewhere == []
    context.close()


def test_the_count_button_works_without_javascript(browser: Any, live_server: LiveServer) -> None:
    audience(live_server.db)
    login = make_user(live_server.db, "mia@clinic.example", Role.MARKETING)
    context = browser.new_context(viewport={"width": 390, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server.url + "/staff/sign-in")
    page.locator("#email").fill(login.email)
    page.locator("#password").fill(login.password)
    page.locator("#password").press("Enter")
    page.wait_for_url(live_server.url + "/staff/")
    page.goto(live_server.url + "/staff/segments/new")
    page.locator("#kind-0").select_option("tag")
    page.locator("#value-0").fill("vip")
    page.locator("#value-0").press("Enter")  # Enter counts (it never removes a condition)
    page.wait_for_load_state()
    assert page.locator("#segment-count").inner_text() == "4 mailable contacts"
    assert page.locator("#value-0").input_value() == "vip"
    page.get_by_role("button", name="Count", exact=True).last.click()
    assert page.locator("#segment-count").inner_text() == "4 mailable contacts"
    context.close()
