"""Signing in to the staff app through the real page in chromium, with the keyboard only, on a real
uvicorn server: password, then the TOTP code; screenshots at 390 and 1280 px of each page visited."""

from __future__ import annotations

import pytest

from newsletter.database import Database
from newsletter.staff.roles import Role
from tests.liveserver import LiveServer
from tests.staffkit import assert_accessible, browser_sign_in, make_user, no_horizontal_scroll, shoot, tab_to

pytestmark = pytest.mark.browser


def _page(browser, width: int = 390):  # noqa: ANN001, ANN202
    context = browser.new_context(viewport={"width": width, "height": 900})
    return context, context.new_page()


def _third_party_requests(page, base: str) -> list[str]:  # noqa: ANN001
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if not r.url.startswith((base, "data:", "about:")) else None)
    return seen


def test_sign_in_with_the_keyboard_and_sign_out(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    login = make_user(live_server.db, "ana@clinic.example", Role.ADMIN)
    context, page = _page(browser)
    elsewhere = _third_party_requests(page, live_server.url)
    page.goto(live_server.url + "/staff/users")
    assert page.url.endswith("/staff/sign-in?next=/staff/users")
    assert_accessible(page)
    shoot(page, "staff-sign-in")
    assert no_horizontal_scroll(page)
    browser_sign_in(page, live_server.url, login, next_path="/staff/users")
    assert page.get_by_role("heading", name="Users").is_visible()
    assert_accessible(page)
    shoot(page, "staff-users")
    assert no_horizontal_scroll(page)  # a wide table scrolls inside its own box
    page.goto(live_server.url + "/staff/")
    assert page.get_by_role("heading", name="Home", exact=True).is_visible()
    nav = page.get_by_role("navigation", name="Staff areas")
    assert nav.get_by_role("link", name="Audit log").is_visible()
    assert_accessible(page)
    shoot(page, "staff-home")
    assert no_horizontal_scroll(page)
    page.goto(live_server.url + "/staff/audit")
    assert_accessible(page)
    shoot(page, "staff-audit")
    assert no_horizontal_scroll(page)
    page.goto(live_server.url + "/staff/account")
    assert_accessible(page)
    shoot(page, "staff-account")
    # Sign out with the keyboard: focus the header's button and press Enter.
    page.get_by_role("button", name="Sign out", exact=True).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/staff/sign-in")
    assert page.get_by_role("status").inner_text().strip() == "You are signed out."
    assert_accessible(page)
    shoot(page, "staff-signed-out")
    assert elsewhere == []
    context.close()


def test_sign_in_with_a_totp_code_through_the_page(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    login = make_user(live_server.db, "tom@clinic.example", Role.MARKETING, with_totp=True)
    context, page = _page(browser, 1280)
    page.goto(live_server.url + "/staff/sign-in")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"  # first on every page
    tab_to(page, "email")
    page.keyboard.type(login.email)
    page.keyboard.press("Tab")
    page.keyboard.type(login.password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/staff/sign-in/code")
    assert_accessible(page)
    shoot(page, "staff-sign-in-code")
    tab_to(page, "code")
    page.keyboard.type("000000")
    page.keyboard.press("Enter")
    page.wait_for_selector("#code-error")
    error = page.locator("#code-error")
    assert "not right" in error.inner_text()
    assert page.locator("#code").get_attribute("aria-invalid") == "true"
    assert "code-error" in (page.locator("#code").get_attribute("aria-describedby") or "")
    assert_accessible(page)
    shoot(page, "staff-sign-in-code-wrong")
    page.locator("#code").fill("")
    page.locator("#code").focus()
    page.keyboard.type(login.code())
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/staff/")
    assert page.get_by_role("heading", name="Home", exact=True).is_visible() and page.get_by_text("Signed in as tom@clinic.example").is_visible()
    context.close()


def test_set_up_two_factor_from_the_account_page(browser, live_server: LiveServer, db: Database) -> None:  # noqa: ANN001
    import pyotp

    login = make_user(live_server.db, "ida@clinic.example", Role.CLINIC)
    context, page = _page(browser)
    browser_sign_in(page, live_server.url, login)
    page.goto(live_server.url + "/staff/account/two-factor")
    page.get_by_role("button", name="Start").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#totp-secret")
    assert page.get_by_role("img", name="QR code of your set-up key").is_visible()
    assert_accessible(page)
    shoot(page, "staff-two-factor")
    assert no_horizontal_scroll(page)
    secret = page.locator("#totp-secret").inner_text().strip()
    page.locator("#code").focus()
    page.keyboard.type(pyotp.TOTP(secret).now())
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/staff/account")
    assert "Two-factor sign-in is on" in page.get_by_role("status").inner_text()
    assert_accessible(page)
    shoot(page, "staff-account-two-factor-on")
    context.close()
