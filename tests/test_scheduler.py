"""The scheduler's jobs: feed polling finds new posts and is harmless to repeat."""

from __future__ import annotations

import scheduler
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.posts import service as post_service
from tests.webserver import Site

RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
    "<item><guid>one</guid><title>One</title><description>First body.</description></item>"
    "</channel></rss>"
)


def test_poll_job_imports_new_entries_once(settings: Settings, db: Database, site: Site) -> None:
    url = site.add("/rss", RSS, "application/rss+xml")
    with db.session() as session:
        post_service.add_feed(session, url)
    assert scheduler.poll_feeds(settings, db) == 1
    assert scheduler.poll_feeds(settings, db) == 0  # a repeat or an overlap adds nothing
    with db.session() as session:
        assert [p.title for p in post_service.list_posts(session)] == ["One"]


def test_scheduler_has_one_non_overlapping_feed_job(settings: Settings, db: Database) -> None:
    sched = scheduler.build_scheduler(settings, db)
    (job,) = sched.get_jobs()
    assert job.id == "poll_feeds" and job.max_instances == 1 and job.coalesce
    assert job.trigger.interval.total_seconds() == settings.feed_poll_minutes * 60
