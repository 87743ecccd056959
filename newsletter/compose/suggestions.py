"""The subject and preheader a new issue starts from when staff give none.

A subject and preheader show on lock screens and in shared inboxes, so the post's title is suggested
only when it names no condition or treatment (``preflight.HEALTH_TERMS``, the one list of such
words); otherwise a neutral line is. Staff may still type anything: preflight warns about what they
type. Every face that makes an issue (CLI, staff app, the post's email view) asks here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from newsletter.compose.merge_tags import holds_merge_tag
from newsletter.compose.preflight import PREHEADER_MIN_CHARS, SUBJECT_SOFT_LIMIT, health_terms_in
from newsletter.config import Settings
from newsletter.models import Post
from newsletter.posts.blocks import excerpt_from, inline_text

PREHEADER_CHARS = 200  # what an issue keeps as its preheader
SUBJECT_LEAD = "New on the blog: "
MIN_PHRASE_WORDS = 3  # a shorter part of a title ("Part 2") says nothing on its own
SCANNED_PARAGRAPHS = 6  # a preheader comes from the start of the post, not its last page
_TITLE_PARTS_RE = re.compile(r"\s*(?::|\?|!|\s[\u2013\u2014|-]\s)\s*")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)]*\s+")


@dataclass(frozen=True)
class Suggestion:
    subject: str
    preheader: str


def suggest(post: Post, settings: Settings) -> Suggestion:
    """What a new issue made from ``post`` starts with: both free of health words."""
    return Suggestion(suggested_subject(post.title, settings), suggested_preheader(post, settings))


def _safe(text: str) -> bool:
    # A merge tag may not be in a subject or preheader: a title or sentence holding one is passed over.
    return bool(text) and not health_terms_in(text) and not holds_merge_tag(text)


def suggested_subject(title: str, settings: Settings) -> str:
    """The title when it is neutral; else "New on the blog: <a neutral part of it>", else
    "<newsletter name>: new article"."""
    title = " ".join(title.split())
    if _safe(title):
        return title
    for part in _TITLE_PARTS_RE.split(title):
        part = part.strip(" .,;")
        if len(part.split()) >= MIN_PHRASE_WORDS and _safe(part):
            return SUBJECT_LEAD + excerpt_from(part, SUBJECT_SOFT_LIMIT - len(SUBJECT_LEAD))
    name = " ".join(settings.newsletter_name.split())
    return f"{name}: new article" if _safe(name) else "A new article on our blog"


def _sentences(post: Post) -> list[str]:
    paragraphs = [b.get("html", "") for b in post.blocks if b.get("type") == "paragraph"][:SCANNED_PARAGRAPHS]
    found: list[str] = []
    for html in paragraphs:
        found += [s.strip() for s in _SENTENCE_END_RE.split(inline_text(html, markers=False)) if s.strip()]
    return found


def suggested_preheader(post: Post, settings: Settings) -> str:
    """The excerpt when it is neutral; else the first neutral sentence near the start of the post long
    enough to fill an inbox preview; else a neutral line about the post."""
    excerpt = " ".join((post.excerpt or "").split())
    if _safe(excerpt):
        return excerpt_from(excerpt, PREHEADER_CHARS)
    for sentence in _sentences(post):
        if len(sentence) >= PREHEADER_MIN_CHARS and _safe(sentence):
            return excerpt_from(sentence, PREHEADER_CHARS)
    org = " ".join(settings.org_name.split())
    team = f"the team at {org}" if _safe(org) else "our team"
    minutes = post.reading_minutes or 1
    return f"Our latest post, a {minutes}-minute read from {team}."
