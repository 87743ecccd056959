"""HTML -> blocks, and whole web pages -> a post.

``html_to_blocks`` walks an lxml tree and emits blocks; inline runs are rebuilt from text nodes
(escaped here) plus the few inline tags blocks allow, then passed through ``clean_inline``. Nothing
from the source is copied through as markup, so scripts, handlers and styles cannot get out.
``parse_html`` first finds the article in a full page (skipping navigation, footers and the like).
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from html import escape
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree

from newsletter.errors import InputError
from newsletter.posts.blocks import (
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    Block,
    ParsedPost,
    clean_inline,
    excerpt_from,
    inline_text,
    xml_text,
)
from newsletter.posts.structure import same_title, shape
from newsletter.posts.text import parse_date

# Never content: skipped with everything inside them (their tail text is kept).
DROP_TAGS = {
    "script", "style", "nav", "header", "footer", "aside", "iframe", "form", "noscript", "svg",
    "template", "button", "input", "select", "textarea", "object", "embed", "canvas", "video",
    "audio", "link", "meta", "head", "title", "map", "dialog", "math", "frame", "frameset",
}
KEEP_INLINE = {"a", "em", "strong", "b", "i", "sup", "sub", "code", "br"}
UNWRAP_INLINE = {
    "span", "u", "mark", "small", "abbr", "cite", "q", "time", "font", "s", "del", "ins", "strike",
    "label", "kbd", "var", "samp", "dfn", "big", "tt", "bdi", "bdo", "data", "wbr", "nobr", "acronym",
}
INLINE_TAGS = KEEP_INLINE | UNWRAP_INLINE
# Elements that start a new paragraph; an inline element holding one is walked as a container.
BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "body", "html", "blockquote", "ul", "ol", "li", "dl",
    "dt", "dd", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "figure",
    "figcaption", "img", "picture", "hr", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "address",
    "center", "details", "summary", "fieldset", "hgroup", "header", "footer", "nav", "aside",
}
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
LINK_SCHEMES = {"http", "https", "mailto", "tel"}
REFERENCE_HEADINGS = {"references", "sources", "notes", "footnotes", "citations", "bibliography",
                      "works cited", "endnotes"}
_ANCHOR_JUNK = {"", "\u00b6", "#", "\u00a7", "\u21a9", "\u21a9\ufe0e", "\u21a9\ufe0f", "\U0001f517"}
_XML_DECL_RE = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_BR_BREAK_RE = re.compile(r"(?:<br>\s*){2,}")
_EDGE_BR_RE = re.compile(r"^(?:\s*<br>)+|(?:<br>\s*)+$")
MAX_NESTING = 64
_REMOVED = "removed-by-importer"  # a tag name no page uses, for elements about to be stripped
_URL_CONTROL_RE = re.compile("[\x00-\x1f\x7f]")
# Schemes that run code or carry a whole file instead of pointing at a page: a link or image with one
# is removed (a link's text kept) and the import says so. Other unusable links go quietly (anchors).
UNSAFE_SCHEMES = {"javascript", "data", "vbscript", "file"}
_SCHEME_RE = re.compile(r"^([a-z][a-z0-9+.-]*):")
_TITLE_SEPARATORS = (" | ", " \u2013 ", " \u2014 ", " - ", " \u00b7 ", " :: ", " \u00bb ")


def _tag(el: etree._Element) -> str | None:
    """Lower-case tag name; None for comments and processing instructions."""
    return el.tag.lower() if isinstance(el.tag, str) else None


def _hidden(el: etree._Element) -> bool:
    if el.get("hidden") is not None or (el.get("aria-hidden") or "").strip().lower() == "true":
        return True
    style = (el.get("style") or "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


def _marks(el: etree._Element) -> str:
    return f"{el.get('id') or ''} {el.get('class') or ''}".lower()


def _is_references(el: etree._Element) -> bool:
    """A footnotes/references list or section (by id/class), the list being most of its text."""
    tag = _tag(el)
    if tag not in {"ol", "ul", "section", "div", "aside", "footer"}:
        return False
    marks = _marks(el)
    if "footnote" not in marks and "reference" not in marks:
        return False
    if tag in {"ol", "ul"}:
        return True
    lst = next(el.iter("ol", "ul"), None)
    if lst is None:
        return False
    total = len(el.text_content().strip())
    return total == 0 or len(lst.text_content().strip()) * 2 >= total


def _has_block_inside(el: etree._Element) -> bool:
    return any(_tag(d) in BLOCK_TAGS for d in el.iterdescendants())


def _has_text(html: str) -> bool:
    return bool(inline_text(html))


def _text(el: etree._Element) -> str:
    """What a reader sees of ``el``: its text content without the text of scripts, styles, hidden
    elements and the rest of ``DROP_TAGS`` inside it."""
    inside = [d for d in el.iterdescendants() if _tag(d) in DROP_TAGS or (_tag(d) is not None and _hidden(d))]
    if not inside:
        return el.text_content()
    copy = deepcopy(el)
    copy.tail = None
    for d in copy.iterdescendants():
        if _tag(d) in DROP_TAGS or (_tag(d) is not None and _hidden(d)):
            d.tag = _REMOVED
    etree.strip_elements(copy, _REMOVED, with_tail=False)
    return copy.text_content()


def _remove(el: etree._Element) -> None:
    """Take ``el`` out of the tree, keeping its tail text.

    Not ``drop_tree()``: it sets the tail through lxml's Python API, which refuses control characters
    that lxml itself parsed (ValueError); ``strip_elements`` joins the text in C.
    """
    el.tag = _REMOVED
    etree.strip_elements(el.getparent(), _REMOVED, with_tail=False)


def _plain(el: etree._Element) -> str:
    return " ".join(xml_text(_text(el)).split())


def absolute_url(href: str | None, base: str | None, schemes: set[str] = LINK_SCHEMES) -> str | None:
    """``href`` made absolute against ``base`` when it has an allowed scheme (and web links a host),
    else None: in-page anchors, javascript:, relative URLs with no base to resolve them against,
    text that is no URL at all ("http://[::1", control characters), and links too long to store."""
    href = (href or "").strip()
    if not href or href.startswith("#") or _URL_CONTROL_RE.search(href):
        return None  # (a control character is no part of a URL: "java\tscript:", NUL)
    if href.startswith("//"):
        href = "https:" + href
    try:
        if base:
            href = urljoin(base, href)
        parts = urlsplit(href)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in schemes or (scheme in {"http", "https"} and not parts.netloc) or len(href) > MAX_URL_CHARS:
        return None
    return href


@dataclass(frozen=True)
class Removed:
    """A link or image taken out because its address had an unsafe scheme (``UNSAFE_SCHEMES``)."""

    what: str  # "link" | "image"
    scheme: str
    text: str  # the link's text (kept in the post) or the image's alt text


def unsafe_scheme(href: str | None) -> str | None:
    """The scheme of ``href`` when it is one of ``UNSAFE_SCHEMES``, read as a browser would ("Java\tScript:")."""
    compact = "".join(c for c in (href or "") if not c.isspace() and ord(c) >= 32).lower()
    m = _SCHEME_RE.match(compact)
    return m.group(1) if m and m.group(1) in UNSAFE_SCHEMES else None


def removed_warnings(source_name: str, removed: list[Removed], limit: int = 5) -> list[str]:
    """One line per removed link or image (at most ``limit``, then how many more), naming the scheme
    and the text, never the address itself (it may be a script or a whole file)."""
    lines = []
    for item in removed[:limit]:
        shown = excerpt_from(item.text, 60)
        if item.what == "image":
            alt = f" (alt text \u201c{shown}\u201d)" if shown else ""
            lines.append(f"{source_name}: removed an image with a {item.scheme}: address{alt}; "
                         "give it an https:// address to keep it")
        else:
            kept = f"its text \u201c{shown}\u201d is kept as plain text" if shown else "it had no text"
            lines.append(f"{source_name}: removed a {item.scheme}: link ({kept}); "
                         "only http(s), mailto and tel links are kept")
    if len(removed) > limit:
        lines.append(f"{source_name}: removed {len(removed) - limit} more such link(s) or image(s)")
    return lines


def _flatten_deep(root: etree._Element) -> None:
    """Elements nested more than ``MAX_NESTING`` levels below ``root`` keep only their text.

    The walk recurses a few frames per level, so a few hundred nested quotes or lists would exhaust
    Python's stack; no article needs that depth, and its words are kept.
    """
    depth = 0
    deep: list[etree._Element] = []
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, el in walker:
        if event == "end":
            depth -= 1
            continue
        depth += 1
        if depth > MAX_NESTING and len(el):
            deep.append(el)
            walker.skip_subtree()
    for el in deep:
        text = _text(el)
        el.clear(keep_tail=True)
        el.text = xml_text(text)  # lxml refuses to set what it parsed (control characters)


class _Builder:
    """Walks elements, collecting blocks; loose inline content becomes paragraphs."""

    def __init__(self, base_url: str | None, removed: list[Removed] | None = None) -> None:
        self.base = base_url
        self.removed: list[Removed] = removed if removed is not None else []  # shared with sub-builders
        self.blocks: list[Block] = []
        self.buf: list[str] = []
        self.link: str | None = None  # href of an <a> wrapping block content (an image link)
        self.pending_images: list[Block] = []  # images found inside list items, placed after the list

    # -- urls -------------------------------------------------------------------------------
    def url(self, href: str | None, schemes: set[str] = LINK_SCHEMES) -> str | None:
        return absolute_url(href, self.base, schemes)

    # -- inline -----------------------------------------------------------------------------
    def inline_children(self, el: etree._Element) -> str:
        parts = [escape(el.text or "", quote=False)]
        for child in el:
            parts.append(self.inline(child))
            parts.append(escape(child.tail or "", quote=False))
        return "".join(parts)

    def inline(self, el: etree._Element) -> str:
        """Inline html for one element (without its tail)."""
        tag = _tag(el)
        if tag is None or tag in DROP_TAGS or _hidden(el):
            return ""
        if tag == "br":
            return "<br>"
        if tag == "a":
            href = el.get("href") or ""
            text = _plain(el)
            if href.startswith("#") and (text in _ANCHOR_JUNK or "backref" in _marks(el)
                                         or "anchor" in _marks(el) or "headerlink" in _marks(el)):
                return ""  # permalink pilcrows and footnote back-links
            inner = self.inline_children(el)
            url = self.url(href)
            if url is None:
                if scheme := unsafe_scheme(href):
                    self.removed.append(Removed("link", scheme, text))
                return inner
            title = el.get("title")
            title_attr = f' title="{escape(title)}"' if title else ""
            return f'<a href="{escape(url)}"{title_attr}>{inner}</a>'
        inner = self.inline_children(el)
        if tag == "sup":
            inner = re.sub(r"^\s*\[(\d{1,3})\]\s*$", r"\1", inner)  # "[1]" -> "1"
        if tag in KEEP_INLINE:
            return f"<{tag}>{inner}</{tag}>" if inner.strip() else inner
        if tag == "q":
            return f"\u201c{inner}\u201d"
        if tag in BLOCK_TAGS:
            return f" {inner} "  # stray block inside inline content: keep words apart
        return inner

    def inline_block(self, el: etree._Element) -> str:
        """Sanitised inline html of an element's contents, whitespace collapsed."""
        return clean_inline(_EDGE_BR_RE.sub("", " ".join(self.inline_children(el).split())))

    # -- blocks -----------------------------------------------------------------------------
    def flush(self) -> None:
        html = " ".join("".join(self.buf).split())
        self.buf = []
        for part in _BR_BREAK_RE.split(html):  # <br><br> separates paragraphs in div soup
            cleaned = clean_inline(_EDGE_BR_RE.sub("", part))
            if _has_text(cleaned):
                self.blocks.append(Block(type="paragraph", html=cleaned))

    def walk(self, el: etree._Element) -> None:
        if el.text:
            self.buf.append(escape(el.text, quote=False))
        for child in el:
            self.node(child)
            if child.tail:
                self.buf.append(escape(child.tail, quote=False))

    def node(self, el: etree._Element) -> None:
        tag = _tag(el)
        if tag is None:
            return
        if _is_references(el):
            self.flush()
            self.references(el)
            return
        if tag in DROP_TAGS or _hidden(el):
            return
        if tag in INLINE_TAGS:
            if not _has_block_inside(el):
                self.buf.append(self.inline(el))
            elif tag == "a":
                outer, self.link = self.link, self.url(el.get("href"))
                if self.link is None and (scheme := unsafe_scheme(el.get("href"))):
                    self.removed.append(Removed("link", scheme, _plain(el)))
                self.walk(el)
                self.link = outer
            else:
                self.walk(el)
        elif tag in HEADINGS:
            self.flush()
            html = self.inline_block(el)
            if _has_text(html):
                level = min(max(HEADINGS[tag], 2), 4)
                self.blocks.append(Block(type="heading", level=level, html=html))
        elif tag == "blockquote":
            self.flush()
            self.quote(el)
        elif tag in {"ul", "ol"}:
            self.flush()
            self.list(el)
        elif tag == "img":
            self.flush()
            self.image(el)
        elif tag == "figure":
            self.flush()
            self.figure(el)
        elif tag == "hr":
            self.flush()
            self.blocks.append(Block(type="divider"))
        elif tag == "pre":
            self.flush()
            lines = [escape(ln, quote=False) for ln in _text(el).strip("\n").split("\n")]
            html = clean_inline("<code>" + "<br>".join(ln.replace("  ", "\u00a0 ") for ln in lines) + "</code>")
            if _has_text(html):  # (judged after cleaning: control characters alone are no text)
                self.blocks.append(Block(type="paragraph", html=html))
        elif tag == "table" and not any(_tag(d) in {"p", "div", "table", "ul", "ol", "img", "h2", "h3"}
                                        for d in el.iterdescendants()):
            self.flush()
            self.table(el)
        elif tag == "dt":
            self.flush()
            html = self.inline_block(el)
            if _has_text(html):
                self.blocks.append(Block(type="paragraph", html=clean_inline(f"<strong>{html}</strong>")))
        elif tag in BLOCK_TAGS:
            self.flush()
            self.walk(el)
            self.flush()
        else:  # unknown element (custom tags, Word's <o:p>): transparent
            self.walk(el)

    def sub(self, el: etree._Element) -> list[Block]:
        """Blocks for the contents of ``el`` on their own (for quotes and list items)."""
        builder = _Builder(self.base, self.removed)
        builder.link = self.link
        builder.walk(el)
        builder.flush()
        return builder.blocks

    def quote(self, el: etree._Element) -> None:
        cite = None
        for child in el:
            if _tag(child) in {"footer", "cite"}:
                cite = _plain(child).lstrip("\u2014\u2013- ").strip() or None
                _remove(child)
                break
        parts: list[str] = []
        for b in self.sub(el):
            if b.type in {"paragraph", "heading", "quote"}:
                parts.append(b.html)
            elif b.type in {"list", "references"}:
                parts.append("<br>".join(b.items or []))
            elif b.type == "image":
                self.blocks.append(b)
        html = clean_inline("<br><br>".join(p for p in parts if p))
        if _has_text(html):
            self.blocks.append(Block(type="quote", html=html, cite=cite))

    def list_item(self, li: etree._Element) -> str:
        """One item's inline html; nested lists are folded into it as extra lines."""
        parts: list[str] = []
        for b in self.sub(li):
            if b.type == "list":
                for n, item in enumerate(b.items or [], start=1):
                    parts.append(f"{n}. {item}" if b.ordered else f"\u2013 {item}")
            elif b.type == "image":
                self.pending_images.append(b)
            elif b.html:
                parts.append(b.html)
        return clean_inline("<br>".join(parts))

    def list_items(self, el: etree._Element) -> list[str]:
        items: list[str] = []
        for child in el:
            tag = _tag(child)
            if tag == "li" and not _hidden(child):
                item = self.list_item(child)
                if _has_text(item):
                    items.append(item)
            elif tag in {"ul", "ol"}:  # a list nested directly in a list (invalid but common)
                items += [f"\u2013 {i}" for i in self.list_items(child)]
        return items

    def list(self, el: etree._Element) -> None:
        self.pending_images = []
        items = self.list_items(el)
        if items:
            self.blocks.append(Block(type="list", ordered=_tag(el) == "ol", items=items))
        self.blocks += self.pending_images

    def references(self, el: etree._Element) -> None:
        lst = el if _tag(el) in {"ol", "ul"} else next(el.iter("ol", "ul"), None)
        self.pending_images = []
        items = self.list_items(lst) if lst is not None else []
        if items:
            self.blocks.append(Block(type="references", items=items))

    def image(self, el: etree._Element, caption: str | None = None) -> bool:
        if el.get("width") == "1" and el.get("height") == "1":
            return False  # a tracking pixel
        src = None
        srcset = (el.get("srcset") or el.get("data-srcset") or "").split(",")[0].strip().split(" ")[0]
        for candidate in (el.get("src"), el.get("data-src"), el.get("data-lazy-src"),
                          el.get("data-original"), srcset):
            src = self.url(candidate, {"http", "https"})
            if src:
                break
        alt = " ".join(xml_text(el.get("alt") or "").split())
        if not src:
            if scheme := unsafe_scheme(el.get("src")):
                self.removed.append(Removed("image", scheme, alt))
            return False
        self.blocks.append(Block(type="image", src=src, alt=alt, caption=caption, href=self.link))
        return True

    def figure(self, el: etree._Element) -> None:
        cap_el = next(el.iter("figcaption"), None)
        caption = _plain(cap_el) or None if cap_el is not None else None
        images = [img for img in el.iter("img") if not _hidden(img)]
        quotes = list(el.iter("blockquote"))
        if images:
            for n, img in enumerate(images):
                self.image(img, caption if n == len(images) - 1 else None)
        elif quotes:
            start = len(self.blocks)
            self.quote(quotes[0])
            if caption and len(self.blocks) > start and self.blocks[-1].type == "quote":
                self.blocks[-1].cite = self.blocks[-1].cite or caption.lstrip("\u2014\u2013- ")
        else:
            self.walk(el)
            self.flush()

    def table(self, el: etree._Element) -> None:
        """A data table, flattened: one paragraph per row, cells separated by " | "."""
        for tr in el.iter("tr"):
            cells = [self.inline_block(td) for td in tr if _tag(td) in {"td", "th"}]
            html = " | ".join(c for c in cells if _has_text(c))
            if html:
                self.blocks.append(Block(type="paragraph", html=clean_inline(html)))


