"""The languages the product speaks to contacts in: the one home of the list and of the rule that
reads a language someone gave (a form, a CSV column, the API, staff).

A contact's ``language`` is a primary language subtag of BCP 47 ("en", "es"), or None: None means
the newsletter's own language (NEWSLETTER_LANGUAGE), so a contact who never said stays with it when
the clinic changes it. A regional tag ("es-MX", "en_US") is read as its language; one we do not ship
is refused with the ones we do, never guessed.
"""

from __future__ import annotations

from subscribers.errors import InputError

# Each has message catalogues for the pages and the emails' own words (footer, buttons, dates).
LANGUAGES: dict[str, str] = {"en": "English", "es": "Español"}
MAX_LANGUAGE_TAG = 35  # the longest well-formed BCP 47 tags in use; longer is not a tag


def check_language(tag: str) -> str:
    """The primary language of ``tag`` when we speak it ("es-MX" -> "es"); InputError otherwise."""
    text = tag.strip()
    primary = text.replace("_", "-").split("-", 1)[0].lower()
    if primary not in LANGUAGES or len(text) > MAX_LANGUAGE_TAG:
        shown = text if len(text) <= 40 else text[:40] + "…"
        choices = ", ".join(f"{code} ({name})" for code, name in LANGUAGES.items())
        raise InputError(f"language {shown!r} is not one we send in: use one of {choices}")
    return primary


def language_of(contact_language: str | None, default: str) -> str:
    """The language to speak to a contact in: theirs, else the newsletter's."""
    return contact_language or default
