"""What the benchmarks share: bulk-loading rows (COPY on PostgreSQL, executemany on SQLite),
capturing the statements a block runs (to EXPLAIN them), and a PostgreSQL schema of their own."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert, select, text

from newsletter.database import Database, upgrade
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


def sent_issue(db: Database, readers: int, html: str, sent_at: datetime, *, chunk: int = 20_000,
               message_ids: bool = False) -> tuple[int, list[int]]:
    """A fresh database (upgraded) holding one issue of one paragraph (``html``) sent to ``readers``
    contacts, one submitted delivery each (with ``message_ids``, one provider message id per 1000, as
    one request each); returns (issue id, delivery ids)."""
    from newsletter import issues as issue_service
    from newsletter.config import Settings
    from newsletter.models import Delivery
    from newsletter.posts.blocks import Block, ParsedPost
    from newsletter.posts.service import store_post
    from subscribers.models import Contact, Installation
    from subscribers.suppression import hash_with_salt

    upgrade(db.engine)
    settings = Settings(database_url=db.url)
    with db.session() as s:
        salt = s.scalar(select(Installation.hash_salt))
        post = store_post(s, ParsedPost(title="Bench", blocks=[Block("paragraph", html=html)])).post
        issue_id = issue_service.create_issue(s, settings, post.id, "Bench issue", "Bench").id
    assert salt
    for first in range(0, readers, chunk):
        with db.session() as s:
            s.execute(insert(Contact), [
                {"email": f"reader{n}@example.org", "email_hash": hash_with_salt(salt, f"reader{n}@example.org"),
                 "name": None, "timezone": "UTC", "custom_fields": {}, "status": "active", "source": "import"}
                for n in range(first, min(first + chunk, readers))])
            contact_ids = list(s.scalars(select(Contact.id).order_by(Contact.id).offset(first)))
            s.execute(insert(Delivery), [
                {"issue_id": issue_id, "contact_id": c, "status": "submitted", "due_at": sent_at, "attempts": 1,
                 "provider_message_id": f"bench{(first + i) // 1000:06d}" if message_ids else None,
                 "submitted_at": sent_at, "created_at": sent_at}
                for i, c in enumerate(contact_ids)])
    with db.session() as s:
        return issue_id, list(s.scalars(select(Delivery.id).order_by(Delivery.id)))