def _tidy(blocks: list[Block]) -> list[Block]:
    """Turn "References" + list into a references block; drop stray dividers."""
    merged: list[Block] = []
    for b in blocks:
        prev = merged[-1] if merged else None
        if (prev is not None and prev.type == "heading" and b.type in {"list", "references"}
                and inline_text(prev.html).casefold().rstrip(":") in REFERENCE_HEADINGS):
            merged[-1] = Block(type="references", items=b.items)
        else:
            merged.append(b)
    out: list[Block] = []
    for b in merged:
        prev = out[-1] if out else None
        if b.type == "references" and prev is not None and prev.type == "divider":
            out[-1] = b  # the rule above a footnotes section is decoration
        elif not (b.type == "divider" and (prev is None or prev.type == "divider")):
            out.append(b)
    while out and out[-1].type == "divider":
        out.pop()
    return out


def _blocks_from(root: etree._Element, base_url: str | None, removed: list[Removed] | None = None) -> list[Block]:
    _flatten_deep(root)
    builder = _Builder(base_url, removed)
    builder.walk(root)
    builder.flush()
    return _tidy(builder.blocks)


def html_to_blocks(fragment: str, *, base_url: str | None = None, removed: list[Removed] | None = None) -> list[Block]:
    """Blocks for an HTML fragment (Markdown output, feed content). Empty input gives []. Links and
    images taken out for an unsafe scheme are appended to ``removed`` when it is given."""
    fragment = _XML_DECL_RE.sub("", fragment or "", count=1)
    if not fragment.strip():
        return []
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return []
    return _blocks_from(root, base_url, removed)


