"""What the benchmarks share: bulk-loading rows (COPY on PostgreSQL, executemany on SQLite),
capturing the statements a block runs (to EXPLAIN them), and a PostgreSQL schema of their own."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, text

from newsletter.database import Database
from tests.pgschema import postgres_schema


@contextmanager
def postgres_database(base: str, prefix: str, *, keep: bool = False) -> Iterator[Database]:
    """A ``Database`` in a new schema of ``base``'s server, dropped afterwards unless ``keep``."""
    with postgres_schema(base, prefix, keep=keep) as url:
        db = Database(url)
        try:
            yield db
        finally:
            db.engine.dispose()
            if keep:
                print(f"kept {url}")


def sqlite_time(value: datetime) -> str:
    """What UTCDateTime stores on SQLite: naive UTC text, as SQLAlchemy's DATETIME writes it."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def floor_ms(db: Database, sql: str = "SELECT 1") -> float:
    """One run of ``sql`` in a session of its own, in ms: the floor a benchmark sets beside its figures
    (``SELECT 1``: a round trip; ``SELECT count(*) FROM t``: one pass over the table's smallest index)."""
    with db.session() as session:
        started = time.perf_counter()
        session.execute(text(sql)).all()
        return (time.perf_counter() - started) * 1000


def write_rows(cursor: Any, table: str, columns: str, rows: Sequence[tuple[Any, ...]], *, postgres: bool) -> None:
    """Append ``rows`` to ``table`` through a raw DB-API cursor, the fastest way each driver offers."""
    if postgres:
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" * len(columns.split(", ")))
    cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                       [tuple(sqlite_time(v) if isinstance(v, datetime) else v for v in row) for row in rows])


@contextmanager
def captured(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The statements (with their driver parameters) that run inside the block."""
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)


def explain(db: Database, statement: str, parameters: Any) -> str:
    """The database's plan for one captured statement, indented for printing."""
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if db.engine.dialect.name == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return "\n".join(f"    {row[3]}" for row in cursor.fetchall())
        cursor.execute(f"EXPLAIN {statement}", parameters)
        return "\n".join(f"    {row[0]}" for row in cursor.fetchall())
    finally:
        raw.close()
