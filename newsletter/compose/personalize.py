"""Per-recipient values: placeholders in the compiled email, filled by cheap substitution.

An issue is compiled once with placeholders such as ``%%first_name%%``; each recipient's copy is made
by replacing them (locally for the outbox, by SendGrid's substitutions for real sending). One value
serves both the HTML and the text part, so values are made safe for both here: URLs are built from
URL-safe tokens only, and names lose the characters HTML would treat as markup.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class RecipientValues:
    first_name: str
    unsubscribe_url: str
    preferences_url: str
    view_online_url: str
    track: str = "anon"

    def as_substitutions(self) -> dict[str, str]:
        """SendGrid's ``substitutions`` object for one personalization."""
        return dict(zip(_SUBSTITUTION_KEYS, (self.first_name, self.unsubscribe_url, self.preferences_url,
                                             self.view_online_url, self.track)))


def substitute(template: str, values: RecipientValues | Mapping[str, str]) -> str:
    """Fill every placeholder in one pass (no re-scanning of inserted values)."""
    lookup = values if isinstance(values, Mapping) else values.__dict__
    return _PATTERN.sub(lambda m: lookup[m.group(1)], template)


def placeholders_in(text: str) -> set[str]:
    return set(_PATTERN.findall(text))


# A custom field's placeholder, ``%%field:NAME%%``. No face writes one into an email today (content is
# guarded above, sequence definitions refuse placeholders) and no transport fills one: the only
# per-recipient values are ``FIELDS``. The health-information policy reads them all the same
# (``newsletter.health_policy``), so an email that would personalise with a field staff marked
# sensitive is refused whichever way it came to hold one.
FIELD_PLACEHOLDER_START = "%%field:"
CUSTOM_FIELD_PATTERN = re.compile(re.escape(FIELD_PLACEHOLDER_START) + r"([^%\s]{1,100})%%")


def custom_field_placeholder(name: str) -> str:
    return f"{FIELD_PLACEHOLDER_START}{name}%%"


def custom_fields_in(*texts: str) -> set[str]:
    """The custom fields the texts personalise with, by name."""
    return {name for text in texts for name in CUSTOM_FIELD_PATTERN.findall(text or "")}
