"""Per-recipient values: placeholders in the compiled email, filled by cheap substitution.

An issue is compiled once with placeholders such as ``%%first_name%%``; each recipient's copy is made
by replacing them (locally for the outbox, by SendGrid's substitutions for real sending). One value
serves both the HTML and the text part, so values are made safe for both here: URLs are built from
URL-safe tokens only, and names lose the characters HTML would treat as markup.
"""

from __future__ import annotations

import base64
import html
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

FIELDS = ("first_name", "unsubscribe_url", "preferences_url", "view_online_url", "track")
# ``track`` is the delivery token in first-party open and click URLs (added when links are tracked).
LAYOUT_FIELDS = FIELDS[:4]
_PATTERN = re.compile(r"%%(" + "|".join(FIELDS) + r")%%")
ZERO_WIDTH_SPACE = "\u200b"


class Placeholder(str):
    """A placeholder emitted by the templates; it passes the content guard untouched."""


PLACEHOLDERS: dict[str, Placeholder] = {name: Placeholder(f"%%{name}%%") for name in FIELDS}
_SUBSTITUTION_KEYS = tuple(str(PLACEHOLDERS[name]) for name in FIELDS)  # in RecipientValues' field order


def guard_content(value: object) -> object:
    """Keep content from ever looking like a placeholder (a post that contains '%%first_name%%').

    Used as Jinja's ``finalize``: every value a template prints passes through here.
    """
    if isinstance(value, Placeholder) or not isinstance(value, str):
        return value
    guarded = value.replace("%%", "%" + ZERO_WIDTH_SPACE + "%")
    return type(value)(guarded) if type(value) is not str else guarded


_MARKUP = str.maketrans("", "", "<>&\"'%")


def safe_first_name(name: str | None, fallback: str = "there") -> str:
    """A first name safe to drop into HTML and text alike: no markup characters, no controls."""
    first = name.split(None, 1)[0] if name and not name.isspace() else ""
    first = first.translate(_MARKUP)
    if not first.isprintable():  # rare; the per-character pass is kept off the hot path
        first = "".join(ch for ch in first if unicodedata.category(ch)[0] != "C")
    return first[:60] or fallback


NO_FIELDS: Mapping[str, str] = MappingProxyType({})


class RecipientValues(NamedTuple):
    """One recipient's values. A tuple, not a frozen dataclass: a send makes one per recipient, and a
    frozen dataclass's ``__init__`` (a ``setattr`` per field) cost four times as much (measured)."""

    first_name: str
    unsubscribe_url: str
    preferences_url: str
    view_online_url: str
    track: str = "anon"
    # The contact's custom-field values by placeholder key (``field_values``): only those the email uses.
    fields: Mapping[str, str] = NO_FIELDS

    def as_substitutions(self, placeholders: list[FieldPlaceholder] = ()) -> dict[str, str]:  # type: ignore[assignment]
        """SendGrid's ``substitutions`` object for one personalization: ``placeholders`` are the
        email's custom-field placeholders, each the recipient's value or its fallback."""
        substitutions = dict(zip(_SUBSTITUTION_KEYS, self[:len(FIELDS)]))  # the fields before ``fields``
        for placeholder in placeholders:
            substitutions[placeholder.key] = self.fields.get(placeholder.key) or placeholder.value(None)
        return substitutions


# as_substitutions pairs the tuple's first fields with FIELDS' placeholders by position.
assert RecipientValues._fields[:len(FIELDS)] == FIELDS


def substitute(template: str, values: RecipientValues | Mapping[str, str]) -> str:
    """Fill every placeholder in one pass (no re-scanning of inserted values). A custom field's
    placeholder takes the recipient's value, else its fallback (previews, test emails, the archive)."""
    lookup = values if isinstance(values, Mapping) else values._asdict()
    fields: Mapping[str, str] = lookup.get("fields") or {}

    def fill(match: re.Match[str]) -> str:
        inner = match.group(1)
        if not inner.startswith("field:"):
            return lookup[inner]
        key = match.group(0)
        return fields[key] if key in fields else _parse_field(inner).value(None)

    return _ANY_PATTERN.sub(fill, template)


