"""The API tokens page as an admin walks it in chromium on a real uvicorn server: a form sent without a
scope is answered beside the field with the name kept; a token is made and its secret shown once; the
token is revoked after a confirm page. Every page is checked with axe and kept as screenshots at 390
and 1280 px; no request leaves for another host."""

from __future__ import annotations

import re

import httpx
import pytest

from newsletter.staff.roles import Role
from tests.apikit import API, bearer
from tests.liveserver import LiveServer
from tests.staffkit import make_user, signed_in_page, visited

pytestmark = pytest.mark.browser


def test_make_and_revoke_an_api_token(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    admin = make_user(live_server.db, "ada@clinic.example", Role.ADMIN)
    context, page, elsewhere = signed_in_page(browser, live_server.url, admin)
    page.get_by_role("link", name="API tokens").first.click()
    page.wait_for_url(f"{live_server.url}/staff/api-tokens")
    assert page.get_by_role("heading", level=1, name="API tokens").is_visible()
    assert page.get_by_role("cell", name="No token yet.").is_visible()
    visited(page, "staff-api-tokens")

    page.get_by_label("Name", exact=True).fill("Booking system")
    page.get_by_role("button", name="Make the token").click()
    page.wait_for_selector("#scopes-error")
    assert page.locator("#scopes-error").inner_text() == "Choose at least one scope."
    assert page.get_by_label("Name", exact=True).input_value() == "Booking system"
    visited(page, "staff-api-tokens-error")

    page.get_by_label(re.compile("^bookings:write")).check()
    page.get_by_label(re.compile("^leads:write")).focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Make the token").click()
    page.wait_for_selector("#token-secret")
    secret = page.locator("#token-secret").inner_text().strip()
    assert secret.startswith("nlt_") and secret not in page.url
    row = page.get_by_role("row", name=re.compile("Booking system"))
    assert "leads:write, bookings:write" in row.inner_text() and "never" in row.inner_text()
    visited(page, "staff-api-tokens-made")
    with httpx.Client(base_url=live_server.url) as api:
        call = {"email": "ana@example.org", "external_id": "cal-1"}
        assert api.post(f"{API}/bookings", json=call, headers=bearer(secret)).status_code == 201

    page.goto(f"{live_server.url}/staff/api-tokens")
    assert secret not in page.content()  # shown once only
    page.get_by_role("link", name="Revoke Booking system").click()
    assert page.get_by_role("heading", level=1, name="Revoke “Booking system”?").is_visible()
    visited(page, "staff-api-token-revoke")
    page.get_by_role("button", name="Revoke the token").click()
    page.wait_for_url(f"{live_server.url}/staff/api-tokens")
    assert "Revoked “Booking system”" in page.get_by_role("status").inner_text()
    assert "revoked" in page.get_by_role("row", name=re.compile("Booking system")).inner_text()
    visited(page, "staff-api-tokens-revoked")
    with httpx.Client(base_url=live_server.url) as api:
        assert api.post(f"{API}/bookings", json={"email": "ana@example.org", "external_id": "cal-2"},
                        headers=bearer(secret)).status_code == 401
    assert elsewhere == []
    context.close()
