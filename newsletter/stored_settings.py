"""Settings staff change in the app: stored in the database, applied by every process.

The effective settings are: the code's defaults < the values staff saved < the environment. A value
the environment sets (``NEWSLETTER_ACCENT_COLOUR``...) is the operator's pin and always wins; a value
saved for it waits until the variable is removed. Only the fields in ``SECTIONS`` may be saved, and
each is checked by ``Settings``' own field definitions (the same constraints and validators that check
the environment) plus the checks that protect deliverability (a sendable From address, an https logo,
a brand colour white button text can be read on).

Where it is applied, once per process start or round: the web app (``LiveSettings`` behind a
middleware: one small query at most every few seconds), the scheduler (each round), the dispatchers
(``LiveSettings`` shared by a pool, checked each round) and the CLI (``at_start``, before any command).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from newsletter.config import Settings, use_settings, variable_of
from newsletter.database import Database
from newsletter.errors import InputError
from newsletter.issues import TRACKING_LABELS, recompile, refuse_control_characters, sentence
from newsletter.models import Issue
from newsletter.staff import audit
from newsletter.staff.models import StaffUser, StoredSetting
from subscribers.contacts import sendable_email
from subscribers.db import serialized, utcnow
from subscribers.states import RECOMPILABLE

log = logging.getLogger("newsletter.settings")
MIN_CONTRAST = 4.5  # WCAG 2 AA for normal text: the white text of the email's button on the accent colour
REFRESH_SECONDS = 2.0
MAX_TEXT = {"org_name": 200, "newsletter_name": 200, "from_name": 200, "postal_address": 300}
MAX_URL = 2000
SETTINGS_LOCK = 0x6E6C7374  # a PostgreSQL advisory lock key of this project's own ("nlst")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: str = "text"  # text | email | textarea | colour | url | number | choice
    used_by: str = "emails use"  # "NEWSLETTER_X is set in the environment and wins: <used_by> <value> ..."
    required: bool = True
    choices: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Section:
    slug: str
    title: str
    about: str
    fields: tuple[FieldSpec, ...]


SECTIONS: tuple[Section, ...] = (
    Section("organisation", "Organisation", "Who sends the newsletter, as every email and page names it.", (
        FieldSpec("org_name", "Organisation name"),
        FieldSpec("newsletter_name", "Newsletter name"),
    )),
    Section("sender", "Sender", "The From and Reply-To of every email. Use an address of a domain "
            "authenticated with the email provider, or emails may land in spam.", (
        FieldSpec("from_name", "From name"),
        FieldSpec("from_email", "From address", "email"),
        FieldSpec("reply_to", "Reply-To address (optional)", "email", required=False),
    )),
    Section("address", "Postal address", "Shown in the footer of every marketing email (CAN-SPAM requires it).", (
        FieldSpec("postal_address", "Postal address", "textarea"),
    )),
    Section("brand", "Brand", "The accent colour of buttons and links, and the logo above each email.", (
        FieldSpec("accent_colour", "Accent colour", "colour"),
        FieldSpec("logo_url", "Logo URL (https, optional)", "url", required=False),
    )),
    Section("tracking", "Tracking", "The first-party tracking new issues and sequences start with; each "
            "issue can still choose its own.", (
        FieldSpec("tracking", "Tracking of new issues", "choice", "new issues use",
                  choices=tuple(TRACKING_LABELS.items())),
    )),
    Section("limits", "Send limits", "How fast emails go out, so a new provider account is not flooded "
            "(0: no limit), and how often one contact may get marketing email.", (
        FieldSpec("rate_per_second", "Emails per second", "number", "sending uses"),
        FieldSpec("rate_per_day", "Emails per 24 hours", "number", "sending uses"),
        FieldSpec("frequency_cap_hours", "Hours between marketing emails to one contact", "number",
                  "sequences use"),
        FieldSpec("test_send_limit", "Addresses one test send may go to", "number", "test sends use"),
    )),
)
FIELDS: dict[str, FieldSpec] = {f.name: f for s in SECTIONS for f in s.fields}
SECTION_OF: dict[str, Section] = {s.slug: s for s in SECTIONS}
# What the compiled HTML of an issue shows: a change recompiles the issues not sent yet.
BRAND_FIELDS = frozenset({"org_name", "newsletter_name", "postal_address", "accent_colour", "logo_url"})


class SettingsRefused(InputError):
    """Some submitted values are refused: ``errors`` holds a sentence per field name."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{FIELDS[n].label if n in FIELDS else n}: {m}" for n, m in errors.items()))
        self.errors = errors


