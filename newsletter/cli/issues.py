"""newsletter issues ...: emails made from posts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from newsletter import archive, health_policy
from newsletter import issues as issue_service
from newsletter.errors import InputError
from newsletter.cli.common import audited, friendly_errors, out, print_json, print_rows, unit_of_work
from newsletter.compose.compile import posts_of
from newsletter.compose.layouts import DIGEST, hero_of
from newsletter.config import Settings
from newsletter.staff.audit import AuditAction
from newsletter.sending.progress import IssueState, issue_state, issue_states
from newsletter.urls import archive_url

issues_app = typer.Typer(help="Issues: emails made from posts.", no_args_is_help=True)
LAYOUT_HELP = "full (the whole post) | teaser (first paragraphs, then 'Continue reading on our site') | digest (several posts as cards)."
HERO_HELP = "The image above the title: 'first' (the post's first image; the default), 'none', or the src of one of the post's images."



def issue_summary(issue: Any, state: IssueState) -> dict[str, Any]:
    return {
        "id": issue.id,
        "post_id": issue.post_id,
        "subject": issue.subject,
        "preheader": issue.preheader,
        "layout": issue.layout,
        "posts": [p.id for p in posts_of(issue)],
        "hero": hero_of(issue.post, issue.hero, issue.hero_alt) if issue.layout != DIGEST else None,
        **state.as_dict(),  # status as stored; state, unknown and label as people are told it
        "html_bytes": len(issue.html.encode("utf-8")),
        "compiled_at": issue.compiled_at.isoformat(),
        "created_at": issue.created_at.isoformat(),
    }


def _print_findings(findings: list[Any], settings: Settings) -> None:
    out.print(health_policy.summary(settings) + ".", highlight=False)
    if not findings:
        out.print("[green]Preflight: all checks pass.[/green]")
    for finding in findings:
        colour = "red" if finding.level == "error" else "yellow"
        out.print(f"[{colour}]{finding.level}[/{colour}] {finding.code}: {finding.message}", highlight=False)


@issues_app.command("create")
@friendly_errors
def issues_create(
    post: Annotated[list[int], typer.Option("--post", help="Id of the post the issue is made from; a digest: each post, in order (--post 3 --post 5 ...).")],
    subject: Annotated[str | None, typer.Option(help="Subject line; default the post's title, or a neutral line when the title names a condition or treatment.")] = None,
    preheader: Annotated[str | None, typer.Option(help="Preview text; default the post's excerpt, or a neutral sentence when it names a condition or treatment.")] = None,
    tracking: Annotated[str | None, typer.Option(help="full | anonymous (counts only) | off; default NEWSLETTER_TRACKING.")] = None,
    intro: Annotated[str, typer.Option(help="A note above the post (plain text; a blank line starts a paragraph).")] = "",
    layout: Annotated[str, typer.Option(help=LAYOUT_HELP)] = "full",
    hero: Annotated[str | None, typer.Option(help=HERO_HELP)] = None,
    hero_alt: Annotated[str | None, typer.Option(help="Alt text of the hero image, instead of the image's own.")] = None,
) -> None:
    """Make a draft issue from a post (a digest: from several). Prints its id, then the preflight's findings."""
    with unit_of_work() as (settings, session):
        issue = issue_service.create_issue(session, settings, post[0], subject, preheader, tracking, intro,
                                           layout=layout, more_posts=post[1:], hero=hero, hero_alt=hero_alt)
        audited(session, AuditAction.ISSUE_CREATED, f"issue {issue.id}")
        findings = issue_service.preflight(issue, settings)
    print(issue.id)
    _print_findings(findings, settings)


@issues_app.command("edit")
@friendly_errors
def issues_edit(
    issue_id: int,
    subject: Annotated[str | None, typer.Option(help="New subject line.")] = None,
    preheader: Annotated[str | None, typer.Option(help="New preview text.")] = None,
    intro: Annotated[str | None, typer.Option(help="A note above the post (plain text; a blank line starts a paragraph; '' removes it).")] = None,
    layout: Annotated[str | None, typer.Option(help=LAYOUT_HELP)] = None,
    hero: Annotated[str | None, typer.Option(help=HERO_HELP)] = None,
    hero_alt: Annotated[str | None, typer.Option(help="Alt text of the hero image ('' gives the image's own back).")] = None,
    post: Annotated[list[int] | None, typer.Option("--post", help="A digest's posts, in order (replaces them all).")] = None,
) -> None:
    """Change a draft or scheduled issue's subject, preheader, intro note, layout, hero or digest posts;
    it is compiled again."""
    with unit_of_work() as (settings, session):
        issue = issue_service.get_issue(session, issue_id)
        if layout is not None or hero is not None or hero_alt is not None or post:
            issue_service.edit_layout(session, settings, issue, layout=layout, hero=hero, hero_alt=hero_alt,
                                      post_ids=post or None)
        if subject is not None or preheader is not None or intro is not None:
            issue_service.edit_issue(session, settings, issue, subject=subject, preheader=preheader, intro=intro)
        audited(session, AuditAction.ISSUE_EDITED, f"issue {issue_id}")
        findings = issue_service.preflight(issue, settings)
    out.print(f"issue {issue_id} updated", highlight=False)
    _print_findings(findings, settings)


