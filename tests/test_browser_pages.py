"""The public pages in a real browser, as a subscriber on a phone meets them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.liveserver import LiveServer

pytestmark = pytest.mark.browser


def test_sign_up_confirm_and_unsubscribe_on_a_phone(browser, live_server: LiveServer, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 800})
    page.goto(f"{live_server.url}/subscribe")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    # Every field is reachable by its label, as a screen reader announces it.
    page.get_by_label("Email address").fill("phone.reader@example.org")
    page.get_by_label("First name").fill("Sam")
    page.get_by_role("button", name="Subscribe").click()
    assert page.get_by_role("heading", name="Please tick the box").count() == 0
    assert page.locator("#consent-error").inner_text().startswith("Please tick the box")
    page.screenshot(path=str(tmp_path / "subscribe-error.png"), full_page=True)
    page.get_by_label(live_server.settings.consent_text).check()
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.screenshot(path=str(tmp_path / "check-inbox.png"))

    live_server.send_queued()  # what serve's dispatchers do in the background
    text = live_server.emails()[0].get_body(("plain",)).get_content()
    confirm_link = re.search(r"http\S+/confirm/\S+", text).group(0)
    page.goto(confirm_link)
    button = page.get_by_role("button", name="Yes, subscribe me")
    box = button.bounding_box()
    assert box["height"] >= 44 and box["x"] + box["width"] <= 375
    button.click()
    page.get_by_role("heading", name="You're subscribed").wait_for()

    page.get_by_role("link", name="your preferences page").click()
    page.get_by_role("heading", name="Your email preferences").wait_for()
    page.get_by_label("At most once a month").check()
    page.get_by_role("button", name="Save my preferences").click()
    assert page.get_by_role("status").inner_text() == "Your preferences are saved."
    page.get_by_role("button", name="Unsubscribe from all emails").click()
    page.get_by_role("heading", name="You're unsubscribed").wait_for()
    page.screenshot(path=str(tmp_path / "unsubscribed.png"))
    page.close()


@pytest.mark.parametrize("width", [320, 800])
def test_subscribe_page_fits_and_keeps_focus_visible(browser, live_server: LiveServer, width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(f"{live_server.url}/subscribe")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("document.documentElement.lang") == "en"
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.id")
    assert focused == "email"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    font_px = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert font_px >= 16
    page.close()


@pytest.mark.parametrize("width", [390, 1280])
def test_errors_beside_their_fields_and_a_readable_404(browser, live_server: LiveServer, tmp_path: Path,
                                                       width: int) -> None:
    """The pages this round changed: an address the product cannot send to and a name too long are
    each told beside their field, with what was typed kept; a mangled link gets a page, not JSON."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{live_server.url}/subscribe")
    page.get_by_label("Email address").fill("josé@example.com")
    page.get_by_label("First name").fill("x" * 201)
    page.get_by_label(live_server.settings.consent_text).check()
    page.get_by_role("button", name="Subscribe").click()
    assert "before the @" in page.locator("#email-error").inner_text()
    assert page.locator("#name-error").inner_text().startswith("Please keep your name")
    assert page.get_by_label("First name").get_attribute("aria-describedby") == "name-error"
    assert page.get_by_label("Email address").input_value() == "josé@example.com"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(tmp_path / f"subscribe-field-errors-{width}.png"), full_page=True)
    response = page.goto(f"{live_server.url}/subscribe/a-link-cut-in-two")
    assert response is not None and response.status == 404
    page.get_by_role("heading", name="This page does not exist").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(tmp_path / f"not-found-{width}.png"), full_page=True)
    page.close()
