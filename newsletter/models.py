"""Tables for content: posts, feeds and issues. (The audience's tables live in ``subscribers``.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from subscribers.db import Base, JSONType, UTCDateTime, utcnow


class Feed(Base):
    """An RSS or Atom feed polled for new posts."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str | None] = mapped_column(String(500))
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Post(Base):
    """An article as imported: title, structured blocks and where it came from."""

    __tablename__ = "posts"
    __table_args__ = (UniqueConstraint("feed_id", "feed_entry_key", name="uq_posts_feed_entry"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    excerpt: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(String(300))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source_url: Mapped[str | None] = mapped_column(String(2000))
    canonical_url: Mapped[str | None] = mapped_column(String(2000))
    source_format: Mapped[str] = mapped_column(String(20))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    blocks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    reading_minutes: Mapped[int] = mapped_column(Integer)
    # sha256 of the parsed content: importing the same content again finds this row.
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="SET NULL"))
    feed_entry_key: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    feed: Mapped[Feed | None] = relationship()


class Issue(Base):
    """One email made from a post: subject, preheader and the compiled body.

    ``html`` and ``text`` are compiled once (Jinja2 -> MJML -> HTML) and hold per-recipient
    placeholders (see ``newsletter.personalize``); sending only substitutes them.
    """

    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="RESTRICT"), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(20), default="draft")
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    compiled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    post: Mapped[Post] = relationship()
