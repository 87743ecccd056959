"""Issue layouts in chromium: the teaser puts the button within the first two screens of a phone, the
teaser and digest fit 375, 600 and 800 px (screenshots kept, light and dark), and staff choose a
layout, a hero image and a digest's posts on an issue's page (axe at 390 and 1280 px)."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter import issues as issue_service
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Issue
from newsletter.posts.service import given_bytes, import_post
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from tests.a11y import SCREENSHOTS
from tests.conftest import FIXTURES, SAMPLE_POST, SEED_POST_VARIABLE, outside_file
from tests.liveserver import LiveServer
from tests.staffkit import make_user, signed_in_page, visited

pytestmark = pytest.mark.browser
PHONE = {"width": 375, "height": 667}  # a small phone's screen
WIDTHS = (375, 600, 800)
GARDEN = FIXTURES / "posts" / "garden-post.html"
WALKING = FIXTURES / "posts" / "walking-post.txt"
SUBJECT, PREHEADER = "Something for your mornings", "Ten quiet minutes outside, and what our team noticed after a month"


def _png(folder: Path, name: str, width: int, height: int, rgb: bytes) -> str:
    """A plain PNG written with the standard library (no network in tests): the posts' images stand in."""
    raw = b"".join(b"\x00" + rgb * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path = folder / name
    path.write_bytes(png)
    return path.as_uri()


def _import(db: Database, settings: Settings, path: Path, url: str | None = None) -> int:
    with db.session() as s:
        return import_post(s, given_bytes(path.name, path.read_bytes(), settings), url=url).post.id


def _email_file(db: Database, settings: Settings, post_ids: list[int], layout: str, folder: Path, name: str) -> Path:
    """The issue's HTML as a sample reader gets it, its remote images swapped for local files."""
    with db.session() as s:
        issue = issue_service.create_issue(s, settings, post_ids[0], SUBJECT, PREHEADER, "full", layout=layout,
                                           more_posts=post_ids[1:])
        assert not [f for f in issue_service.preflight(issue, settings) if f.level == "error"]
        html = issue_service.preview_parts(issue, settings).html
    images = {"garden-path.jpg": _png(folder, "path.png", 1200, 600, b"\x6a\x8f\x5a"),
              "bench.jpg": _png(folder, "bench.png", 800, 800, b"\x8a\x6f\x4a")}
    html = re.sub(r"https://clinic\.example/images/([a-z\-]+\.jpg)", lambda m: images[m.group(1)], html)
    path = folder / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    return path


def _button(page):  # noqa: ANN001, ANN202
    """The button after the post (the first link of its name is the text link near the top)."""
    return page.get_by_role("link", name="Book a consultation").last


@pytest.mark.parametrize("which", ["sample", "seed"])
def test_the_teaser_puts_the_button_within_two_screens_of_a_phone(browser, db: Database, settings: Settings,  # noqa: ANN001
                                                                   tmp_path: Path, which: str) -> None:
    source = SAMPLE_POST if which == "sample" else outside_file(SEED_POST_VARIABLE)
    post_id = _import(db, settings, source, "https://clinic.example/blog/the-post")
    page = browser.new_page(viewport=PHONE)
    for layout in ("teaser", "full"):
        page.goto(_email_file(db, settings, [post_id], layout, tmp_path, f"{which}-{layout}").as_uri())
        top = page.get_by_role("link", name="Book a consultation").first.bounding_box()
        assert top is not None and top["y"] + top["height"] < PHONE["height"]  # every layout: on the first screen
        box = _button(page).bounding_box()
        assert box is not None
        if layout == "teaser":
            assert box["y"] + box["height"] < 2 * PHONE["height"], f"the button is at y={box['y']}"
            continue_link = page.get_by_role("link", name="Continue reading on our site").bounding_box()
            assert continue_link is not None and continue_link["y"] < box["y"]
        else:
            assert box["y"] > 2 * PHONE["height"]  # the whole post: why the teaser exists
    page.close()


def test_teasers_and_a_digest_fit_phones_and_desktops_light_and_dark(browser, db: Database, settings: Settings,  # noqa: ANN001
                                                                      tmp_path: Path) -> None:
    garden, walking = _import(db, settings, GARDEN), _import(db, settings, WALKING, "https://clinic.example/blog/walking")
    clinic = _import(db, settings, SAMPLE_POST, "https://clinic.example/blog/sleep")
    emails = {"teaser-text": _email_file(db, settings, [clinic], "teaser", tmp_path, "teaser-text"),
              "teaser-html": _email_file(db, settings, [garden], "teaser", tmp_path, "teaser-html"),
              "digest": _email_file(db, settings, [garden, walking, clinic], "digest", tmp_path, "digest")}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in emails.items():
        for scheme in ("light", "dark"):
            for width in WIDTHS:
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.emulate_media(color_scheme=scheme)
                page.goto(path.as_uri())
                assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls at {width}"
                for image in page.query_selector_all("img"):
                    box = image.bounding_box()
                    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
                    if (image.get_attribute("src") or "").startswith("file:"):
                        assert page.evaluate("i => i.complete && i.naturalWidth > 0", image)  # the hero and cards show
                button = _button(page).bounding_box()
                assert button is not None and button["x"] + button["width"] <= width and button["height"] >= 44
                page.screenshot(path=str(SCREENSHOTS / f"email-{name}-{width}-{scheme}.png"), full_page=True)
                page.close()
    page = browser.new_page(viewport=PHONE)
    page.goto(emails["digest"].as_uri())
    cards = page.get_by_role("heading", level=2)
    assert cards.all_inner_texts()[:3] == ["A Garden Walk Before Work", "Why a Daily Walk Helps Your Mood",
                                          "Ketamine Therapy and a Good Night’s Sleep"]
    assert page.get_by_role("link", name=re.compile("^Read more: ")).count() == 3
    page.close()


def test_staff_choose_a_layout_a_hero_and_a_digests_posts(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    db, settings = live_server.db, live_server.settings
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    garden = _import(db, settings, GARDEN)
    walking = _import(db, settings, WALKING, "https://clinic.example/blog/walking")
    with db.session() as s:
        issue_id = issue_service.create_issue(s, settings, garden, SUBJECT, PREHEADER).id
    context, page, elsewhere = signed_in_page(browser, live_server.url, login, next_path=f"/staff/issues/{issue_id}")
    blocked: set[str] = set()
    page.on("requestfailed", lambda r: blocked.add(r.url) if r.failure == "csp" else None)

    # A teaser with the second image as its hero, given its own alt text.
    page.get_by_label("Teaser: the first paragraphs").check()
    page.get_by_label("Hero image", exact=True).select_option(label="Image 2: A wooden bench under a maple tree")
    page.get_by_label("Hero image's alt text (optional)").fill("A bench in the clinic garden")
    page.get_by_role("button", name="Save the layout").click()
    page.wait_for_url(f"**/staff/issues/{issue_id}#layout")
    assert "Layout saved" in page.locator(".flash").inner_text()
    assert page.get_by_label("Teaser: the first paragraphs").is_checked()
    assert page.get_by_label("Hero image's alt text (optional)").input_value() == "A bench in the clinic garden"
    page.locator(".previews").scroll_into_view_if_needed()
    frame = page.frame_locator('iframe[title$="at desktop width"]')
    assert frame.get_by_role("link", name="Continue reading on our site").count() == 1
    assert frame.get_by_role("img", name="A bench in the clinic garden").count() == 1
    visited(page, "staff-issue-layout-teaser")

    # A digest: the add form says what is missing beside its field, and keeps the page as it was.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Digest: several posts as cards").check()
    page.get_by_role("button", name="Save the layout").click()
    page.wait_for_url(f"**/staff/issues/{issue_id}#layout")
    page.get_by_role("button", name="Add the post").click()
    error = page.locator("#digest_post-error")
    assert error.inner_text() == "Choose the post to add."
    assert page.get_by_label("Add a post").get_attribute("aria-invalid") == "true"
    visited(page, "staff-issue-layout-digest-error")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Add a post").select_option(label=f"Why a Daily Walk Helps Your Mood (post {walking})")
    page.get_by_role("button", name="Add the post").click()
    page.wait_for_url(f"**/staff/issues/{issue_id}#digest")
    page.get_by_role("button", name="Move up Why a Daily Walk Helps Your Mood").click()
    page.wait_for_url(f"**/staff/issues/{issue_id}#digest")
    assert page.locator("ol.digest-posts > li > span:first-child").all_inner_texts() == [
        f"Why a Daily Walk Helps Your Mood (post {walking})", f"A Garden Walk Before Work (post {garden})"]
    page.locator(".previews").scroll_into_view_if_needed()
    frame = page.frame_locator('iframe[title$="at desktop width"]')
    assert frame.get_by_role("link", name=re.compile("^Read more: ")).count() == 2
    visited(page, "staff-issue-layout-digest")
    # The posts' images on another host: the preview's CSP stopped each in the browser, so no other
    # site learns who is looking.
    assert elsewhere and set(elsewhere) <= blocked
    context.close()

    with db.session() as s:
        issue = s.get(Issue, issue_id)
        assert (issue.layout, issue.post_id) == ("digest", walking)
        details = s.scalars(select(AuditEntry.detail).where(AuditEntry.target == f"issue {issue_id}")
                            .order_by(AuditEntry.id)).all()
    assert details[-4:] == ["layout teaser", "layout digest", f"digest: post {walking} added",
                            f"digest: post {walking} moved up"]
