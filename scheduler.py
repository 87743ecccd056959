"""The scheduler process: APScheduler jobs that find due work and hand it on.

Each job reads its state from the project's tables and is idempotent, so a restart (or an overlap)
loses and repeats nothing; the job store is APScheduler's memory only. Today its one job polls the
feeds for new posts; scheduled issues, sequence steps and lease expiry join it as they are built.

Run it as ``newsletter scheduler`` (or ``python -m scheduler``).
"""

from __future__ import annotations

import logging
import signal

from apscheduler.schedulers.blocking import BlockingScheduler

from newsletter.config import Settings, get_settings
from newsletter.database import Database
from newsletter.posts import service as post_service
from subscribers.db import utcnow

log = logging.getLogger("newsletter.scheduler")


def poll_feeds(settings: Settings, db: Database) -> int:
    """One round of feed polling; returns how many new posts were imported."""
    with db.session() as session:
        results = post_service.poll_all(session, settings)
        for result in results:
            if result.error:
                log.warning("feed %s: %s", result.feed.id, result.error)
        new = sum(len(r.new_posts) for r in results)
    if new:
        log.info("imported %d new post(s) from %d feed(s)", new, len(results))
    return new


def build_scheduler(settings: Settings, db: Database) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        poll_feeds,
        "interval",
        args=(settings, db),
        minutes=settings.feed_poll_minutes,
        id="poll_feeds",
        max_instances=1,  # a slow poll is never overlapped by the next one
        coalesce=True,  # after a pause, one catch-up run rather than a burst
        next_run_time=utcnow(),  # first poll at start-up
    )
    return scheduler


def main(settings: Settings | None = None, db: Database | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings or get_settings()
    db = db or Database.from_settings(settings)
    scheduler = build_scheduler(settings, db)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    log.info("scheduler started: feeds every %s min", settings.feed_poll_minutes)
    scheduler.start()


if __name__ == "__main__":
    main()
