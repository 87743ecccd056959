"""The service pieces the staff posts pages stand on: pages of posts, URL-only reading, polling one
feed outside a transaction, adding a feed only when it reads, and a post's email view."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.compose.post_view import post_email_html
from newsletter.compose.personalize import placeholders_in
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.errors import InputError
from newsletter.models import Feed, Post
from newsletter.posts import service
from newsletter.urls import test_values
from tests.webserver import Site

DEMO = Path(__file__).resolve().parents[1] / "newsletter" / "samples" / "demo-post.txt"
RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Harbor Clinic Blog</title><link>https://harbor.example/blog/</link>
<item><title>Sleep and Recovery</title><guid>post-1</guid><description>&lt;p&gt;Rest well, every night.&lt;/p&gt;</description></item>
<item><title>Walking and Mood</title><guid>post-2</guid><description>&lt;p&gt;Walk a little, each day.&lt;/p&gt;</description></item>
</channel></rss>"""


def _import(db: Database, settings: Settings, text: str, name: str = "pasted") -> Post:
    with db.session() as session:
        return service.import_post(session, service.given_bytes(name, text.encode(), settings), "markdown").post


def test_posts_page_is_newest_first_and_clamps_the_page(db: Database, settings: Settings) -> None:
    made = [_import(db, settings, f"# Post number {n}\n\nBody of post {n}.").id for n in range(5)]
    with db.session() as session:
        first = service.posts_page(session, 1, per_page=2)
        last = service.posts_page(session, 99, per_page=2)
        before = service.posts_page(session, -3, per_page=2)
    assert [p.id for p in first.posts] == made[::-1][:2] and (first.page, first.pages, first.total) == (1, 3, 5)
    assert [p.id for p in last.posts] == [made[0]] and last.page == 3
    assert before.page == 1


def test_an_empty_table_is_one_empty_page(db: Database) -> None:
    with db.session() as session:
        empty = service.posts_page(session)
    assert (empty.posts, empty.page, empty.pages, empty.total) == ([], 1, 1, 0)


@pytest.mark.parametrize("typed", ["/etc/passwd", str(DEMO), "ftp://example.com/post", "file:///etc/passwd", "-", ""])
def test_read_url_takes_only_web_addresses_never_a_path(settings: Settings, typed: str) -> None:
    with pytest.raises(InputError, match="must start with http:// or https://"):
        service.read_url(typed, settings)


def test_read_url_refuses_this_machine_unless_allowed(settings: Settings) -> None:
    with pytest.raises(InputError, match="127.0.0.1"):
        service.read_url("http://127.0.0.1:9/post", settings)


def test_poll_one_reads_a_feed_and_records_its_error(db: Database, loopback_allowed: Settings, site: Site) -> None:
    url = site.add("/feed.xml", RSS, "application/rss+xml")
    with db.session() as session:
        feed_id = service.add_feed(session, url)[0].id
    result = service.poll_one(db, loopback_allowed, feed_id)
    assert result is not None and result.error is None and len(result.new_posts) == 2
    assert service.poll_one(db, loopback_allowed, feed_id).new_posts == []  # type: ignore[union-attr]
    site.add("/feed.xml", "gone", "text/plain", status=404)
    failed = service.poll_one(db, loopback_allowed, feed_id)
    assert failed is not None and failed.error and "404" in failed.error
    with db.session() as session:
        assert session.get(Feed, feed_id).last_error == failed.error  # type: ignore[union-attr]
    assert service.poll_one(db, loopback_allowed, 999) is None
    assert [r.feed.id for r in service.poll_all(db, loopback_allowed)] == [feed_id]


def test_add_feed_polled_stores_nothing_when_the_feed_does_not_read(db: Database, loopback_allowed: Settings,
                                                                   site: Site) -> None:
    added: list[int] = []
    page = site.add("/page.html", "<html><body><p>Just a page.</p></body></html>")
    with pytest.raises(InputError, match="not an RSS or Atom feed.*the feed was not added"):
        service.add_feed_polled(db, loopback_allowed, page, lambda s, f: added.append(f.id))
    with pytest.raises(InputError, match="feed URL must start with http"):
        service.add_feed_polled(db, loopback_allowed, "/etc/passwd")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Feed)) == 0
    result = service.add_feed_polled(db, loopback_allowed, site.add("/feed.xml", RSS, "application/rss+xml"),
                                     lambda s, f: added.append(f.id))
    assert added == [result.feed.id] and len(result.new_posts) == 2
    again = service.add_feed_polled(db, loopback_allowed, result.feed.url, lambda s, f: added.append(f.id))
    assert again.feed.id == result.feed.id and added == [result.feed.id]  # known already: not added twice


def test_a_posts_email_view_is_rendered_and_personalised(db: Database, settings: Settings) -> None:
    with db.session() as session:
        raw = service.given_bytes("demo-post.txt", DEMO.read_bytes(), settings)
        post = service.import_post(session, raw).post
        html = post_email_html(post, settings)
    assert post.title in html and "Alex" in html
    assert placeholders_in(html) == set() and "%%" not in html
    values = test_values(settings, "Alex")  # a preview's links carry the test token: nothing counts
    assert values.unsubscribe_url in html and values.preferences_url in html
    assert "<script" not in html.lower()
