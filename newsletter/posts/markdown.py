"""Markdown (with optional YAML front matter) -> a post.

markdown-it renders to HTML with raw HTML allowed, and ``html_to_blocks`` turns that into blocks:
the one sanitising path is shared with HTML pages and feeds, so a ``<script>`` in Markdown is
dropped exactly as it would be in a web page. Footnotes become <sup>n</sup> and a references block.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from newsletter import plain_yaml
from newsletter.errors import InputError
from newsletter.posts.blocks import MAX_TITLE_CHARS, ParsedPost, excerpt_from, inline_text, xml_text
from newsletter.posts.html import Removed, absolute_url, html_to_blocks, removed_warnings
from newsletter.posts.structure import same_title, shape
from newsletter.posts.text import parse_date

_FRONT_OPEN_RE = re.compile(r"^---[ \t]*\n")
_FRONT_CLOSE_RE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.M)


def _renderer() -> MarkdownIt:
    try:  # linkify needs the optional linkify-it-py package; plain autolinks work without it
        import linkify_it  # noqa: F401

        md = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable("linkify")
    except ImportError:
        md = MarkdownIt("commonmark", {"html": True})
    md.use(footnote_plugin)
    # markdown-it leaves a javascript:/data:/vbscript:/file: link as its literal source text
    # ("[x](javascript:...)"); parsed as a link instead, html_to_blocks removes it, keeps its text and
    # reports it, the same way for Markdown and HTML.
    md.validateLink = lambda url: True
    # Footnotes as plain markers and a bare list: html_to_blocks turns the section into references.
    md.add_render_rule("footnote_ref", lambda self, tokens, idx, options, env:
                       f"<sup>{tokens[idx].meta['id'] + 1}</sup>")
    md.add_render_rule("footnote_block_open", lambda self, tokens, idx, options, env:
                       '<section class="footnotes"><ol>\n')
    md.add_render_rule("footnote_anchor", lambda self, tokens, idx, options, env: "")
    return md


def _split_front_matter(text: str, source_name: str) -> tuple[dict[str, Any], str]:
    """(front matter, the Markdown after it)."""
    opening = _FRONT_OPEN_RE.match(text)
    if opening is None:
        return {}, text
    rest = text[opening.end():]
    close = _FRONT_CLOSE_RE.search(rest)
    if close is None:
        raise InputError(f"{source_name}: the front matter opened by --- on line 1 is never closed "
                         "(add a --- line after it)")
    raw = rest[:close.start()]
    try:
        data = plain_yaml.load(raw)
    except yaml.YAMLError as exc:
        # Marks count from 0 inside the front matter; +2 for 1-based lines and the opening ---.
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 2}" if mark is not None else "the front matter"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
            problem += f" ({context} on line {context_mark.line + 2})"
        raise InputError(f"{source_name}: invalid front matter at {where}: {problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{source_name}: the front matter must be `key: value` lines "
                         f"(found a {type(data).__name__})")
    return {str(k).lower(): v for k, v in data.items()}, rest[close.end():].lstrip("\n")


def _as_datetime(value: Any, source_name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    parsed = parse_date(str(value))
    if parsed is None:
        raise InputError(f"{source_name}: front matter `date: {value}` is not a date "
                         "(use e.g. 2024-05-03)")
    return parsed


def _as_tags(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    tags: list[str] = []
    for item in items:
        tag = str(item).strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("name")
    elif isinstance(value, list):
        value = ", ".join(str(v.get("name", "") if isinstance(v, dict) else v) for v in value)
    text = " ".join(xml_text(str(value or "")).split())
    return text or None


def _take_h1(tokens: list[Token], md: MarkdownIt, env: dict[str, Any]) -> tuple[str | None, list[Token]]:
    """The first `# ` heading's text, and the tokens without it."""
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.tag == "h1":
            html = md.renderer.render(tokens[i + 1: i + 2], md.options, env)
            return inline_text(html, markers=False) or None, tokens[:i] + tokens[i + 3:]
    return None, tokens


def parse_markdown(text: str, *, source_name: str = "<markdown>", title: str | None = None) -> ParsedPost:
    """Parse Markdown, with optional YAML front matter, into a post. ``title``, when given, wins over
    the front matter and the first ``# `` heading (which is dropped when it repeats it)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    meta, body = _split_front_matter(text, source_name)
    md = _renderer()
    env: dict[str, Any] = {}
    tokens = md.parse(body, env)
    title = _as_text(title) or _as_text(meta.get("title"))
    h1, rest = _take_h1(tokens, md, env)
    if title is None:
        title, tokens = h1, rest
    elif h1 is not None and same_title(h1, title):
        tokens = rest  # the same title repeated as a heading
    if not title:
        raise InputError(f"{source_name}: no title found (add `title:` front matter or a `# Title` line, "
                         "or give it with --title)")
    if len(title) > MAX_TITLE_CHARS:
        raise InputError(f"{source_name}: the title is {len(title)} characters (at most {MAX_TITLE_CHARS})")
    canonical = absolute_url(_as_text(meta.get("canonical_url") or meta.get("canonical")), None, {"http", "https"})
    removed: list[Removed] = []
    blocks = shape(title, html_to_blocks(md.renderer.render(tokens, md.options, env), base_url=canonical,
                                         removed=removed))
    if not blocks:
        raise InputError(f"{source_name}: no text after the title \u201c{title}\u201d")
    first_para = next((b.html for b in blocks if b.type == "paragraph"), "")
    excerpt = _as_text(meta.get("excerpt") or meta.get("description") or meta.get("summary"))
    return ParsedPost(
        title=title,
        blocks=blocks,
        excerpt=excerpt_from(excerpt or inline_text(first_para, markers=False)),
        author=_as_text(meta.get("author")),
        published_at=_as_datetime(meta.get("date") or meta.get("published"), source_name),
        canonical_url=canonical,
        tags=_as_tags(meta.get("tags")),
        source_format="markdown",
        warnings=removed_warnings(source_name, removed),
    )
