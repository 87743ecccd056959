"""Footnote markers that take the reader to their reference.

A post keeps a footnote marker as ``<sup>3</sup>`` and its references as one list; the email links
each marker whose number the list has to that item (``href="#ref-3"``, the item carrying
``id="ref-3"``), in the email and its web copies alike. Done when rendering, not stored in the post,
so posts imported before link the same way and a block never holds a relative link.
"""

from __future__ import annotations

import re
from typing import Any

REF_PREFIX = "ref-"  # the id of reference n is REF_PREFIX + n (the layout's references list uses it)
_MARKER_RE = re.compile(r"<sup>(\d{1,3}(?:,\d{1,3})*)</sup>")
_LINK_OPEN_RE = re.compile(r"<a\b", re.I)
_LINK_CLOSE_RE = re.compile(r"</a>", re.I)


def link_markers(html: str, count: int) -> str:
    """``html`` with each footnote marker naming only references 1..``count`` linked to them
    ("<sup>1,2</sup>" becomes two links); a marker inside a link stays as it is (links do not nest)."""
    if count < 1 or "<sup>" not in html:
        return html

    def linked(m: re.Match[str]) -> str:
        numbers = [int(n) for n in m.group(1).split(",")]
        before = html[:m.start()]
        inside_link = len(_LINK_OPEN_RE.findall(before)) > len(_LINK_CLOSE_RE.findall(before))
        if inside_link or not all(1 <= n <= count for n in numbers):
            return m.group(0)
        return "<sup>" + ",".join(f'<a href="#{REF_PREFIX}{n}">{n}</a>' for n in numbers) + "</sup>"

    return _MARKER_RE.sub(linked, html)


def link_block_markers(block: Any, count: int) -> None:
    """Link the markers of one text block (a ``Block``) in place: its html and its list items."""
    if block.html:
        block.html = link_markers(block.html, count)
    if block.items and block.type != "references":
        block.items = [link_markers(item, count) for item in block.items]
