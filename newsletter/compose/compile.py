"""Compiling an email: the one way content becomes the stored email that is sent.

``compile_email`` renders (Jinja2 fills the MJML layout, mjml-python compiles it, the text part is
derived), rewrites the links for first-party tracking when the email is tracked, and stores the
result on its issue or sequence step. Creating an issue, compiling it again (scheduling, a tracking
change) and installing a sequence all call it, so preflight checks what the transport sends.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.compose.layouts import DIGEST, FULL, TEASER, card_of, hero_of, read_url, teaser_blocks, without_hero
from newsletter.compose.render import CompiledEmail, EmailContent, email_facts, render_email
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


def content_for_post(post: Post, subject: str, preheader: str, intro: str = "", *, layout: str = FULL,
                     hero: str | None = None, hero_alt: str | None = None) -> EmailContent:
    """An issue's content made from one post in ``layout`` (full or teaser): the post's title and
    blocks (a teaser's first paragraphs), its hero image, date and reading time as the meta line,
    the team's intro note above the post, and the button as a link near the top."""
    shown = hero_of(post, hero, hero_alt)
    blocks = teaser_blocks(post) if layout == TEASER else without_hero(post.blocks, shown)
    return EmailContent(subject=subject, preheader=preheader, title=post.title, blocks=blocks,
                        published_at=post.published_at, reading_minutes=post.reading_minutes, intro=intro,
                        layout=layout, hero=shown, read_url=read_url(post), top_link=True, language=post.language)


def posts_of(issue: Issue) -> list[Post]:
    """The posts an issue shows, in order: a digest's, else its one post."""
    if issue.layout == DIGEST and issue.digest_entries:
        return [entry.post for entry in issue.digest_entries]
    return [issue.post]


def content_for_issue(issue: Issue) -> EmailContent:
    """What an issue's email shows, in its layout; a digest's title is its subject."""
    if issue.layout == DIGEST:
        return EmailContent(subject=issue.subject, preheader=issue.preheader, title=issue.subject, blocks=[],
                            intro=issue.intro, layout=DIGEST, cards=[card_of(p) for p in posts_of(issue)],
                            top_link=True, language=issue.post.language)
    return content_for_post(issue.post, issue.subject, issue.preheader, issue.intro, layout=issue.layout,
                            hero=issue.hero, hero_alt=issue.hero_alt)


def compile_email(content: EmailContent, settings: Settings, *, tracking: str = "off", session: Session | None = None,
                  into: Issue | SequenceStep | None = None, now: datetime | None = None,
                  language: str | None = None) -> CompiledEmail:
    """Compile ``content``, its own words in ``language`` (default: the content's, else the
    newsletter's). With ``into`` (an issue or a step, new or stored) the result is stored on it, its links tracked as ``tracking`` says (they are rows that name it, so a new one is flushed
    first for its id); without, the email is returned untracked (a confirmation email, a test).

    Rendering comes first: a template that cannot compile raises ``RenderError`` and stores nothing."""
    rendered = render_email(content, settings, language)
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
    return CompiledEmail(rendered.subject, rendered.preheader, html, rendered.text, rendered.images,
                         rendered.layout, rendered.unlinked, rendered.post_count)


def compiled_of(issue: Issue) -> CompiledEmail:
    """An issue's stored email as sent, with what preflight checks beyond it (its images, hero
    included; the posts its layout should link to but cannot), taken from its content again."""
    return CompiledEmail(issue.subject, issue.preheader, issue.html, issue.text,
                         **email_facts(content_for_issue(issue)))