@issues_app.command("list")
@friendly_errors
def issues_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List issues, newest first."""
    with unit_of_work() as (_, session):
        issues = issue_service.list_issues(session)
        states = issue_states(session, issues)
        rows = [issue_summary(i, states[i.id]) for i in issues]
    print_rows(rows, as_json, {"id": "id", "post": "post_id", "status": "label", "subject": "subject",
                               "created": "created_at"})


@issues_app.command("show")
@friendly_errors
def issues_show(issue_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show an issue and its preflight findings."""
    with unit_of_work() as (settings, session):
        issue = issue_service.get_issue(session, issue_id)
        data = issue_summary(issue, issue_state(session, issue))
        findings = issue_service.preflight(issue, settings)
    data["preflight"] = [f.__dict__ for f in findings]
    data["sending"] = health_policy.summary(settings)
    if as_json:
        print_json(data)
        return
    for key in ("id", "post_id", "status", "layout", "posts", "subject", "preheader", "html_bytes", "created_at"):
        value = data["label"] if key == "status" else data[key]
        out.print(f"[bold]{key}:[/bold] {value}", highlight=False)
    _print_findings(findings, settings)


@issues_app.command("preflight")
@friendly_errors
def issues_preflight(issue_id: int) -> None:
    """Run the checks an issue must pass before it is scheduled; exit 1 when any error remains."""
    with unit_of_work() as (settings, session):
        findings = issue_service.preflight(issue_service.get_issue(session, issue_id), settings)
    _print_findings(findings, settings)
    if any(f.level == "error" for f in findings):
        raise typer.Exit(1)


@issues_app.command("version")
@friendly_errors
def issues_version(
    issue_id: int,
    language: Annotated[str, typer.Option("--language", help="The version's language: en or es.")],
    post: Annotated[int | None, typer.Option("--post", help="Id of the translated post the version is made from.")] = None,
    subject: Annotated[str | None, typer.Option(help="The version's subject line.")] = None,
    preheader: Annotated[str, typer.Option(help="The version's preview text.")] = "",
    remove: Annotated[bool, typer.Option("--remove", help="Remove the issue's version in --language.")] = False,
) -> None:
    """Add (or replace) a draft issue's version in another language: contacts who read that language
    get it, everyone else the issue's own. Prints the preflight's findings for every version."""
    with unit_of_work() as (settings, session):
        issue = issue_service.get_issue(session, issue_id)
        if remove:
            if issue_service.remove_version(session, issue, language):
                audited(session, AuditAction.ISSUE_VERSION_REMOVED, f"issue {issue_id}", language)
            findings = None
        else:
            if post is None or subject is None:
                raise InputError("give --post (the translated post's id) and --subject for the version, "
                                 "or --remove")
            version = issue_service.add_version(session, settings, issue, language=language, post_id=post,
                                                subject=subject, preheader=preheader)
            audited(session, AuditAction.ISSUE_VERSION_SAVED, f"issue {issue_id}", version.language)
            findings = issue_service.preflight(issue, settings, session)
    if findings is None:
        out.print(f"issue {issue_id}: no version in {language}", highlight=False)
        return
    out.print(f"issue {issue_id}: version in {version.language} saved", highlight=False)
    _print_findings(findings, settings)


@issues_app.command("versions")
@friendly_errors
def issues_versions(issue_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List an issue's language versions (its own first)."""
    with unit_of_work() as (settings, session):
        rows = issue_service.version_rows(session, settings, issue_service.get_issue(session, issue_id))
    print_rows(rows, as_json, {"language": "language", "post": "post_id", "subject": "subject", "own": "default"})


@issues_app.command("preview")
@friendly_errors
def issues_preview(
    issue_id: int,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for issue.html, issue.txt and issue.eml.")],
    language: Annotated[str | None, typer.Option("--language", help="Preview the issue's version in this language.")] = None,
) -> None:
    """Write the issue as a sample recipient receives it: issue.html, issue.txt, issue.eml."""
    with unit_of_work() as (settings, session):
        issue = issue_service.get_issue(session, issue_id)
        version = issue_service.get_version(session, issue, language) if language else None
        files = issue_service.write_preview(issue, settings, out_dir, version)
    for path in (files.html, files.text, files.eml):
        out.print(str(path), highlight=False)


@issues_app.command("tracking")
@friendly_errors
def issues_tracking(issue_id: int, mode: Annotated[str, typer.Argument(help="full | anonymous | off")]) -> None:
    """Change first-party tracking of an issue that has not been sent yet."""
    with unit_of_work() as (settings, session):
        issue_service.set_tracking(session, settings, issue_service.get_issue(session, issue_id), mode)
    out.print(f"issue {issue_id}: tracking {mode}")


@issues_app.command("publish")
@friendly_errors
def issues_publish(issue_id: int) -> None:
    """Publish a sent (or sending) issue in the public archive (/archive) and its feed; prints its address."""
    with unit_of_work() as (settings, session):
        issue = issue_service.get_issue(session, issue_id)
        if archive.publish(issue):
            audited(session, AuditAction.ARCHIVE_PUBLISHED, f"issue {issue_id}")
        address = archive_url(settings, issue.id, issue.subject)
    out.print(f"issue {issue_id} is in the public archive: {address}", highlight=False)


@issues_app.command("unpublish")
@friendly_errors
def issues_unpublish(issue_id: int) -> None:
    """Take an issue out of the public archive and its feed."""
    with unit_of_work() as (_, session):
        if archive.unpublish(issue_service.get_issue(session, issue_id)):
            audited(session, AuditAction.ARCHIVE_UNPUBLISHED, f"issue {issue_id}")
    out.print(f"issue {issue_id} is not in the public archive", highlight=False)
