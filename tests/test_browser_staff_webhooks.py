"""The webhooks page as an admin walks it in chromium on a real uvicorn server: add an endpoint (a
private address first, refused beside the field with what was typed kept), copy the secret shown
once, send a test event that a dispatcher delivers to a signature-checking receiver on loopback,
read the delivery log, disable the endpoint. Every page is checked with axe and kept as screenshots
at 390 and 1280 px; no request leaves for another host; a marketing user cannot open the page."""

from __future__ import annotations

import re

import pytest

from newsletter.outgoing_webhooks.sender import WebhookSender
from newsletter.staff.roles import Role
from tests.liveserver import LiveServer
from tests.staffkit import make_user, signed_in_page, visited
from tests.webhook_receiver import serve_receiver

pytestmark = pytest.mark.browser


@pytest.fixture
def live_server(live_server: LiveServer) -> LiveServer:
    """The live app allowing endpoints on loopback (the receiver), as NEWSLETTER_WEBHOOK_ALLOW_HOSTS would."""
    live_server.settings = live_server.settings.model_copy(update={"webhook_allow_hosts": "127.0.0.1"})
    live_server.app.state.settings = live_server.settings  # type: ignore[attr-defined]
    return live_server


def test_add_an_endpoint_send_a_test_and_read_its_log(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    admin = make_user(live_server.db, "ada@clinic.example", Role.ADMIN)
    with serve_receiver() as receiver:
        context, page, elsewhere = signed_in_page(browser, live_server.url, admin, next_path="/staff/webhooks")
        page.goto(f"{live_server.url}/staff/webhooks")
        assert page.get_by_role("heading", level=1, name="Webhooks").is_visible()
        assert page.get_by_role("link", name="Webhooks").first.get_attribute("href") == "/staff/webhooks"
        visited(page, "staff-webhooks-empty")

        # A private address: refused beside the field, what was typed and ticked kept.
        page.get_by_label("Endpoint URL").fill("https://10.0.0.8/crm")
        page.get_by_label("lead.created").check()
        page.get_by_role("button", name="Add the endpoint").click()
        page.wait_for_selector("#url-error")
        assert "10.0.0.8 is a private or special-purpose address" in page.locator("#url-error").inner_text()
        assert page.get_by_label("Endpoint URL").input_value() == "https://10.0.0.8/crm"
        assert page.get_by_label("Endpoint URL").get_attribute("aria-invalid") == "true"
        assert page.get_by_label("lead.created").is_checked()
        visited(page, "staff-webhooks-error")

        # The receiver's URL, with the keyboard: the secret is shown once.
        page.get_by_label("Endpoint URL").fill(receiver.url)
        page.get_by_label("booking.created").check()
        page.get_by_role("button", name="Add the endpoint").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#webhook-secret")
        receiver.secret = page.locator("#webhook-secret").inner_text().strip()
        assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", receiver.secret)
        row = page.locator("table tbody tr")
        assert row.count() == 1 and "lead.created, booking.created" in row.inner_text() and "enabled" in row.inner_text()
        visited(page, "staff-webhooks-added")
        page.goto(f"{live_server.url}/staff/webhooks")
        assert page.locator("#webhook-secret").count() == 0 and receiver.secret not in page.content()

        # A test event: queued by the page, delivered by a dispatcher, shown in the log.
        page.get_by_role("button", name="Send a test to endpoint 1").click()
        page.wait_for_url(f"{live_server.url}/staff/webhooks/1")
        assert "A test event is queued" in page.get_by_role("status").inner_text()
        assert WebhookSender(live_server.settings, live_server.db, worker="test/webhooks").run_until_idle() == 1
        assert receiver.types() == ["webhook.test"] and receiver.received[0].signed
        page.reload()
        log_row = page.locator("table tbody tr")
        assert log_row.count() == 1
        cells = log_row.inner_text()
        assert "webhook.test" in cells and receiver.received[0].event_id in cells and "delivered" in cells
        visited(page, "staff-webhooks-log")

        # Disable it: the list says so, and the audit log has each change.
        page.get_by_role("link", name="All webhook endpoints").click()
        page.get_by_role("button", name="Disable endpoint 1").click()
        page.wait_for_url(f"{live_server.url}/staff/webhooks")
        assert "is disabled" in page.get_by_role("status").inner_text()
        assert "disabled by an admin" in page.locator("table tbody tr").inner_text()
        visited(page, "staff-webhooks-disabled")
        page.goto(f"{live_server.url}/staff/audit")
        audit = page.locator("table tbody").inner_text()
        for action in ("webhook added", "webhook test queued", "webhook disabled"):
            assert action in audit
        assert elsewhere == []
        context.close()

    marketer = make_user(live_server.db, "mo@clinic.example", Role.MARKETING)
    context, page, _ = signed_in_page(browser, live_server.url, marketer)
    response = page.goto(f"{live_server.url}/staff/webhooks")
    assert response is not None and response.status == 403
    context.close()
