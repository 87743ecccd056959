"""Segments: saved filters over contacts, compiled to ONE SQL WHERE clause over ``contacts``.

A definition is a small JSON tree (it can be written in YAML too):

- combinators: ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}``;
- conditions on related rows (``list``, ``tag``, ``tags_any``, ``tags_all``, ``lead_stage``,
  ``confirmed``) become EXISTS subqueries, so a contact is counted once however many rows match;
- conditions on the contact row (``status``, ``timezone``, ``source``, ``created``, ``field``) are
  plain column tests; ``field`` reads the JSON custom fields and renders per dialect (below) so that
  SQLite and PostgreSQL return the same contacts.

Nothing is ever evaluated row by row in Python: counting a million contacts is one ``SELECT count(*)``.
``validate`` refuses anything it does not understand with the path to the bad node, so a saved
segment always compiles.

- engagement (``engaged``, ``opened``, ``clicked`` with a window such as ``{"within_days": 30}``, and
  ``never_opened: true``) reads human opens and clicks from the events table; machine opens and
  clicks never count, and a click counts as an open.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NoReturn

from sqlalchemy import (
    Boolean,
    Integer,
    Numeric,
    String,
    Text,
    column,
    table,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler

from subscribers.contacts import SOURCES, check_timezone, clean_tag
from subscribers.db import DELIVERIES_TABLE, EVENTS_TABLE, UTCDateTime, utcnow
from subscribers.errors import InputError, NotFound
from subscribers.leads import STAGES as LEAD_STAGES
from subscribers.lists import SLUG
from subscribers.models import (
    Contact,
    ContactTag,
    Lead,
    MailingList,
    Segment,
    Subscription,
)
from subscribers.states import COUNTS_AS_SENT, ENGAGEMENT, ContactStatus, EventType, SubscriptionStatus
from subscribers.suppression import not_suppressed

Definition = dict[str, Any]

FIELD_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "contains", "exists")
WINDOW_KEYS = ("after", "before", "within_days", "older_than_days")
# Leaf keys and the keys allowed beside them in the same mapping.
CONDITIONS: dict[str, tuple[str, ...]] = {
    "all": (), "any": (), "not": (),
    "list": ("status",), "tag": (), "tags_any": (), "tags_all": (), "lead_stage": (),
    "field": ("op", "value"), "created": (), "confirmed": (),
    "status": (), "timezone": (), "source": (),
    "engaged": (), "opened": (), "clicked": (), "never_opened": (),
}
# Engagement reads the delivery ledger and its events, tables the sending side owns; they are named
# here (not imported), so this package still never imports ``newsletter`` (``tests/test_segments.py``
# checks these columns against the real tables).
_EVENTS = table(EVENTS_TABLE, column("contact_id", Integer), column("type", String), column("machine", Boolean),
                column("occurred_at", UTCDateTime()))
_DELIVERIES = table(DELIVERIES_TABLE, column("contact_id", Integer), column("status", String))

_SURROGATE = re.compile("[\ud800-\udfff]")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
# Custom-field keys: no quotes or backslashes, so a key can sit inside a SQLite JSON path ($."key").
FIELD_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}$")
MAX_DEPTH = 12  # deeper trees are a sign of a generated mistake, and SQL parsers have depth limits
MAX_CONDITIONS = 200
MAX_DAYS = 36_500
# Whole numbers SQLite can bind (64-bit); PostgreSQL would take more, but a segment must run on both.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1


# --- validation ------------------------------------------------------------------------------------

class _Checker:
    """Walks a definition, returning a cleaned copy or raising InputError naming the bad node."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.conditions = 0

    def fail(self, path: str, problem: str) -> NoReturn:
        prefix = f"segment {self.name!r}: " if self.name else ""
        raise InputError(f"{prefix}{path + ': ' if path else ''}{problem}")

    def count_values(self, values: list[Any], path: str) -> None:
        """Each value of a list beyond the first is a condition more: 30,000 tags in ``tags_all`` made
        an SQL expression SQLite refuses (a 500 after 12 s), and as many time zones more variables
        than it binds."""
        self.conditions += len(values) - 1
        if self.conditions > MAX_CONDITIONS:
            self.fail(path, f"more than {MAX_CONDITIONS} conditions in one segment (each value of a list counts)")

    def node(self, node: Any, path: str, depth: int = 0) -> Definition:
        if not isinstance(node, Mapping):
            self.fail(path, f"a condition is a mapping such as {{'tag': 'vip'}}, not {_kind_of(node)}")
        if depth > MAX_DEPTH:
            self.fail(path, f"nested more than {MAX_DEPTH} levels deep")
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            self.fail(path, f"more than {MAX_CONDITIONS} conditions in one segment")
        keys = [str(k) for k in node]
        kinds = [k for k in keys if k in CONDITIONS]
        # "status" beside "list" qualifies the subscription; alone it is the contact's status.
        kinds = [k for k in kinds if not any(k in CONDITIONS[other] for other in kinds)]
        if not kinds:
            self.fail(path, f"unknown condition {', '.join(map(repr, keys)) or '{}'}; "
                            f"expected one of {', '.join(CONDITIONS)}")
        if len(kinds) > 1:
            self.fail(path, f"one condition per mapping, found {' and '.join(map(repr, kinds))}: "
                            "combine conditions with 'all' or 'any'")
        kind = kinds[0]
        for key in keys:
            if key != kind and key not in CONDITIONS[kind]:
                allowed = ", ".join(CONDITIONS[kind]) or "nothing"
                self.fail(_at(path, key), f"unknown key beside {kind!r} (allowed beside it: {allowed})")
        return getattr(self, f"_{kind}")(node, _at(path, kind), depth)

    # combinators
    def _all(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"all": self._children(node["all"], path, depth)}

    def _any(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"any": self._children(node["any"], path, depth)}

    def _not(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"not": self.node(node["not"], path, depth + 1)}

    def _children(self, value: Any, path: str, depth: int) -> list[Definition]:
        if not isinstance(value, list) or not value:
            self.fail(path, "needs a non-empty list of conditions")
        return [self.node(child, f"{path}[{i}]", depth + 1) for i, child in enumerate(value)]

    # conditions on related rows
    def _list(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        out: Definition = {"list": self._slug(node["list"], path)}
        if "status" in node:
            out["status"] = self._choices(node["status"], _sibling(path, "status"), tuple(SubscriptionStatus))
        return out

    def _tag(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"tag": self._tag_name(node["tag"], path)}

    def _tags_any(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"tags_any": self._tag_list(node["tags_any"], path)}

    def _tags_all(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"tags_all": self._tag_list(node["tags_all"], path)}

    def _lead_stage(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"lead_stage": self._choices(node["lead_stage"], path, LEAD_STAGES)}

    def _confirmed(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        window = self._window(node["confirmed"], path, extra=("list",))
        if "list" in window:
            window["list"] = self._slug(window["list"], f"{path}.list")
        return {"confirmed": window}

    # engagement: human opens and clicks (machine ones never count)
    def _engaged(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"engaged": self._window(node["engaged"], path)}

    def _opened(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"opened": self._window(node["opened"], path)}

    def _clicked(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"clicked": self._window(node["clicked"], path)}

    def _never_opened(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        if node["never_opened"] is not True:
            self.fail(path, "write never_opened: true")
        return {"never_opened": True}

    # conditions on the contact row
    def _created(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"created": self._window(node["created"], path)}

    def _status(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"status": self._choices(node["status"], path, tuple(ContactStatus))}

    def _source(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        return {"source": self._choices(node["source"], path, SOURCES)}

    def _timezone(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        def zone(value: Any, where: str) -> str:
            if not isinstance(value, str):
                self.fail(where, f"a time zone name is text, not {_kind_of(value)}")
            try:
                return check_timezone(value)
            except InputError as exc:
                self.fail(where, str(exc))
        return {"timezone": self._one_or_many(node["timezone"], path, zone)}

    def _field(self, node: Mapping[str, Any], path: str, depth: int) -> Definition:
        key = node["field"]
        if not isinstance(key, str) or not FIELD_KEY.fullmatch(key):
            self.fail(path, f"field name {key!r}: use letters, digits, spaces, '_', '-' or '.' (at most 100)")
        op = node.get("op", "eq")
        if op not in FIELD_OPS:
            self.fail(path, f"op {op!r} is not one of {', '.join(FIELD_OPS)}")
        if op == "exists":
            value = node.get("value", True)
            if not isinstance(value, bool):
                self.fail(path, f"op 'exists' takes value true or false (or none), not {value!r}")
            return {"field": key, "op": op, "value": value}
        if "value" not in node:
            self.fail(path, f"op {op!r} needs a value")
        value = node["value"]
        if isinstance(value, bool):
            if op not in ("eq", "ne"):
                self.fail(path, f"op {op!r} does not apply to true/false; use eq or ne")
        elif isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(path, f"value {value!r} is not a finite number")
            if isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
                self.fail(path, f"value {value} is out of range (whole numbers from {MIN_INT} to {MAX_INT})")
            if op == "contains":
                self.fail(path, "op 'contains' takes text, not a number")
        elif isinstance(value, str):
            self._storable(value, path, "value ")
            if op == "contains" and not value:
                self.fail(path, "op 'contains' needs non-empty text")
        else:
            self.fail(path, f"value must be text, a number or true/false, not {_kind_of(value)}")
        return {"field": key, "op": op, "value": value}

    # shared value checks
    def _slug(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not SLUG.fullmatch(value):
            self.fail(path, f"list {value!r}: a list's slug is lower-case letters, digits and dashes")
        return value

    def _tag_name(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f"a tag is text, not {_kind_of(value)}")
        self._storable(value, path)
        try:
            return clean_tag(value)  # tags are stored cleaned (lower case), so compare them cleaned
        except InputError as exc:
            self.fail(path, str(exc))

    def _storable(self, value: str, path: str, what: str = "") -> None:
        """Text both databases can compare: PostgreSQL refuses NUL, and neither driver can encode
        an unpaired surrogate (which JSON's \\ud800 escapes can produce)."""
        if "\x00" in value or not value.isascii() and _SURROGATE.search(value):
            self.fail(path, f"{what}{value!r} holds a character that text cannot (NUL or an unpaired surrogate)")

    def _tag_list(self, value: Any, path: str) -> list[str]:
        if not isinstance(value, list) or not value:
            self.fail(path, "needs a non-empty list of tags")
        self.count_values(value, path)
        return sorted({self._tag_name(tag, f"{path}[{i}]") for i, tag in enumerate(value)})

    def _choices(self, value: Any, path: str, allowed: Sequence[str]) -> str | list[str]:
        def one(item: Any, where: str) -> str:
            if item not in allowed:
                self.fail(where, f"{item!r} is not one of {', '.join(allowed)}")
            return str(item)
        return self._one_or_many(value, path, one)

    def _one_or_many(self, value: Any, path: str, check: Callable[[Any, str], str]) -> str | list[str]:
        """One value or a non-empty list of values (any of them matches); the shape is kept."""
        if isinstance(value, list):
            if not value:
                self.fail(path, "needs a value or a non-empty list of values")
            self.count_values(value, path)
            return [check(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return check(value, path)

    def _window(self, value: Any, path: str, extra: tuple[str, ...] = ()) -> Definition:
        if not isinstance(value, Mapping):
            self.fail(path, f"needs a mapping of {', '.join(WINDOW_KEYS)}, not {_kind_of(value)}")
        out: Definition = {}
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in ("after", "before"):
                out[key] = self._instant_text(item, where)
            elif key in ("within_days", "older_than_days"):
                if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= MAX_DAYS:
                    self.fail(where, f"a whole number of days from 1 to {MAX_DAYS}, not {item!r}")
                out[key] = item
            elif key in extra:
                out[key] = item
            else:
                self.fail(where, f"unknown key; expected {', '.join(WINDOW_KEYS + extra)}")
        if not any(key in out for key in WINDOW_KEYS):
            self.fail(path, f"needs at least one of {', '.join(WINDOW_KEYS)}")
        if "after" in out and "before" in out and _lower(out["after"]) >= _upper(out["before"]):
            self.fail(path, f"after {out['after']} is not earlier than before {out['before']}: nobody can match")
        return out

    def _instant_text(self, value: Any, path: str) -> str:
        """ISO text for a date or date-time (YAML hands over date objects); naive means UTC."""
        if isinstance(value, (date, datetime)):
            text = value.isoformat()
        elif isinstance(value, str):
            text = value.strip()
        else:
            text = None
        try:
            if text is not None:
                _lower(text), _upper(text)  # what compiling will compute: both ends must exist
                return text
        except ValueError:
            pass
        except OverflowError:
            self.fail(path, f"{value!r} is too close to the year 1 or 9999 to compare with")
        self.fail(path, f"{value!r} is not an ISO date (2026-01-31) or date-time (2026-01-31T09:00:00Z)")


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _sibling(path: str, key: str) -> str:
    """Path of a key beside the condition key: all[0].list -> all[0].status."""
    parent = path.rpartition(".")[0] if "." in path else ""
    return _at(parent, key)


def _kind_of(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number",
             float: "a number", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


def _parse_instant(text: str) -> date | datetime:
    text = text.strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text)


def _utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.combine(value, time.min, tzinfo=UTC)


def _lower(text: str) -> datetime:
    """``after``: the instant itself; a date starts at its first UTC instant (inclusive)."""
    return _utc(_parse_instant(text))


def _upper(text: str) -> datetime:
    """``before``: exclusive; a date counts as a whole day, so it ends at the next day's start."""
    value = _parse_instant(text)
    if isinstance(value, datetime):
        return _utc(value)
    return _utc(value) + timedelta(days=1)


def validate(definition: Any, *, name: str | None = None) -> Definition:
    """Check a definition and return a cleaned copy (tags lower-cased, dates as ISO text).

    Raises InputError naming the segment and the path to the first bad node, e.g.
    ``segment 'vip-la': all[1].field: op 'like' is not one of eq, ne, ...``.
    """
    return _Checker(name).node(definition, "")


# --- compilation -----------------------------------------------------------------------------------

def compile_filter(definition: Any, *, now: datetime | None = None) -> ColumnElement[bool]:
    """A WHERE clause over ``Contact`` for ``definition`` (validated first). ``now`` anchors the
    relative windows (within_days, older_than_days); default the present."""
    return _compile(validate(definition), now or utcnow())


def _kind(node: Definition) -> str:
    """The condition key of a validated node (a key that only qualifies another is skipped)."""
    return next(k for k in node if k in CONDITIONS and not any(k in CONDITIONS[o] for o in node if o in CONDITIONS))


def _compile(node: Definition, now: datetime) -> ColumnElement[bool]:
    return _COMPILERS[_kind(node)](node, now)


def _is(column: Any, value: str | list[str]) -> ColumnElement[bool]:
    return column.in_(value) if isinstance(value, list) else column == value


def _related(*where: ColumnElement[bool], table: Any) -> ColumnElement[bool]:
    return Related(table, list(where))


class Related(ColumnElement[bool]):
    """The contact has a row in ``table`` (subscriptions, tags, leads) matching ``where``.

    A semi-join either way, so a contact is counted once however many rows match. PostgreSQL gets
    ``EXISTS (correlated)``, which it plans as a (hash) semi- or anti-join, also under NOT. SQLite
    gets ``contacts.id IN (SELECT contact_id ...)``: it runs the subquery once and then either
    looks contacts up by id or probes an in-memory index, where a correlated EXISTS would probe the
    table once per contact (3 to 5 times slower at 200,000 contacts; see bench/segment_count.py).
    NOT IN is safe there because ``contact_id`` is never NULL.
    """

    inherit_cache = False
    type = Boolean()
    _is_implicitly_boolean = True  # a predicate: SQLite gets "x" and "NOT x", not "x = 1"

    def __init__(self, table: Any, where: list[ColumnElement[bool]]) -> None:
        self.table, self.where = table, where

    @property
    def _from_objects(self) -> list[Any]:  # lets select(func.count()).where(...) find contacts
        return [Contact.__table__]

    @property
    def _contact_id(self) -> Any:  # a mapped class, or a lightweight table() of the sending side
        return self.table.c.contact_id if hasattr(self.table, "c") else self.table.contact_id

    def as_exists(self) -> ColumnElement[bool]:
        return exists(select(1).select_from(self.table).where(self._contact_id == Contact.id, *self.where)
                      ).correlate(Contact)

    def as_in(self) -> ColumnElement[bool]:
        # contact_id of events and deliveries may be NULL (erased contacts): keep NULLs out of NOT IN
        return Contact.id.in_(select(self._contact_id).where(self._contact_id.is_not(None), *self.where))


@compiles(Related)
def _render_related(element: Related, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.as_exists(), **kw)})"


@compiles(Related, "sqlite")
def _render_related_sqlite(element: Related, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.as_in(), **kw)})"


def _list_of(slug: str) -> ColumnElement[bool]:
    # A scalar subquery rather than a join: it is evaluated once, and subscriptions are then found by
    # the unique (contact_id, list_id) index.
    return Subscription.list_id == select(MailingList.id).where(MailingList.slug == slug).scalar_subquery()


def _window(column: Any, spec: Mapping[str, Any], now: datetime) -> list[ColumnElement[bool]]:
    tests = []
    if "after" in spec:
        tests.append(column >= _lower(spec["after"]))
    if "before" in spec:
        tests.append(column < _upper(spec["before"]))
    if "within_days" in spec:
        tests.append(column >= now - timedelta(days=spec["within_days"]))
    if "older_than_days" in spec:
        tests.append(column < now - timedelta(days=spec["older_than_days"]))
    return tests


def _confirmed(node: Definition, now: datetime) -> ColumnElement[bool]:
    spec = node["confirmed"]
    where = [Subscription.status == SubscriptionStatus.CONFIRMED, *_window(Subscription.confirmed_at, spec, now)]
    if "list" in spec:
        where.append(_list_of(spec["list"]))
    return _related(*where, table=Subscription)


def _human(kinds: tuple[str, ...], spec: Mapping[str, Any], now: datetime) -> ColumnElement[bool]:
    events = _EVENTS.c
    return _related(events.type.in_(kinds), events.machine.is_(False), *_window(events.occurred_at, spec, now),
                    table=_EVENTS)


def _never_opened(node: Definition, now: datetime) -> ColumnElement[bool]:
    """Was sent at least one email and never opened or clicked one (as a person)."""
    sent = _related(_DELIVERIES.c.status.in_(COUNTS_AS_SENT), table=_DELIVERIES)
    return and_(sent, not_(_human(ENGAGEMENT, {}, now)))


_COMPILERS: dict[str, Callable[[Definition, datetime], ColumnElement[bool]]] = {
    "all": lambda n, now: and_(*(_compile(c, now) for c in n["all"])),
    "any": lambda n, now: or_(*(_compile(c, now) for c in n["any"])),
    "not": lambda n, now: not_(_compile(n["not"], now)),
    "list": lambda n, now: _related(_list_of(n["list"]), _is(Subscription.status, n.get("status", SubscriptionStatus.CONFIRMED)),
                                    table=Subscription),
    "tag": lambda n, now: _related(ContactTag.tag == n["tag"], table=ContactTag),
    "tags_any": lambda n, now: _related(_is(ContactTag.tag, n["tags_any"]), table=ContactTag),
    "tags_all": lambda n, now: and_(*(_related(ContactTag.tag == t, table=ContactTag) for t in n["tags_all"])),
    "lead_stage": lambda n, now: _related(_is(Lead.stage, n["lead_stage"]), table=Lead),
    "created": lambda n, now: and_(*_window(Contact.created_at, n["created"], now)),
    "confirmed": _confirmed,
    "status": lambda n, now: _is(Contact.status, n["status"]),
    "timezone": lambda n, now: _is(Contact.timezone, n["timezone"]),
    "source": lambda n, now: _is(Contact.source, n["source"]),
    "field": lambda n, now: FieldTest(n["field"], n["op"], n["value"]),
    # a click implies the email was opened (images may have been off)
    "engaged": lambda n, now: _human(ENGAGEMENT, n["engaged"], now),
    "opened": lambda n, now: _human(ENGAGEMENT, n["opened"], now),
    "clicked": lambda n, now: _human((EventType.CLICK,), n["clicked"], now),
    "never_opened": _never_opened,
}


class FieldTest(ColumnElement[bool]):
    """``custom_fields[key] <op> value``, rendered per dialect so both backends agree.

    How values compare (the same on SQLite and PostgreSQL):
    - a number compares numerically, and only with stored JSON numbers (the text "34" is not 34);
    - text compares with stored JSON text only, by Unicode code point (PostgreSQL uses COLLATE "C",
      which is SQLite's BINARY order), so ISO dates kept as text compare as dates;
    - true/false match stored JSON booleans (eq/ne only);
    - ``contains`` is a substring test on stored text, ignoring the case of ASCII letters only
      (what both backends' lower() does without ICU);
    - ``ne``, ``lt``... need the field present with a value of the same kind: a contact without the
      field is not "ne"; use ``{"not": {...}}`` to include them;
    - ``exists`` (value true, the default) means present and not null; value false is the opposite.
    Every form yields true or false, never NULL, so ``not`` is always the exact complement.
    """

    inherit_cache = False  # the bound values live in the compile functions below
    type = Boolean()
    _is_implicitly_boolean = True  # a predicate: SQLite gets "x" and "NOT x", not "x = 1"

    def __init__(self, key: str, op: str, value: Any) -> None:
        self.key, self.op, self.value = key, op, value

    @property
    def _from_objects(self) -> list[Any]:
        return [Contact.__table__]


_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
}


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _sqlite_field(test: FieldTest) -> ColumnElement[bool]:
    path = bindparam(None, f'$."{test.key}"', type_=Text)
    kind = func.coalesce(func.json_type(Contact.custom_fields, path), "")  # '' when the key is missing
    value = func.json_extract(Contact.custom_fields, path)
    op, wanted = test.op, test.value
    if op == "exists":
        present = kind.not_in(["", "null"])
        return present if wanted else not_(present)
    if isinstance(wanted, bool):
        same = "true" if wanted else "false"
        return kind == (same if op == "eq" else {"true": "false", "false": "true"}[same])
    if op == "contains":
        return and_(kind == "text", func.instr(func.lower(value), _ascii_lower(wanted)) > 0)
    kinds = ["text"] if isinstance(wanted, str) else ["integer", "real"]
    return and_(kind.in_(kinds), _COMPARE[op](value, wanted))


def _postgres_field(test: FieldTest) -> ColumnElement[bool]:
    key = bindparam(None, test.key, type_=Text)
    element = Contact.custom_fields.op("->", return_type=JSONB)(key)
    text = Contact.custom_fields.op("->>", return_type=Text)(key)
    kind = func.coalesce(func.jsonb_typeof(element), "")  # '' when the key is missing
    op, wanted = test.op, test.value
    if op == "exists":
        present = kind.not_in(["", "null"])
        return present if wanted else not_(present)
    if op in ("eq", "ne"):
        # Containment (@>) compares like JSON equality (1 = 1.0, text exact) and can use a GIN index.
        contains = Contact.custom_fields.op("@>", return_type=Boolean)(
            bindparam(None, {test.key: wanted}, type_=JSONB))
        if op == "eq":
            return contains
        return and_(kind == _postgres_kind(wanted), not_(contains))
    if op == "contains":
        return and_(kind == "string", func.strpos(func.lower(text.collate("C")), _ascii_lower(wanted)) > 0)
    if isinstance(wanted, str):
        return and_(kind == "string", _COMPARE[op](text.collate("C"), bindparam(None, wanted, type_=Text)))
    # CASE, not AND, guards the cast: PostgreSQL may evaluate AND's operands in any order.
    number = case((kind == "number", cast(text, Numeric)), else_=None)
    return and_(kind == "number", _COMPARE[op](number, bindparam(None, Decimal(repr(wanted)), type_=Numeric)))


def _postgres_kind(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else "string" if isinstance(value, str) else "number"


@compiles(FieldTest, "sqlite")
def _render_sqlite(element: FieldTest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(_sqlite_field(element), **kw)})"


@compiles(FieldTest, "postgresql")
def _render_postgres(element: FieldTest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(_postgres_field(element), **kw)})"


@compiles(FieldTest)
def _render_other(element: FieldTest, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"custom-field conditions are written for SQLite and PostgreSQL, not {compiler.dialect.name}")


# --- saved segments --------------------------------------------------------------------------------

def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError(f"segment name {name!r}: use lower-case letters, digits, '-' and '_' (e.g. 'vip-la')")
    return name


def find_segment(session: Session, name: str) -> Segment | None:
    return session.scalar(select(Segment).where(Segment.name == name))


def get_segment(session: Session, name: str) -> Segment:
    found = find_segment(session, name)
    if found is None:
        raise NotFound(f"there is no segment {name!r}")
    return found


def list_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.name)))


