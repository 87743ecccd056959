"""newsletter posts ...: import and inspect posts."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from newsletter.cli.common import audited, err, friendly_errors, out, print_json, print_rows, unit_of_work
from newsletter.staff.audit import AuditAction
from newsletter.errors import InputError
from newsletter import issues as issue_service
from newsletter.posts import service as post_service

posts_app = typer.Typer(help="Import and inspect posts.", no_args_is_help=True)



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
        "language": post.language,
        "translation_of": post.translation_of_id,
        "created_at": post.created_at.isoformat(),
    }


@posts_app.command("import")
@friendly_errors
def posts_import(
    source: Annotated[str, typer.Argument(help="A file path, '-' for standard input, or an http(s) URL.")],
    fmt: Annotated[str, typer.Option("--format", help="auto | text | markdown | html | feed")] = "auto",
    title: Annotated[str | None, typer.Option("--title", help="The post's title (for a page copied without its title line).")] = None,
    excerpt: Annotated[str | None, typer.Option("--excerpt", help="The post's excerpt, instead of its first paragraph.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="Where the post is on the clinic's site (absolute http(s) URL): the emails' 'Read on our site' link.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the parsed post as JSON.")] = False,
    language: Annotated[str | None, typer.Option("--language", help="The language the post is written in (en, es); default the newsletter's.")] = None,
    translation_of: Annotated[int | None, typer.Option("--translation-of", help="Id of the post this one translates (an issue of that post can then get a version made from this one).")] = None,
) -> None:
    """Import a post. Prints its id; the same content imported again gives the same id."""
    if fmt == "feed":
        raise InputError(f"{source}: a feed holds many posts; use 'newsletter feeds add {source}'")
    with unit_of_work() as (settings, session):
        raw = post_service.read(source, settings, stdin=sys.stdin.buffer)
        result = post_service.import_post(session, raw, fmt, title=title, excerpt=excerpt, url=url,
                                          language=language, translation_of=translation_of)
        post = result.post
        if result.created:
            audited(session, AuditAction.POST_IMPORTED, f"post {post.id}")
        elif url or language or translation_of:  # the same content again, given its address or language
            audited(session, AuditAction.POST_EDITED, f"post {post.id}")
    if as_json:
        print_json({**post_summary(post), "created": result.created, "warnings": result.warnings,
                    "blocks": post.blocks})
    else:
        print(post.id)
        if not result.created:
            err.print(f"(already imported as post {post.id}: {post.title})", highlight=False)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


@posts_app.command("edit")
@friendly_errors
def posts_edit(
    post_id: int,
    title: Annotated[str | None, typer.Option("--title", help="The post's new title.")] = None,
    excerpt: Annotated[str | None, typer.Option("--excerpt", help="The post's new excerpt ('' clears it).")] = None,
    url: Annotated[str | None, typer.Option("--url", help="Where the post is on the clinic's site (absolute http(s) URL).")] = None,
) -> None:
    """Change a post's title, excerpt or address; its unsent issues are compiled again."""
    with unit_of_work() as (settings, session):
        drafts = issue_service.edit_post(session, settings, post_id, title=title, excerpt=excerpt, url=url)
        audited(session, AuditAction.POST_EDITED, f"post {post_id}")
    again = f"; issues compiled again: {', '.join(str(i.id) for i in drafts)}" if drafts else ""
    out.print(f"post {post_id} updated{again}", highlight=False)


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
