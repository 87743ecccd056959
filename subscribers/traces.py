"""A person's traces in stored text: what to look for when they are erased, and how to scrub it.

Free text reaches us from outside (a provider's bounce reason quoting "user Known Person unknown", a
click URL with ``?n=Known``, a note staff typed), so deleting the person's rows is not enough: every
text column that can carry such words is scrubbed too. Two reaches:

- rows that are theirs (their deliveries' events, say) lose every one of their values, each word of
  their name included, and a URL loses its query and fragment (where per-recipient values travel);
- every other row loses only what names them unmistakably: the address (any case, plain or
  percent-encoded), the local part, the full name and the phone number. Short values are left
  alone there, so erasing "Al" never rewrites another person's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

ERASED = "<erased>"
_EDGE_BEFORE, _EDGE_AFTER = r"(?<![^\W_])", r"(?![^\W_])"  # not glued to a letter or digit
_NAME_GAP = r"(?:\s|\+|%20|[._-])+"  # "Known Person", "Known+Person", "Known%20Person", "known.person"
_PHONE_GAP = r"[\s().-]*"
MIN_SHARED = 5  # shortest value looked for in other rows' text (a name, a local part)
MIN_PHONE_DIGITS = 7


@dataclass(frozen=True)
class ErasedPerson:
    """Everything of one person that may show up in stored text. ``contact_id`` is None when an
    erasure names an address we never held (their traces may still sit in unmatched provider text)."""

    contact_id: int | None
    emails: tuple[str, ...]
    names: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    others: tuple[str, ...] = ()  # custom field values, external ids, IP addresses: only in their own rows
    # Made from the above: the patterns for their own rows and for everyone's, and lower-case
    # strings whose presence (SQL LIKE) makes a row worth checking.
    _own: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _shared: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    needles: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Alternatives in order of precedence: a whole address before its local part, a whole name
        # before its words (the regex takes the first alternative that matches at a place).
        addresses: list[str] = []
        names: list[str] = []
        phones: list[str] = []
        words: list[str] = []  # local parts and single words of the name
        shared_names: list[str] = []  # long enough to look for in other rows
        shared_locals: list[str] = []
        needles: set[str] = set()
        for email in self.emails:
            local, _, domain = email.rpartition("@")
            addresses.append(re.escape(local) + r"(?:@|%40)" + re.escape(domain))
            needles.update({email.lower(), f"{local}%40{domain}".lower()})
            if len(local) >= 3:  # "a@…": a lone "a" is a word of the provider's text, not theirs
                words.append(_word(re.escape(local)))
            if len(local) >= MIN_SHARED:
                shared_locals.append(_word(re.escape(local)))
                needles.add(local.lower())
        for name in self.names:
            parts = name.split()
            if not parts:
                continue
            names.append(_word(_NAME_GAP.join(re.escape(w) for w in parts)))
            words.extend(_word(re.escape(w)) for w in parts if len(w) >= 2)
            if len(name) >= MIN_SHARED:
                shared_names.append(names[-1])
                needles.update(sep.join(parts).lower() for sep in (" ", "+", "%20", "."))
        for phone in self.phones:
            digits = re.sub(r"\D", "", phone)
            if len(digits) < MIN_PHONE_DIGITS:
                continue
            phones.append(r"(?<!\d)\+?" + _PHONE_GAP.join(digits) + r"(?!\d)")
            needles.update({phone.lower(), digits})
        others = [_word(re.escape(v)) for v in self.others if len(v) >= 3]
        object.__setattr__(self, "_own", _compile(addresses + names + phones + others + words))
        object.__setattr__(self, "_shared", _compile(addresses + shared_names + phones + shared_locals))
        object.__setattr__(self, "needles", tuple(sorted(needles)))

    def scrub(self, text: str | None, *, theirs: bool) -> str | None:
        """``text`` without this person in it (``theirs``: a row of theirs, scrubbed of every value)."""
        if not text:
            return text
        pattern = self._own if theirs else self._shared
        return pattern.sub(ERASED, text) if pattern is not None else text

    def scrub_url(self, url: str | None, *, theirs: bool) -> str | None:
        """A URL from a row of theirs keeps scheme, host and path (which page it was) and loses its
        query, fragment and user part; a path naming them is cut to "/". Other rows: as text."""
        if not url or not theirs:
            return self.scrub(url, theirs=theirs)
        try:
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port
        except ValueError:  # not a URL after all (a bad port, say): scrub it as text
            return self.scrub(url, theirs=True)
        if not parts.scheme or not host:
            return self.scrub(url.split("?", 1)[0].split("#", 1)[0], theirs=True)
        if self.mentions(unquote_plus(host), theirs=True):
            return None
        host = f"[{host}]" if ":" in host else host  # an IPv6 literal
        netloc = host if port is None else f"{host}:{port}"
        path = parts.path if not self.mentions(unquote_plus(parts.path), theirs=True) else "/"
        return urlunsplit((parts.scheme, netloc, path, "", ""))

    def mentions(self, text: str, *, theirs: bool) -> bool:
        pattern = self._own if theirs else self._shared
        return pattern is not None and pattern.search(text) is not None


def scrub_their_rows(session: Session, person: ErasedPerson, columns: Iterable[InstrumentedAttribute],
                     where: ColumnElement[bool], *, urls: Iterable[InstrumentedAttribute] = ()) -> int:
    """Scrub every value of the person from ``columns`` (text) and ``urls`` of the rows ``where``
    selects, which must all be theirs. Returns how many rows changed."""
    return _scrub(session, person, list(columns), list(urls), where, theirs=True)


def scrub_mentions(session: Session, person: ErasedPerson, columns: Iterable[InstrumentedAttribute],
                   where: ColumnElement[bool] | None = None) -> int:
    """Scrub the person's address, name and phone wherever they appear in ``columns``, in any row
    (a first pass in SQL finds the candidates; the exact match is made here)."""
    changed = 0
    for column in columns:
        if not person.needles:
            break
        found = or_(*(column.ilike(f"%{_like(n)}%", escape="\\") for n in person.needles))
        changed += _scrub(session, person, [column], [], found if where is None else (where & found), theirs=False)
    return changed


def _scrub(session: Session, person: ErasedPerson, texts: list[InstrumentedAttribute],
           urls: list[InstrumentedAttribute], where: ColumnElement[bool], *, theirs: bool) -> int:
    columns = texts + urls
    if not columns:
        return 0
    table = columns[0].class_
    (key,) = table.__mapper__.primary_key
    changed = 0
    for row in session.execute(select(key, *columns).where(where)).all():
        values = {}
        for index, (column, value) in enumerate(zip(columns, row[1:])):
            is_url = index >= len(texts)
            new = person.scrub_url(value, theirs=theirs) if is_url else person.scrub(value, theirs=theirs)
            if new != value:
                values[column.key] = new
        if values:
            session.execute(update(table).where(key == row[0]).values(values)
                            .execution_options(synchronize_session=False))
            changed += 1
    return changed


def _word(pattern: str) -> str:
    return _EDGE_BEFORE + pattern + _EDGE_AFTER


def _compile(patterns: list[str]) -> re.Pattern[str] | None:
    unique = list(dict.fromkeys(patterns))  # in order of precedence
    return re.compile("|".join(unique), re.IGNORECASE) if unique else None


def _like(needle: str) -> str:
    return needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

