"""The ``newsletter`` command: a thin face over the service modules (no business rule lives here)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from newsletter import issues as issue_service
from newsletter.config import Settings, get_settings
from newsletter.database import Database, current_revision, head_revision, upgrade
from newsletter.errors import InputError, NotFound
from newsletter.posts import service as post_service

app = typer.Typer(help="Email newsletter and lead-nurture pipeline for clinics.", no_args_is_help=True)
posts_app = typer.Typer(help="Import and inspect posts.", no_args_is_help=True)
feeds_app = typer.Typer(help="RSS/Atom feeds polled for new posts.", no_args_is_help=True)
issues_app = typer.Typer(help="Issues: emails made from posts.", no_args_is_help=True)
app.add_typer(posts_app, name="posts")
app.add_typer(feeds_app, name="feeds")
app.add_typer(issues_app, name="issues")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Turn the errors a user can act on into one clear line and a non-zero exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NotFound as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
        except (InputError, ValueError) as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def open_database(settings: Settings) -> Database:
    """A fresh database is created on first use; an older schema must be upgraded with ``init``."""
    db = Database.from_settings(settings)
    current, head = current_revision(db.engine), head_revision(db.engine)
    if current is None:
        upgrade(db.engine)
    elif current != head:
        raise InputError(f"the database is at revision {current}, the code needs {head}: run 'newsletter init'")
    return db


@contextmanager
def unit_of_work() -> Iterator[tuple[Settings, Any]]:
    settings = get_settings()
    db = open_database(settings)
    with db.session() as session:
        yield settings, session


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def print_rows(rows: list[dict[str, Any]], as_json: bool, columns: dict[str, str]) -> None:
    """A listing as JSON, or as a table of ``columns`` (header -> key); timestamps cut to minutes."""
    if as_json:
        print_json(rows)
        return
    table = Table(*columns)
    for row in rows:
        cells = [row[key] for key in columns.values()]
        table.add_row(*("" if c is None else str(c)[:16] if key.endswith("_at") else str(c)
                        for c, key in zip(cells, columns.values())))
    out.print(table)


# Top level --------------------------------------------------------------------------------------


@app.command()
@friendly_errors
def init() -> None:
    """Create or upgrade the database. Safe to run any number of times."""
    settings = get_settings()
    db = Database.from_settings(settings)
    before, after = upgrade(db.engine)
    where = db.engine.url.render_as_string(hide_password=True)
    if before == after:
        out.print(f"Database {where} is up to date (revision {after}).", highlight=False)
    else:
        out.print(f"Database {where} upgraded from {before or 'empty'} to revision {after}.", highlight=False)


@app.command()
@friendly_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the preview files.")] = Path("var/demo"),
) -> None:
    """Set up ./var, import a sample post, build its issue and write the previews."""
    from newsletter.demo import run_demo

    settings = get_settings()
    result = run_demo(settings, open_database(settings), out_dir)
    out.print(result.summary(), highlight=False)


@app.command("scheduler")
@friendly_errors
def run_scheduler() -> None:
    """Run the scheduler process (feed polling) until stopped with Ctrl-C or SIGTERM."""
    import scheduler

    settings = get_settings()
    try:
        scheduler.main(settings, open_database(settings))
    except KeyboardInterrupt:
        pass


# Posts ------------------------------------------------------------------------------------------


def post_summary(post: Any) -> dict[str, Any]:
    return {
        "id": post.id,
        "title": post.title,
        "excerpt": post.excerpt,
        "author": post.author,
        "published_at": post.published_at.isoformat() if post.published_at else None,
        "source_url": post.source_url,
        "canonical_url": post.canonical_url,
        "source_format": post.source_format,
        "tags": post.tags,
        "reading_minutes": post.reading_minutes,
        "created_at": post.created_at.isoformat(),
    }


@posts_app.command("import")
@friendly_errors
def posts_import(
    source: Annotated[str, typer.Argument(help="A file path, '-' for standard input, or an http(s) URL.")],
    fmt: Annotated[str, typer.Option("--format", help="auto | text | markdown | html | feed")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the parsed post as JSON.")] = False,
) -> None:
    """Import a post. Prints its id; the same content imported again gives the same id."""
    if fmt == "feed":
        raise InputError(f"{source}: a feed holds many posts; use 'newsletter feeds add {source}'")
    with unit_of_work() as (settings, session):
        raw = post_service.read(source, settings, stdin=sys.stdin.buffer)
        result = post_service.import_post(session, raw, fmt)
        post = result.post
    if as_json:
        print_json({**post_summary(post), "created": result.created, "blocks": post.blocks})
    else:
        print(post.id)
        if not result.created:
            err.print(f"(already imported as post {post.id}: {post.title})", highlight=False)


@posts_app.command("list")
@friendly_errors
def posts_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List posts, newest first."""
    with unit_of_work() as (_, session):
        rows = [post_summary(p) for p in post_service.list_posts(session)]
    print_rows(rows, as_json, {"id": "id", "title": "title", "format": "source_format",
                               "min": "reading_minutes", "imported": "created_at"})


