"""newsletter feeds ...: RSS/Atom feeds polled for new posts."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli.common import err, friendly_errors, open_database, out, print_rows, unit_of_work
from newsletter.config import get_settings
from newsletter.errors import InputError
from newsletter.automations.status import feed_states
from newsletter.posts import service as post_service
from subscribers.db import utcnow

feeds_app = typer.Typer(help="RSS/Atom feeds polled for new posts.", no_args_is_help=True)



@feeds_app.command("add")
@friendly_errors
def feeds_add(
    url: str, poll: Annotated[bool, typer.Option("--poll/--no-poll", help="Import its entries now.")] = True
) -> None:
    """Add a feed; by default its entries are imported at once (and a URL that is no feed is refused)."""
    with unit_of_work() as (settings, session):
        feed, created = post_service.add_feed(session, url)
        result = post_service.poll_feed(session, feed, settings) if poll else None
        if result and result.error and created:
            raise InputError(f"{result.error}; the feed was not added")
        out.print(f"Feed {feed.id} {'added' if created else 'already known'}: {url}", highlight=False)
        if result:
            _print_poll(result)


@feeds_app.command("poll")
@friendly_errors
def feeds_poll() -> None:
    """Import the entries not seen before from every feed."""
    settings = get_settings()
    results = post_service.poll_all(open_database(settings), settings)
    if not results:
        out.print("No feeds yet: add one with 'newsletter feeds add URL'.")
    for result in results:
        _print_poll(result)


@feeds_app.command("list")
@friendly_errors
def feeds_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List feeds: last poll, a run of failed polls (since when, how many), and each one's automation."""
    now = utcnow()
    with unit_of_work() as (_, session):
        rows = []
        for state in feed_states(session, now):
            feed, auto = state.feed, state.automation
            rows.append({
                "id": feed.id, "url": feed.url, "title": feed.title,
                "last_polled_at": feed.last_polled_at.isoformat() if feed.last_polled_at else None,
                "last_error": feed.last_error,
                "failing_since": feed.failing_since.isoformat() if feed.failing_since else None,
                "consecutive_failures": feed.consecutive_failures,
                "automation": auto.automation.mode if auto else "off",
                "slot": f"{auto.automation.slot_days} {auto.automation.slot_time}" if auto else None,
                "next_slot": auto.next_slot.isoformat() if auto and auto.next_slot else None,
                "awaiting_approval": [i.id for i in auto.awaiting_approval] if auto else [],
                "drafts": [i.id for i in auto.drafts] if auto else [],
                "last_problem": auto.last_problem if auto else None,
            })
    print_rows(rows, as_json, {"id": "id", "url": "url", "title": "title", "last polled": "last_polled_at",
                               "last error": "last_error", "failing since": "failing_since",
                               "failures": "consecutive_failures", "automation": "automation",
                               "next slot": "next_slot"})


def _print_poll(result: post_service.PollResult) -> None:
    if result.error:
        err.print(f"[red]feed {result.feed.id}:[/red] {result.error}", highlight=False)
        return
    out.print(f"Feed {result.feed.id}: {len(result.new_posts)} new post(s) of {result.seen} entries.", highlight=False)
    for post in result.new_posts:
        out.print(f"  post {post.id}: {post.title}", highlight=False)
