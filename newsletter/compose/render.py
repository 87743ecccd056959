"""Render an email once: Jinja2 fills the MJML layout, mjml-python compiles it, text is derived.

The result still holds per-recipient placeholders; sending only substitutes them
(``newsletter.compose.personalize``), so a 100,000-recipient issue is compiled exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import mjml
from jinja2 import TemplateError

from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.compose.footnotes import REF_PREFIX, link_block_markers
from newsletter.compose.email_look import email_look
from newsletter.compose.layouts import DIGEST, FULL, TEASER, Card
from newsletter.compose.merge_tags import Tokens, check_plain
from newsletter.compose.personalize import PLACEHOLDERS
from newsletter.posts.blocks import Block
from newsletter.compose.plaintext import block_to_text, card_to_text, reference_to_text
from newsletter.compose.templating import email_env
from newsletter.i18n import gettext_for, long_date, ngettext_for, spoken, template_words

LAYOUT = "email/issue.mjml.j2"
# What of an email's content may hold merge tags: everything it shows but its subject and preheader
# (an address or an image's text among them only to be refused, see ``merge_tags``).
TOKENISED = ("title", "blocks", "intro", "reason", "cta", "hero", "read_url")
TEXT_LAYOUT = "email/issue.txt.j2"


class RenderError(InputError):
    """The template or its content could not be compiled into an email."""


@dataclass
class EmailContent:
    """What goes into one email, whatever it was made from (a post, a sequence step)."""

    subject: str
    preheader: str
    title: str
    blocks: list[dict[str, Any]]
    published_at: datetime | None = None
    reading_minutes: int | None = None
    reason: str | None = None  # "why you get this"; defaults to the newsletter's
    # Transactional mail (a confirmation request) has its own button and no unsubscribe footer.
    transactional: bool = False
    cta: dict[str, str] | None = None  # label, url, lead; default: the booking button
    greeting: bool = True
    intro: str = ""  # an issue's note from the team, plain text, before the post (paragraphs split on blank lines)
    # An issue's layout (newsletter.compose.layouts): ``blocks`` are what it shows of the post (a
    # teaser's first paragraphs), ``cards`` a digest's posts; ``hero`` an image (src, alt) above the
    # title; ``read_url`` where the post is on the clinic's site.
    layout: str = FULL
    hero: dict[str, str] | None = None
    read_url: str | None = None
    cards: list[Card] = field(default_factory=list)
    top_link: bool = False  # the button as a text link near the top too (issues)
    # The language this email is written in (<mjml lang>, the layout's own words); None: the
    # newsletter's (NEWSLETTER_LANGUAGE). Each language version of an issue or step is compiled with its own.
    language: str | None = None


@dataclass
class CompiledEmail:
    """An email as stored and sent: its HTML and text still hold the per-recipient placeholders
    (and, when tracked, its links are first-party click URLs and it has the open pixel)."""

    subject: str
    preheader: str
    html: str
    text: str
    images: list[dict[str, str]] = field(default_factory=list)  # src/alt of every image, for preflight
    layout: str = FULL
    # Titles of the posts the layout links to ("Continue reading", "Read more") that have no address.
    unlinked: list[str] = field(default_factory=list)
    post_count: int = 1

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


def _segments(blocks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Group consecutive text blocks; images stand alone; references go to their own section."""
    segments: list[dict[str, Any]] = []
    references: list[str] = []
    for block in map(Block.from_dict, blocks):
        if block.type == "references":
            references.extend(block.items or [])
        elif block.type == "image":
            segments.append({"kind": "image", "blocks": [block]})
        elif segments and segments[-1]["kind"] == "text":
            segments[-1]["blocks"].append(block)
        else:
            segments.append({"kind": "text", "blocks": [block]})
    for segment in segments:  # footnote markers link to their reference, now that the count is known
        if segment["kind"] == "text":
            for block in segment["blocks"]:
                link_block_markers(block, len(references))
    return segments, references


def _meta(content: EmailContent, language: str) -> str:
    parts = []
    if content.published_at:
        parts.append(long_date(content.published_at, language))
    if content.reading_minutes:
        ngettext, minutes = ngettext_for(language), content.reading_minutes
        parts.append(ngettext("%(num)d min read", "%(num)d min read", minutes) % {"num": minutes})
    return " · ".join(parts)