@posts_app.command("show")
@friendly_errors
def posts_show(post_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a post and its blocks."""
    with unit_of_work() as (_, session):
        post = post_service.get_post(session, post_id)
        data = {**post_summary(post), "blocks": post.blocks}
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{data['title']}[/bold]  (post {post_id}, {data['source_format']}, {data['reading_minutes']} min read)")
    counts: dict[str, int] = {}
    for block in data["blocks"]:
        counts[block["type"]] = counts.get(block["type"], 0) + 1
    out.print(", ".join(f"{n} {kind}" for kind, n in counts.items()), highlight=False)
    for block in data["blocks"]:
        if block["type"] == "heading":
            out.print(f"  [cyan]## {block.get('html', '')}[/cyan]", highlight=False)


# Feeds ------------------------------------------------------------------------------------------


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
    with unit_of_work() as (settings, session):
        results = post_service.poll_all(session, settings)
        if not results:
            out.print("No feeds yet: add one with 'newsletter feeds add URL'.")
        for result in results:
            _print_poll(result)


@feeds_app.command("list")
@friendly_errors
def feeds_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List feeds, when they were last polled and the last error."""
    with unit_of_work() as (_, session):
        rows = [
            {
                "id": feed.id, "url": feed.url, "title": feed.title,
                "last_polled_at": feed.last_polled_at.isoformat() if feed.last_polled_at else None,
                "last_error": feed.last_error,
            }
            for feed in post_service.list_feeds(session)
        ]
    print_rows(rows, as_json, {"id": "id", "url": "url", "title": "title", "last polled": "last_polled_at",
                               "last error": "last_error"})


def _print_poll(result: post_service.PollResult) -> None:
    if result.error:
        err.print(f"[red]feed {result.feed.id}:[/red] {result.error}", highlight=False)
        return
    out.print(f"Feed {result.feed.id}: {len(result.new_posts)} new post(s) of {result.seen} entries.", highlight=False)
    for post in result.new_posts:
        out.print(f"  post {post.id}: {post.title}", highlight=False)


# Issues -----------------------------------------------------------------------------------------


def issue_summary(issue: Any) -> dict[str, Any]:
    return {
        "id": issue.id,
        "post_id": issue.post_id,
        "subject": issue.subject,
        "preheader": issue.preheader,
        "status": issue.status,
        "html_bytes": len(issue.html.encode("utf-8")),
        "compiled_at": issue.compiled_at.isoformat(),
        "created_at": issue.created_at.isoformat(),
    }


def _print_findings(findings: list[Any]) -> None:
    if not findings:
        out.print("[green]Preflight: all checks pass.[/green]")
    for finding in findings:
        colour = "red" if finding.level == "error" else "yellow"
        out.print(f"[{colour}]{finding.level}[/{colour}] {finding.code}: {finding.message}", highlight=False)


@issues_app.command("create")
@friendly_errors
def issues_create(
    post: Annotated[int, typer.Option("--post", help="Id of the post the issue is made from.")],
    subject: Annotated[str | None, typer.Option(help="Subject line; default the post's title.")] = None,
    preheader: Annotated[str | None, typer.Option(help="Preview text; default the post's excerpt.")] = None,
) -> None:
    """Make a draft issue from a post. Prints its id, then the preflight's findings."""
    with unit_of_work() as (settings, session):
        issue = issue_service.create_issue(session, settings, post, subject, preheader)
        findings = issue_service.preflight(issue, settings)
    print(issue.id)
    _print_findings(findings)


@issues_app.command("list")
@friendly_errors
def issues_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List issues, newest first."""
    with unit_of_work() as (_, session):
        rows = [issue_summary(i) for i in issue_service.list_issues(session)]
    print_rows(rows, as_json, {"id": "id", "post": "post_id", "status": "status", "subject": "subject",
                               "created": "created_at"})


@issues_app.command("show")
@friendly_errors
def issues_show(issue_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show an issue and its preflight findings."""
    with unit_of_work() as (settings, session):
        issue = issue_service.get_issue(session, issue_id)
        data = issue_summary(issue)
        findings = issue_service.preflight(issue, settings)
    data["preflight"] = [f.__dict__ for f in findings]
    if as_json:
        print_json(data)
        return
    for key in ("id", "post_id", "status", "subject", "preheader", "html_bytes", "created_at"):
        out.print(f"[bold]{key}:[/bold] {data[key]}", highlight=False)
    _print_findings(findings)


@issues_app.command("preflight")
@friendly_errors
def issues_preflight(issue_id: int) -> None:
    """Run the checks an issue must pass before it is scheduled; exit 1 when any error remains."""
    with unit_of_work() as (settings, session):
        findings = issue_service.preflight(issue_service.get_issue(session, issue_id), settings)
    _print_findings(findings)
    if any(f.level == "error" for f in findings):
        raise typer.Exit(1)


@issues_app.command("preview")
@friendly_errors
def issues_preview(
    issue_id: int,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for issue.html, issue.txt and issue.eml.")],
) -> None:
    """Write the issue as a sample recipient receives it: issue.html, issue.txt, issue.eml."""
    with unit_of_work() as (settings, session):
        files = issue_service.write_preview(issue_service.get_issue(session, issue_id), settings, out_dir)
    for path in (files.html, files.text, files.eml):
        out.print(str(path), highlight=False)


if __name__ == "__main__":
    app()
