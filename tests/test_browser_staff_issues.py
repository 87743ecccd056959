"""The issue flow as staff walk it in chromium on a real uvicorn server: sign in, make an issue from a
post, edit it, read the preview (phone and desktop frames, plain text) and the preflight checklist,
send a test and find it in the outbox marked "[Test] ". Every page visited is checked with axe and
kept as screenshots at 390 and 1280 px."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.posts.service import given_bytes, import_post
from newsletter.staff.roles import Role
from tests.a11y import SCREENSHOTS, WIDTHS
from tests.liveserver import LiveServer
from tests.staffkit import assert_accessible, make_user, no_horizontal_scroll, shoot, signed_in_page

pytestmark = pytest.mark.browser
WALKING = Path(__file__).parent / "fixtures" / "posts" / "walking-post.txt"


def _visit(page, name: str) -> None:  # noqa: ANN001
    """What every page of the flow must pass: axe (at both widths: what scrolls sideways differs), no
    page-wide sideways scroll at 390 px, screenshots."""
    assert_accessible(page)
    page.set_viewport_size({"width": 390, "height": 900})
    assert no_horizontal_scroll(page), f"{name} scrolls sideways at 390 px"
    assert_accessible(page)  # e.g. the desktop-width preview frame scrolls inside its box on a phone
    previews = page.locator(".previews")
    if previews.count():
        # Chromium paints a sandboxed (out-of-process) frame only once it has been on screen: show the
        # frames first, and keep a picture of them on their own too.
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            previews.scroll_into_view_if_needed()
            page.wait_for_timeout(200)
            previews.screenshot(path=str(SCREENSHOTS / f"{name}-preview-{width}.png"))
    shoot(page, name)


def test_make_an_issue_preview_it_and_send_a_test(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    login = make_user(live_server.db, "mia@clinic.example", Role.MARKETING)
    with live_server.db.session() as s:
        post_id = import_post(s, given_bytes("walking-post.txt", WALKING.read_bytes(), live_server.settings)).post.id
    context, page, elsewhere = signed_in_page(browser, live_server.url, login, next_path="/staff/issues")

    # The list, empty, with its "New issue" button.
    assert page.get_by_role("heading", level=1, name="Issues").is_visible()
    _visit(page, "staff-issues-empty")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name="New issue").click()
    page.wait_for_url("**/staff/issues/new")
    _visit(page, "staff-issue-new")

    # Choose the post, make the issue with the keyboard; a mistake first: the error shows beside its field.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Subject").fill("Walk with us this winter")
    page.get_by_label("Intro note (optional)").fill("A note from the team.")
    page.get_by_role("button", name="Make the issue").click()  # no post chosen yet
    page.wait_for_selector("#post-error")
    assert page.locator("#post-error").inner_text() == "Choose the post the issue is made from."
    assert page.get_by_label("Post", exact=True).get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Intro note (optional)").input_value() == "A note from the team."  # kept
    assert page.get_by_label("Subject").input_value() == "Walk with us this winter"
    _visit(page, "staff-issue-new-error")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Post", exact=True).select_option(str(post_id))
    page.get_by_label("Preheader").fill("Ten minutes a day")
    page.get_by_label("Tracking").select_option("anonymous")
    page.get_by_label("Tracking").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Make the issue"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/staff/issues/\d+$"))
    issue_url = page.url
    assert page.get_by_role("status").inner_text().strip().endswith("Preview it and send a test.")
    assert page.get_by_role("heading", level=1).inner_text().endswith(": Walk with us this winter")
    assert page.get_by_role("navigation", name="Issue").get_by_role("link", name="Overview").get_attribute(
        "aria-current") == "page"

    # The preview: two sandboxed frames of the real email, and the plain text.
    frames = page.locator("iframe")
    assert frames.count() == 2
    for n in range(2):
        assert frames.nth(n).get_attribute("sandbox") == ""
    phone = page.frame_locator('iframe[title$="at phone width"]')
    desktop = page.frame_locator('iframe[title$="at desktop width"]')
    assert phone.get_by_text("Why a Daily Walk Helps Your Mood").first.is_visible()
    assert desktop.get_by_text("A note from the team.").first.is_visible()
    widths = page.evaluate("[...document.querySelectorAll('iframe')].map(f => f.getBoundingClientRect().width)")
    assert widths == [390, 700]
    tops = page.evaluate("[...document.querySelectorAll('iframe')].map(f => f.getBoundingClientRect().top)")
    assert tops[0] == tops[1]  # side by side on a wide screen
    plain = page.locator("pre.plain").inner_text()
    assert "A note from the team." in plain and "Why a Daily Walk Helps Your Mood" in plain and "%%" not in plain

    # The preflight checklist: every check, its result in words.
    checks = page.locator("ul.checks li")
    assert checks.count() >= 7
    assert all(text.startswith(("Passed:", "Warning:", "Error:")) for text in checks.all_inner_texts())
    assert checks.filter(has_text="Postal address").inner_text().startswith("Passed:")
    _visit(page, "staff-issue-overview")

    # Edit the subject and the intro note: saved, and the preview is of the new version.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Subject", exact=True).fill("Walk with us, all winter")
    page.get_by_label("Intro note (optional)", exact=True).fill("Winter hours start next week.")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(issue_url)
    assert page.get_by_role("status").inner_text().strip().startswith("Saved.")
    assert page.get_by_role("heading", level=1).inner_text().endswith(": Walk with us, all winter")
    assert page.frame_locator('iframe[title$="at phone width"]').get_by_text("Winter hours start next week.").is_visible()
    assert "Winter hours start next week." in page.locator("pre.plain").inner_text()

    # Send a test to two addresses (the field starts with the user's own), with the keyboard.
    to = page.get_by_label("Send to")
    assert to.input_value() == "mia@clinic.example"
    to.fill("mia@clinic.example, dr.lee@clinic.example")
    assert page.evaluate("document.activeElement.id") == "to"
    page.keyboard.press("Enter")  # submits the test form
    page.wait_for_url(issue_url + "#tests")
    assert page.get_by_role("status").inner_text().strip() == "Test queued for 2 addresses."
    rows = page.locator("table tbody tr")
    assert rows.count() == 2 and all("queued" in t for t in rows.all_inner_texts())
    _visit(page, "staff-issue-test-queued")

    # A dispatcher sends them: they land in the outbox, marked as tests, and the page says they went.
    live_server.send_queued()
    sent = live_server.emails()
    assert sorted(m["To"] for m in sent) == ["dr.lee@clinic.example", "mia@clinic.example"]
    assert {m["Subject"] for m in sent} == {"[Test] Walk with us, all winter"}
    page.reload()
    assert [t.split("\t")[2] for t in page.locator("table tbody tr").all_inner_texts()] == ["sent", "sent"]

    # The list now shows the issue with its status in words and its pages.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("navigation", name="Staff areas").get_by_role("link", name="Issues").click()
    page.wait_for_url("**/staff/issues")
    row = page.locator("table tbody tr").first
    assert "Walk with us, all winter" in row.inner_text() and "draft" in row.inner_text()
    _visit(page, "staff-issues")
    assert elsewhere == []
    context.close()
