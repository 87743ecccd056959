"""Merge tags: how staff personalise a post or a sequence step with a contact's custom field.

Written in the content, as Mailchimp, Kit and listmonk users expect:
``{{ field.city | default: "your area" }}`` (the fallback for a contact without a value; left out,
it is empty). Importers keep the text verbatim, and it is content, never a template: our Jinja
templates print it as a value, and a Liquid-style ``default:`` is not Jinja.

Compiling (once per email, never per recipient) turns each tag into a custom field's placeholder
(``newsletter.compose.personalize``): before rendering, into a token of letters no content can
forge; after, into the HTML part's and the text part's placeholders. A tag in the subject, the
preheader, or any attribute (a link, an image) is refused: a custom field's value never reaches a
subject, a URL or the provider's metadata.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from html import unescape
from typing import Any

from newsletter.compose.personalize import FIELD_NAME, HTML_PART, TEXT_PART, custom_field_placeholder
from newsletter.errors import InputError

# Quotes as they may arrive: typed, entity-escaped by an HTML source, or curled by a word processor.
_QUOTE = r"(?:\"|'|&quot;|&#34;|&#x22;|&#39;|&#x27;|“|”|‘|’)"
MERGE_TAG = re.compile(r"\{\{\s*field\.(" + FIELD_NAME + r")\s*(?:\|\s*default\s*:\s*" + _QUOTE + r"(.*?)"
                       + _QUOTE + r"\s*)?\}\}")
_STARTED = re.compile(r"\{\{\s*field\b")
# Text that ends in an address being written (a mail client would link it with the value inside).
_IN_ADDRESS = re.compile(r"(?:\w+://|mailto:|tel:|www\.)[^\s<>\"']*$", re.IGNORECASE)
SYNTAX = '{{ field.NAME | default: "text" }}'


class MergeTagError(InputError):
    """A merge tag where it may not be, or one that cannot be read."""


def holds_merge_tag(text: str | None) -> bool:
    return bool(text) and _STARTED.search(text) is not None


def check_plain(text: str, where: str) -> None:
    """Refuse a merge tag in a subject or preheader (they show on lock screens and go to the provider)."""
    if holds_merge_tag(text):
        raise MergeTagError(f"the {where} holds a merge tag: a custom field's value never goes into the {where}; "
                            "use merge tags in the email's text only")


@dataclass
class Tokens:
    """The merge tags of one render, each standing as a token until the parts are rendered."""

    nonce: str = field(default_factory=lambda: secrets.token_hex(6))
    tags: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (field name, fallback)

    def replace_tags(self, text: str) -> str:
        def token(match: re.Match[str]) -> str:
            name, fallback = match.group(1), unescape(match.group(2) or "").strip()
            if _IN_ADDRESS.search(text, 0, match.start()):
                raise MergeTagError(f"the merge tag for “{name}” is part of an address: a custom field's value "
                                    "never goes into a URL; put it in the text")
            key = f"zmerge{self.nonce}n{len(self.tags)}z"
            self.tags[key] = (name, " ".join(fallback.split()))
            return key

        replaced = MERGE_TAG.sub(token, text)
        if broken := _STARTED.search(replaced):
            shown = replaced[broken.start():broken.start() + 60].split("}}")[0]
            raise MergeTagError(f"the merge tag “{unescape(shown)}…” cannot be read: write {SYNTAX} "
                                "(a field name of letters, digits, _ or -, the fallback in quotes)")
        return replaced

    def in_content(self, value: Any) -> Any:
        """``value`` (a block, its strings, lists of them) with its merge tags as tokens."""
        if isinstance(value, str):
            return self.replace_tags(value) if "{{" in value else value
        if isinstance(value, list):
            return [self.in_content(v) for v in value]
        if isinstance(value, dict):
            return {k: self.in_content(v) for k, v in value.items()}
        return value

    def in_card(self, card: Any) -> Any:
        return replace(card, title=self.in_content(card.title), excerpt=self.in_content(card.excerpt),
                       url=self.in_content(card.url), image=self.in_content(card.image))

    def placeholders(self, html: str, text: str) -> tuple[str, str]:
        """The rendered parts with each token as its placeholder; a token inside a tag (an attribute:
        a link, an image's address or alt text) is refused."""
        if not self.tags:
            return html, text
        for key, (name, _) in self.tags.items():
            at = html.find(key)
            while at != -1:
                if html.rfind("<", 0, at) > html.rfind(">", 0, at):
                    raise MergeTagError(f"the merge tag for “{name}” is inside a link or an image: a custom "
                                        "field's value never goes into a URL or an attribute; put it in the text")
                at = html.find(key, at + 1)
        for key, (name, fallback) in self.tags.items():
            html = html.replace(key, custom_field_placeholder(name, HTML_PART, fallback))
            text = text.replace(key, custom_field_placeholder(name, TEXT_PART, fallback))
        return html, text