def placeholders_in(text: str) -> set[str]:
    return set(_PATTERN.findall(text))


# A custom field's placeholder: ``%%field:NAME/h=FALLBACK%%`` in the HTML part, ``/t`` in the text
# part (its value HTML-escaped in one, plain in the other), the fallback URL-safe base64 so the
# compiled email carries it. Staff write a merge tag (``newsletter.compose.merge_tags``); compiling
# turns it into these once. ``%%field:NAME%%`` alone is an HTML-part placeholder without a fallback.
# The health-information policy reads them (``newsletter.health_policy``).
FIELD_PLACEHOLDER_START = "%%field:"
FIELD_NAME = r"[\w-]{1,100}"  # a contact's custom-field key (subscribers.contacts.MAX_FIELD_KEY), no spaces
CUSTOM_FIELD_PATTERN = re.compile(re.escape(FIELD_PLACEHOLDER_START) + f"({FIELD_NAME})(?:/[ht])?(?:=[A-Za-z0-9_-]*)?%%")
_FIELD_INNER = re.compile(r"field:(" + FIELD_NAME + r")(?:/([ht]))?(?:=([A-Za-z0-9_-]*))?")
_ANY_PATTERN = re.compile(r"%%(" + "|".join(FIELDS) + r"|" + _FIELD_INNER.pattern + r")%%")
HTML_PART, TEXT_PART = "h", "t"


@dataclass(frozen=True)
class FieldPlaceholder:
    """One custom field's placeholder as compiled: its key (what SendGrid substitutes), the field,
    the part it is in and the fallback for a contact without a value."""

    key: str
    name: str
    part: str
    fallback: str

    def value(self, raw: object) -> str:
        """The text this placeholder becomes for a contact whose field holds ``raw``."""
        text = " ".join(str(raw).split()) if raw is not None and not isinstance(raw, (dict, list)) else ""
        # Never a placeholder of its own: a provider that fills substitutions might read one in a value.
        text = (text or self.fallback).replace("%%", "%" + ZERO_WIDTH_SPACE + "%")
        return html.escape(text) if self.part == HTML_PART else text


def custom_field_placeholder(name: str, part: str = HTML_PART, fallback: str = "") -> str:
    encoded = base64.urlsafe_b64encode(fallback.encode()).decode().rstrip("=") if fallback else ""
    suffix = ("" if part == HTML_PART and not fallback else f"/{part}") + (f"={encoded}" if encoded else "")
    return f"{FIELD_PLACEHOLDER_START}{name}{suffix}%%"


@lru_cache(maxsize=4096)
def _parse_field(inner: str) -> FieldPlaceholder:
    match = _FIELD_INNER.fullmatch(inner)
    assert match is not None
    name, part, encoded = match.groups()
    try:
        fallback = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode() if encoded else ""
    except (ValueError, UnicodeDecodeError):
        fallback = ""  # not one compile wrote: shown as empty rather than as typed
    return FieldPlaceholder(f"%%{inner}%%", name, part or HTML_PART, fallback)


def field_placeholders(*texts: str) -> list[FieldPlaceholder]:
    """Every custom field placeholder the texts hold, once each."""
    seen = dict.fromkeys(m.group(0)[2:-2] for text in texts for m in CUSTOM_FIELD_PATTERN.finditer(text or ""))
    return [_parse_field(inner) for inner in seen]


def placeholders_of(email: Any) -> list[FieldPlaceholder]:
    """A compiled email's custom-field placeholders (none, cheaply, for an email without any)."""
    if FIELD_PLACEHOLDER_START not in email.html and FIELD_PLACEHOLDER_START not in email.text:
        return []
    return field_placeholders(email.html, email.text)


def field_values(placeholders: list[FieldPlaceholder], custom_fields: Mapping[str, object] | None) -> dict[str, str]:
    """One contact's values for an email's field placeholders (by key); the fallback where it has none."""
    fields = custom_fields or {}
    return {p.key: p.value(fields.get(p.name)) for p in placeholders}


def custom_fields_in(*texts: str) -> set[str]:
    """The custom fields the texts personalise with, by name."""
    return {name for text in texts for name in CUSTOM_FIELD_PATTERN.findall(text or "")}
