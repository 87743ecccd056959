"""The posts flows in chromium on a real uvicorn server, as marketing staff would walk them: sign in,
import a post by upload and by URL (from a small HTTP server on loopback that the settings allow),
open the post and see it as an email, edit its title, and follow a feed. Every page visited is checked
with axe and kept as screenshots at 390 and 1280 px; no request leaves for another host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.staff.roles import Role
from tests.liveserver import LiveServer, serving
from tests.staffkit import make_user, no_horizontal_scroll, signed_in_page, visited
from tests.test_staff_posts import DEMO, DEMO_TITLE
from tests.test_staff_posts_services import RSS
from tests.webserver import Site

pytestmark = pytest.mark.browser


@pytest.fixture
def server(loopback_allowed: Settings, db: Database) -> Iterator[LiveServer]:
    with serving(loopback_allowed, db) as live:
        yield live



def test_import_view_edit_and_feeds(browser, server: LiveServer, site: Site) -> None:  # noqa: ANN001
    login = make_user(server.db, "mia@clinic.example", Role.MARKETING)
    context, page, elsewhere = signed_in_page(browser, server.url, login, next_path="/staff/posts")
    assert page.get_by_role("heading", name="Posts", exact=True).is_visible()
    assert page.get_by_text("No posts yet").is_visible()
    visited(page, "staff-posts-empty")

    # By upload: a file too large for nothing, then the sample post.
    page.get_by_role("navigation", name="Posts pages").get_by_role("link", name="Import a post").click()
    page.wait_for_url(server.url + "/staff/posts/import")
    visited(page, "staff-posts-import")
    page.locator("#file").set_input_files(str(DEMO))
    page.locator("#file-excerpt").fill("Small habits that help on hard days.")
    page.get_by_role("button", name="Import the file").click()
    page.wait_for_url(f"{server.url}/staff/posts/*")
    post_url = page.url
    assert page.get_by_role("status").inner_text().startswith("Imported post")
    assert page.get_by_role("heading", level=1).inner_text() == DEMO_TITLE

    # Its email view: the sandboxed frame shows the post rendered as an issue would be.
    frame = page.frame_locator("iframe[title='The post as an email']")
    frame.get_by_text(DEMO_TITLE).first.wait_for()
    assert "%%" not in frame.locator("body").inner_text()
    assert "allow-scripts" not in (page.locator("iframe").get_attribute("sandbox") or "x allow-scripts")
    link = page.get_by_role("link", name="Make an issue from this post")
    assert link.get_attribute("href") == f"/staff/issues/new?post={post_url.rsplit('/', 1)[1]}"
    page.locator("iframe").scroll_into_view_if_needed()  # headless chromium paints a frame once it was in view
    visited(page, "staff-post")

    # Edit the title: an empty one is refused beside the field, then a new one is saved.
    page.locator("#title").fill("")
    page.get_by_role("button", name="Save the title, excerpt and address").click()
    error = page.locator("#title-error")
    assert error.inner_text() == "Give the post a title."
    assert page.locator("#title").get_attribute("aria-invalid") == "true"
    visited(page, "staff-post-edit-error")
    page.locator("#title").fill("Steadier days, one small step at a time")
    page.locator("#title").press("Enter")  # submits the form from the keyboard
    page.wait_for_url(post_url)
    assert "saved. No unsent issue uses it." in page.get_by_role("status").inner_text()
    assert page.get_by_role("heading", level=1).inner_text() == "Steadier days, one small step at a time"

    # By URL: a refused address first (beside the field, typed value kept), then the allowed host.
    page.goto(server.url + "/staff/posts/import")
    page.locator("#url").fill("ftp://blog.example/post")
    page.get_by_role("button", name="Import from the address").click()
    assert "must start with http:// or https://" in page.locator("#url-error").inner_text()
    assert page.locator("#url").input_value() == "ftp://blog.example/post"
    visited(page, "staff-posts-import-error")
    walking = site.add("/blog/walking.md", "# Walking, slowly\n\nA short walk each morning helps many of us.\n\n"
                       "## Start small\n\nTen minutes is enough to begin.\n", "text/markdown; charset=utf-8")
    page.locator("#url").fill(walking)
    page.get_by_role("button", name="Import from the address").click()
    page.wait_for_url(f"{server.url}/staff/posts/*")
    assert page.get_by_role("heading", level=1).inner_text() == "Walking, slowly"
    assert page.get_by_text(walking).is_visible()
    visited(page, "staff-post-from-url")

    # The list, newest first.
    page.goto(server.url + "/staff/posts")
    titles = page.locator("tbody th a").all_inner_texts()
    assert titles == ["Walking, slowly", "Steadier days, one small step at a time"]
    visited(page, "staff-posts")
    page.set_viewport_size({"width": 390, "height": 900})
    assert no_horizontal_scroll(page)  # the table scrolls inside its own box
    page.set_viewport_size({"width": 1280, "height": 900})

    # Feeds: add one, then see a failed poll's error as text.
    page.get_by_role("navigation", name="Posts pages").get_by_role("link", name="Feeds").click()
    page.wait_for_url(server.url + "/staff/posts/feeds")
    visited(page, "staff-posts-feeds-empty")
    page.locator("#url").fill(site.add("/feed.xml", RSS, "application/rss+xml"))
    page.get_by_role("button", name="Add the feed").click()
    page.wait_for_url(server.url + "/staff/posts/feeds")
    assert "2 new posts of 2 entries" in page.get_by_role("status").inner_text()
    site.add("/feed.xml", "gone", "text/plain", status=404)
    page.get_by_role("button", name="Poll now Harbor Clinic Blog").click()
    page.wait_for_url(server.url + "/staff/posts/feeds")
    assert "could not be read" in page.get_by_role("status").inner_text()
    assert "404" in page.locator(".feed-error").inner_text()
    assert page.locator(".feed-error").inner_text().startswith("Error:")
    visited(page, "staff-posts-feeds")
    assert elsewhere == []
    context.close()
