"""The public archive: issues staff chose to publish, as web pages anyone may read.

An issue is published by hand, once it has gone out (``PUBLISHABLE``): what it says is then final.
Its archive copy is made from the stored email, the one that was sent, by ``clean_copy``: the neutral
greeting instead of a first name, no link that belongs to a reader (unsubscribe, preferences, view
online), no open pixel, and every tracked link pointing straight at its real destination. So the page
carries no token, counts nothing and is the same for everyone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from html import escape, unescape

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from newsletter.compose.personalize import LAYOUT_FIELDS, safe_first_name, substitute
from newsletter.errors import InputError, NotFound
from newsletter.models import Issue, Link
from newsletter.config import Settings
from newsletter.paging import Cursor
from newsletter.urls import ANONYMOUS_TOKEN, ARCHIVE, CLICK, OPEN, TEST_TOKEN
from subscribers.db import utcnow
from subscribers.states import PUBLISHABLE

PAGE_SIZE = 20
# The values of a copy that belongs to no reader: the greeting a missing name gets ("Hi there,"); the
# reader's own links are removed before these apply, so an empty URL is only a last resort.
NEUTRAL = {"first_name": safe_first_name(None), "unsubscribe_url": "", "preferences_url": "",
           "view_online_url": "", "track": ANONYMOUS_TOKEN}

_TOKENS = "|".join(re.escape(t) for t in ("%%track%%", ANONYMOUS_TOKEN, TEST_TOKEN))
# A tracked link's href (``.../c/{token}/{link id}``) and the open pixel (``<img src=".../o/{token}/i12.gif" ...>``).
_CLICK_HREF = re.compile(r'href="[^"]*' + re.escape(CLICK) + r"(?:" + _TOKENS + r')/(\d+)"')
_PIXEL = re.compile(r'<img\b[^>]*\bsrc="[^"]*' + re.escape(OPEN) + r"(?:" + _TOKENS + r')/[is]\d+\.gif"[^>]*>')
# A link that is a reader's own (its href is a placeholder), with the text it shows.
_OWN_LINK = re.compile(r'<a\b[^>]*\bhref="%%(?:' + "|".join(LAYOUT_FIELDS[1:]) + r')%%"[^>]*>.*?</a>',
                       re.DOTALL | re.IGNORECASE)
# What is left of the footer line that held only those links: separators.
_EMPTY_PARAGRAPH = re.compile(r"<p\b[^>]*>[\s·|]*</p>")
# The footer's "You are receiving this because you subscribed..." (``compose.render``): true of an email, not of a page.
_REASON = re.compile(r"<p\b[^>]*>You are receiving this because [^<]*</p>")
_HEAD = re.compile(r"<head>(.*?)</head>", re.DOTALL | re.IGNORECASE)
_TITLE = re.compile(r"<title>.*?</title>", re.DOTALL | re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")
_BODY = re.compile(r"<body([^>]*)>(.*)</body>", re.DOTALL | re.IGNORECASE)


# Publishing -----------------------------------------------------------------------------------------


def publishable(issue: Issue) -> bool:
    return issue.status in PUBLISHABLE


def publish(issue: Issue, now: datetime | None = None) -> bool:
    """Put a sent (or sending) issue in the archive; False when it already was (it keeps its first
    date). A draft or scheduled issue may still change, and a cancelled one never went out."""
    if not publishable(issue):
        raise InputError(f"issue {issue.id} is {issue.status}: only an issue that has been sent (or is "
                         "sending) can be published in the archive")
    if issue.archive_published_at is not None:
        return False
    issue.archive_published_at = now or utcnow()
    return True


def unpublish(issue: Issue) -> bool:
    """Take an issue out of the archive (its page and feed entry go); False when it was not in it."""
    if issue.archive_published_at is None:
        return False
    issue.archive_published_at = None
    return True


# Reading ----------------------------------------------------------------------------------------------


def _published() -> tuple[ColumnElement[bool], ...]:
    """In the archive: published, and still sent or sending (a paused send is out of it until resumed)."""
    return Issue.archive_published_at.is_not(None), Issue.status.in_(PUBLISHABLE)


def published_issue(session: Session, issue_id: int) -> Issue:
    """A published issue; NotFound for any other (a draft, an unpublished one, none at all), the same
    answer for each, so the archive says nothing about issues that are not in it."""
    issue = session.scalar(select(Issue).where(Issue.id == issue_id, *_published()))
    if issue is None:
        raise NotFound(f"there is no issue {issue_id} in the archive")
    return issue


@dataclass(frozen=True)
class ArchivePage:
    issues: list[Issue]
    next_cursor: Cursor | None  # where the next (older) page starts; None on the last page


def archive_page(session: Session, after: Cursor | None = None, size: int = PAGE_SIZE) -> ArchivePage:
    """Published issues, newest sent first, ``size`` at a time (keyset paging on when sending began)."""
    query = select(Issue).where(*_published())
    if after is not None:
        query = query.where(or_(Issue.enqueued_at < after.at, and_(Issue.enqueued_at == after.at, Issue.id < after.id)))
    rows = list(session.scalars(query.order_by(Issue.enqueued_at.desc(), Issue.id.desc()).limit(size + 1)))
    last = rows[size - 1] if len(rows) > size else None
    return ArchivePage(rows[:size], Cursor(last.enqueued_at, last.id) if last and last.enqueued_at else None)


def clean_copy(session: Session, issue: Issue) -> str:
    """The issue's stored HTML as nobody's copy: no first name, no reader's link, no open pixel, links
    to their real destinations. A tracked link whose row is gone keeps its text and loses its href."""
    targets = {row.id: row.url for row in session.execute(select(Link.id, Link.url).where(Link.issue_id == issue.id))}

    def untrack(match: re.Match[str]) -> str:
        url = targets.get(int(match.group(1)))
        return f'href="{escape(url, quote=True)}"' if url else ""

    html = _CLICK_HREF.sub(untrack, issue.html)
    html = _PIXEL.sub("", html)
    html = _EMPTY_PARAGRAPH.sub("", _OWN_LINK.sub("", _REASON.sub("", html)))
    return substitute(html, NEUTRAL)  # every placeholder left (the greeting's name): one value for all


@dataclass(frozen=True)
class WebParts:
    """An email document taken apart, to be served inside a page of this site: the email's own styles
    (its ``<head>`` without its title), its ``<body>``'s attributes, its content and its title's text."""

    head: str
    body_attributes: str
    body: str
    title: str = ""


def web_parts(html: str) -> WebParts:
    head = _HEAD.search(html)
    body = _BODY.search(html)
    title = _TITLE.search(head.group(1)) if head else None
    return WebParts(_TITLE.sub("", head.group(1)) if head else "",
                    body.group(1) if body else "", body.group(2) if body else html,
                    unescape(_TAGS.sub("", title.group(0))).strip() if title else "")


def robots(settings: Settings) -> str:
    """The archive's X-Robots-Tag and robots meta value: indexable only when the clinic says so."""
    return "all" if settings.archive_indexable else "noindex"


def robots_txt(settings: Settings) -> str:
    """Crawlers may read the archive when it is indexable, and nothing else ever (every other public
    page carries a reader's token)."""
    allow = f"Allow: {ARCHIVE}\n" if settings.archive_indexable else ""
    return f"User-agent: *\n{allow}Disallow: /\n"
