"""A post as it will appear in an email, before any issue exists: rendered the way an issue made
from it would be (same layout, blocks, footer), untracked, and filled with a preview's values so no
placeholder shows and no link counts anything. Nothing is stored."""

from __future__ import annotations

from newsletter.compose.compile import content_for_post
from newsletter.compose.personalize import substitute
from newsletter.compose.render import render_email
from newsletter.compose.suggestions import suggest
from newsletter.config import Settings
from newsletter.models import Post
from newsletter.urls import test_values

PREVIEW_NAME = "Alex"  # the first name the greeting shows


def post_email_html(post: Post, settings: Settings) -> str:
    """The HTML of an email made from ``post`` with the subject and preheader a new issue starts
    with (``compose.suggestions``), personalised for a preview."""
    suggested = suggest(post, settings)
    content = content_for_post(post, suggested.subject, suggested.preheader)
    return substitute(render_email(content, settings).html, test_values(settings, PREVIEW_NAME))
