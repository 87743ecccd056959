"""Issues: an email made from a post. Create (compiled once), list, show, preflight and preview."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import InputError, NotFound
from newsletter.compose.compile import check_tracking, compile_email, compiled_of, content_for_post
from newsletter.compose.mime import build_message
from newsletter.compose.personalize import substitute
from newsletter.compose.preflight import Finding, check_email
from newsletter.compose.render import CompiledEmail
from newsletter.models import Issue
from newsletter.posts.service import get_post
from newsletter.urls import recipient_values, unsubscribe_mailto
from subscribers.states import RECOMPILABLE

SAMPLE_RECIPIENT = ("Alex Sample", "alex.sample@example.com")
SAMPLE_TOKEN = "preview-sample-token"


def _clean_line(value: str, what: str) -> str:
    value = " ".join(value.split())
    if len(value) > 300:
        raise InputError(f"the {what} is {len(value)} characters; keep it under 300")
    return value


def create_issue(
    session: Session, settings: Settings, post_id: int, subject: str | None = None, preheader: str | None = None,
    tracking: str | None = None,
) -> Issue:
    post = get_post(session, post_id)
    tracking = check_tracking(tracking or settings.tracking)
    subject = _clean_line(subject if subject is not None else post.title, "subject")
    preheader = _clean_line(preheader if preheader is not None else post.excerpt, "preheader")[:200]
    issue = Issue(post=post, subject=subject, preheader=preheader, tracking=tracking)
    compile_email(content_for_post(post, subject, preheader), settings, tracking=tracking, session=session, into=issue)
    return issue


def set_tracking(session: Session, settings: Settings, issue: Issue, mode: str) -> None:
    """Change an unsent issue's tracking; its links are compiled again."""
    if issue.status not in RECOMPILABLE:
        raise InputError(f"issue {issue.id} is {issue.status}: tracking can change only before sending")
    issue.tracking = check_tracking(mode)
    recompile(session, issue, settings)


def get_issue(session: Session, issue_id: int) -> Issue:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFound(f"there is no issue {issue_id}; 'newsletter issues list' shows them")
    return issue


def list_issues(session: Session, limit: int = 100) -> list[Issue]:
    return list(session.scalars(select(Issue).order_by(Issue.id.desc()).limit(limit)))


def recompile(session: Session, issue: Issue, settings: Settings) -> CompiledEmail:
    """Compile again from the post (after a template, brand or tracking change); only before sending."""
    return compile_email(content_for_post(issue.post, issue.subject, issue.preheader), settings,
                         tracking=issue.tracking, session=session, into=issue)


def preflight(issue: Issue, settings: Settings) -> list[Finding]:
    """Check the issue's stored email: byte for byte the one the transport sends."""
    return check_email(compiled_of(issue), settings)


@dataclass
class PreviewFiles:
    html: Path
    text: Path
    eml: Path


def write_preview(issue: Issue, settings: Settings, out_dir: Path) -> PreviewFiles:
    """issue.html, issue.txt and issue.eml exactly as a sample recipient would receive them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name, address = SAMPLE_RECIPIENT
    values = recipient_values(settings, SAMPLE_TOKEN, name)
    message = build_message(
        compiled_of(issue),
        to_email=address,
        to_name=name,
        values=values,
        unsubscribe_mailto=unsubscribe_mailto(settings, SAMPLE_TOKEN),
        settings=settings,
    )
    files = PreviewFiles(out_dir / "issue.html", out_dir / "issue.txt", out_dir / "issue.eml")
    files.html.write_text(substitute(issue.html, values), encoding="utf-8")
    files.text.write_text(substitute(issue.text, values), encoding="utf-8")
    files.eml.write_bytes(message.as_bytes())
    return files
