"""RSS / Atom feeds -> one post per entry.

feedparser does the tolerant XML work (and already strips scripts from entry HTML); each entry's
HTML then goes through the same ``html_to_blocks`` as web pages. Entries carry a stable ``key`` so
the caller can import only the ones it has not seen.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import io
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from newsletter.errors import InputError
from newsletter.posts.blocks import MAX_TITLE_CHARS, Block, ParsedPost, excerpt_from, inline_text, xml_text
from newsletter.posts.html import Removed, absolute_url, html_to_blocks, removed_warnings
from newsletter.posts.structure import shape

HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_KEY_CHARS = 2000  # the posts table's feed_entry_key column
# An entity defined through other entities expands exponentially (the "billion laughs"): expat stops
# it only after megabytes of tiny callbacks, seconds of work per feed. No feed needs one; character
# references and the five predefined entities inside a definition are harmless.
_NESTED_ENTITY_RE = re.compile(
    rb"""<!ENTITY\s+(?:%\s+)?[^\s"'>]+\s+(?:"[^"]*|'[^']*)&(?!#|(?:amp|lt|gt|quot|apos);)""")


@dataclass
class FeedEntry:
    key: str  # entry id, else link, else a hash of title + date: stable across fetches
    post: ParsedPost


def _when(entry: Any) -> datetime | None:
    parsed: time.struct_time | None = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    try:
        return datetime(*parsed[:6], tzinfo=UTC)  # feedparser normalises these to UTC
    except ValueError:  # normalised past the year 9999 ("9999-12-31T23:59:59-14:00"): no usable date
        return None


def _content_html(entry: Any) -> str:
    """The entry's body as HTML: full content (HTML preferred) over the summary."""
    contents = entry.get("content") or []
    chosen = next((c for c in contents if c.get("type") in HTML_TYPES), contents[0] if contents else None)
    if chosen is None:
        value = entry.get("summary") or ""
        kind = (entry.get("summary_detail") or {}).get("type", "text/html")
    else:
        value, kind = chosen.get("value") or "", chosen.get("type") or "text/html"
    if kind in HTML_TYPES:
        return value
    # Plain text: blank lines separate paragraphs.
    paras = [p.strip() for p in value.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(f"<p>{htmllib.escape(p)}</p>" for p in paras)


def _entry_post(entry: Any, feed_url: str | None) -> ParsedPost | None:
    link = absolute_url(entry.get("link"), feed_url, {"http", "https"})  # not javascript:, file: ...
    removed: list[Removed] = []
    blocks: list[Block] = html_to_blocks(_content_html(entry), base_url=link or feed_url, removed=removed)
    first_para = next((b.html for b in blocks if b.type == "paragraph"), "")
    summary = inline_text(entry.get("summary") or "") if entry.get("content") else ""
    excerpt = excerpt_from(summary or inline_text(first_para, markers=False))
    raw_title = entry.get("title") or ""
    is_html = (entry.get("title_detail") or {}).get("type") in HTML_TYPES
    title = excerpt_from(xml_text(inline_text(raw_title) if is_html else raw_title), MAX_TITLE_CHARS)
    if not title:
        if not excerpt:
            return None  # nothing to import: no title and no text
        title = excerpt_from(excerpt, 80)
    blocks = shape(title, blocks)
    tags = []
    for tag in entry.get("tags") or []:
        term = (tag.get("term") or "").strip()
        if term and term not in tags:
            tags.append(term)
    return ParsedPost(
        title=title,
        blocks=blocks,
        excerpt=excerpt,
        author=(entry.get("author") or "").strip() or None,
        published_at=_when(entry),
        source_url=link,
        canonical_url=link,
        tags=tags,
        source_format="feed",
        warnings=removed_warnings(link or feed_url or "<feed>", removed),
    )


def _key(entry: Any, post: ParsedPost) -> str:
    for field in ("id", "link"):
        value = str(entry.get(field) or "")
        if value and len(value) <= MAX_KEY_CHARS and value == xml_text(value):
            return value
        if value:  # too long (or unstorable) for the key column: its digest is as stable
            return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    stamp = post.published_at.isoformat() if post.published_at else ""
    return "sha256:" + hashlib.sha256(f"{post.title}\n{stamp}".encode()).hexdigest()


def parse_feed(data: bytes, *, source_name: str = "<feed>", url: str | None = None) -> tuple[str, list[FeedEntry]]:
    """(feed title, entries oldest first). A feed with no entries gives an empty list."""
    if _NESTED_ENTITY_RE.search(data.replace(b"\x00", b"")):  # without NULs, UTF-16 reads as ASCII
        raise InputError(f"{source_name}: not a usable feed (it defines XML entities through other entities, "
                         "which can expand without end)")
    headers = {"content-location": url} if url else None  # base for relative links in entries
    # A stream, never raw bytes: feedparser would treat bytes that name a file as a path to open.
    parsed = feedparser.parse(io.BytesIO(data), response_headers=headers)
    # No entries and no channel/feed data (or no root element at all): not a feed, or too broken.
    if not parsed.entries and (not parsed.get("version") or (parsed.get("bozo") and not parsed.feed)):
        exc = parsed.get("bozo_exception")
        reason = f"{exc}" if exc else "no <rss>, <feed> or <rdf:RDF> element"
        raise InputError(f"{source_name}: not an RSS or Atom feed ({reason})")
    feed_title = excerpt_from(xml_text(inline_text(parsed.feed.get("title") or "")), MAX_TITLE_CHARS) or source_name
    feed_link = parsed.feed.get("link") or url

    entries: list[FeedEntry] = []
    seen: set[str] = set()
    for entry in parsed.entries:
        post = _entry_post(entry, feed_link)
        if post is None:
            continue
        key = _key(entry, post)
        if key not in seen:  # a feed listing one entry twice: keep the first
            seen.add(key)
            entries.append(FeedEntry(key=key, post=post))
    # Feeds list newest first; sort by date when every entry has one, else just reverse.
    entries.reverse()
    if all(e.post.published_at for e in entries):
        entries.sort(key=lambda e: e.post.published_at)  # type: ignore[arg-type,return-value]
    return feed_title, entries
