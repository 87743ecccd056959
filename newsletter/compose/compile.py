"""Compiling an email: the one way content becomes the stored email that is sent.

``compile_email`` renders (Jinja2 fills the MJML layout, mjml-python compiles it, the text part is
derived), rewrites the links for first-party tracking when the email is tracked, and stores the
result on its issue or sequence step. Creating an issue, compiling it again (scheduling, a tracking
change) and installing a sequence all call it, so preflight checks what the transport sends.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.compose.render import CompiledEmail, EmailContent, render_email
from newsletter.compose.tracked_links import track_links
from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.models import Issue, Post, SequenceStep
from subscribers.db import utcnow

TRACKING_MODES = ("full", "anonymous", "off")


def check_tracking(mode: str) -> str:
    if mode not in TRACKING_MODES:
        raise InputError(f"tracking must be one of {', '.join(TRACKING_MODES)}, not {mode!r}")
    return mode


def content_for_post(post: Post, subject: str, preheader: str, intro: str = "") -> EmailContent:
    """An issue's content: the post's title and blocks, with its date and reading time as the meta
    line, and the team's intro note above the post."""
    return EmailContent(subject=subject, preheader=preheader, title=post.title, blocks=post.blocks,
                        published_at=post.published_at, reading_minutes=post.reading_minutes, intro=intro)


def compile_email(content: EmailContent, settings: Settings, *, tracking: str = "off", session: Session | None = None,
                  into: Issue | SequenceStep | None = None, now: datetime | None = None) -> CompiledEmail:
    """Compile ``content``. With ``into`` (an issue or a step, new or stored) the result is stored on
    it, its links tracked as ``tracking`` says (they are rows that name it, so a new one is flushed
    first for its id); without, the email is returned untracked (a confirmation email, a test).

    Rendering comes first: a template that cannot compile raises ``RenderError`` and stores nothing."""
    rendered = render_email(content, settings)
    if into is None:
        if tracking != "off":
            raise ValueError("tracked links belong to an issue or a step: pass it as `into`")
        return rendered
    if session is None:
        raise ValueError("storing a compiled email needs the session")
    if into.id is None:
        into.html, into.text = rendered.html, rendered.text
        session.add(into)
        session.flush()
    html = track_links(session, rendered.html, settings, mode=tracking,
                       issue_id=into.id if isinstance(into, Issue) else None,
                       step_id=into.id if isinstance(into, SequenceStep) else None)
    into.html, into.text, into.compiled_at = html, rendered.text, now or utcnow()
    return CompiledEmail(rendered.subject, rendered.preheader, html, rendered.text, rendered.images)


def compiled_of(issue: Issue) -> CompiledEmail:
    """An issue's stored email as sent, with its post's images (for preflight's alt-text check)."""
    images = [{"src": b.get("src", ""), "alt": b.get("alt") or ""} for b in issue.post.blocks if b["type"] == "image"]
    return CompiledEmail(issue.subject, issue.preheader, issue.html, issue.text, images)
