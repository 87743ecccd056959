"""The scheduler: one leader at a time, due work from the tables, feed polling harmless to repeat."""

from __future__ import annotations

import threading
from datetime import timedelta

import scheduler
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.posts import service as post_service
from newsletter.sending import leader
from subscribers.db import utcnow
from tests.webserver import Site

RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
    "<item><guid>one</guid><title>One</title><description>First body.</description></item>"
    "</channel></rss>"
)


def test_poll_job_imports_new_entries_once_and_only_as_leader(loopback_allowed: Settings, db: Database, site: Site) -> None:
    url = site.add("/rss", RSS, "application/rss+xml")
    with db.session() as session:
        post_service.add_feed(session, url)
    assert scheduler.poll_feeds(loopback_allowed, db, "standby") is None  # not the leader: does nothing
    assert scheduler.run_due_work(loopback_allowed, db, "leader") is not None
    assert scheduler.poll_feeds(loopback_allowed, db, "leader") == 1
    assert scheduler.poll_feeds(loopback_allowed, db, "leader") == 0  # a repeat or an overlap adds nothing
    with db.session() as session:
        assert [p.title for p in post_service.list_posts(session)] == ["One"]


def test_a_slow_feed_holds_no_transaction_while_it_is_fetched(loopback_allowed: Settings, db: Database, site: Site) -> None:
    url = site.add("/slow", RSS, "application/rss+xml")
    with db.session() as session:
        post_service.add_feed(session, url)
    arrived, release = site.hold("/slow")
    poller = threading.Thread(target=scheduler.poll_feeds, args=(loopback_allowed, db, "leader"))
    assert scheduler.run_due_work(loopback_allowed, db, "leader") is not None
    poller.start()
    try:
        assert arrived.wait(10)
        # While the feed server keeps the poller waiting, another writer (sending, say) gets on.
        def write() -> None:
            with db.session() as session:
                assert leader.acquire(session, "probe", "another process", utcnow(), timedelta(seconds=5))

        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=10)
        assert not writer.is_alive(), "the feed fetch held the database"
    finally:
        release.set()
        poller.join(timeout=10)
    with db.session() as session:
        assert [p.title for p in post_service.list_posts(session)] == ["One"]


def test_two_schedulers_never_both_act(settings: Settings, db: Database) -> None:
    now = utcnow()
    first = scheduler.run_due_work(settings, db, "scheduler-a", now)
    second = scheduler.run_due_work(settings, db, "scheduler-b", now)
    assert first is not None and second is None
    assert scheduler.run_due_work(settings, db, "scheduler-a", now + timedelta(seconds=5)) is not None  # renews
    # The leader dies (stops renewing); after the lease lapses the standby takes over, and only it.
    later = now + timedelta(minutes=5)
    assert scheduler.run_due_work(settings, db, "scheduler-b", later) is not None
    assert scheduler.run_due_work(settings, db, "scheduler-a", later) is None
    with db.session() as session:
        leader.release(session, scheduler.LEASE, "scheduler-b")  # a clean shutdown hands over at once
    assert scheduler.run_due_work(settings, db, "scheduler-a", later) is not None


def test_scheduler_jobs_never_overlap_themselves(settings: Settings, db: Database) -> None:
    sched = scheduler.build_scheduler(settings, db, holder="h")
    jobs = {job.id: job for job in sched.get_jobs()}
    assert set(jobs) == {"due_work", "poll_feeds", "report_figures"}
    assert all(job.max_instances == 1 and job.coalesce for job in jobs.values())
    assert jobs["due_work"].trigger.interval.total_seconds() == settings.scheduler_interval_seconds
    assert jobs["poll_feeds"].trigger.interval.total_seconds() == settings.feed_poll_minutes * 60
