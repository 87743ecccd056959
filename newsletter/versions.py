"""Language versions of an email: an issue (or a sequence step) in another language, compiled once
like the email itself, and the one rule that picks the version a contact gets.

The issue or step keeps its own email as the default version, in its own language (its post's, else
the newsletter's). A contact whose language (``subscribers.languages.language_of``) has a version
gets that version; everyone else gets the default. The ledger stays one row per (issue, contact):
the version is chosen when a batch is claimed, and the batch records which one it carried
(``SendBatch.language``), so reports can be split by language.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.compose.compile import content_for_post
from newsletter.compose.layouts import DIGEST
from newsletter.compose.render import CompiledEmail, EmailContent, email_facts, render_email
from newsletter.compose.tracked_links import track_links
from newsletter.config import Settings
from newsletter.models import EmailVersion, Issue
from subscribers.db import utcnow
from subscribers.languages import LANGUAGES, language_of


def primary_language(tag: str) -> str:
    """The primary subtag of a configured language ("en-GB" -> "en"), to compare with contacts'."""
    return tag.replace("_", "-").split("-", 1)[0].strip().lower()


def issue_language(issue: Issue, settings: Settings) -> str:
    """The language of an issue's own (default) version: its post's, else the newsletter's."""
    return issue.post.language or primary_language(settings.language)


def versions_of(session: Session, *, issue_id: int | None = None, step_id: int | None = None) -> list[EmailVersion]:
    """An issue's or a step's language versions, by language."""
    owner = EmailVersion.issue_id == issue_id if issue_id is not None else EmailVersion.step_id == step_id
    return list(session.scalars(select(EmailVersion).where(owner).order_by(EmailVersion.language)))


def content_for_version(issue: Issue, version: EmailVersion) -> EmailContent:
    """An issue version's content: the issue's layout made from the translated post, with the version's
    subject and preheader, in its language. The team's intro note is the issue's own words, in the
    issue's language, so a version has none; the hero is the translated post's first image unless
    the issue shows none."""
    assert version.post is not None and issue.layout != DIGEST  # add_version refuses digests
    hero = "none" if issue.hero == "none" else None
    content = content_for_post(version.post, version.subject, version.preheader, layout=issue.layout, hero=hero)
    return replace(content, language=version.language)


def compile_version(session: Session, settings: Settings, version: EmailVersion, content: EmailContent, *,
                    tracking: str) -> CompiledEmail:
    """Compile one version with its own language and store it on the row; its links are tracked as
    the issue's or step's (``tracking``), under the version. A template that cannot compile raises
    ``RenderError`` before anything is stored."""
    rendered = render_email(replace(content, language=version.language), settings)
    if version.id is None:
        version.html, version.text = rendered.html, rendered.text
        session.add(version)
        session.flush()
    html = track_links(session, rendered.html, settings, mode=tracking, issue_id=version.issue_id,
                       step_id=version.step_id, version_id=version.id)
    version.html, version.text, version.compiled_at = html, rendered.text, utcnow()
    return replace(rendered, html=html)


def compiled_version(issue: Issue, version: EmailVersion) -> CompiledEmail:
    """A version's stored email as sent, with what preflight checks beyond it (as ``compiled_of``)."""
    return CompiledEmail(version.subject, version.preheader, version.html, version.text,
                         **email_facts(content_for_version(issue, version)))


# Sending: which version each contact gets ----------------------------------------------------------


@dataclass(frozen=True)
class Versions:
    """An email's versions other than its own, ready to send: compiled parts by language."""

    by_language: dict[str, CompiledEmail]
    default_language: str  # the newsletter's: what a contact without a language reads

    def pick(self, contact_language: str | None) -> str | None:
        """The language of the version a contact gets; None: the email's own (default) version."""
        wanted = language_of(contact_language, self.default_language)
        return wanted if wanted in self.by_language else None


def sendable_versions(session: Session, settings: Settings, *, issue_id: int | None = None,
                      step_id: int | None = None) -> Versions | None:
    """The versions a batch of this email may carry, or None when it has none (the common case: one
    small indexed lookup per batch, nothing else)."""
    rows = session.execute(
        select(EmailVersion.language, EmailVersion.subject, EmailVersion.preheader, EmailVersion.html, EmailVersion.text)
        .where(EmailVersion.issue_id == issue_id if issue_id is not None else EmailVersion.step_id == step_id)
    ).all()
    if not rows:
        return None
    return Versions({r.language: CompiledEmail(r.subject, r.preheader, r.html, r.text) for r in rows},
                    primary_language(settings.language))


T = TypeVar("T")


def group_by_version(versions: Versions, rows: Iterable[T],
                     language_of_row: Callable[[T], str | None]) -> dict[str | None, list[T]]:
    """Claimed rows grouped by the version each contact gets (None: the default), in claim order;
    each group becomes one batch, since one provider request carries one content."""
    groups: dict[str | None, list[T]] = {}
    for row in rows:
        groups.setdefault(versions.pick(language_of_row(row)), []).append(row)
    return groups


def language_choices(exclude: Iterable[str] = ()) -> dict[str, str]:
    """The languages a version may be added in (ours, minus the email's own and those it has)."""
    skip = set(exclude)
    return {code: name for code, name in LANGUAGES.items() if code not in skip}
