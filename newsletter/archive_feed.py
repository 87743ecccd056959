"""The archive's Atom 1.0 feed (RFC 4287), made with feedgen: the newest published issues, each with
its archive copy (``newsletter.archive.clean_copy``) as escaped HTML, never a reader's copy."""

from __future__ import annotations

from feedgen.feed import FeedGenerator
from sqlalchemy.orm import Session

from newsletter.archive import archive_page, clean_copy, web_parts
from newsletter.config import Settings
from newsletter.urls import ARCHIVE, ARCHIVE_FEED, archive_url
from subscribers.db import utcnow

FEED_ENTRIES = 20


def atom_feed(session: Session, settings: Settings) -> bytes:
    """The feed as UTF-8 XML. Entry ids are the issue's archive address without its slug (a subject
    never changes once sent, but an id must not change even if it did)."""
    base = settings.public_base_url
    issues = archive_page(session, size=FEED_ENTRIES).issues
    feed = FeedGenerator()
    feed.id(base + ARCHIVE)
    feed.title(settings.newsletter_name)
    feed.subtitle(f"Past issues of {settings.newsletter_name} from {settings.org_name}")
    feed.author({"name": settings.org_name})
    feed.link(href=base + ARCHIVE, rel="alternate", type="text/html")
    feed.link(href=base + ARCHIVE_FEED, rel="self", type="application/atom+xml")
    feed.language(settings.language)
    published = [i.archive_published_at for i in issues if i.archive_published_at is not None]
    feed.updated(max(published) if published else utcnow())
    for issue in reversed(issues):  # feedgen puts the entry added last first
        entry = feed.add_entry()
        entry.id(f"{base}{ARCHIVE}/{issue.id}")
        entry.title(issue.subject)
        entry.link(href=archive_url(settings, issue.id, issue.subject), rel="alternate", type="text/html")
        entry.updated(issue.archive_published_at)
        if issue.enqueued_at is not None:
            entry.published(issue.enqueued_at)
        if issue.preheader:
            entry.summary(issue.preheader)
        entry.content(web_parts(clean_copy(session, issue)).body, type="html")
    return feed.atom_str(pretty=True)
