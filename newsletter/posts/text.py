"""Plain text copied off a web page -> a post.

Text pasted from a browser has no markup, so structure is guessed from the shape of the lines:
a site-name line and metadata labels before the title, short stand-alone lines as headings, quoted
paragraphs as quotes, "1." / "-" lines as lists, and a numbered list at the very end as references
(whose numbers, glued to words in the body as "health.1", become footnote markers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlsplit

from newsletter.errors import InputError
from newsletter.posts.blocks import (
    MAX_URL_CHARS,
    Block,
    ParsedPost,
    clean_inline,
    excerpt_from,
    inline_text,
)
from newsletter.posts.structure import same_title, shape

MAX_HEADING_CHARS = 90
MAX_HEADING_WORDS = 12
TITLE_LINE_CHARS = 200  # a longer first line is a paragraph, not a title
CLOSING_PUNCT = ".!?:;,\u2026"
TRAILING_QUOTES = "\"'\u201d\u2019)]\u00bb"

# Labels a blog template prints around the title; alone on a line they carry nothing.
DATE_LABELS = {"publish date", "published", "published on", "posted on", "posted", "date",
               "updated", "last updated", "updated on"}
AUTHOR_LABELS = {"author", "by", "written by", "posted by"}
TAG_LABELS = {"post category", "category", "categories", "tags", "tagged", "filed under", "topics"}
SKIP_LABELS = {"share", "share this", "share this post", "share this article", "share on",
               "reading time", "skip to content", "skip to main content", "menu", "back to blog",
               "print", "email", "tweet"}
REFERENCE_HEADINGS = {"references", "sources", "notes", "footnotes", "citations", "bibliography",
                      "works cited", "endnotes"}

_SPACES = {ord(c): " " for c in "\t\u00a0\u2007\u202f\u2009\u200a\u2002\u2003\u3000\u2028\u2029"}
_SPACES.update({ord("\u200b"): None, ord("\ufeff"): None, ord("\u00ad"): None})
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ORDERED_RE = re.compile(r"^(\d{1,3})[.)]\s+(\S.*)$")
_BULLET_RE = re.compile(r"^[-*\u2022\u00b7\u25e6\u25aa\u25cf\u2013]\s+(\S.*)$")
_REF_RE = re.compile(r"^(?:\[(\d{1,3})\]|\^?(\d{1,3})[.)])\s*(\S.*)$")
_QUOTE_LINE_RE = re.compile(r"^>\s?(.*)$")
_QUOTED_RE = re.compile(
    r"^(?P<open>[\u201c\"])(?P<inner>.+)(?P<close>[\u201d\"])(?P<num>\d{1,3})?"
    r"(?:\s*[\u2014\u2013-]\s*(?P<cite>[^\u201c\u201d\"]{1,80}))?$"
)
_MARKER_RE = re.compile(r"\[(?P<bracketed>\d{1,3}(?:,\s?\d{1,3})*)\]|(?<!\d)\d{1,3}(?:,\d{1,3})*(?=[\s,.;:!?)\]]|$)")
_MARKER_END_RE = re.compile(r"[.!?:;,\u2026\"'\u201d\u2019)]\d{1,3}$")
_MARKER_CLOSERS = set(".,;:!?)]\u201d\u2019\"'\u00bb")
_LINK_RE = re.compile(
    r"(?P<url>(?:https?://|www\.)[^\s<>\"\u201c\u201d]+)|(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)",
    re.I,
)
_CITATION_HINT_RE = re.compile(r"\b(19|20)\d\d\b|https?://|www\.|\u201c|\bet al\b|\bdoi\b", re.I)


@dataclass
class _Line:
    text: str
    lineno: int
    gap_before: bool  # a blank line (or the start) precedes it


# --- dates ---------------------------------------------------------------------------------------

_DATE_FORMATS = ("%d %B %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y", "%Y/%m/%d", "%d.%m.%Y")
_WEEKDAY_RE = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+", re.I)


def parse_date(value: str) -> datetime | None:
    """A timezone-aware datetime from the date formats blogs print; None when it is not a date.

    Shared by the text, HTML and Markdown importers. Dates without a time are midnight UTC.
    """
    s = " ".join(value.strip().rstrip(".").split())
    if not s or len(s) > 40:
        return None
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        s = _WEEKDAY_RE.sub("", s)
        s = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", s, flags=re.I).replace(",", " ")
        s = re.sub(r"\bSept\b", "Sep", " ".join(s.split()), flags=re.I)
        for fmt in _DATE_FORMATS:
            try:
                dt = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
        else:
            return None
    if not 1990 <= dt.year <= 2100:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# --- line shapes -----------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _ends_sentence(text: str) -> bool:
    if _MARKER_END_RE.search(text):
        return True  # "...mood.1": a sentence with its footnote marker
    stripped = text.rstrip(TRAILING_QUOTES)
    return bool(stripped) and stripped[-1] in CLOSING_PUNCT


def _is_list_item(text: str) -> bool:
    return bool(_ORDERED_RE.match(text) or _BULLET_RE.match(text))


def _heading_like(text: str) -> bool:
    """Short, no closing punctuation, starts like a title: could be a heading (or a title)."""
    if not text or len(text) > MAX_HEADING_CHARS or len(text.split()) > MAX_HEADING_WORDS:
        return False
    if text[-1] in CLOSING_PUNCT or _ends_sentence(text) or text[0].islower():
        return False
    if _is_list_item(text) or _QUOTE_LINE_RE.match(text) or _LINK_RE.fullmatch(text):
        return False
    return any(c.isalpha() for c in text)


def _label(text: str) -> tuple[str, str | None] | None:
    """('date'|'author'|'tags'|'skip', value or None) when the line is template metadata."""
    low = _norm(text).rstrip(":").strip()
    for kind, labels in (("date", DATE_LABELS), ("author", AUTHOR_LABELS), ("tags", TAG_LABELS),
                         ("skip", SKIP_LABELS)):
        if low in labels:
            return kind, None
        for label in labels:
            if low.startswith(label + ":"):
                return kind, text.split(":", 1)[1].strip() or None
    if parse_date(text):
        return "date", text
    for label in ("posted on", "published on", "published", "updated"):
        if low.startswith(label + " ") and parse_date(text[len(label):]):
            return "date", text[len(label):].strip()
    m = re.match(r"^(?i:(?:written |posted )?by)\s+([A-Z][^!?;:]{1,60})$", text)
    if m and len(m.group(1).split()) <= 6 and not _ends_sentence(m.group(1).rstrip(".")):
        return "author", m.group(1)
    if re.fullmatch(r"\d{1,3}\s*min(ute)?s?\s+read", low):
        return "skip", None
    return None


# --- preamble: site name, title, labels ------------------------------------------------------------


class _Meta:
    def __init__(self) -> None:
        self.published_at: datetime | None = None
        self.author: str | None = None
        self.tags: list[str] = []

    def take(self, kind: str, value: str) -> None:
        if kind == "date" and self.published_at is None:
            self.published_at = parse_date(value)
        elif kind == "author" and self.author is None:
            self.author = value.strip()
        elif kind == "tags":
            self.tags += [t.strip() for t in re.split(r"[,|]", value) if t.strip()]


def _consume_labels(lines: list[_Line], i: int, meta: _Meta) -> int:
    """Skip template labels from ``lines[i]`` on, keeping any values they carry."""
    while i < len(lines):
        found = _label(lines[i].text)
        if found is None:
            break
        kind, value = found
        i += 1
        if value is not None:
            meta.take(kind, value)
        elif kind != "skip" and i < len(lines) and _label(lines[i].text) is None:
            # "Publish date" then "3 May 2024": the value on the next line. For names and tags,
            # only when it is glued to the label (no blank line): otherwise it may be a heading.
            nxt = lines[i]
            if kind == "date" and parse_date(nxt.text):
                meta.take(kind, nxt.text)
                i += 1
            elif kind in ("author", "tags") and not nxt.gap_before and _heading_like(nxt.text):
                meta.take(kind, nxt.text)
                i += 1
    return i


def _is_site_name(first: str, second: str, third: str | None) -> bool:
    """Is ``first`` a site-name line printed above the real title ``second``?"""
    if same_title(first, second) or _label(second) is not None or third is None:
        return False
    if _quoted(second) or ". " in second:
        return False  # a quotation or sentences: the start of the body, not a title
    if not (_heading_like(first) and _heading_like(second)):
        return False
    if len(first.split()) > 6 or len(first) > 50:
        return False  # long enough to be a title itself
    if third is not None and (_label(third) is not None or same_title(third, second)):
        return True  # the template's labels (or a repeated title) follow the second line
    # A site name is usually shorter than the title; "Title" then a shorter subheading is not one.
    return len(second) > len(first) or bool(re.search(r"\.\w{2,}$|\|", first))


def _given_title_preamble(lines: list[_Line], title: str) -> tuple[_Meta, list[_Line]]:
    """With the title given (``--title``), every line is body except the template's labels and the
    title itself where the page printed it (alone, or under a site-name line)."""
    meta = _Meta()
    i = _consume_labels(lines, 0, meta)
    for skip in (1, 2):  # "Title" or "Site name / Title" at the top
        if i + skip <= len(lines) and same_title(lines[i + skip - 1].text, title):
            i = _consume_labels(lines, i + skip, meta)
            break
    return meta, lines[i:]


def _split_preamble(lines: list[_Line], source_name: str) -> tuple[str, _Meta, list[_Line]]:
    meta = _Meta()
    i = _consume_labels(lines, 0, meta)
    if i >= len(lines):
        raise InputError(f"{source_name}: no title found (the text has only labels such as "
                         f"\u201c{lines[0].text}\u201d on line {lines[0].lineno}; give the title with --title)")
    first = lines[i]
    second = lines[i + 1] if i + 1 < len(lines) else None
    third = lines[i + 2].text if i + 2 < len(lines) else None
    if second is not None and _is_site_name(first.text, second.text, third):
        title_line, i = second, i + 2
    else:
        title_line, i = first, i + 1
    title = title_line.text
    if len(title) > TITLE_LINE_CHARS:
        raise InputError(
            f"{source_name}: no title found (line {title_line.lineno} is a {len(title)}-character "
            "paragraph; put the title on its own line at the top, or give it with --title)"
        )
    if i < len(lines) and same_title(lines[i].text, title):
        i += 1  # the page printed the title twice
    i = _consume_labels(lines, i, meta)
    if i < len(lines) and same_title(lines[i].text, title):
        i += 1
    return title, meta, lines[i:]


# --- inline ----------------------------------------------------------------------------------------


def _markers(segment: str, refs: set[int]) -> str:
    """Escape ``segment``, turning reference numbers glued to a word ("health.1") into <sup>."""
    out: list[str] = []
    pos = 0
    for m in _MARKER_RE.finditer(segment):
        start = m.start()
        if start == 0 or not refs:
            continue
        label = m.group("bracketed") or m.group(0)
        nums = [int(n) for n in label.split(",")]
        before = segment[max(0, start - 3):start]
        c1 = before[-1]
        if m.group("bracketed"):  # "claim.[1]" or "claim[1]": glued to anything but a space
            glued = not c1.isspace()
        elif c1 in _MARKER_CLOSERS:
            glued = len(before) >= 2 and not before[-2].isdigit() and not before[-2].isspace()
        else:  # glued straight to a lowercase word: "exercise1" (not "B12", "mp3")
            glued = len(before) == 3 and before.isalpha() and before.islower()
        if glued and all(n in refs for n in nums):
            out.append(escape(segment[pos:start], quote=False))
            out.append(f"<sup>{label.replace(' ', '')}</sup>")
            pos = m.end()
    out.append(escape(segment[pos:], quote=False))
    return "".join(out)


def _linkable(url: str) -> bool:
    """A web address a reader can follow: it parses, has a host and fits in the links table."""
    try:
        return bool(urlsplit(url).netloc) and len(url) <= MAX_URL_CHARS
    except ValueError:  # "http://[::1"
        return False


def _inline(text: str, refs: set[int]) -> str:
    """Inline html for a run of plain text: escaped, URLs linked, footnote markers raised."""
    out: list[str] = []
    pos = 0
    for m in _LINK_RE.finditer(text):
        raw = m.group(0)
        if m.group("url"):
            raw = raw.rstrip(".,;:!?'\u2019")
            if raw.endswith(")") and raw.count("(") < raw.count(")"):
                raw = raw[:-1]
            href = raw if raw.lower().startswith("http") else "https://" + raw
            if not _linkable(href):
                continue  # stays text
        else:
            href = "mailto:" + raw
        out.append(_markers(text[pos:m.start()], refs))
        out.append(f'<a href="{escape(href)}">{escape(raw, quote=False)}</a>')
        pos = m.start() + len(raw)
    out.append(_markers(text[pos:], refs))
    return clean_inline("".join(out))


# --- body ------------------------------------------------------------------------------------------


def _groups(lines: list[_Line]) -> list[list[_Line]]:
    groups: list[list[_Line]] = []
    for line in lines:
        if line.gap_before or not groups:
            groups.append([line])
        else:
            groups[-1].append(line)
    return groups


def _split_references(groups: list[list[_Line]]) -> tuple[list[list[_Line]], list[str]]:
    """Take the numbered reference list off the end of the body: (body groups, item texts)."""
    items: list[tuple[int, str]] = []
    k = len(groups)
    while k > 0 and _REF_RE.match(groups[k - 1][0].text):
        group_items: list[tuple[int, str]] = []
        for line in groups[k - 1]:
            m = _REF_RE.match(line.text)
            if m:
                group_items.append((int(m.group(1) or m.group(2)), m.group(3)))
            else:  # a wrapped reference continues on the next line
                n, prev = group_items[-1]
                group_items[-1] = (n, f"{prev} {line.text}")
        numbers = [n for n, _ in group_items + items]
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            break  # numbering restarts: an ordinary numbered list sits before the references
        items = group_items + items
        k -= 1
    if not items or items[0][0] != 1:
        return groups, []
    body = groups[:k]
    has_heading = bool(body) and len(body[-1]) == 1 and _norm(body[-1][0].text).rstrip(":") in REFERENCE_HEADINGS
    refs = set(range(1, len(items) + 1))
    body_text = " ".join(line.text for g in body for line in g)
    cited = _markers(body_text, refs) != escape(body_text, quote=False)
    looks_cited = sum(bool(_CITATION_HINT_RE.search(t)) for _, t in items) * 2 > len(items)
    if not (has_heading or cited or looks_cited):
        return groups, []  # an ordinary numbered list that happens to end the post
    return (body[:-1] if has_heading else body), [t for _, t in items]


def _quoted(text: str) -> tuple[str, str | None, str | None] | None:
    """(inner text, trailing marker, cite) when the whole paragraph is one quotation."""
    m = _QUOTED_RE.match(text)
    if not m:
        return None
    inner, opener = m.group("inner"), m.group("open")
    closer = "\u201d" if opener == "\u201c" else '"'
    if closer in inner or (opener == "\u201c" and m.group("close") != "\u201d"):
        return None  # two quoted phrases, not one quotation
    return inner.strip(), m.group("num"), m.group("cite")


def _paragraph_block(text: str, refs: set[int]) -> Block:
    quoted = _quoted(text)
    if quoted is None:
        return Block(type="paragraph", html=_inline(text, refs))
    inner, num, cite = quoted
    html = _inline(inner, refs)
    if num:
        html += f"<sup>{num}</sup>" if int(num) in refs else escape(num)
    return Block(type="quote", html=clean_inline(html), cite=cite.strip() if cite else None)


def _wrapped(lines: list[str]) -> bool:
    """Hard-wrapped paragraph (most lines break mid-sentence) rather than one paragraph a line."""
    inner = lines[:-1]
    return bool(inner) and sum(not _ends_sentence(t) for t in inner) * 2 > len(inner)


def _group_blocks(group: list[str], refs: set[int], is_last: bool) -> list[Block]:
    """Blocks for one run of non-empty lines."""
    if len(group) == 1 and _heading_like(group[0]) and not is_last and not _quoted(group[0]):
        return [Block(type="heading", level=2, html=_inline(group[0], refs))]
    blocks: list[Block] = []
    i = 0
    # A heading glued to its first paragraph: much shorter than the line after it.
    if len(group) > 1 and _heading_like(group[0]) and (
        not _is_list_item(group[1]) and len(group[0]) < 0.7 * len(group[1])
    ):
        blocks.append(Block(type="heading", level=2, html=_inline(group[0], refs)))
        i = 1
    run: list[str] = []

    def flush_run() -> None:
        if not run:
            return
        if _wrapped(run):
            blocks.append(_paragraph_block(" ".join(run), refs))
        else:
            for n, t in enumerate(run):
                last = n == len(run) - 1 and is_last
                if _heading_like(t) and not last and len(run) > 1 and not _quoted(t):
                    blocks.append(Block(type="heading", level=2, html=_inline(t, refs)))
                else:
                    blocks.append(_paragraph_block(t, refs))
        run.clear()

    while i < len(group):
        line = group[i]
        if _QUOTE_LINE_RE.match(line):
            flush_run()
            quote: list[str] = []
            while i < len(group) and (m := _QUOTE_LINE_RE.match(group[i])):
                quote.append(m.group(1).strip())
                i += 1
            html = _inline(" ".join(q for q in quote if q), refs)
            if html:
                blocks.append(Block(type="quote", html=html))
            continue
        if _is_list_item(line):
            flush_run()
            ordered = bool(_ORDERED_RE.match(line))
            items: list[str] = []
            while i < len(group):
                m = _ORDERED_RE.match(group[i]) if ordered else _BULLET_RE.match(group[i])
                if m:
                    items.append(m.group(m.lastindex or 1))
                elif items and not _is_list_item(group[i]):
                    items[-1] += " " + group[i]  # a wrapped item
                else:
                    break
                i += 1
            blocks.append(Block(type="list", ordered=ordered, items=[_inline(t, refs) for t in items]))
            continue
        run.append(line)
        i += 1
    flush_run()
    return blocks


def _merge_lists(blocks: list[Block]) -> list[Block]:
    """Join list items that were separated only by blank lines ("1." blank "2." ...)."""
    out: list[Block] = []
    for b in blocks:
        prev = out[-1] if out else None
        if (b.type == "list" and prev is not None and prev.type == "list"
                and prev.ordered == b.ordered and prev.items is not None and b.items is not None):
            prev.items.extend(b.items)
        else:
            out.append(b)
    return out


def _lines(text: str) -> list[_Line]:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines: list[_Line] = []
    gap = True
    for n, raw in enumerate(text.split("\n"), start=1):
        line = " ".join(_CONTROL_RE.sub("", raw.translate(_SPACES)).split())
        if not line:
            gap = True
            continue
        lines.append(_Line(line, n, gap))
        gap = False
    return lines


def parse_text(text: str, *, source_name: str = "<text>", title: str | None = None) -> ParsedPost:
    """Parse plain text copied off a web page into a post (see the module docstring). ``title``, when
    given, is the post's title and the text is all body (a page copied without its title line)."""
    lines = _lines(text)
    if not lines:
        raise InputError(f"{source_name}: no title found (the text has only empty lines)")
    if title is not None:
        meta, body = _given_title_preamble(lines, title)
    else:
        title, meta, body = _split_preamble(lines, source_name)
    if body:
        body[0] = _Line(body[0].text, body[0].lineno, True)  # the body starts a new paragraph
    if not body:
        raise InputError(f"{source_name}: no text after the title \u201c{title}\u201d")
    groups, ref_texts = _split_references(_groups(body))
    refs = set(range(1, len(ref_texts) + 1))
    blocks: list[Block] = []
    for n, group in enumerate(groups):
        blocks += _group_blocks([ln.text for ln in group], refs, is_last=n == len(groups) - 1)
    blocks = shape(title, _merge_lists(blocks))
    if ref_texts:
        blocks.append(Block(type="references", items=[_inline(t, set()) for t in ref_texts]))
    if not any(b.type != "references" for b in blocks):
        raise InputError(f"{source_name}: no text after the title \u201c{title}\u201d")
    first_para = next((b.html for b in blocks if b.type == "paragraph"), "")
    return ParsedPost(
        title=title,
        blocks=blocks,
        excerpt=excerpt_from(inline_text(first_para, markers=False)),
        author=meta.author,
        published_at=meta.published_at,
        tags=meta.tags,
        source_format="text",
    )
