"""Tracked links: rewrite a compiled email's links once, at compile time, to first-party click URLs.

A click URL (``newsletter.urls.click_url``) carries the delivery's token (a placeholder filled per
recipient, "anon" under anonymous tracking), never an address, and the link's id; the target is stored in ``links``,
so the redirect can only ever go where the email pointed.
"""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from newsletter.compose.personalize import PLACEHOLDERS
from newsletter.config import Settings
from newsletter.models import Link
from newsletter.urls import ANONYMOUS_TOKEN, click_url, open_pixel_url, pixel_key

_HREF = re.compile(r'(<a\b[^>]*?\bhref=")(https?://[^"]+)("[^>]*>)(.*?)</a>', re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
PIXEL = (
    '<img src="{src}" width="1" height="1" alt="" '
    'style="display:block;width:1px;height:1px;border:0;overflow:hidden;opacity:0" />'
)


def track_links(session: Session, html: str, settings: Settings, *, mode: str,
                issue_id: int | None = None, step_id: int | None = None, version_id: int | None = None) -> str:
    """Rewrite ``html``'s http(s) links (not our own unsubscribe/preferences/view-online links, which
    are placeholders) and add the open pixel. ``mode`` off returns the html untouched. A language
    version's links (``version_id``) still name its issue or step: clicks count for the email."""
    if mode == "off":
        return html
    owner = Link.issue_id == issue_id if issue_id is not None else Link.step_id == step_id
    if version_id is not None:  # numbered after the email's other links: positions stay unique per email
        session.execute(delete(Link).where(Link.version_id == version_id))
        position = session.scalar(select(func.coalesce(func.max(Link.position), 0)).where(owner))
    else:  # the email's own links, and its versions' (compiled again after it: issues.recompile)
        session.execute(delete(Link).where(owner))
        position = 0
    token = PLACEHOLDERS["track"] if mode == "full" else ANONYMOUS_TOKEN
    base_url, booking_url = settings.public_base_url, settings.booking_url

    def rewrite(match: re.Match[str]) -> str:
        nonlocal position
        url = unescape(match.group(2))
        position += 1
        label = " ".join(unescape(_TAGS.sub(" ", match.group(4))).split())[:300]
        link = Link(issue_id=issue_id, step_id=step_id, version_id=version_id, position=position, url=url,
                    label=label, is_booking=url == booking_url)
        session.add(link)
        session.flush()
        return f"{match.group(1)}{click_url(base_url, token, link.id)}{match.group(3)}{match.group(4)}</a>"

    html = _HREF.sub(rewrite, html)
    pixel = PIXEL.format(src=open_pixel_url(base_url, token, pixel_key(issue_id, step_id)))
    return html.replace("</body>", pixel + "</body>", 1) if "</body>" in html else html + pixel
