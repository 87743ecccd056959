"""The plain-text part, derived from the post's blocks (not scraped back out of the HTML).

Links stay usable (``text (url)``), footnote markers become ``[n]`` to match the numbered
references, and lines are wrapped for reading without ever breaking a URL.
"""

from __future__ import annotations

import textwrap
from typing import Any

from lxml import html as lxml_html

WIDTH = 72


def inline_to_text(fragment: str) -> str:
    """Sanitised inline HTML (see ``newsletter.posts.blocks.INLINE_TAGS``) to readable text."""
    if not fragment.strip():
        return ""
    root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    return _walk(root).strip()


def _walk(element: Any) -> str:
    parts: list[str] = []
    if element.text:
        parts.append(element.text)
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        inner = _walk(child)
        if tag == "br":
            parts.append("\n")
        elif tag == "sup":
            parts.append(f"[{inner.strip()}]" if inner.strip().replace(",", "").isdigit() else f"^{inner}")
        elif tag == "a":
            href = (child.get("href") or "").strip()
            label = inner.strip()
            shown = href.removeprefix("mailto:").removeprefix("tel:")
            if href and label and label not in (href, shown):
                parts.append(f"{inner} ({shown})")
            else:
                parts.append(inner or shown)
        else:
            parts.append(inner)
        if child.tail:
            parts.append(child.tail)
    return "".join(parts)


def wrap(text: str, *, indent: str = "", subsequent: str | None = None) -> str:
    lines = []
    for line in text.splitlines() or [""]:
        lines.append(
            textwrap.fill(
                " ".join(line.split()),
                width=WIDTH,
                initial_indent=indent,
                subsequent_indent=indent if subsequent is None else subsequent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or indent.rstrip()
        )
    return "\n".join(lines)


def block_to_text(block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "heading":
        heading = inline_to_text(block.get("html", ""))
        return f"{heading}\n{'-' * min(len(heading), WIDTH)}"
    if kind == "paragraph":
        return wrap(inline_to_text(block.get("html", "")))
    if kind == "quote":
        quote = wrap(inline_to_text(block.get("html", "")), indent="> ")
        return quote + (f"\n> -- {block['cite']}" if block.get("cite") else "")
    if kind == "list":
        items = block.get("items") or []
        out = []
        for n, item in enumerate(items, 1):
            bullet = f"{n}. " if block.get("ordered") else "- "
            out.append(wrap(inline_to_text(item), indent=bullet, subsequent=" " * len(bullet)))
        return "\n".join(out)
    if kind == "image":
        alt = block.get("alt") or "image"
        text = f"[Image: {alt}]"
        return text + (f"\n{wrap(block['caption'])}" if block.get("caption") else "")
    if kind == "divider":
        return "* * *"
    return ""


def reference_to_text(item: str) -> str:
    return wrap(inline_to_text(item), subsequent="    ").lstrip()


def card_to_text(card: Any, read_more: str = "Read more") -> str:
    """A digest card (``newsletter.compose.layouts.Card``): its title, excerpt and where to read it
    (``read_more``: the link's words in the email's language)."""
    lines = [wrap(card.title), "-" * min(len(card.title), WIDTH)]
    if card.excerpt:
        lines.append(wrap(card.excerpt))
    if card.url:
        lines.append(f"{read_more}: {card.url}")
    return "\n".join(lines)