def email_facts(content: EmailContent) -> dict[str, Any]:
    """What preflight checks of an email beyond its HTML and text: every image it shows (the hero
    and cards' images marked with their role), and the posts it should link to but cannot."""
    images = [{"src": content.hero["src"], "alt": content.hero["alt"], "role": "hero"}] if content.hero else []
    images += [{"src": b.get("src", ""), "alt": b.get("alt") or ""} for b in content.blocks if b["type"] == "image"]
    images += [{**card.image, "role": "card"} for card in content.cards if card.image]
    if content.layout == DIGEST:
        unlinked = [card.title for card in content.cards if not card.url]
    else:
        unlinked = [content.title] if content.layout == TEASER and not content.read_url else []
    return {"images": images, "layout": content.layout, "unlinked": unlinked,
            "post_count": len(content.cards) if content.layout == DIGEST else 1}


def _text_body(content: EmailContent, language: str) -> list[str]:
    """The plain-text part's body: the post's blocks, a teaser's continue link, or a digest's cards."""
    _ = gettext_for(language)
    if content.layout == DIGEST:
        return [card_to_text(card, _("Read more")) for card in content.cards]
    body = [t for t in (block_to_text(b) for b in content.blocks if b["type"] != "references") if t]
    if content.layout == TEASER and content.read_url:
        body.append(f"{_('Continue reading on our site')}: {content.read_url}")
    return body


def brand_context(settings: Settings, language: str | None = None) -> dict[str, Any]:
    # The button's label and lead are the clinic's settings: their defaults are in the catalogues,
    # so an email in another language gets them translated; wording the clinic wrote stays as written.
    _ = gettext_for(spoken(language, settings.language))
    return {
        "brand": {
            "language": language or settings.language,
            "org_name": settings.org_name,
            "postal_address": settings.postal_address,
            "logo_url": settings.logo_url,
            "logo_width": settings.logo_width,
            "logo_height": settings.logo_height,
            "logo_alt": settings.logo_alt or settings.org_name,
            "accent_colour": settings.accent_colour,
            "footer_note": settings.footer_note,
        },
        "cta": {"url": settings.booking_url, "label": _(settings.cta_label), "lead": _(settings.cta_lead)},
        "ph": PLACEHOLDERS,
        "look": email_look(settings.accent_colour),
    }


def render_email(content: EmailContent, settings: Settings, language: str | None = None) -> CompiledEmail:
    """Compile ``content`` once, its own words (footer, links, greeting, date) in ``language``
    (default: the content's own, a version's language, else the newsletter's). An issue with versions
    is compiled once per language, never per recipient; the post's words are the content's and are not
    translated here."""
    language = spoken(language or content.language, settings.language)
    _ = gettext_for(language)
    check_plain(content.subject, "subject")
    check_plain(content.preheader, "preheader")
    facts = email_facts(content)
    tokens = Tokens()  # merge tags stand as tokens while rendering, placeholders after (merge_tags)
    content = replace(content, **{name: tokens.in_content(getattr(content, name)) for name in TOKENISED},
                      cards=[tokens.in_card(c) for c in content.cards])
    segments, references = _segments(content.blocks)
    context = {
        **brand_context(settings, language),
        **template_words(language),
        "subject": content.subject,
        "preheader": content.preheader,
        "title": content.title,
        "meta": _meta(content, language),
        "reason": content.reason
        or _("You are receiving this because you subscribed to %(newsletter)s from %(org)s.")
        % {"newsletter": settings.newsletter_name, "org": settings.org_name},
        "segments": segments,
        "references": references,
        "ref_prefix": REF_PREFIX,
        "transactional": content.transactional,
        "greeting": content.greeting,
        "intro": [p.strip() for p in content.intro.split("\n\n") if p.strip()],
        "layout": content.layout,
        "hero": content.hero,
        "read_url": content.read_url,
        "cards": content.cards,
        "top_link": content.top_link,
    }
    if content.cta:
        context["cta"] = content.cta
    try:
        source = email_env().get_template(LAYOUT).render(context)
        text = email_env(text=True).get_template(TEXT_LAYOUT).render(
            {
                **context,
                "body": _text_body(content, language),
                "references": [reference_to_text(r) for r in references],
            }
        )
    except TemplateError as exc:
        raise RenderError(f"email template {getattr(exc, 'name', None) or LAYOUT}: {exc}") from exc
    try:
        html = mjml.mjml2html(source, disable_comments=True, fonts={})
    except ValueError as exc:
        raise RenderError(f"MJML compile of {LAYOUT} failed: {exc}") from exc
    html, text = tokens.placeholders(html, text.strip() + "\n")
    return CompiledEmail(content.subject, content.preheader, html, text, **facts)
