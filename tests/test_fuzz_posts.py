"""Fuzzing the post importers (text, Markdown, HTML, feeds) with hostile and broken sources.

For every generated source: the importer either returns a post or raises InputError (a clear
one-line error), within a time limit; the blocks are the kinds the renderer accepts, well formed;
nothing executable survives (no script, no event handler, no javascript:/data: link); the same
content parsed twice is the same post, and imported twice is stored once. Then the whole path runs:
import -> issue (compiled once) -> preflight, and the compiled email is checked the same way.
"""

from __future__ import annotations

import itertools
import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import lxml.etree
import lxml.html
import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.errors import InputError
from newsletter.issues import create_issue, preflight
from newsletter.models import Feed, Post
from newsletter.posts.blocks import (
    INLINE_ATTRIBUTES,
    INLINE_TAGS,
    MAX_URL_CHARS,
    Block,
    BlockType,
    ParsedPost,
    inline_text,
    xml_text,
)
from newsletter.posts.feed import parse_feed
from newsletter.posts.html import parse_html
from newsletter.posts.markdown import parse_markdown
from newsletter.posts.service import import_post, poll_feed
from newsletter.posts.source import RawSource
from newsletter.posts.text import parse_text
from tests.fuzzing import fuzz_settings, time_limit
from tests.post_strategies import (
    SCRIPT_MARKER,
    feed_document,
    html_page,
    markdown_document,
    seed_shaped_text,
)

BLOCK_TYPES = set(get_args(BlockType))
LINK_SCHEMES = {"http", "https", "mailto", "tel"}
EXECUTABLE_SCHEMES = ("javascript:", "vbscript:", "data:", "livescript:")
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "poster", "xlink:href", "srcset", "cite"}
ACTIVE_ELEMENTS = {"script", "iframe", "object", "embed", "form", "frame", "frameset", "base", "applet", "svg", "math"}
SECRET = "XXE-SECRET-CONTENT"
FEED_NUMBERS = itertools.count(1)


# --- checks ---------------------------------------------------------------------------------------