# Precedence -------------------------------------------------------------------------------------------


def pinned(settings: Settings) -> frozenset[str]:
    """The editable fields the environment sets (it wins over a stored value)."""
    if settings._pinned is not None:
        return settings._pinned
    return frozenset(FIELDS) & settings.model_fields_set


def _key(name: str) -> str:
    alias = Settings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else name


def _given(settings: Settings, drop: frozenset[str]) -> dict[str, Any]:
    """The values ``settings`` was made from (its fields set), less ``drop``: what a rebuilt copy is
    given, so fields derived by ``Settings`` (the unsubscribe address from the From domain) follow."""
    given = {_key(n): getattr(settings, n) for n in settings.model_fields_set if n not in drop}
    if "unsubscribe_email" in settings.model_fields_set and \
            settings.unsubscribe_email == f"unsubscribe@{settings.from_domain}":
        given.pop("unsubscribe_email")  # derived, not chosen: derive it again from the From address in use
    return given


def _build(settings: Settings, values: dict[str, Any], pins: frozenset[str]) -> Settings:
    """``settings`` with the editable fields not pinned replaced by ``values`` (or their defaults),
    validated as a whole by ``Settings`` itself (no environment is read again)."""
    given = _given(settings, frozenset(FIELDS) - pins)
    given.update({_key(n): v for n, v in values.items() if n in FIELDS and n not in pins})
    built = type(settings).model_validate(given)
    built._pinned = pins
    return built


def effective(settings: Settings, stored: dict[str, Any]) -> Settings:
    """Defaults < ``stored`` < the environment. A stored value that no longer passes ``Settings``'
    checks (they were tightened since) is left out with a warning: a process never fails to start on it."""
    pins = pinned(settings)
    values = {k: v for k, v in stored.items() if k in FIELDS}
    if not values and settings._pinned is None:
        return settings  # the environment's own settings, nothing stored: nothing to rebuild
    for _ in range(len(values) + 1):
        try:
            return _build(settings, values, pins)
        except ValidationError as error:
            bad = {n for n in _fields_of(error) if n in values} or set(values)
            log.warning("stored settings left out (they no longer pass the checks): %s", ", ".join(sorted(bad)))
            values = {k: v for k, v in values.items() if k not in bad}
    return settings


# Storage ----------------------------------------------------------------------------------------------


def stored_rows(session: Session) -> dict[str, StoredSetting]:
    """Every stored setting by key: one small query (the table has a row per saved setting)."""
    return {row.key: row for row in session.scalars(select(StoredSetting))}


def stored_values(session: Session) -> dict[str, Any]:
    return {key: value for key, value in session.execute(select(StoredSetting.key, StoredSetting.value))}


def in_session(session: Session, settings: Settings) -> Settings:
    """``settings`` with what staff saved applied, read in ``session`` (the scheduler's round)."""
    return effective(settings, stored_values(session))


