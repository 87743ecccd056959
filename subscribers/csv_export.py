"""CSV export of contacts, streamed from the database to a file.

Why it is shaped this way:

- Streamed: rows are fetched ``yield_per`` (a server-side cursor on PostgreSQL) and written as they
  come, so memory does not grow with the number of contacts. Custom fields become columns, so their
  keys are gathered first, in a pass over that one column with the same filter.
- The file holds health-related personal data: it is written to a temporary file created readable
  by its owner only, then renamed into place, so a crash leaves no half-written export.
- Suppressed contacts are left out unless asked for (``include_suppressed``), and then marked.
- Every cell, the header and the address included, goes through ``csv_cells.SafeWriter``: one that a
  spreadsheet would run as a formula gets a leading apostrophe (``=1+2@example.com`` is a valid
  address from the public form, and staff open exports in Excel). The import takes it off again.
- The header is one the importer reads back: its system columns are in
  ``csv_import.SYSTEM_COLUMNS`` (ignored on import), so an export can be imported again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from subscribers.csv_cells import SafeWriter
from subscribers.csv_import import ALIASES, SYSTEM_COLUMNS, header_key
from subscribers.errors import InputError
from subscribers.lists import get_list
from subscribers.models import Contact, ContactTag, Subscription, Suppression
from subscribers.suppression import not_suppressed

CONTACT_COLUMNS = ("email", "name", "timezone", "language", "status", "tags", "created_at")
LIST_COLUMNS = ("subscription_status", "confirmed_at")
TAG_SEPARATOR = "\x1f"  # joins tags in SQL; no tag contains it (clean_tag folds whitespace and controls)
FETCH = 1000


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    rows: int
    columns: list[str]


def export_csv(
    session: Session,
    out_path: Path,
    *,
    list_slug: str | None = None,
    where: ColumnElement[bool] | None = None,
    include_suppressed: bool = False,
) -> ExportSummary:
    """Write contacts to ``out_path`` (UTF-8 with a BOM, which spreadsheets need to read accents).

    ``list_slug``: only contacts with a subscription to that list (any status), with its status and
    confirmation time. ``where``: a further filter over ``Contact`` (e.g. a segment's
    ``compile_filter``). Columns: email, name, timezone, language, status, tags, created_at, then the list's
    columns, ``suppressed`` when suppressed contacts are included, then one per custom-field key.
    """
    mailing_list = get_list(session, list_slug) if list_slug else None
    conditions = [c for c in (where, None if include_suppressed else not_suppressed()) if c is not None]
    keys = _custom_keys(session, mailing_list.id if mailing_list else None, conditions)
    headers = [*CONTACT_COLUMNS, *(LIST_COLUMNS if mailing_list else ()),
               *(("suppressed",) if include_suppressed else ()), *_custom_headers(keys)]

    tags = (select(func.aggregate_strings(ContactTag.tag, TAG_SEPARATOR))
            .where(ContactTag.contact_id == Contact.id).scalar_subquery())
    columns: list[Any] = [Contact.email, Contact.name, Contact.timezone, Contact.language, Contact.status, tags,
                          Contact.created_at]
    if mailing_list:
        columns += [Subscription.status, Subscription.confirmed_at]
    if include_suppressed:
        columns.append(exists().where(Suppression.email_hash == Contact.email_hash))
    columns.append(Contact.custom_fields)
    stmt = _filtered(select(*columns), mailing_list.id if mailing_list else None, conditions).order_by(Contact.id)

    rows = 0
    temporary = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise InputError(f"{out_path}: cannot write the export ({exc.strerror})") from None
    try:
        with open(fd, "w", encoding="utf-8-sig", newline="") as file:
            writer = SafeWriter(file)
            writer.writerow(headers)
            for record in session.execute(stmt.execution_options(yield_per=FETCH)):
                writer.writerow(_cells(record, keys, with_list=mailing_list is not None,
                                       with_suppressed=include_suppressed))
                rows += 1
        os.replace(temporary, out_path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return ExportSummary(out_path, rows, headers)


def _filtered(stmt: Any, list_id: int | None, conditions: list[ColumnElement[bool]]) -> Any:
    stmt = stmt.select_from(Contact)
    if list_id is not None:
        stmt = stmt.join(Subscription, and_(Subscription.contact_id == Contact.id, Subscription.list_id == list_id))
    return stmt.where(*conditions)


def _custom_keys(session: Session, list_id: int | None, conditions: list[ColumnElement[bool]]) -> list[str]:
    """The custom-field keys of the contacts exported: the first of two passes, over one column."""
    keys: set[str] = set()
    stmt = _filtered(select(Contact.custom_fields), list_id, conditions)
    for fields in session.scalars(stmt.execution_options(yield_per=FETCH)):
        keys.update(fields or ())
    return sorted(keys, key=lambda k: (k.casefold(), k))


def _custom_headers(keys: list[str]) -> list[str]:
    # A custom key that reads as one of our columns ("Email", "status") would be taken for it on
    # import: it gets a prefix instead.
    taken = {*ALIASES, *(c.replace("_", " ") for c in (*CONTACT_COLUMNS, *LIST_COLUMNS, *SYSTEM_COLUMNS))}
    return [f"custom {key}" if header_key(key) in taken else key for key in keys]


def _cells(record: Any, keys: list[str], *, with_list: bool, with_suppressed: bool) -> list[str]:
    email, name, zone, language, status, tags, created_at, *optional, fields = record
    cells = [email, name or "", zone, language or "", status, ", ".join(sorted(tags.split(TAG_SEPARATOR))) if tags else "",
             created_at.isoformat()]
    if with_list:
        sub_status, confirmed_at, *optional = optional
        cells += [sub_status, confirmed_at.isoformat() if confirmed_at else ""]
    if with_suppressed:
        cells.append("yes" if optional[0] else "")
    cells += [_text((fields or {}).get(key)) for key in keys]
    return cells


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