class _Markup(HTMLParser):
    """Every start tag with its (unescaped) attributes, and anything that is not a tag or text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.other: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_comment(self, data: str) -> None:
        self.other.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.other.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.other.append(f"<?{data}>")


def check_url(value: str | None, schemes: set[str], where: str) -> None:
    squashed = re.sub(r"[\x00-\x20\x7f]", "", value or "").lower()
    assert not squashed.startswith(EXECUTABLE_SCHEMES), f"{where}: executable URL {value!r}"
    parts = urlsplit(value or "")
    assert parts.scheme in schemes, f"{where}: URL {value!r} is not absolute {'/'.join(sorted(schemes))}"
    if parts.scheme in {"http", "https"}:
        assert parts.netloc, f"{where}: URL {value!r} has no host"


def check_inline(html: str, where: str) -> None:
    """Inline html holds only the tags and attributes blocks allow, and links only with safe schemes."""
    assert isinstance(html, str), f"{where}: not text"
    assert "<script" not in html.lower(), f"{where}: a script survived: {html!r}"
    parser = _Markup()
    parser.feed(html)
    parser.close()
    assert not parser.other, f"{where}: {parser.other[0]!r} in inline html"
    for tag, attrs in parser.tags:
        assert tag in INLINE_TAGS, f"{where}: <{tag}> is not inline markup blocks may hold: {html!r}"
        for name, value in attrs:
            assert name in INLINE_ATTRIBUTES.get(tag, set()), f"{where}: attribute {name!r} on <{tag}>: {html!r}"
            if name == "href":
                check_url(value, LINK_SCHEMES, where)


def check_blocks(blocks: list[Block], *, may_be_empty: bool = False) -> None:
    """Blocks the renderer accepts: known types with the fields each needs, sanitised inline html."""
    assert blocks or may_be_empty, "a post without blocks"
    for n, block in enumerate(blocks):
        where = f"block {n} ({block.type})"
        assert block.type in BLOCK_TYPES, f"{where}: unknown type"
        assert Block.from_dict(block.to_dict()).to_dict() == block.to_dict(), f"{where}: does not survive storing"
        check_inline(block.html, where)
        for i, item in enumerate(block.items or []):
            check_inline(item, f"{where} item {i}")
        if block.type == "heading":
            assert block.level in (2, 3, 4), f"{where}: level {block.level}"
        if block.type in ("heading", "paragraph", "quote"):
            assert inline_text(block.html), f"{where}: no text"
        if block.type in ("list", "references"):
            assert block.items and all(inline_text(i) for i in block.items), f"{where}: empty items {block.items}"
        if block.type == "list":
            assert isinstance(block.ordered, bool), f"{where}: ordered is {block.ordered!r}"
        if block.type == "image":
            check_url(block.src, {"http", "https"}, f"{where} src")
            assert isinstance(block.alt, str), f"{where}: alt is {block.alt!r}"
            if block.href is not None:
                check_url(block.href, LINK_SCHEMES, f"{where} href")
        if block.type == "divider":
            assert not block.html and not block.items, f"{where}: a divider with content"


def check_post(post: ParsedPost, *, may_be_empty: bool = False) -> None:
    assert isinstance(post, ParsedPost)
    assert post.title and post.title.strip(), "a post without a title"
    check_blocks(post.blocks, may_be_empty=may_be_empty)
    assert post.published_at is None or post.published_at.tzinfo is not None, "a naive published_at"
    for name in ("canonical_url", "source_url"):
        if getattr(post, name) is not None:
            check_url(getattr(post, name), {"http", "https"}, name)
    plain = [post.title, post.excerpt, post.author or "", *post.tags]
    plain += [v or "" for b in post.blocks for v in (b.alt, b.caption, b.cite)]
    assert all(xml_text(v) == v for v in plain), "a control character in plain text"
    check_storable(post)


def check_storable(post: ParsedPost) -> None:
    """Fits the columns it is stored in on every backend: PostgreSQL refuses what SQLite takes
    silently (text longer than a column, NUL characters in text or JSON)."""
    data = post.to_dict()
    assert "\\u0000" not in json.dumps(data), "a NUL character (PostgreSQL cannot store it)"
    for name in ("title", "author", "source_url", "canonical_url"):
        limit = Post.__table__.c[name].type.length
        assert len(data[name] or "") <= limit, f"{name} is {len(data[name])} characters; the column holds {limit}"
    for block in post.blocks:
        for html in [block.html, *(block.items or [])]:
            for href in re.findall(r'href="([^"]*)"', html):
                assert len(unescape(href)) <= MAX_URL_CHARS, f"a link of {len(href)} characters"


def check_email_html(html: str) -> None:
    """The compiled email runs nothing: no active elements, no handlers, no executable URLs."""
    doc = lxml.html.document_fromstring(html)
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        assert el.tag.lower() not in ACTIVE_ELEMENTS, f"<{el.tag}> in the compiled email"
        for name, value in el.attrib.items():
            assert not name.lower().startswith("on"), f"handler {name}={value!r} on <{el.tag}> in the email"
            if name.lower() in URL_ATTRIBUTES:
                squashed = re.sub(r"[\x00-\x20\x7f]", "", value).lower()
                assert not squashed.startswith(EXECUTABLE_SCHEMES), f"{name}={value!r} in the email"


def visible_text(html: str) -> str:
    """The page's text outside scripts and styles, as the parser sees it."""
    try:
        doc = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return ""
    return " ".join(doc.xpath("//text()[not(ancestor::script or ancestor::style)]"))


def parsed(parse: Any, source: Any, **kwargs: Any) -> ParsedPost | None:
    """The post, or None for a clear InputError (one line, naming the source)."""
    try:
        with time_limit():
            return parse(source, **kwargs)
    except InputError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"an unclear error: {message!r}"
        assert message.startswith(kwargs.get("source_name", "")), f"the error does not name the source: {message!r}"
        return None


def same_twice(parse: Any, source: Any, first: ParsedPost | None, **kwargs: Any) -> None:
    again = parsed(parse, source, **kwargs)
    assert (again.to_dict() if again else None) == (first.to_dict() if first else None), "not idempotent"