class LiveSettings:
    """The effective settings of a long-running process, read again at most every ``every`` seconds
    (one small query) and rebuilt only when a stored value changed. Shared by threads."""

    def __init__(self, base: Settings, db: Database, *, every: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base, self.db, self.every, self.clock = base, db, every, clock
        self._lock = threading.Lock()
        self._stored: dict[str, Any] | None = None
        self._settings = base
        self._next = 0.0

    def stale(self) -> bool:
        return self.clock() >= self._next

    def current_or_base(self) -> Settings:
        """The settings last built (the base until the first look), without looking again."""
        return self._settings

    def current(self, session: Session | None = None) -> Settings:
        return self.refresh(session) if self.stale() else self._settings

    def refresh(self, session: Session | None = None) -> Settings:
        """Read the stored values now (after a save, so the saver sees it at once)."""
        try:
            if session is not None:
                stored = stored_values(session)
            else:  # a read beside any writer (SQLite: a deferred BEGIN that never waits for the lock)
                with self.db.snapshot() as own:
                    stored = stored_values(own)
        except SQLAlchemyError:  # an outage, or a schema not yet upgraded: keep what we have
            log.warning("stored settings could not be read; keeping the settings in use", exc_info=True)
            self._next = self.clock() + self.every
            return self._settings
        with self._lock:
            if stored != self._stored:
                self._settings = effective(self.base, stored)
                self._stored = stored
            self._next = self.clock() + self.every
            return self._settings


def at_start(settings: Settings) -> Settings:
    """A command-line process's settings, with what staff saved applied, made what ``get_settings``
    returns. A database that does not exist yet (or has no such table yet) has nothing stored."""
    url = settings.database_url or ""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return settings
    db = Database.from_settings(settings)
    try:
        with db.snapshot() as session:
            stored = stored_values(session)
    except SQLAlchemyError:
        return settings
    finally:
        db.engine.dispose()
    applied = effective(settings, stored)
    use_settings(applied)
    return applied


# Checking and saving ----------------------------------------------------------------------------------

def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_PYDANTIC_PHRASES: dict[str, Callable[[dict[str, Any]], str]] = {
    "greater_than_equal": lambda c: f"Give a number of {_number(c['ge'])} or more.",
    "greater_than": lambda c: f"Give a number greater than {_number(c['gt'])}.",
    "less_than_equal": lambda c: f"Give a number of {_number(c['le'])} or less.",
    "int_parsing": lambda c: "Give a whole number, such as 500.",
    "int_from_float": lambda c: "Give a whole number, such as 500.",
    "float_parsing": lambda c: "Give a number, such as 10 or 2.5.",
    "finite_number": lambda c: "Give a number, such as 10 or 2.5.",
    "string_type": lambda c: "Give some text.",
}


def _fields_of(error: ValidationError) -> dict[str, str]:
    """pydantic's problems by editable field, each as a sentence for the page. A check of the whole
    model (tracking) names the variable in its message: that names the field."""
    found: dict[str, str] = {}
    for problem in error.errors(include_url=False, include_input=False):
        name = str(problem["loc"][0]) if problem["loc"] else next(
            (n for n in FIELDS if variable_of(n) in problem["msg"]), "")
        phrase = _PYDANTIC_PHRASES.get(problem["type"])
        message = phrase(problem.get("ctx") or {}) if phrase else problem["msg"].removeprefix("Value error, ")
        message = message.removeprefix(variable_of(name)).lstrip(": ") if name else message
        found.setdefault(name, sentence(message))
    return found


def relative_luminance(colour: str) -> float:
    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_with_white(colour: str) -> float:
    """WCAG 2 contrast ratio of white text on ``colour`` (#rrggbb)."""
    return 1.05 / (relative_luminance(colour) + 0.05)


def _clean_text(name: str, value: str) -> str:
    value = ", ".join(p.strip().strip(",").strip() for p in value.splitlines() if p.strip()) \
        if name == "postal_address" else " ".join(value.split())
    try:
        refuse_control_characters(value, FIELDS[name].label.lower())
    except InputError as exc:
        raise ValueError(sentence(str(exc))) from None
    if len(value) > MAX_TEXT.get(name, 200):
        raise ValueError(f"Keep it under {MAX_TEXT.get(name, 200)} characters (it is {len(value)}).")
    return value


def _raw(spec: FieldSpec, text: str) -> Any:
    """The submitted text as the value handed to ``Settings`` (None: an optional field left empty)."""
    if spec.kind in ("text", "textarea"):
        return _clean_text(spec.name, text)
    text = text.strip()
    if not text and not spec.required:
        return None
    if spec.kind == "colour":
        return text.lower()
    return text


def _deliverability(spec: FieldSpec, value: Any) -> Any:
    """The checks ``Settings`` does not make for a value from the environment, which protect what
    the emails look like and whether they arrive. Raises ValueError with the sentence to show."""
    if value is None:
        return None
    if spec.kind in ("text", "textarea") and spec.required and not value:
        raise ValueError(f"Give the {spec.label.lower()}; it cannot be empty.")
    if spec.name == "from_email":
        try:
            return sendable_email(value)
        except (InputError, ValueError) as exc:
            raise ValueError(sentence(str(exc))) from None
    if spec.name == "reply_to":
        return _one_reply_address(value)
    if spec.name == "accent_colour":
        ratio = contrast_with_white(value)
        if ratio < MIN_CONTRAST:
            raise ValueError(f"White button text on {value} has a contrast of {ratio:.1f}:1; choose a darker "
                             f"colour (the email's buttons need {MIN_CONTRAST}:1 or more).")
        return value
    if spec.name == "logo_url":
        if not re.match(r"^https://[A-Za-z0-9.-]+(:\d+)?(/\S*)?$", value) or len(value) > MAX_URL:
            raise ValueError("Give an https:// address of the image, such as https://example.com/logo.png "
                             "(http is refused: mail programs block or warn about insecure images).")
        return value
    return value


def _one_reply_address(value: str) -> str:
    """One address, optionally with a name, written so that the header carries exactly it. Taking
    ``parseaddr``'s first address and writing ``name <address>`` back stored other addresses than the
    one checked: ``"Evil, <x@evil.example>" <a@clinic.example>`` became a header with replies to
    x@evil.example, and a quoted CR LF ``Bcc:`` came out as the Bcc's address."""
    try:
        refuse_control_characters(value, "Reply-To address")
    except InputError as exc:
        raise ValueError(sentence(str(exc))) from None
    found = getaddresses([value])
    if len(found) != 1 or not found[0][1]:
        raise ValueError("Give one address, such as hello@clinic.example or Clinic <hello@clinic.example>.")
    name, address = found[0]
    try:
        checked = sendable_email(address)
    except (InputError, ValueError) as exc:
        raise ValueError(sentence(str(exc))) from None
    written = str(Address(display_name=name, addr_spec=checked)) if name else checked  # quoted as it needs
    if [address for _, address in getaddresses([written])] != [checked]:
        raise ValueError("Give one address, such as hello@clinic.example or Clinic <hello@clinic.example>.")
    return written


def check(settings: Settings, submitted: dict[str, str]) -> dict[str, Any]:
    """The submitted text of some editable fields, checked: by ``Settings``' own field definitions
    first (whatever the environment pins), then for deliverability. Returns the values to store;
    raises ``SettingsRefused`` with a sentence per refused field."""
    errors: dict[str, str] = {}
    raw: dict[str, Any] = {}
    for name, text in submitted.items():
        try:
            raw[name] = _raw(FIELDS[name], text)
        except ValueError as exc:
            errors[name] = str(exc)
    checked = None
    while checked is None and set(raw) - set(errors):
        # Without the fields refused so far, so that every field gets its own sentence at once.
        given = _given(settings, frozenset(raw))
        given.update({_key(n): v for n, v in raw.items() if n not in errors})
        try:
            checked = type(settings).model_validate(given)
        except ValidationError as error:
            for name, message in _fields_of(error).items():
                errors.setdefault(name if name in raw and name not in errors else
                                  next(n for n in raw if n not in errors), message)
    values: dict[str, Any] = {}
    for name in raw:
        if name in errors or checked is None:
            continue
        try:
            values[name] = _deliverability(FIELDS[name], getattr(checked, name))
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise SettingsRefused(errors)
    return values


@dataclass
class Saved:
    changed: list[str]  # the fields whose stored value changed
    pinned: list[str]  # of those, the ones the environment sets (it still wins)
    recompiled: int  # unsent issues compiled again with the new brand
    settings: Settings  # the effective settings now

    def message(self) -> str:
        if not self.changed:
            return "Nothing changed."
        parts = [f"Saved: {', '.join(FIELDS[n].label.lower() for n in self.changed)}."]
        parts += [environment_wins(n, getattr(self.settings, n)) for n in self.pinned]
        if self.recompiled:
            parts.append(f"{self.recompiled} issue{'s' if self.recompiled != 1 else ''} not sent yet "
                         f"{'were' if self.recompiled != 1 else 'was'} compiled again with the new brand.")
        return " ".join(parts)


def environment_wins(name: str, value: Any) -> str:
    """What the page and the answer to a save say of a field the environment sets."""
    return (f"{variable_of(name)} is set in the environment and wins: {FIELDS[name].used_by} "
            f"{'none' if value is None else value} until it is removed.")


def chosen_colour(text: str, picker: str, in_use: str) -> str:
    """The colour a brand form chose: its text field, unless only the colour picker was changed
    (without JavaScript the two are not kept in step)."""
    if text.strip().lower() == in_use.lower() and picker.strip() and picker.strip().lower() != in_use.lower():
        return picker.strip()
    return text


def _shown(value: Any) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def save(session: Session, settings: Settings, actor: StaffUser | str, submitted: dict[str, str],
         *, now: datetime | None = None) -> Saved:
    """Check and store the submitted fields that differ from the value in use, each audited (who,
    which setting, from what to what: these values are not personal). Issues not sent yet are
    compiled again when the brand they show changed, so their previews show what will go out.
    ``settings``: the process's settings (the environment's, or effective ones). Nothing is stored
    when any field is refused."""
    unknown = [n for n in submitted if n not in FIELDS]
    if unknown:
        raise InputError(f"{', '.join(unknown)} cannot be changed here")
    values = check(settings, submitted)
    now = now or utcnow()
    serialized(session, SETTINGS_LOCK)  # a form sent twice at once inserted the same key twice (a 500)
    rows = stored_rows(session)
    before = effective(settings, {k: r.value for k, r in rows.items()})
    pins = pinned(settings)
    changed = []
    for name, value in values.items():
        stored = rows[name].value if name in rows else None
        in_use = getattr(before, name)
        if value == in_use or (name in rows and value == stored):
            continue  # untouched (a pinned field shows the environment's value), or saved already
        row = rows.get(name)
        if row is None:
            row = StoredSetting(key=name)
            session.add(row)
        row.value, row.updated_at = value, now
        row.updated_by = actor.email if isinstance(actor, StaffUser) else actor
        audit.record(session, actor, audit.AuditAction.SETTINGS_CHANGED, f"setting {name}",
                     f"{_shown(stored if name in rows else in_use)} -> {_shown(value)}"
                     + (f" (the environment's {variable_of(name)} still wins)" if name in pins else ""), at=now)
        changed.append(name)
    session.flush()
    after = effective(settings, stored_values(session))
    recompiled = 0
    if any(getattr(before, n) != getattr(after, n) for n in BRAND_FIELDS):
        recompiled = recompile_unsent(session, after)
    return Saved(changed, [n for n in changed if n in pins], recompiled, after)


def recompile_unsent(session: Session, settings: Settings) -> int:
    """Compile again every issue nothing of which is queued yet, with ``settings``' brand: their
    previews then show the email as it would go out. Sent (and sending) issues never change."""
    issues = list(session.scalars(select(Issue).where(Issue.status.in_(RECOMPILABLE))))
    for issue in issues:
        recompile(session, issue, settings)
    return len(issues)


# For the page ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldState:
    spec: FieldSpec
    value: Any  # the value in use
    source: str  # default | saved | environment
    variable: str
    row: StoredSetting | None  # what staff saved, if anything (it may be overridden by the environment)
    hint: str

    @property
    def text(self) -> str:
        if isinstance(self.value, float):
            return f"{self.value:g}"  # 0, 2.5: not 0.0
        return "" if self.value is None else str(self.value)


def field_states(session: Session, settings: Settings) -> dict[str, FieldState]:
    """Each editable field: the value in use and where it comes from."""
    rows = stored_rows(session)
    in_use = effective(settings, {k: r.value for k, r in rows.items()})
    pins = pinned(settings)
    states = {}
    for name, spec in FIELDS.items():
        source = "environment" if name in pins else "saved" if name in rows else "default"
        states[name] = FieldState(spec, getattr(in_use, name), source, variable_of(name), rows.get(name),
                                  Settings.model_fields[name].description or "")
    return states
