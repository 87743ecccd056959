"""The preview in a real browser, at phone and desktop widths."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.urls import recipient_values
from newsletter.compose.personalize import substitute
from newsletter.compose.render import render_email
from tests.emailkit import content

pytestmark = pytest.mark.browser
WIDTHS = [320, 375, 600, 800]


@pytest.fixture
def preview(settings: Settings, tmp_path: Path) -> Path:
    # A long unbroken URL and a wide image are the usual culprits for sideways scrolling on phones.
    blocks = content().blocks + [
        {"type": "paragraph", "html": "See https://example.org/a/very/long/path/that/does/not/break/easily/at/all/when/narrow"},
        {"type": "image", "src": _wide_png(tmp_path), "alt": "A wide banner"},
    ]
    html = substitute(render_email(content(blocks=blocks), settings).html, recipient_values(settings, "tok", "Dana"))
    path = tmp_path / "issue.html"
    path.write_text(html, encoding="utf-8")
    return path


def _wide_png(folder: Path) -> str:
    """A 1600x400 PNG written with the standard library (no network in tests)."""
    import struct
    import zlib

    width, height = 1600, 400
    raw = b"".join(b"\x00" + b"\x80\xb0\xa0" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    target = folder / "wide.png"
    target.write_bytes(png)
    return target.as_uri()


@pytest.mark.parametrize("width", WIDTHS)
def test_fits_the_screen_without_sideways_scrolling(browser, preview: Path, width: int, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(preview.as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for image in page.query_selector_all("img"):
        box = image.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    button = page.get_by_role("link", name="Book a consultation")
    box = button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    assert box["height"] >= 44  # a comfortable tap target
    page.screenshot(path=str(tmp_path / f"issue-{width}.png"), full_page=True)
    page.close()


def test_phone_layout_is_one_readable_column(browser, preview: Path) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 800})
    page.goto(preview.as_uri())
    paragraph_px = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.content p:not(.meta)')).fontSize)")
    assert paragraph_px >= 16
    heading = page.get_by_role("heading", name="Start with light", level=2)
    quote = page.locator("blockquote")
    # Single column: each block starts below the one before it, at the same left edge.
    h, q = heading.bounding_box(), quote.bounding_box()
    assert q["y"] > h["y"] and abs(q["x"] - h["x"]) < 30
    assert page.get_by_role("link", name="Unsubscribe").is_visible()
    assert page.get_by_role("link", name="Update your preferences").is_visible()
    page.close()


def test_desktop_layout_is_centred_and_not_stretched(browser, preview: Path) -> None:
    page = browser.new_page(viewport={"width": 800, "height": 800})
    page.goto(preview.as_uri())
    box = page.locator(".content").first.bounding_box()
    assert box["width"] <= 640
    left, right = box["x"], 800 - (box["x"] + box["width"])
    assert abs(left - right) < 4
    page.close()
