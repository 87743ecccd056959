"""Marking a custom field sensitive as an admin walks it in chromium on a real uvicorn server: the
Sensitive information page under Settings (an empty name refused beside its field), then an issue
whose post personalises with that field through a merge tag: its Send tab, Schedule and its
preflight checklist say the health-information policy refuses it, naming the field; unmarked, the
refusal is gone. Every page
visited is checked with axe and kept as screenshots at 390 and 1280 px; no request leaves for
another host."""

from __future__ import annotations

import pytest

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from newsletter import issues as issue_service
from newsletter.posts.service import import_post
from newsletter.posts.source import RawSource
from newsletter.staff.roles import Role
from tests.liveserver import LiveServer
from tests.staffkit import make_user, signed_in_page, visited

pytestmark = pytest.mark.browser
POLICY = "Goes out through the outbox folder (development) under the minimal health-information policy."


def test_mark_a_field_sensitive_and_see_the_send_tab_refuse_the_issue(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    admin = make_user(live_server.db, "ada@clinic.example", Role.ADMIN)
    # A post staff wrote personalises with the field through a merge tag.
    post = (b"# Walking in winter\n\nA short walk helps with {{ field.diagnosis | default: \"how you feel\" }}, "
            b"even on grey days.\n")
    with live_server.db.session() as s:
        imported = import_post(s, RawSource("winter.md", post, None, None)).post
        issue_id = issue_service.create_issue(s, live_server.settings, imported.id, "Walk with us this winter",
                                              "A short walk a day, even when it is grey outside").id
    context, page, elsewhere = signed_in_page(browser, live_server.url, admin, next_path="/staff/settings")

    # Before: the Send tab names the policy and refuses nothing.
    send = f"{live_server.url}/staff/issues/{issue_id}/send"
    page.goto(send)
    assert page.locator("#policy-line").inner_text() == POLICY
    assert page.locator("#policy-refusal").count() == 0

    # The Settings page leads to Sensitive information.
    page.goto(f"{live_server.url}/staff/settings")
    page.get_by_role("link", name="Sensitive information").click()
    page.wait_for_url(f"{live_server.url}/staff/settings/sensitive")
    assert page.get_by_role("heading", level=1, name="Sensitive information").is_visible()
    assert page.locator("#policy-line").inner_text().startswith(POLICY + " Under the minimal health-information policy")
    assert page.get_by_role("cell", name="Nothing is marked yet.").is_visible()
    visited(page, "staff-sensitive-empty")

    # No name: refused beside the field, the kind chosen kept.
    page.get_by_label("Kind").select_option("tag")
    page.get_by_role("button", name="Mark as sensitive").click()
    page.wait_for_selector("#name-error")
    assert page.locator("#name-error").inner_text() == "give the tag's name"
    assert page.get_by_label("Name").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Kind").input_value() == "tag"
    visited(page, "staff-sensitive-error")

    # The field "diagnosis", marked with the keyboard.
    page.get_by_label("Kind").select_option("field")
    name = page.get_by_label("Name")
    name.fill("diagnosis")
    name.press("Enter")
    page.wait_for_url(f"{live_server.url}/staff/settings/sensitive")
    assert page.get_by_role("status").inner_text().strip() == "The custom field “diagnosis” is now marked sensitive."
    row = page.locator("table tbody tr")
    assert row.count() == 1 and "Custom field" in row.inner_text() and "diagnosis" in row.inner_text()
    assert "by ada@clinic.example" in row.inner_text()
    visited(page, "staff-sensitive-marked")

    # The Send tab now refuses the issue, naming the field (never anyone's value).
    page.goto(send)
    refusal = page.locator("#policy-refusal")
    assert refusal.get_attribute("role") == "alert"
    assert "The health-information policy refuses this issue" in refusal.inner_text()
    assert "The email personalises with the custom field “diagnosis”, which staff marked sensitive" in refusal.inner_text()
    visited(page, "staff-sensitive-send-refused")

    # Scheduling it anyway (which compiles it again from the post) is refused with the reason.
    zone = live_server.settings.default_timezone
    ahead = datetime.now(ZoneInfo(zone)) + timedelta(hours=1)
    page.fill("#date", f"{ahead:%Y-%m-%d}")
    page.fill("#time", f"{ahead:%H:%M}")
    page.get_by_role("button", name="Schedule", exact=True).click()
    expect(page.locator("#schedule-error")).to_contain_text("Not scheduled: the preflight failed: The email "
                                                            "personalises with the custom field “diagnosis”")
    visited(page, "staff-sensitive-schedule-refused")

    # So does the issue's preflight checklist.
    page.goto(f"{live_server.url}/staff/issues/{issue_id}")
    check = page.locator("ul.checks li.error")
    assert check.count() == 1 and "custom field “diagnosis”" in check.inner_text()
    assert page.locator("#policy-line").inner_text() == POLICY
    visited(page, "staff-sensitive-preflight")

    # Unmarked: the Send tab refuses nothing again.
    page.goto(f"{live_server.url}/staff/settings/sensitive")
    page.get_by_role("button", name="Unmark the custom field diagnosis").click()
    page.wait_for_url(f"{live_server.url}/staff/settings/sensitive")
    assert page.get_by_role("status").inner_text().strip() == "The custom field “diagnosis” is no longer marked sensitive."
    page.goto(send)
    assert page.locator("#policy-refusal").count() == 0

    # Both changes are in the audit log.
    page.goto(f"{live_server.url}/staff/audit?action=sensitive_marked")
    assert "custom field diagnosis" in page.locator("table tbody tr").inner_text()
    assert elsewhere == []
    context.close()
