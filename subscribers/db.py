"""The shared database core: the declarative base and column types every model uses.

It lives here, in the lower package, so that ``subscribers`` never imports ``newsletter`` while both
share one metadata (one Alembic history).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Engine, MetaData, Table, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Tables of ``newsletter`` that ``subscribers.segments`` reads (engagement) without importing it: their
# one spelling, which ``newsletter.models`` names them by too.
DELIVERIES_TABLE = "deliveries"
EVENTS_TABLE = "events"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns timezone-aware UTC. Refuses naive datetimes: they hide bugs."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware value")
        value = value.astimezone(timezone.utc)
        # SQLite has no time zones: store naive UTC text.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# JSON on every backend, JSONB on PostgreSQL (indexable, compact).
JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Dialect helpers: the project runs on SQLite and PostgreSQL, and where their SQL differs the choice
# is made here, once.


def is_postgresql(where: Session | Engine | Connection) -> bool:
    """Whether ``where`` (a session, an engine or a connection) talks to PostgreSQL (else SQLite)."""
    bind = where.get_bind() if isinstance(where, Session) else where
    return bind.dialect.name == "postgresql"


def serialized(session: Session, key: int) -> None:
    """Run the rest of this transaction after any other that asked for ``key`` has ended: a
    PostgreSQL transaction-scoped advisory lock (each statement after it sees what the other
    committed). SQLite needs none: its writing transactions start one at a time (BEGIN IMMEDIATE)."""
    if is_postgresql(session):
        session.execute(select(func.pg_advisory_xact_lock(key)))


def insert_ignoring_conflicts(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    """The backend's own INSERT for ``table`` (a table or a mapped class), the construct that has
    ``on_conflict_do_nothing`` (``INSERT … ON CONFLICT DO NOTHING`` on both backends)."""
    return (postgresql if is_postgresql(session) else sqlite).insert(table)


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL: ``rows`` (values in ``columns``' order, as the driver takes them) into ``table``
    with COPY, in the session's own transaction: one stream instead of a statement per row. COPY
    escapes every value itself (tabs, newlines, backslashes, a text that reads ``\\N``). A refused
    row raises SQLAlchemy's error of the same kind (``IntegrityError`` for a constraint, ``DataError``
    for a value too long, ...) without the values: PostgreSQL's message quotes the refused one, which
    may be an email address, and must not reach a log."""
    import psycopg  # here: PostgreSQL's driver is an optional dependency (the "postgres" extra)

    # Made before COPY begins: an error raised while making them would otherwise travel to the
    # server as the COPY's failure ("error from Python: ...") and into its log.
    prepared = [row if isinstance(row, (list, tuple)) else list(row) for row in rows]
    refused: tuple[type[psycopg.Error], str | None] | None = None
    with session.connection().connection.driver_connection.cursor() as cursor:
        try:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in prepared:
                    copy.write_row(row)
        except psycopg.Error as exc:
            refused = type(exc), exc.sqlstate
    if refused is not None:  # raised here, not in the handler, so the driver's error is not kept as its context
        kind, sqlstate = refused
        scrubbed = kind(f"{kind.__name__} (SQLSTATE {sqlstate}); the value is not shown")
        raise DBAPIError.instance(f"COPY {table}", None, scrubbed, psycopg.Error)


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """New rows of ``table`` (dicts with the same keys: the first row's name the columns), many at a
    time: COPY on PostgreSQL (a statement per row in a pipeline cost more than the rows' own work),
    SQLAlchemy's executemany on SQLite. On both, each value goes through its column's type as in
    any statement, and a column not named gets its Python default (computed once for the rows). A
    refused row raises SQLAlchemy's error without the values (see ``copy_rows``)."""
    if not rows:
        return
    if not is_postgresql(session):
        failure: DBAPIError | None = None
        try:
            session.connection().execute(insert(table), rows)  # Core: no ORM bookkeeping per row
        except DBAPIError as exc:  # SQLite's own message names no value; SQLAlchemy's lists them all
            failure = exc
        if failure is not None:
            raise DBAPIError.instance(f"INSERT INTO {table.name}", None, failure.orig, sqlite3.Error)
        return
    columns = list(rows[0])
    defaults = python_defaults(table, set(columns))
    dialect = session.get_bind().dialect
    # dialect_impl: the type PostgreSQL gets (a variant's, the driver's own JSONB, ...), as a statement's.
    processors = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in [*columns, *defaults]]
    constant = [value if processor is None else processor(value)
                for value, processor in zip(defaults.values(), processors[len(columns):])]
    typed = [(n, processor) for n, processor in enumerate(processors[:len(columns)]) if processor is not None]

    def values() -> Iterator[list[Any]]:
        for row in rows:
            out = [row[c] for c in columns]
            for n, processor in typed:
                out[n] = processor(out[n])
            yield out + constant

    copy_rows(session, table.name, [*columns, *defaults], values())


def python_defaults(table: Table, given: set[str]) -> dict[str, Any]:
    """Column defaults computed in Python (``default=utcnow``) for the columns of ``table`` not in
    ``given``: for writes SQLAlchemy's INSERT does not make (COPY, INSERT ... SELECT), once per batch,
    so that a column added to the model later is still filled in."""
    values = {}
    for column in table.c:
        default = column.default
        if column.key not in given and default is not None and (default.is_scalar or default.is_callable):
            values[column.key] = default.arg if default.is_scalar else default.arg(None)
    return values


def starts_with(session: Session, expression: Any, prefix: str) -> Any:
    """``expression`` begins with ``prefix``, in a form an index on ``expression`` serves: a range
    (``>= prefix AND < next``) on SQLite, whose LIKE never uses an index on an expression; LIKE on
    PostgreSQL, whose index on it is built with ``text_pattern_ops`` (a range would follow the
    database's collation, which need not sort by code point)."""
    if is_postgresql(session):
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return expression.like(escaped + "%", escape="\\")
    following = _following(prefix)
    at_least = expression >= prefix
    return at_least if following is None else at_least & (expression < following)


def _following(prefix: str) -> str | None:
    """The smallest string after every string that starts with ``prefix`` (None: there is none, as
    for a prefix of U+10FFFF only). The last character goes up by one, past the surrogates (which
    no string can hold in UTF-8); one that is already the last code point is dropped and the one
    before it goes up instead."""
    text = prefix
    while text:
        last = ord(text[-1])
        if last < 0x10FFFF:
            following = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1
            return text[:-1] + chr(following)
        text = text[:-1]
    return None
