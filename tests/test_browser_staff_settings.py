"""The settings page as an admin walks it in chromium on a real uvicorn server: change the brand colour
(a colour too light for white button text first, refused beside the field), then open a draft issue's
preview and see the new colour on its button. Every page visited is checked with axe and kept as
screenshots at 390 and 1280 px; no request leaves for another host."""

from __future__ import annotations

import pytest

from newsletter.staff.roles import Role
from tests.liveserver import LiveServer
from tests.sendkit import make_issue
from tests.staffkit import make_user, shoot, signed_in_page, visited

pytestmark = pytest.mark.browser
PURPLE, PURPLE_RGB = "#5a2d82", "rgb(90, 45, 130)"



def _button_colour(page) -> str:  # noqa: ANN001
    page.locator(".previews").scroll_into_view_if_needed()  # chromium paints a sandboxed frame once on screen
    frame = page.frame_locator('iframe[title$="at desktop width"]')
    # .last: the button after the post (the first link of that name is its text link near the top)
    return frame.get_by_role("link", name="Book a consultation").last.evaluate("el => getComputedStyle(el).backgroundColor")


def test_change_the_brand_colour_and_see_it_in_an_issue_preview(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    admin = make_user(live_server.db, "ada@clinic.example", Role.ADMIN)
    issue_id = make_issue(live_server.db, live_server.settings, "Walk with us this winter")
    context, page, elsewhere = signed_in_page(browser, live_server.url, admin, next_path="/staff/settings")

    # The draft's preview before: the default colour.
    page.goto(f"{live_server.url}/staff/issues/{issue_id}")
    assert _button_colour(page) == "rgb(47, 111, 106)"

    # The settings page: each section with where its values come from.
    page.goto(f"{live_server.url}/staff/settings")
    assert page.get_by_role("heading", level=1, name="Settings").is_visible()
    for section in ("Organisation", "Sender", "Postal address", "Brand", "Tracking", "Send limits"):
        assert page.get_by_role("heading", level=2, name=section).is_visible()
    assert page.locator("#accent_colour-source").inner_text() == "In use: the default."
    assert page.get_by_role("link", name="Users and roles").get_attribute("href") == "/staff/users"
    visited(page, "staff-settings")

    # A colour white text cannot be read on: refused beside the field, what was typed kept.
    colour = page.get_by_label("Accent colour", exact=True)
    colour.fill("#ffd700")
    page.get_by_role("button", name="Save brand").click()
    page.wait_for_selector("#accent_colour-error")
    assert "has a contrast of 1.4:1" in page.locator("#accent_colour-error").inner_text()
    assert colour.get_attribute("aria-invalid") == "true" and colour.input_value() == "#ffd700"
    visited(page, "staff-settings-error")

    # A dark purple, typed and saved with the keyboard: the swatch follows as it is typed.
    colour = page.get_by_label("Accent colour", exact=True)
    colour.fill(PURPLE)
    assert page.locator("#accent_colour-swatch").evaluate("el => getComputedStyle(el).backgroundColor") == PURPLE_RGB
    colour.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/staff/settings#brand")
    status = page.get_by_role("status").inner_text().strip()
    assert status == "Saved: accent colour. 1 issue not sent yet was compiled again with the new brand."
    assert page.locator("#accent_colour-source").inner_text().startswith("In use: saved by ada@clinic.example on")
    visited(page, "staff-settings-saved")

    # The draft's preview shows the new colour on its button.
    page.goto(f"{live_server.url}/staff/issues/{issue_id}")
    assert _button_colour(page) == PURPLE_RGB
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator(".previews").scroll_into_view_if_needed()
    page.wait_for_timeout(200)
    shoot(page, "staff-settings-issue-preview")

    # The change is in the audit log, found with its filter.
    page.goto(f"{live_server.url}/staff/audit?action=settings_changed")
    row = page.locator("table tbody tr")
    assert row.count() == 1 and "setting accent_colour" in row.inner_text() and PURPLE in row.inner_text()
    visited(page, "staff-audit-settings-changed")
    assert elsewhere == []
    context.close()
