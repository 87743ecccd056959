"""Automations in chromium on a real uvicorn server, as marketing staff would set them: from the
feeds page to a feed's automation form (a wrong slot told beside its field, then fixed), back to
the feeds page showing its state and a failing feed's run of failures, then the digest form. Every
page visited is checked with axe and kept as screenshots at 390 and 1280 px; no request leaves for
another host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.posts import service as post_service
from newsletter.staff.roles import Role
from tests.liveserver import LiveServer, serving
from tests.staffkit import make_user, signed_in_page, visited
from tests.test_staff_posts_services import RSS
from tests.webserver import Site

pytestmark = pytest.mark.browser


@pytest.fixture
def server(loopback_allowed: Settings, db: Database) -> Iterator[LiveServer]:
    with serving(loopback_allowed, db) as live:
        yield live


def test_set_a_feed_automation_and_the_digest(browser, server: LiveServer, site: Site) -> None:  # noqa: ANN001
    url = site.add("/feed.xml", RSS, "application/rss+xml")
    post_service.add_feed_polled(server.db, server.settings, url)
    login = make_user(server.db, "mia@clinic.example", Role.MARKETING)
    context, page, elsewhere = signed_in_page(browser, server.url, login, next_path="/staff/posts/feeds")
    site.add("/feed.xml", "gone", "text/plain", status=500)
    page.get_by_role("button", name="Poll now Harbor Clinic Blog").click()
    page.wait_for_url(server.url + "/staff/posts/feeds")
    assert "1 poll in a row" in page.locator(".feed-failing").inner_text()

    page.get_by_role("link", name="Set the automation of Harbor Clinic Blog").click()
    page.wait_for_url(server.url + "/staff/posts/feeds/1/automation")
    visited(page, "staff-feed-automation")
    page.get_by_label("Mode").select_option("review")
    page.get_by_label("Slot").fill("tuesday at nine")
    page.get_by_label("Layout").select_option("teaser")
    page.get_by_label("Subject template (optional)").fill("New this week: {title}")
    page.get_by_role("button", name="Save the automation").click()
    error = page.locator("#slot-error")
    assert "not a weekday" in error.inner_text()
    assert page.get_by_label("Subject template (optional)").input_value() == "New this week: {title}"
    assert page.get_by_label("Layout").input_value() == "teaser"
    visited(page, "staff-feed-automation-error")
    page.get_by_label("Slot").fill("tue 09:00")
    page.get_by_role("button", name="Save the automation").click()
    page.wait_for_url(server.url + "/staff/posts/feeds")
    assert "automation is saved" in page.get_by_role("status").inner_text()
    assert "Review, Tue at 09:00" in page.locator("p.auto").first.inner_text()
    visited(page, "staff-feeds-automated")

    page.get_by_role("link", name="Set the digest").click()
    page.wait_for_url(server.url + "/staff/posts/digest")
    page.get_by_label("Mode").select_option("send")
    page.get_by_label("How often").select_option("week")
    page.get_by_label("Slot").fill("mon 08:00")
    page.get_by_role("button", name="Save the automation").click()
    page.wait_for_url(server.url + "/staff/posts/feeds")
    assert "every week" in page.locator("#digest ~ .panel").first.inner_text()
    page.goto(server.url + "/staff/posts/digest")
    visited(page, "staff-digest-automation")
    assert elsewhere == []
    context.close()