# --- whole pages ---------------------------------------------------------------------------------


def _meta(doc: etree._Element) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for m in doc.iter("meta"):
        key = (m.get("property") or m.get("name") or m.get("itemprop") or "").strip().lower()
        content = " ".join(xml_text(m.get("content") or "").split())
        if key and content:
            found.setdefault(key, []).append(content)
    return found


def _first(meta: dict[str, list[str]], *keys: str) -> str | None:
    for key in keys:
        if meta.get(key):
            return meta[key][0]
    return None


def _in_dropped(el: etree._Element) -> bool:
    return any(_tag(a) in DROP_TAGS or _hidden(a) for a in el.iterancestors())


def _paragraph_scores(doc: etree._Element) -> dict[etree._Element, int]:
    """Characters of paragraph text directly under each element (outside nav, footers...)."""
    scores: dict[etree._Element, int] = {}
    for p in doc.iter("p"):
        parent = p.getparent()
        if parent is not None and not _hidden(p) and not _in_dropped(p):
            scores[parent] = scores.get(parent, 0) + len(_plain(p))
    return scores


def _article_root(doc: etree._Element) -> etree._Element:
    """<article>, else <main>/[role=main], else the element with the most paragraph text."""
    scores = _paragraph_scores(doc)
    best = max(scores, key=lambda e: scores[e]) if scores else None
    best_score = scores[best] if best is not None else 0

    def ptext(el: etree._Element) -> int:
        return sum(v for e, v in scores.items() if e is el or el in e.iterancestors())

    for candidates in (list(doc.iter("article")),
                       list(doc.iter("main")) + doc.xpath("//*[@role='main']")):
        candidates = [c for c in candidates if not _in_dropped(c) and not _hidden(c)]
        if candidates:
            top = max(candidates, key=ptext)
            if best_score == 0 or ptext(top) * 2 >= best_score:
                return top  # unless it is a teaser card beside the real text
    if best is not None:
        return best
    body = doc.find("body")
    return body if body is not None else doc


