"""Storing posts: import from a source, de-duplicate by content, list and show; feeds and polling."""

from __future__ import annotations

import hashlib
import json
from math import ceil
from dataclasses import dataclass, field
from datetime import datetime
from collections.abc import Callable
from typing import BinaryIO
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.errors import InputError, NotFound
from newsletter.models import Feed, Post
from newsletter.posts.addresses import AllowList
from newsletter.posts.blocks import ParsedPost, reading_minutes
from newsletter.posts.feed import parse_feed
from newsletter.posts.source import RawSource, check_bytes, parse_post, read_source
from newsletter.posts.blocks import MAX_TITLE_CHARS, MAX_URL_CHARS
from subscribers.db import utcnow
from subscribers.languages import check_language

FORMATS = ("auto", "text", "markdown", "html", "feed")
MAX_EXCERPT_CHARS = 500  # cut to the stored excerpt's length on a word boundary


@dataclass
class ImportResult:
    post: Post
    created: bool
    warnings: list[str] = field(default_factory=list)  # what the import removed or changed (ParsedPost.warnings)


def content_hash(parsed: ParsedPost) -> str:
    """Same title and blocks -> same hash, wherever the content came from."""
    canonical = json.dumps(
        {"title": parsed.title, "blocks": [b.to_dict() for b in parsed.blocks]},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def store_post(
    session: Session, parsed: ParsedPost, *, feed: Feed | None = None, entry_key: str | None = None,
    language: str | None = None, translation_of: int | None = None,
) -> ImportResult:
    """Store a parsed post (the same content again finds the stored one); ``language`` and
    ``translation_of`` (see ``set_language``) are checked first and given to it either way."""
    language = check_language(language) if language else None
    original = get_post(session, translation_of) if translation_of is not None else None
    digest = content_hash(parsed)
    existing = session.scalar(select(Post).where(Post.content_hash == digest))
    if existing is not None:
        set_language(existing, language, original)
        return ImportResult(existing, created=False)
    blocks = [b.to_dict() for b in parsed.blocks]
    post = Post(
        title=parsed.title,
        excerpt=parsed.excerpt,
        author=parsed.author,
        published_at=parsed.published_at,
        source_url=parsed.source_url,
        canonical_url=parsed.canonical_url,
        source_format=parsed.source_format,
        tags=list(parsed.tags),
        blocks=blocks,
        reading_minutes=reading_minutes(parsed.blocks),
        content_hash=digest,
        feed=feed,
        feed_entry_key=entry_key,
    )
    try:
        with session.begin_nested():  # a concurrent import of the same content wins cleanly
            session.add(post)
            session.flush()
    except IntegrityError:
        existing = session.scalar(select(Post).where(Post.content_hash == digest))
        if existing is None:
            raise
        set_language(existing, language, original)
        return ImportResult(existing, created=False)
    set_language(post, language, original)
    return ImportResult(post, created=True)


def set_language(post: Post, language: str | None, original: Post | None) -> None:
    """Say which language a post is written in and which post it translates (None: unchanged). An
    issue made from ``original`` can then get a version made from this post."""
    if original is not None and original.id == post.id:
        raise InputError(f"post {post.id} cannot be a translation of itself")
    if language:
        post.language = language
    if original is not None:
        post.translation_of_id = original.id


def translations_of(session: Session, post_id: int) -> list[Post]:
    """The posts that say they translate ``post_id``, by language: the choices for an issue's versions."""
    return list(session.scalars(select(Post).where(Post.translation_of_id == post_id).order_by(Post.language, Post.id)))


def read(source: str, settings: Settings, stdin: BinaryIO | None = None) -> RawSource:
    return read_source(source, stdin=stdin, max_bytes=settings.max_post_bytes, timeout=settings.fetch_timeout,
                       allow=AllowList.parse(settings.fetch_allow_hosts))


def given_bytes(name: str, data: bytes, settings: Settings, content_type: str | None = None) -> RawSource:
    """Content handed over whole (a file uploaded to the staff app, text pasted into it), under the
    same size limit as any other source; ``name`` is what messages call it."""
    if len(data) > settings.max_post_bytes:
        raise InputError(f"{name}: is {len(data):,} bytes; posts are limited to {settings.max_post_bytes:,} "
                         "(NEWSLETTER_MAX_POST_BYTES)")
    check_bytes(name, data)  # empty or binary: refused as a file or a page would be
    return RawSource(name=name, data=data, content_type=content_type, url=None)


def given_text(value: str | None, option: str, limit: int) -> str | None:
    """A title or excerpt typed by staff: one line of text, or a clear error naming the option."""
    if value is None:
        return None
    text = " ".join(value.split())
    if not text:
        raise InputError(f"{option} is empty; give the text, or leave the option out")
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text):
        raise InputError(f"{option} holds a control character; give plain text")
    if len(text) > limit:
        raise InputError(f"{option} is {len(text)} characters; at most {limit} fit")
    return text