def save_segment(session: Session, name: str, definition: Any, description: str | None = None) -> Segment:
    """Create the segment or replace its definition. ``description`` None keeps the current one.

    Lists are checked here (not in ``validate``, which needs no database): a typo in a list's slug
    would otherwise save a segment that silently matches nobody.
    """
    check_name(name)
    cleaned = validate(definition, name=name)
    known = set(session.scalars(select(MailingList.slug)))
    for path, slug in _list_references(cleaned, ""):
        if slug not in known:
            raise InputError(f"segment {name!r}: {path}: there is no list {slug!r}"
                             f" (lists: {', '.join(sorted(known)) or 'none yet'})")
    segment = find_segment(session, name)
    if segment is None:
        segment = Segment(name=name, description=description or "", definition=cleaned)
        session.add(segment)
    else:
        segment.definition = cleaned
        if description is not None:
            segment.description = description
    session.flush()
    return segment


def _list_references(node: Definition, path: str) -> list[tuple[str, str]]:
    kind = _kind(node)
    here = _at(path, kind)
    if kind in ("all", "any"):
        return [ref for i, child in enumerate(node[kind]) for ref in _list_references(child, f"{here}[{i}]")]
    if kind == "not":
        return _list_references(node["not"], here)
    if kind == "list":
        return [(here, node["list"])]
    if kind == "confirmed" and "list" in node["confirmed"]:
        return [(f"{here}.list", node["confirmed"]["list"])]
    return []