class Pipeline:
    """The settings and database the whole path runs against (a short repr for failure reports)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings, self.db = settings, db

    def __repr__(self) -> str:
        return "Pipeline()"


@pytest.fixture
def pipeline(settings: Settings, db: Database) -> Pipeline:
    return Pipeline(settings, db)


def whole_path(pipeline: Pipeline, data: bytes, fmt: str) -> None:
    """import (twice: stored once) -> issue -> preflight, as `posts import` and `issues create` do."""
    settings = pipeline.settings
    raw = RawSource(name="fuzzed", data=data, content_type=None, url=None)
    with time_limit(), pipeline.db.session() as session:
        try:
            first = import_post(session, raw, fmt)
        except InputError:
            return
        again = import_post(session, raw, fmt)
        assert not again.created and again.post.id == first.post.id, "the same content stored twice"
        try:
            issue = create_issue(session, settings, first.post.id)
        except InputError as exc:  # e.g. a title too long to be a subject: the user is told
            assert "\n" not in str(exc)
            return
        check_email_html(issue.html)
        preflight(issue, settings)


# --- the importers --------------------------------------------------------------------------------


@pytest.mark.fuzz
@fuzz_settings
@given(text=seed_shaped_text())
def test_text_importer_survives_hostile_text(text: str, pipeline: Pipeline) -> None:
    post = parsed(parse_text, text, source_name="fuzzed.txt")
    if post is not None:
        check_post(post)
    same_twice(parse_text, text, post, source_name="fuzzed.txt")
    whole_path(pipeline, text.encode("utf-8"), "text")


@pytest.mark.fuzz
@fuzz_settings
@given(text=markdown_document())
def test_markdown_importer_survives_hostile_markdown(text: str, pipeline: Pipeline) -> None:
    post = parsed(parse_markdown, text, source_name="fuzzed.md")
    if post is not None:
        check_post(post)
    same_twice(parse_markdown, text, post, source_name="fuzzed.md")
    whole_path(pipeline, text.encode("utf-8"), "markdown")


@pytest.mark.fuzz
@fuzz_settings
@given(html=html_page(), base=st.sampled_from([None, "https://example.org/blog/post", "javascript:alert(1)"]))
def test_html_importer_survives_hostile_html(html: str, base: str | None, pipeline: Pipeline) -> None:
    post = parsed(parse_html, html, source_name="fuzzed.html", base_url=base)
    if post is not None:
        check_post(post)
        if SCRIPT_MARKER not in visible_text(html):  # ("<?<script>x" is a bogus comment, then text)
            assert SCRIPT_MARKER not in json.dumps(post.to_dict()), "text from inside a <script> or <style> got out"
    same_twice(parse_html, html, post, source_name="fuzzed.html", base_url=base)
    whole_path(pipeline, html.encode("utf-8"), "html")


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local file an XML external entity would point at: its content must never reach a post."""
    path = tmp_path_factory.mktemp("xxe") / "secret.txt"
    path.write_text(SECRET, encoding="utf-8")
    return path


@pytest.mark.fuzz
@pytest.mark.filterwarnings("ignore:To avoid breaking existing software:DeprecationWarning")  # feedparser's own
@fuzz_settings
@given(data=feed_document())
def test_feed_parser_survives_hostile_feeds(data: bytes, secret_file: Path, pipeline: Pipeline) -> None:
    data = data.replace(b"/nonexistent", str(secret_file).encode())
    try:
        with time_limit():
            title, entries = parse_feed(data, source_name="fuzzed.xml", url="https://example.org/feed")
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzzed.xml: ")
        entries, title = [], None
    assert SECRET not in json.dumps([title] + [e.post.to_dict() for e in entries]), "an external entity was read"
    assert title is None or (len(title) <= Feed.__table__.c.title.type.length and "\x00" not in title)
    for entry in entries:
        assert entry.key and len(entry.key) <= Post.__table__.c.feed_entry_key.type.length, "a key unfit to store"
        assert "\x00" not in entry.key
        check_post(entry.post, may_be_empty=True)
    assert len({e.key for e in entries}) == len(entries), "one entry listed twice"
    with time_limit():
        again = parse_feed(data, source_name="fuzzed.xml", url="https://example.org/feed")[1] if entries else []
    assert [(e.key, e.post.to_dict()) for e in again] == [(e.key, e.post.to_dict()) for e in entries]

    # The whole path: poll (twice: nothing new the second time), then an issue of the newest post.
    raw = RawSource(name="https://example.org/feed", data=data, content_type=None, url="https://example.org/feed")
    settings = pipeline.settings
    with time_limit(), pipeline.db.session() as session:
        feed = Feed(url=f"https://example.org/feed/{next(FEED_NUMBERS)}")
        session.add(feed)
        session.flush()
        result = poll_feed(session, feed, settings, raw)
        if entries:
            assert result.error is None and result.seen == len(entries)
        assert not poll_feed(session, feed, settings, raw).new_posts, "a second poll imported again"
        if result.new_posts:
            try:
                issue = create_issue(session, settings, result.new_posts[-1].id)
            except InputError as exc:
                assert "\n" not in str(exc)
                return
            check_email_html(issue.html)
            preflight(issue, settings)
