"""Emails to judge the look by: the seed-shaped text post (tests/fixtures/posts/clinic-post.txt) and an
HTML post with images, each compiled in every layout the code offers, plus images a browser can load
without a network (Playwright answers requests to the images' https host)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from newsletter.compose.compile import content_for_post
from newsletter.compose.layouts import DIGEST, FULL, TEASER, card_of
from newsletter.compose.layouts import LAYOUTS as ALL_LAYOUTS
from newsletter.compose.render import CompiledEmail, EmailContent, render_email
from newsletter.config import Settings
from newsletter.posts.blocks import ParsedPost, reading_minutes
from newsletter.posts.html import parse_html
from newsletter.posts.text import parse_text
from tests.conftest import SAMPLE_POST

IMAGE_HOST = "https://images.example.org"


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


SUBJECT = "This month: small steps outside"
PREHEADER = "Three easy ways to keep walking this month, whatever the weather."


def _stored(post: ParsedPost, url: str) -> SimpleNamespace:
    """The post as a layout reads a stored one (``newsletter.compose.layouts.PostLike``), with an
    address on the clinic's site so the teaser and the digest have somewhere to link."""
    return SimpleNamespace(title=post.title, excerpt=post.excerpt, blocks=[b.to_dict() for b in post.blocks],
                           canonical_url=url, source_url=None, published_at=post.published_at,
                           reading_minutes=reading_minutes(post.blocks), language=None)


def text_post() -> SimpleNamespace:
    """The project's seed-shaped sample post (the shape the clinic's blog posts arrive in)."""
    parsed = parse_text(SAMPLE_POST.read_text(encoding="utf-8"), source_name=SAMPLE_POST.name)
    return _stored(parsed, "https://clinic.example.org/blog/small-steps")


def html_post() -> SimpleNamespace:
    """An HTML post with two images, a caption, a link, a quote and a list."""
    parsed = parse_html(HTML_POST, source_name="winter.html", base_url="https://clinic.example.org/")
    return _stored(parsed, "https://clinic.example.org/blog/winter")


POSTS: dict[str, Callable[[], SimpleNamespace]] = {"text": text_post, "html": html_post}


def _single(layout: str) -> Callable[[SimpleNamespace, Settings], CompiledEmail]:
    return lambda post, settings: render_email(content_for_post(post, SUBJECT, PREHEADER, layout=layout), settings)


def _digest(post: SimpleNamespace, settings: Settings) -> CompiledEmail:
    """A three-post digest: ``post``, then each sample post (a clinic's digest may repeat none, but
    the layout does not care)."""
    posts = [post, *(make() for make in POSTS.values())]
    content = EmailContent(subject=SUBJECT, preheader=PREHEADER, title=SUBJECT, blocks=[], layout=DIGEST,
                           cards=[card_of(p) for p in posts], top_link=True)
    return render_email(content, settings)


# Every layout an issue can be compiled in (newsletter.compose.layouts.LAYOUTS), each as a way to
# compile a post in it as an issue would be: every look test (SpamAssassin, screenshots) covers each.
LAYOUTS: dict[str, Callable[[SimpleNamespace, Settings], CompiledEmail]] = {
    FULL: _single(FULL), TEASER: _single(TEASER), DIGEST: _digest}
assert set(LAYOUTS) == set(ALL_LAYOUTS), "a layout the code offers is missing from the look tests"


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
