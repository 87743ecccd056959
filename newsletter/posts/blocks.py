"""The structured form every imported post is stored in.

A post is a list of blocks, not a blob of HTML: the email layout, the plain-text part and any later
web page each render the same blocks their own way. Inline content (``html`` fields) is a small,
sanitised subset of HTML -- see ``INLINE_TAGS`` -- so a block can carry emphasis, links and footnote
markers without letting markup from the source through.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from html import unescape
from typing import Any, Literal

import nh3

# The only inline markup a block may contain. Everything else is stripped (its text kept).
INLINE_TAGS = {"a", "em", "strong", "b", "i", "sup", "sub", "code", "br"}
INLINE_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto", "tel"}
MAX_URL_CHARS = 2000  # the longest link a block may hold: what the links table stores for tracking
MAX_TITLE_CHARS = 500  # the posts table's title and author columns
MAX_AUTHOR_CHARS = 300
# Characters XML 1.0 cannot carry (C0 controls but tab and newlines, U+FFFE, U+FFFF): a source may
# hold them, but lxml, MJML and mail clients refuse them, so a block never does.
_NOT_XML_RE = re.compile("[\x00-\x08\x0e-\x1f\ufffe\uffff]")
_NOT_XML_SPACE_RE = re.compile("[\x0b\x0c]")  # vertical tab and form feed separate words

BlockType = Literal["heading", "paragraph", "quote", "list", "image", "references", "divider"]


def xml_text(text: str) -> str:
    """``text`` without the characters XML cannot carry (vertical tab and form feed become spaces)."""
    return _NOT_XML_RE.sub("", _NOT_XML_SPACE_RE.sub(" ", text))


def clean_inline(html: str) -> str:
    """Sanitise inline HTML to the subset blocks may hold (no scripts, handlers, styles)."""
    html = xml_text(html)
    return nh3.clean(
        html,
        tags=INLINE_TAGS,
        attributes=INLINE_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=None,
        strip_comments=True,
    ).strip()


@dataclass
class Block:
    """One block of a post.

    - heading:    ``level`` (2-4), ``html``
    - paragraph:  ``html``
    - quote:      ``html`` (may contain ``<br>``), optional ``cite``
    - list:       ``ordered``, ``items`` (list of inline html strings)
    - image:      ``src`` (absolute http(s) URL), ``alt``, optional ``caption``, ``href``
    - references: ``items`` (list of inline html strings, numbered from 1 in order)
    - divider
    """

    type: BlockType
    html: str = ""
    level: int | None = None
    ordered: bool | None = None
    items: list[str] | None = None
    src: str | None = None
    alt: str | None = None
    caption: str | None = None
    href: str | None = None
    cite: str | None = None

    def __post_init__(self) -> None:
        # Plain-text fields come straight from the source: keep out what XML and PostgreSQL refuse.
        self.alt, self.caption, self.cite = (xml_text(v) if v else v for v in (self.alt, self.caption, self.cite))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "") or k == "type"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Block":
        return cls(**data)


@dataclass
class ParsedPost:
    """What an importer returns: a post before it is stored."""

    title: str
    blocks: list[Block]
    excerpt: str = ""
    author: str | None = None
    published_at: datetime | None = None  # timezone-aware
    source_url: str | None = None
    canonical_url: str | None = None
    tags: list[str] = field(default_factory=list)
    source_format: str = "text"
    # What the import changed that staff should know (a removed javascript: link): shown, not stored.
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Plain text from the source fits where it is stored: no characters XML or PostgreSQL refuse,
        # and an author no longer than its column (titles are checked by the importers, which say where).
        self.title, self.excerpt = xml_text(self.title), xml_text(self.excerpt)
        self.tags = [t for t in (xml_text(t) for t in self.tags) if t]
        if self.author:
            self.author = excerpt_from(xml_text(self.author), MAX_AUTHOR_CHARS) or None

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "excerpt": self.excerpt,
            "author": self.author,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "source_url": self.source_url,
            "canonical_url": self.canonical_url,
            "tags": list(self.tags),
            "source_format": self.source_format,
            "blocks": [b.to_dict() for b in self.blocks],
        }


# --- small helpers shared by the importers -------------------------------------------------------

_SUP_RE = re.compile(r"<sup>.*?</sup>", re.S)
_BR_RE = re.compile(r"<br\s*/?>", re.I)
_TAG_RE = re.compile(r"<[^>]*>")
WORDS_PER_MINUTE = 230


def inline_text(html: str, *, markers: bool = True) -> str:
    """Plain text of an inline html string (for excerpts, word counts and comparisons).

    ``markers=False`` leaves footnote markers (``<sup>``) out, so "health.<sup>1</sup>" reads "health.".
    """
    if not markers:
        html = _SUP_RE.sub("", html)
    text = _TAG_RE.sub("", _BR_RE.sub(" ", html))
    return " ".join(unescape(text).split())


def excerpt_from(text: str, limit: int = 200) -> str:
    """``text`` cut to at most ``limit`` characters on a word boundary, with an ellipsis if cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[: limit + 1] else text[:limit]
    return cut.rstrip(" ,;:-\u2013\u2014") + "\u2026"


def _block_words(block: Block) -> int:
    parts = [block.html, block.caption or "", block.cite or "", *(block.items or [])]
    return sum(len(inline_text(p, markers=False).split()) for p in parts)


def reading_minutes(blocks: list[Block]) -> int:
    """Estimated reading time in whole minutes (words / 230, rounded half up, at least 1)."""
    words = sum(_block_words(b) for b in blocks)
    return max(1, math.floor(words / WORDS_PER_MINUTE + 0.5))
