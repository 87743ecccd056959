"""Issue layouts: how a post (or several) is laid out in an email.

- ``full``: the whole post (what every issue was before layouts existed);
- ``teaser``: the title, the hero image, the first whole paragraphs and "Continue reading on our site";
- ``digest``: several posts as cards (title, image, excerpt, "Read more").

Every layout has the header (logo or name), the button as a text link near the top and as a button
after the post, and the "Read on our site" link whenever the post has an address. This module is the
one home of the layout names and of what each layout takes from a post; the templates draw it.
"""

from __future__ import annotations

import re
from html import escape
from dataclasses import dataclass
from typing import Any, Protocol

from newsletter.errors import InputError
from newsletter.posts.blocks import excerpt_from, inline_text

FULL, TEASER, DIGEST = "full", "teaser", "digest"
LAYOUTS = (FULL, TEASER, DIGEST)
LAYOUT_LABELS = {
    FULL: "Full post: the whole post in the email",
    TEASER: "Teaser: the first paragraphs, then “Continue reading on our site”",
    DIGEST: "Digest: several posts as cards, each with “Read more”",
}
# What a teaser keeps: whole paragraphs from the start, at most this many, and no more words than
# this once the first is in (a first paragraph longer than that is kept whole: never cut mid-thought).
TEASER_PARAGRAPHS = 2
TEASER_WORDS = 120
CARD_EXCERPT_CHARS = 220
MAX_DIGEST_POSTS = 12  # far past a readable digest, and well under Gmail's clipping limit
# A hero choice: None takes the post's first image, NO_HERO none; anything else is an image's src.
NO_HERO = "none"
MAX_HERO_ALT = 300
_SUP_RE = re.compile(r"<sup>.*?</sup>", re.S | re.I)


class PostLike(Protocol):
    """What a layout reads of a post (``newsletter.models.Post``)."""

    title: str
    excerpt: str
    blocks: list[dict[str, Any]]
    canonical_url: str | None
    source_url: str | None


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    return layout


def read_url(post: PostLike) -> str | None:
    """Where the post can be read on the clinic's site: its canonical address, else the page it was
    imported from; None when it has neither (a text pasted in without ``--url``)."""
    for url in (post.canonical_url, post.source_url):
        if url and url.lower().startswith(("http://", "https://")):
            return url
    return None


def images_of(post: PostLike) -> list[dict[str, str]]:
    """The post's images (src and alt) in order: the hero may be any of them."""
    return [{"src": b.get("src") or "", "alt": b.get("alt") or ""}
            for b in post.blocks if b.get("type") == "image" and b.get("src")]


def hero_of(post: PostLike, choice: str | None, alt: str | None = None) -> dict[str, str] | None:
    """The hero image (src, alt) for ``choice`` (see ``NO_HERO``), with staff's own ``alt`` if given.
    A chosen image the post no longer has gives no hero rather than a broken one."""
    if choice == NO_HERO:
        return None
    images = images_of(post)
    image = images[0] if choice is None and images else next((i for i in images if i["src"] == choice), None)
    if image is None:
        return None
    return {"src": image["src"], "alt": alt if alt and alt.strip() else image["alt"]}


def check_hero(post: PostLike, choice: str | None) -> str | None:
    """A hero choice staff may store for ``post``: first image (None), none, or one of its images."""
    if choice is None or choice == NO_HERO:
        return choice
    if choice not in {i["src"] for i in images_of(post)}:
        raise InputError(f"the hero must be one of the post's images, {NO_HERO!r}, or left to the first image; "
                         f"{choice[:80]!r} is not an image of post {getattr(post, 'id', '')}".rstrip())
    return choice


def without_hero(blocks: list[dict[str, Any]], hero: dict[str, str] | None) -> list[dict[str, Any]]:
    """The post's blocks without the image shown as the hero (it is not shown twice)."""
    if hero is None:
        return blocks
    for n, block in enumerate(blocks):
        if block.get("type") == "image" and block.get("src") == hero["src"]:
            return blocks[:n] + blocks[n + 1:]
    return blocks


def _words(block: dict[str, Any]) -> int:
    return len(inline_text(block.get("html", ""), markers=False).split())


def teaser_blocks(post: PostLike) -> list[dict[str, Any]]:
    """The first whole paragraphs of the post (see ``TEASER_PARAGRAPHS``, ``TEASER_WORDS``). Headings,
    images and dividers before the first paragraph are passed over; a list, quote or heading after it
    ends the teaser, so a list or quote is never cut. Footnote markers are left out: the references
    are on the site. A post with no paragraph gives its excerpt as one."""
    kept: list[dict[str, Any]] = []
    words = 0
    for block in post.blocks:
        kind = block.get("type")
        if kind != "paragraph":
            if kept or kind in ("list", "quote", "references"):
                break
            continue
        count = _words(block)
        if kept and (len(kept) >= TEASER_PARAGRAPHS or words + count > TEASER_WORDS):
            break
        kept.append({**block, "html": _SUP_RE.sub("", block.get("html", "")).strip()})
        words += count
    if not kept and post.excerpt.strip():
        kept.append({"type": "paragraph", "html": escape(post.excerpt.strip())})
    return kept


@dataclass(frozen=True)
class Card:
    """One post of a digest as its card shows it."""

    title: str
    url: str | None
    excerpt: str
    image: dict[str, str] | None


def card_of(post: PostLike) -> Card:
    """A digest card: the title, the first image if any, the excerpt (else the first paragraph)."""
    excerpt = post.excerpt.strip() or next(
        (inline_text(b.get("html", ""), markers=False) for b in post.blocks if b.get("type") == "paragraph"), "")
    return Card(post.title, read_url(post), excerpt_from(excerpt, CARD_EXCERPT_CHARS), hero_of(post, None))
