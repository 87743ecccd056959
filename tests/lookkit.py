"""Emails to judge the look by: the seed-shaped text post (tests/fixtures/posts/clinic-post.txt) and an
HTML post with images, each compiled in every layout the code offers, plus images a browser can load
without a network (Playwright answers requests to the images' https host)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

from newsletter.compose.render import CompiledEmail, EmailContent, render_email
from newsletter.config import Settings
from newsletter.posts.blocks import ParsedPost, reading_minutes
from newsletter.posts.html import parse_html
from newsletter.posts.text import parse_text
from tests.conftest import SAMPLE_POST

IMAGE_HOST = "https://images.example.org"

# Every layout an issue can be compiled in, each as a way to compile content in it. Today there is one
# (the whole post); a new layout is added here and every look test (SpamAssassin, screenshots) covers it.
LAYOUTS: dict[str, Callable[[EmailContent, Settings], CompiledEmail]] = {
    "full": render_email,
}

HTML_POST = f"""<!doctype html>
<html lang="en"><head><title>Walking Through Winter · Clinic blog</title></head>
<body><article>
<h1>Walking Through Winter</h1>
<p>Short days make it harder to get outside. A few small changes help the walk happen anyway.</p>
<figure><img src="{IMAGE_HOST}/winter-path.png" alt="A snowy path between bare trees" width="1200" height="600">
<figcaption>A path near the clinic in January</figcaption></figure>
<h2>Dress for ten minutes</h2>
<p>You only need to be warm for the first <strong>ten minutes</strong>; after that the walk warms you.
See our <a href="https://clinic.example.org/guides/winter">winter guide</a> for a checklist.</p>
<blockquote><p>The best walk is the one you take.</p></blockquote>
<ul><li>A hat and gloves</li><li>Shoes with grip</li><li>A reflective band after dark</li></ul>
<img src="{IMAGE_HOST}/gloves.png" alt="Warm gloves on a wooden bench" width="800" height="500">
<h2>Walk with someone</h2>
<p>A friend makes it harder to skip the walk and easier to enjoy it.</p>
</article></body></html>"""


def _post_content(post: ParsedPost) -> EmailContent:
    return EmailContent(subject="This month: small steps outside", preheader="Three easy ways to keep walking "
                        "this month, whatever the weather.", title=post.title,
                        blocks=[b.to_dict() for b in post.blocks], published_at=post.published_at,
                        reading_minutes=reading_minutes(post.blocks))


def text_post() -> EmailContent:
    """The project's seed-shaped sample post (the shape the clinic's blog posts arrive in)."""
    return _post_content(parse_text(SAMPLE_POST.read_text(encoding="utf-8"), source_name=SAMPLE_POST.name))


def html_post() -> EmailContent:
    """An HTML post with two images, a caption, a link, a quote and a list."""
    return _post_content(parse_html(HTML_POST, source_name="winter.html", base_url="https://clinic.example.org/"))


POSTS: dict[str, Callable[[], EmailContent]] = {"text": text_post, "html": html_post}


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG written with the standard library."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def serve_images(page: Any) -> None:
    """Answer the sample images' requests in the browser itself (no network in tests)."""
    images = {"winter-path.png": png(1200, 600, (120, 150, 170)), "gloves.png": png(800, 500, (170, 120, 90)),
              "logo.png": png(320, 80, (30, 60, 58))}

    def fulfil(route: Any) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        if name in images:
            route.fulfill(status=200, content_type="image/png", body=images[name])
        else:
            route.fulfill(status=404, body=b"")

    page.route(f"{IMAGE_HOST}/**", fulfil)