def given_url(value: str | None, option: str = "--url") -> str | None:
    """A post's address typed by staff (where it can be read on the clinic's site): an absolute
    http(s) URL with a host, or a clear error naming the option."""
    if value is None:
        return None
    url = value.strip()
    if not url:
        raise InputError(f"{option} is empty; give the post's address, such as https://clinic.example/blog/a-post")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(c.isspace() or ord(c) < 32 for c in url):
        raise InputError(f"{option} must be an absolute http(s) address such as https://clinic.example/blog/a-post, "
                         f"not {url[:100]!r}")
    if len(url) > MAX_URL_CHARS:
        raise InputError(f"{option} is {len(url)} characters; at most {MAX_URL_CHARS} fit")
    return url


def parse(raw: RawSource, fmt: str = "auto", *, title: str | None = None, excerpt: str | None = None) -> ParsedPost:
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "feed":
        raise InputError(f"{raw.name}: a feed holds many posts; use 'newsletter feeds add {raw.name}'")
    return parse_post(raw, fmt, title=given_text(title, "--title", MAX_TITLE_CHARS),
                      excerpt=given_text(excerpt, "--excerpt", MAX_EXCERPT_CHARS))


def import_post(session: Session, raw: RawSource, fmt: str = "auto", *, title: str | None = None,
                excerpt: str | None = None, url: str | None = None, language: str | None = None,
                translation_of: int | None = None) -> ImportResult:
    """Parse and store ``raw``; ``title``/``excerpt`` (staff's own words) win over the source's, and
    ``url`` (where the post is on the clinic's site) over its canonical address, on a post imported
    before too (the same content gives the same post)."""
    url = given_url(url)
    parsed = parse(raw, fmt, title=title, excerpt=excerpt)
    if raw.url and not parsed.source_url:
        parsed.source_url = raw.url
    if url:
        parsed.canonical_url = url
    result = store_post(session, parsed, language=language, translation_of=translation_of)
    if url and result.post.canonical_url != url:
        result.post.canonical_url = url
    result.warnings = list(parsed.warnings)
    return result


