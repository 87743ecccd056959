"""The sequence flow as marketing staff walk it in chromium on a real uvicorn server: open the shipped
Welcome sequence (installed as the demo installs it), open a step, make a mistake and see it beside
its field, edit the step's subject and body, save, and see the preview frames and the plain-text part
show the new text; then resume the sequence, enrol a contact by address and add a step. Every page visited is
checked with axe and kept as screenshots at 390 and 1280 px; no request leaves for another host."""

from __future__ import annotations

import pytest

from newsletter.sequences import service
from newsletter.staff.roles import Role
from subscribers.db import utcnow
from tests.liveserver import LiveServer
from tests.sendkit import add_audience
from tests.staffkit import make_user, signed_in_page
from tests.test_browser_staff_issues import _visit as visit_issue_page

pytestmark = pytest.mark.browser


def _visit(page, name: str) -> None:  # noqa: ANN001
    """As on the issue pages (axe, no sideways scroll at 390 px, screenshots, the preview frames on
    their own too), then back to the desktop width the flow is walked at."""
    visit_issue_page(page, name)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_edit_a_sequence_step_and_preview_it(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    login = make_user(live_server.db, "mia@clinic.example", Role.MARKETING)
    with live_server.db.session() as s:
        service.install_shipped(s, live_server.settings, utcnow())
    add_audience(live_server.db, 1)
    context, page, elsewhere = signed_in_page(browser, live_server.url, login)

    # From the menu to the list, then the Welcome sequence.
    page.get_by_role("link", name="Sequences", exact=True).first.click()
    page.wait_for_url("**/staff/sequences")
    assert page.get_by_role("heading", level=1, name="Sequences").is_visible()
    welcome_row = page.locator("tbody tr", has=page.get_by_role("link", name="Welcome", exact=True))
    assert "paused" in welcome_row.inner_text() and "list confirmed: newsletter" in welcome_row.inner_text()
    _visit(page, "staff-sequences")
    page.get_by_role("link", name="Welcome", exact=True).click()
    page.wait_for_url("**/staff/sequences/*")
    sequence_url = page.url
    assert page.get_by_role("heading", level=1).inner_text() == "Sequence: Welcome"
    steps = page.get_by_role("region", name="Steps").locator("tbody tr")
    assert steps.count() == 3
    assert "at once after enrolment" in steps.nth(0).inner_text()
    _visit(page, "staff-sequence")

    # The second step: its form is filled with what is stored; its preview shows it.
    page.get_by_role("link", name="A few reader favorites to start with").click()
    page.wait_for_url("**/steps/reader-favorites")
    assert page.get_by_label("Subject", exact=True).input_value() == "A few reader favorites to start with"
    assert page.get_by_label("Delay").input_value() == "5d"
    assert "No contact is waiting for this step" in page.locator("#waiting").inner_text()
    phone = page.frame_locator('iframe[title$="at phone width"]')
    assert phone.get_by_text("A few reader favorites").first.is_visible()
    assert all(page.locator("iframe").nth(n).get_attribute("sandbox") == "" for n in range(2))
    _visit(page, "staff-sequence-step")

    # A mistake first: the error shows beside its field, and what was typed stays.
    page.get_by_label("Delay").fill("5 days")
    page.get_by_label("Body (Markdown)").fill("# Reading for the winter\n\nThree short reads for the long evenings.")
    page.get_by_role("button", name="Save the step").click()
    page.wait_for_selector("#delay-error")
    assert page.locator("#delay-error").inner_text() == "'5 days' is not a duration like 2d, 12h, 30m"
    assert page.get_by_label("Delay").get_attribute("aria-invalid") == "true"
    assert "Three short reads" in page.get_by_label("Body (Markdown)").input_value()
    _visit(page, "staff-sequence-step-error")

    # Now right: a new subject and body, saved with the keyboard; the preview is of the new version.
    page.get_by_label("Delay").fill("5d")
    page.get_by_label("Subject", exact=True).fill("Something to read this winter")
    page.get_by_label("Body (Markdown)").fill("# Reading for the winter\n\nThree short reads for the long evenings.")
    page.get_by_role("button", name="Save the step").focus()
    with page.expect_navigation():  # the error page had the same address: wait for the redirect's page
        page.keyboard.press("Enter")
    assert page.get_by_role("status").inner_text().strip().startswith("Saved: changed reader-favorites.")
    assert page.get_by_role("heading", level=1).inner_text().endswith(": Something to read this winter")
    phone = page.frame_locator('iframe[title$="at phone width"]')
    desktop = page.frame_locator('iframe[title$="at desktop width"]')
    assert phone.get_by_text("Three short reads for the long evenings.").is_visible()
    assert desktop.get_by_text("Reading for the winter").first.is_visible()
    widths = page.evaluate("[...document.querySelectorAll('iframe')].map(f => f.getBoundingClientRect().width)")
    assert widths == [390, 700]
    plain = page.locator("pre.plain").inner_text()
    assert "Three short reads for the long evenings." in plain and "%%" not in plain
    _visit(page, "staff-sequence-step-saved")

    # Back to the sequence: the new subject is listed; resume it and enrol a contact by address.
    page.get_by_role("link", name="Welcome", exact=True).click()
    page.wait_for_url(sequence_url)
    assert page.get_by_role("link", name="Something to read this winter").is_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Resume the sequence").click()
    assert "resumed" in page.get_by_role("status").inner_text()
    page.get_by_label("Contact's email address").fill("nobody@example.org")
    page.get_by_role("button", name="Enrol").click()
    page.wait_for_selector("#email-error")
    assert page.locator("#email-error").inner_text() == "No contact has that address."
    _visit(page, "staff-sequence-enrol-error")
    page.get_by_label("Contact's email address").fill("reader0@example.org")
    page.keyboard.press("Enter")
    page.wait_for_url(sequence_url + "#enrol")
    assert page.get_by_role("status").inner_text().strip().startswith("Enrolled. The first step is due")
    assert page.locator("dl.figures div", has_text="Enrolled now").locator("dd").inner_text() == "1"
    _visit(page, "staff-sequence-enrolled")

    # Add a step at the end: the form, then the new step's own page with its preview.
    page.get_by_role("link", name="Add a step").click()
    page.wait_for_url("**/new-step")
    assert page.get_by_label("Where").input_value() == ""  # at the end
    _visit(page, "staff-sequence-new-step")
    page.get_by_label("Key").fill("check-in")
    page.get_by_label("Delay").fill("3d")
    page.get_by_label("Subject", exact=True).fill("Checking in")
    page.get_by_label("Body (Markdown)").fill("How are the reads going? Reply and tell us.")
    page.get_by_role("button", name="Add the step").click()
    page.wait_for_url("**/steps/check-in")
    assert page.get_by_role("status").inner_text().strip().startswith("Saved: step check-in added.")
    assert page.frame_locator('iframe[title$="at phone width"]').get_by_text("How are the reads going?").is_visible()
    assert elsewhere == []
    context.close()
