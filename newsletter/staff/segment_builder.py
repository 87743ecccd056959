"""The staff segment builder's form: rows of (condition, operator, field name, value) combined with
"all" or "any", turned into a definition of ``subscribers.segments`` and back.

The builder writes the same definition language as ``newsletter segments save`` and checks nothing
itself beyond what a row needs to become a node (a number where a number goes); everything else is
``segments.validate``'s, whose message names the path of the bad node (``all[1].field: ...``), which
``row_of`` turns back into the row to show it beside. Whatever the rows cannot express (nesting,
windows with two bounds, a confirmed window on one list, ...) is written in the advanced text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from newsletter import plain_yaml
from subscribers.segments import FIELD_OPS, WINDOW_KEYS, Definition

# Condition kinds: the label, the operators that apply, and what the value is.
KINDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "list": ("Subscription to a list", ("is", "is_not", "confirmed", "pending"), "a list's name"),
    "tag": ("Tag (any of)", ("is", "is_not"), "one tag, or several separated by commas"),
    "tags_all": ("Tags (all of)", ("is", "is_not"), "tags separated by commas"),
    "status": ("Contact status", ("is", "is_not"), "active, unsubscribed, bounced, …"),
    "lead_stage": ("Lead stage", ("is", "is_not"), "new, contacted, booked, …"),
    "timezone": ("Time zone", ("is", "is_not"), "e.g. Europe/London"),
    "source": ("Source", ("is", "is_not"), "form, import, api, …"),
    "field": ("Custom field", FIELD_OPS, "the value to compare with"),
    "created": ("Added", WINDOW_KEYS, "days, or a date (YYYY-MM-DD)"),
    "confirmed": ("Confirmed a subscription", WINDOW_KEYS, "days, or a date (YYYY-MM-DD)"),
    "engaged": ("Opened or clicked", WINDOW_KEYS, "days, or a date (YYYY-MM-DD)"),
    "opened": ("Opened an email", WINDOW_KEYS, "days, or a date (YYYY-MM-DD)"),
    "clicked": ("Clicked a link", WINDOW_KEYS, "days, or a date (YYYY-MM-DD)"),
    "never_opened": ("Never opened an email", ("is", "is_not"), "no value"),
}
OPS: dict[str, str] = {
    "is": "is / has", "is_not": "is not / has not", "confirmed": "confirmed subscriber of",
    "pending": "waiting to confirm for",
    "within_days": "in the last N days", "older_than_days": "more than N days ago",
    "after": "on or after (date)", "before": "before (date)",
    "eq": "equals", "ne": "does not equal", "lt": "is less than", "lte": "is at most", "gt": "is more than",
    "gte": "is at least", "contains": "contains", "exists": "is filled in",
}
MATCHES = ("all", "any")
MAX_ROWS = 30
_PATH_ROW = re.compile(r"^(?:segment '[^']*': )?(?:all|any)\[(\d+)\]")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


@dataclass
class Row:
    kind: str = "list"
    op: str = "is"
    key: str = ""
    value: str = ""


class RowError(ValueError):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _one_or_many(value: str) -> str | list[str]:
    parts = _split(value)
    return parts[0] if len(parts) == 1 else parts


def _node(index: int, row: Row) -> Definition:
    if row.kind not in KINDS:
        raise RowError(index, "Choose a condition from the list.")
    label, ops, _ = KINDS[row.kind]
    if row.op not in ops:
        raise RowError(index, f"“{OPS.get(row.op, row.op)}” does not go with {label.lower()}; choose one of: "
                              f"{', '.join(OPS[o] for o in ops)}.")
    value = row.value.strip()
    if row.kind == "never_opened":
        node: Definition = {"never_opened": True}
    elif row.kind == "field":
        node = {"field": row.key.strip(), "op": row.op, **_field_value(index, row.op, value)}
    elif row.kind in ("created", "confirmed", "engaged", "opened", "clicked"):
        node = {row.kind: {row.op: _window_value(index, row.op, value)}}
    else:
        if not value:
            raise RowError(index, f"Give {KINDS[row.kind][2]}.")
        if row.kind == "list":
            node = {"list": value} if row.op in ("is", "is_not") else {"list": value, "status": row.op}
        elif row.kind == "tag":
            tags = _split(value)
            node = {"tag": tags[0]} if len(tags) == 1 else {"tags_any": tags}
        elif row.kind == "tags_all":
            node = {"tags_all": _split(value)}
        else:
            node = {row.kind: _one_or_many(value)}
    return {"not": node} if row.op == "is_not" else node


def _field_value(index: int, op: str, value: str) -> dict[str, Any]:
    if op == "exists":
        return {}
    if op in ("lt", "lte", "gt", "gte"):
        if not _NUMBER.match(value):
            raise RowError(index, f"“{OPS[op]}” compares numbers: give a number, e.g. 65.")
        return {"value": float(value) if "." in value else int(value)}
    if value.lower() in ("true", "false") and op in ("eq", "ne"):
        return {"value": value.lower() == "true"}
    return {"value": value}


def _window_value(index: int, op: str, value: str) -> int | str:
    if op in ("within_days", "older_than_days"):
        if not value.isdigit() or len(value) > 6:
            raise RowError(index, "Give a number of days, e.g. 30.")
        return int(value)
    if not value:
        raise RowError(index, "Give a date, e.g. 2026-01-31.")
    return value


def definition_of(match: str, rows: list[Row]) -> Definition:
    """The definition the rows say (``RowError`` names a row that cannot be one)."""
    if not rows:
        raise RowError(0, "Add a condition.")
    return {match if match in MATCHES else "all": [_node(i, row) for i, row in enumerate(rows)]}


def row_of(message: str) -> tuple[int, str] | None:
    """The row a validator's message is about, from its path (``all[2]...``), and the message
    without the path to the row (shown beside the row, which says which it is)."""
    found = _PATH_ROW.match(message)
    if not found:
        return None
    rest = message[found.end():].lstrip(".")
    return int(found.group(1)), rest[4:] if rest.startswith("not.") else rest


def rows_of(definition: Mapping[str, Any]) -> tuple[str, list[Row]] | None:
    """The builder's rows for a saved definition, or None when the rows cannot express it."""
    match = next((m for m in MATCHES if m in definition), None)
    children = definition[match] if match else [definition]
    rows = [_row(child) for child in children]
    if any(row is None for row in rows):
        return None
    return match or "all", [row for row in rows if row is not None]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _row(node: Any) -> Row | None:
    if not isinstance(node, Mapping):
        return None
    if set(node) == {"not"}:
        inner = _row(node["not"])
        if inner is None or inner.op != "is" or inner.kind in ("field",):
            return None
        inner.op = "is_not"
        return inner
    if "list" in node:
        status = node.get("status")
        if set(node) - {"list", "status"} or status not in (None, "confirmed", "pending"):
            return None
        return Row("list", status or "is", "", node["list"])
    if set(node) == {"field", "op", "value"} or set(node) == {"field", "op"} or set(node) == {"field", "value"}:
        return Row("field", node.get("op", "eq"), node["field"], "" if node.get("op") == "exists" else
                   _text(node.get("value", "")))
    if len(node) != 1:
        return None
    kind, value = next(iter(node.items()))
    if kind == "never_opened":
        return Row("never_opened", "is")
    if kind in ("tag", "tags_any"):
        return Row("tag", "is", "", _text(value))
    if kind in ("tags_all", "status", "lead_stage", "timezone", "source"):
        return Row(kind, "is", "", _text(value))
    if kind in ("created", "confirmed", "engaged", "opened", "clicked"):
        if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in WINDOW_KEYS:
            return None
        op, amount = next(iter(value.items()))
        return Row(kind, op, "", _text(amount))
    return None


def as_text(definition: Mapping[str, Any]) -> str:
    """The definition as YAML, as ``segments show`` prints it."""
    return yaml.safe_dump(dict(definition), sort_keys=False, allow_unicode=True)


def parse_text(text: str) -> Any:
    """A definition written as YAML (JSON is YAML too) as data; ``ValueError`` with a one-line
    reason and its position. The CLI's ``--file`` reads the same way."""
    try:
        return plain_yaml.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"not valid YAML{at}: {problem}") from None
    except RecursionError:
        raise ValueError("nested too deeply to be a segment definition") from None
