"""Issues: an email made from a post. Create (compiled once), list, show, preflight and preview."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import InputError, NotFound
from newsletter.links import recipient_values, unsubscribe_mailto
from newsletter.mime import build_message
from newsletter.models import Issue, Post
from newsletter.personalize import substitute
from newsletter.posts.service import get_post
from newsletter.preflight import Finding, check_email
from newsletter.render import EmailContent, RenderedEmail, RenderError, render_email
from newsletter.tracking.links import track
from subscribers.db import utcnow

SAMPLE_RECIPIENT = ("Alex Sample", "alex.sample@example.com")
SAMPLE_TOKEN = "preview-sample-token"


def content_for(post: Post, subject: str, preheader: str) -> EmailContent:
    return EmailContent(
        subject=subject,
        preheader=preheader,
        title=post.title,
        blocks=post.blocks,
        published_at=post.published_at,
        reading_minutes=post.reading_minutes,
    )


def _clean_line(value: str, what: str) -> str:
    value = " ".join(value.split())
    if len(value) > 300:
        raise InputError(f"the {what} is {len(value)} characters; keep it under 300")
    return value


TRACKING_MODES = ("full", "anonymous", "off")


def check_tracking(mode: str) -> str:
    if mode not in TRACKING_MODES:
        raise InputError(f"tracking must be one of {', '.join(TRACKING_MODES)}, not {mode!r}")
    return mode


def create_issue(
    session: Session, settings: Settings, post_id: int, subject: str | None = None, preheader: str | None = None,
    tracking: str | None = None,
) -> Issue:
    post = get_post(session, post_id)
    tracking = check_tracking(tracking or settings.tracking)
    subject = _clean_line(subject if subject is not None else post.title, "subject")
    preheader = _clean_line(preheader if preheader is not None else post.excerpt, "preheader")[:200]
    rendered = render_email(content_for(post, subject, preheader), settings)
    issue = Issue(post=post, subject=subject, preheader=preheader, html=rendered.html, text=rendered.text,
                  tracking=tracking)
    session.add(issue)
    session.flush()
    issue.html = track(session, rendered.html, base_url=settings.public_base_url, booking_url=settings.booking_url,
                       mode=issue.tracking, issue_id=issue.id)
    return issue


def set_tracking(session: Session, settings: Settings, issue: Issue, mode: str) -> None:
    """Change an unsent issue's tracking; its links are compiled again."""
    if issue.status not in ("draft", "scheduled"):
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


def rendered_of(issue: Issue) -> RenderedEmail:
    images = [
        {"src": b.get("src", ""), "alt": b.get("alt") or ""} for b in issue.post.blocks if b["type"] == "image"
    ]
    return RenderedEmail(issue.subject, issue.preheader, issue.html, issue.text, images)


def recompile(session: Session, issue: Issue, settings: Settings) -> None:
    """Compile again from the post (after a template or brand change); only before sending."""
    rendered = render_email(content_for(issue.post, issue.subject, issue.preheader), settings)
    issue.html = track(session, rendered.html, base_url=settings.public_base_url, booking_url=settings.booking_url,
                       mode=issue.tracking, issue_id=issue.id)
    issue.text, issue.compiled_at = rendered.text, utcnow()


def preflight(issue: Issue, settings: Settings) -> list[Finding]:
    """Re-render from the post (so a broken template is caught), then check the result."""
    try:
        rendered = render_email(content_for(issue.post, issue.subject, issue.preheader), settings)
    except RenderError as exc:
        return [Finding("error", "template-broken", str(exc))]
    return check_email(rendered, settings)


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
        rendered_of(issue),
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
