"""Names people give us, and any other free text that may end up in an email header.

One normaliser for every way a name comes in (the public form, CSV import, ``newsletter contacts
add``, leads, the bookings webhook: all of them go through ``clean_name``, most via
``contacts.upsert_contact``), so a stored name is always plain text on one line: it cannot become a
new header line in an email, a line break in a CSV export or a 500 from the database.

``plain_line`` is the rule itself; ``newsletter.compose.mime`` applies it again to everything it writes into a
header (names stored before this rule, subjects, settings), so message building is safe on its own.
"""

from __future__ import annotations

import re
import unicodedata
from email.header import decode_header

from subscribers.errors import InputError

MAX_NAME = 200  # contacts.name is VARCHAR(200)
# RFC 2047 encoded words ("=?utf-8?q?Jos=C3=A9?="). Python's header parser decodes them even inside
# a quoted display name, so an encoded CR LF would come out as a real line break: a new header.
_ENCODED_WORD = re.compile(r"=\?[^?\s]{1,75}\?[bBqQ]\?[^?\s]*\?=")
_MAX_DECODE_PASSES = 5  # each pass shortens the text; nesting deeper than this is not a name
# Format characters are dropped, except the joiners some scripts (and emoji) need.
_KEEP_FORMAT = {"\u200c", "\u200d"}


def _decode_word(match: re.Match[str]) -> str:
    try:
        ((raw, charset),) = decode_header(match.group(0))
    except (ValueError, LookupError):  # a malformed word: leave it for the "=?" guard below
        return match.group(0)
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode(charset or "ascii", errors="replace")
    except LookupError:  # an unknown charset
        return raw.decode("latin-1")


def _character(ch: str) -> str:
    category = unicodedata.category(ch)
    if category in ("Cc", "Zl", "Zp"):  # line breaks, tabs, NUL and other controls: a space
        return " "
    if category == "Cs" or (category == "Cf" and ch not in _KEEP_FORMAT):  # surrogates, bidi overrides
        return ""
    return ch


def plain_line(text: str) -> str:
    """``text`` as plain text on one line: encoded words decoded (flattened), control and
    line-separator characters turned into spaces, invisible format characters dropped, runs of
    whitespace made one space. Whatever is left can never start an encoded word ("=?")."""
    if text.isprintable() and "=?" not in text and "  " not in text and text == text.strip():
        return text  # the usual case, kept cheap: it runs for every recipient of a send
    for _ in range(_MAX_DECODE_PASSES):
        decoded = _ENCODED_WORD.sub(_decode_word, text)
        if decoded == text:
            break
        text = decoded
    if not text.isprintable():
        text = "".join(map(_character, text))
    text = " ".join(text.split())
    return text.replace("=?", "= ?")  # not an encoded word, whatever follows


def clean_name(raw: str | None) -> str | None:
    """A person's name as we store it: ``plain_line``, in Unicode's composed form (NFC), at most
    ``MAX_NAME`` characters. None when nothing is left. Raises InputError for a name that is too long
    (refused, not cut: a cut name is a wrong name)."""
    if raw is None:
        return None
    name = plain_line(unicodedata.normalize("NFC", raw))
    if len(name) > MAX_NAME:
        raise InputError(f"the name is longer than {MAX_NAME} characters")
    return name or None