def get_post(session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise NotFound(f"there is no post {post_id}; 'newsletter posts list' shows them")
    return post


def update_post(post: Post, *, title: str | None = None, excerpt: str | None = None,
                title_label: str = "--title", excerpt_label: str = "--excerpt", url: str | None = None) -> Post:
    """Staff's own title, excerpt or address (``url``, where it is on the clinic's site; "" takes it
    away) for a post, all checked before any is stored. Its content hash stays that of the import,
    so importing the same source again still finds this post."""
    new_title = given_text(title, title_label, MAX_TITLE_CHARS)
    new_excerpt = given_text(excerpt, excerpt_label, MAX_EXCERPT_CHARS) if excerpt is not None and excerpt.strip() else None
    new_url = given_url(url) if url is not None and url.strip() else None
    if new_title is not None:
        post.title = new_title
    if excerpt is not None:
        post.excerpt = new_excerpt or ""
    if url is not None:  # "" takes the address away
        post.canonical_url = new_url
    return post


def list_posts(session: Session, limit: int = 100) -> list[Post]:
    return list(session.scalars(select(Post).order_by(Post.id.desc()).limit(limit)))


# Feeds ---------------------------------------------------------------------------------------


@dataclass
class PollResult:
    feed: Feed
    new_posts: list[Post]
    seen: int
    error: str | None = None


def add_feed(session: Session, url: str) -> tuple[Feed, bool]:
    check_web_url(url, "feed URL")
    feed = session.scalar(select(Feed).where(Feed.url == url))
    if feed is not None:
        return feed, False
    feed = Feed(url=url)
    session.add(feed)
    session.flush()
    return feed, True


def list_feeds(session: Session) -> list[Feed]:
    return list(session.scalars(select(Feed).order_by(Feed.id)))


def fetch_feed(url: str, settings: Settings) -> RawSource | InputError:
    """The feed's document, or why it could not be had. Called outside any transaction: a slow feed
    server must not hold the database (on SQLite, every other writer, sending included)."""
    try:
        return read(url, settings)
    except InputError as exc:
        return exc


def poll_feed(session: Session, feed: Feed, settings: Settings, fetched: RawSource | InputError | None = None,
              now: datetime | None = None) -> PollResult:
    """Import every entry not seen before (from ``fetched``, else fetched now). A fetch or parse
    error is recorded on the feed, not raised, so one broken feed does not stop the others."""
    feed.last_polled_at = now or utcnow()
    try:
        raw = fetched if fetched is not None else read(feed.url, settings)
        if isinstance(raw, InputError):
            raise raw
        title, entries = parse_feed(raw.data, source_name=feed.url, url=feed.url)
    except InputError as exc:
        feed.last_error = str(exc)
        # A run of failures is what staff need to see (one timeout is noise; a week of them is not).
        feed.failing_since = feed.failing_since or feed.last_polled_at
        feed.consecutive_failures = (feed.consecutive_failures or 0) + 1
        return PollResult(feed, [], 0, str(exc))
    feed.title = title or feed.title
    feed.last_error, feed.failing_since, feed.consecutive_failures = None, None, 0
    known = set(session.scalars(select(Post.feed_entry_key).where(Post.feed_id == feed.id)))
    new_posts = []
    for entry in entries:
        if entry.key in known:
            continue
        result = store_post(session, entry.post, feed=feed, entry_key=entry.key)
        if result.created:
            new_posts.append(result.post)
    return PollResult(feed, new_posts, len(entries))


def poll_all(db: Database, settings: Settings, now: datetime | None = None) -> list[PollResult]:
    """Poll every feed: each fetched with no transaction open, then stored in a transaction of its own."""
    with db.session() as session:
        feed_ids = [feed.id for feed in list_feeds(session)]
    return [result for feed_id in feed_ids if (result := poll_one(db, settings, feed_id, now)) is not None]


def poll_one(db: Database, settings: Settings, feed_id: int, now: datetime | None = None) -> PollResult | None:
    """Poll one feed: fetched with no transaction open, then stored in a transaction of its own.
    None when there is no such feed (or it was removed meanwhile)."""
    with db.session() as session:
        feed = session.get(Feed, feed_id)
        url = feed.url if feed is not None else None
    if url is None:
        return None
    fetched = fetch_feed(url, settings)
    with db.session() as session:
        feed = session.get(Feed, feed_id)
        return poll_feed(session, feed, settings, fetched, now) if feed is not None else None


# Sources given by URL (the staff app's import and feed forms) ---------------------------------


def check_web_url(url: str, what: str = "URL") -> str:
    """An http or https URL, or an error naming ``what``: a form's URL field must never reach the
    file reader that ``read`` also is (a path typed there would read this machine's files)."""
    if not url.lower().startswith(("http://", "https://")):
        raise InputError(f"{what} must start with http:// or https://, not {url!r}")
    return url


def read_url(url: str, settings: Settings) -> RawSource:
    """A post's page fetched by URL (http or https only), under the same checks as the CLI's."""
    return read(check_web_url(url.strip()), settings)


def add_feed_polled(db: Database, settings: Settings, url: str,
                    on_added: Callable[[Session, Feed], None] | None = None) -> PollResult:
    """Add a feed and import its entries, as ``feeds add`` does: a URL that gives no feed (or cannot
    be fetched) is refused and nothing is stored. The fetch happens before any transaction opens;
    ``on_added`` runs in the transaction that adds a new feed (the audit entry commits with it)."""
    url = check_web_url(url.strip(), "feed URL")
    fetched = fetch_feed(url, settings)
    with db.session() as session:
        feed, created = add_feed(session, url)
        result = poll_feed(session, feed, settings, fetched)
        if result.error:
            raise InputError(f"{result.error}; the feed was not added" if created else result.error)
        if created and on_added is not None:
            on_added(session, feed)
        return result


# Pages of posts (the staff app's list) -------------------------------------------------------

POSTS_PER_PAGE = 50


@dataclass(frozen=True)
class PostPage:
    posts: list[Post]
    page: int
    pages: int
    total: int


def posts_page(session: Session, page: int = 1, per_page: int = POSTS_PER_PAGE) -> PostPage:
    """One page of posts, newest first; a page past the end gives the last one."""
    total = session.scalar(select(func.count()).select_from(Post)) or 0
    pages = max(1, ceil(total / per_page))
    page = min(max(1, page), pages)
    rows = session.scalars(select(Post).order_by(Post.id.desc()).offset((page - 1) * per_page).limit(per_page))
    return PostPage(list(rows), page, pages, total)