def delete_segment(session: Session, name: str) -> None:
    """NotFound when there is no such segment, also when another transaction deleted it meanwhile:
    its row is locked first (PostgreSQL), so a second delete waits and then finds nothing."""
    segment = session.scalar(select(Segment).where(Segment.name == name).with_for_update())
    if segment is None:
        raise NotFound(f"there is no segment {name!r}")
    session.delete(segment)
    session.flush()


def segment_filter(session: Session, name: str, *, now: datetime | None = None) -> ColumnElement[bool]:
    """The saved segment's WHERE clause, for callers that choose recipients (enqueue) or preview."""
    return compile_filter(get_segment(session, name).definition, now=now)


def _where(session: Session, definition_or_name: str | Mapping[str, Any], mailable_only: bool,
           now: datetime | None) -> ColumnElement[bool]:
    if isinstance(definition_or_name, str):
        where = segment_filter(session, definition_or_name, now=now)
    else:
        where = compile_filter(definition_or_name, now=now)
    return and_(where, not_suppressed()) if mailable_only else where


def count(session: Session, definition_or_name: str | Mapping[str, Any], *, mailable_only: bool = True,
          now: datetime | None = None) -> int:
    """How many contacts match, in one ``SELECT count(*)``; ``mailable_only`` leaves out suppressed
    addresses (what a send would reach)."""
    where = _where(session, definition_or_name, mailable_only, now)
    return session.scalar(select(func.count()).select_from(Contact).where(where)) or 0


def contacts(session: Session, definition_or_name: str | Mapping[str, Any], *, mailable_only: bool = True,
             limit: int = 10, now: datetime | None = None) -> list[Contact]:
    """The first ``limit`` matching contacts by id: a preview, not a way to iterate a segment."""
    where = _where(session, definition_or_name, mailable_only, now)
    return list(session.scalars(select(Contact).where(where).order_by(Contact.id).limit(limit)))

