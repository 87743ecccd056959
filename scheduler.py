"""The scheduler process: APScheduler jobs that find due work and hand it on.

APScheduler's job store is memory only and never shared; the durable truth is in our tables. Only
one scheduler acts at a time: each round it must hold the "scheduler" lease in the database (a
second scheduler waits as a standby and takes over when the lease lapses). Its jobs only find due
work -- make the issues automations call for (new posts, digests), start scheduled issues, recover
rows of dead workers, close finished sends, queue due sequence steps, poll feeds; the
sending itself is done by dispatchers (``newsletter worker``, or the one ``newsletter serve`` runs).

Run it as ``newsletter scheduler`` (or ``python -m scheduler``).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from newsletter.bootstrap import wire
from newsletter.config import Settings, get_settings
from newsletter.database import Database
from newsletter.posts import service as post_service
from newsletter.reports.snapshots import refresh_figures
from newsletter import stored_settings
from newsletter.sending import leader
from newsletter.due import Round, run_round
from subscribers.db import utcnow

log = logging.getLogger("newsletter.scheduler")
LEASE = "scheduler"


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def run_due_work(settings: Settings, db: Database, holder: str, now: datetime | None = None) -> Round | None:
    """One round, if this process leads. Returns None when another scheduler holds the lease."""
    now = now or utcnow()
    ttl = timedelta(seconds=max(settings.scheduler_interval_seconds * 3, 15))
    with db.session() as session:
        if not leader.acquire(session, LEASE, holder, now, ttl):
            return None
        # What staff saved on the settings page applies from this round (one small query).
        report = run_round(session, stored_settings.in_session(session, settings), now)
    if report.busy():
        log.info("due work: %s", report.summary())
    return report


def poll_feeds(settings: Settings, db: Database, holder: str) -> int | None:
    """One round of feed polling (leader only); returns how many new posts were imported."""
    now = utcnow()
    with db.session() as session:
        if leader.holder_of(session, LEASE, now) != holder:
            return None
    results = post_service.poll_all(db, settings)
    for result in results:
        if result.error:
            log.warning("feed %s: %s", result.feed.id, result.error)
    new = sum(len(r.new_posts) for r in results)
    if new:
        log.info("imported %d new post(s) from %d feed(s)", new, len(results))
    return new


def refresh_report_figures(settings: Settings, db: Database, holder: str) -> int | None:
    """Keep the figures of recent issues fresh for the pages that list them (leader only)."""
    now = utcnow()
    with db.session() as session:
        if leader.holder_of(session, LEASE, now) != holder:
            return None
        return refresh_figures(session, now)


def build_scheduler(settings: Settings, db: Database, *, background: bool = False,
                    holder: str | None = None) -> BaseScheduler:
    holder = holder or holder_id()
    scheduler: BaseScheduler = BackgroundScheduler(timezone="UTC") if background else BlockingScheduler(timezone="UTC")
    common = {"max_instances": 1, "coalesce": True}  # never overlap itself; after a pause, one catch-up run
    scheduler.add_job(run_due_work, "interval", args=(settings, db, holder), id="due_work",
                      seconds=settings.scheduler_interval_seconds, next_run_time=utcnow(), **common)
    scheduler.add_job(poll_feeds, "interval", args=(settings, db, holder), id="poll_feeds",
                      minutes=settings.feed_poll_minutes, next_run_time=utcnow() + timedelta(seconds=5), **common)
    scheduler.add_job(refresh_report_figures, "interval", args=(settings, db, holder), id="report_figures",
                      minutes=1, next_run_time=utcnow() + timedelta(seconds=10), **common)
    return scheduler


def main(settings: Settings | None = None, db: Database | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per job run
    settings = settings or get_settings()
    wire(settings)
    db = db or Database.from_settings(settings)
    holder = holder_id()
    scheduler = build_scheduler(settings, db, holder=holder)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    log.info("scheduler %s started: due work every %ss, feeds every %s min", holder,
             settings.scheduler_interval_seconds, settings.feed_poll_minutes)
    try:
        scheduler.start()
    finally:
        with db.session() as session:
            leader.release(session, LEASE, holder)


if __name__ == "__main__":
    main()