def _strip_site_suffix(title: str, site: str | None) -> str:
    for sep in _TITLE_SEPARATORS:
        if sep in title:
            head, tail = title.rsplit(sep, 1)
            if (site and tail.strip().casefold() == site.casefold()) or (
                    len(tail) <= 40 and len(head) >= len(tail)):
                return head.strip()
    return title


def _date(value: str | None) -> datetime | None:
    return parse_date(value) if value else None


def parse_html(html: str, *, source_name: str = "<html>", base_url: str | None = None,
               given_title: str | None = None) -> ParsedPost:
    """Parse a web page (or a saved article) into a post; ``given_title`` wins over the page's own."""
    html = _XML_DECL_RE.sub("", html, count=1)
    if not html.strip():
        raise InputError(f"{source_name}: the HTML is empty")
    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError) as exc:
        raise InputError(f"{source_name}: could not read the HTML ({exc})") from exc
    meta = _meta(doc)

    canonical_el = next((ln for ln in doc.iter("link")
                         if "canonical" in (ln.get("rel") or "").lower().split()), None)
    canonical = canonical_el.get("href") if canonical_el is not None else _first(meta, "og:url")
    canonical = absolute_url(canonical, base_url, {"http", "https"})
    base_el = doc.find(".//base[@href]")
    base = base_url or canonical
    if base_el is not None:
        base = absolute_url(base_el.get("href"), base_url, {"http", "https"}) or base

    root = _article_root(doc)
    h1 = next((h for h in root.iter("h1") if _plain(h)), None)
    title_el = doc.find(".//title")
    site = _first(meta, "og:site_name")
    title = (
        (" ".join(given_title.split()) if given_title else None)
        or (_plain(h1) if h1 is not None else None)
        or _first(meta, "og:title", "twitter:title")
        or (_strip_site_suffix(_plain(title_el), site) if title_el is not None else None)
        or next((_plain(h) for h in doc.iter("h1", "h2") if _plain(h)), None)
    )

    time_el = next((t for t in root.iter("time") if t.get("datetime")), None)
    if time_el is None:
        time_el = next((t for t in doc.iter("time") if t.get("datetime")), None)
    published = _date(_first(meta, "article:published_time", "datepublished", "date",
                             "dc.date", "pubdate")) or _date(time_el.get("datetime") if time_el is not None else None)

    author = _first(meta, "author")
    if not author:
        author = next((a for a in meta.get("article:author", []) if not a.startswith("http")), None)
    if not author:
        el = next(iter(doc.xpath("//*[@rel='author' or @itemprop='author']")), None)
        author = _plain(el) if el is not None else None
    if author:
        author = re.sub(r"^by\s+", "", author, flags=re.I).strip() or None

    tags: list[str] = []
    for value in meta.get("article:tag", []):
        tags += [t.strip() for t in value.split(",") if t.strip() and t.strip() not in tags]

    removed: list[Removed] = []
    blocks = _blocks_from(root, base, removed)
    if not blocks and root is not doc.find("body") and doc.find("body") is not None:
        removed.clear()
        blocks = _blocks_from(doc.find("body"), base, removed)  # the guess was wrong; take everything
    if title:
        for n, b in enumerate(blocks):
            if b.type == "heading" and same_title(inline_text(b.html), title):
                del blocks[n]  # the page's own h1
                break
        blocks = shape(title, blocks)
    if not blocks:
        if not _plain(doc).strip() or not title:
            raise InputError(f"{source_name}: the HTML has no text")
        raise InputError(f"{source_name}: no article text found (only a title, navigation or scripts)")
    if not title:
        raise InputError(f"{source_name}: no title found (no <h1>, og:title or <title>; "
                         "give it with --title)")
    if len(title) > MAX_TITLE_CHARS:
        raise InputError(f"{source_name}: the title is {len(title)} characters (at most {MAX_TITLE_CHARS}); "
                         "is an element or attribute before it left open?")

    first_para = next((b.html for b in blocks if b.type == "paragraph"), "")
    excerpt = _first(meta, "description", "og:description", "twitter:description")
    return ParsedPost(
        title=title,
        blocks=blocks,
        excerpt=excerpt_from(excerpt or inline_text(first_para, markers=False)),
        author=author,
        published_at=published,
        source_url=absolute_url(base_url, None, {"http", "https"}),
        canonical_url=canonical,
        tags=tags,
        source_format="html",
        warnings=removed_warnings(source_name, removed),
    )
