"""Engine, sessions and migrations.

SQLite (the embedded default) runs with WAL, foreign keys and secure delete on; PostgreSQL is the
scale-out path.
The schema is only ever created by Alembic migrations, so both backends get the same tables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import Settings
from subscribers.db import is_postgresql


POOL_SIZE = 5  # SQLAlchemy's default: connections a process keeps open besides its sending threads


def make_engine(url: str, *, threads: int = 0) -> Engine:
    """``threads``: dispatcher threads that will each hold a connection, kept open beyond the pool's
    usual five (an overflow connection is closed on return, and PostgreSQL starts a process for the
    next one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # How long a statement waits for another connection's write lock before "database is locked"
        # (the sender then retries with backoff); ``?timeout=`` in the URL overrides the 30 s.
        busy_timeout = float(parsed.query.get("timeout", 30))
        engine = create_engine(parsed.difference_update_query(["timeout"]), connect_args={"timeout": busy_timeout})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(url, pool_size=POOL_SIZE + threads)
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE = 1.0  # seconds a pooled connection may rest before it is pinged on checkout
_RETURNED_AT = "newsletter_returned_at"


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection that rested in the pool: a server
    restart or an idle timeout closes those. Pinging every checkout cost a dispatcher a round trip
    per transaction, three a batch (4% of its time). A connection back from use a moment ago that
    has died all the same fails its first statement, which callers treat as any outage."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def returned(_dbapi_connection, record) -> None:  # noqa: ANN001 - pool types
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping(dbapi_connection, record, _proxy) -> None:  # noqa: ANN001 - pool types
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE:
            return  # just opened, or just used
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:  # gone: the pool opens another and tries again
            raise DisconnectionError() from exc


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API types
    # pysqlite's own transaction handling commits SAVEPOINTs early; SQLAlchemy emits BEGIN instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted rows and freed pages are overwritten with zeros, so an erased person's data does not
    # linger in the file's free space (every connection: the setting is per connection).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


READ_ONLY = "newsletter_read_only"  # execution option of ``Database.snapshot``'s connections


def _sqlite_begin(conn) -> None:  # noqa: ANN001
    # IMMEDIATE: take the write lock at the start, so a transaction that reads then writes never
    # fails half-way on a lock upgrade; SQLite has one writer at a time anyway (WAL keeps reads free).
    # A snapshot only reads: a deferred BEGIN, which WAL runs beside the writer without waiting.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def truncate_wal(engine: Engine) -> bool:
    """Copy SQLite's write-ahead log into the database file and empty it, so old page images (data
    deleted since) are gone from the ``-wal`` file too. Waits for readers up to the busy timeout;
    returns False if it could not finish (another process kept reading). Other backends: True."""
    if engine.dialect.name != "sqlite":
        return True
    connection = engine.raw_connection()  # autocommit (isolation_level None): no BEGIN around the pragma
    try:
        cursor = connection.cursor()
        busy, _log_frames, _done = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cursor.close()
    finally:
        connection.close()
    return busy == 0


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("newsletter") / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Create or upgrade the schema to the newest migration; safe to run any number of times.

    Returns (revision before, revision after).
    """
    before = current_revision(engine)
    command.upgrade(alembic_config(engine), "head")
    return before, current_revision(engine) or ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


AFTER_COMMIT = "newsletter.after_commit"


def after_commit(session: Session, action: Callable[[], object]) -> None:
    """Run ``action`` once the transaction of ``session`` (a ``Database.session``) has committed and
    the database is free again, e.g. an email about what was just stored; never if it rolls back."""
    session.info.setdefault(AFTER_COMMIT, []).append(action)


class Database:
    """One engine and session factory for the process."""

    def __init__(self, url: str, *, threads: int = 0) -> None:
        self.url = url
        self.engine = make_engine(url, threads=threads)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer, and every transaction here takes the write lock (BEGIN IMMEDIATE).
        # Threads of this process queue on a lock of their own instead, handed over the moment it
        # is free: SQLite's busy handler would make them sleep and poll (1, 2, 5 … 100 ms).
        self._writer = threading.RLock() if self.engine.dialect.name == "sqlite" else nullcontext()
        reading: dict[str, object] = {READ_ONLY: True}
        if is_postgresql(self.engine):
            reading.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        self._snapshots = sessionmaker(self.engine.execution_options(**reading))

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        assert settings.database_url is not None
        return cls(settings.database_url, threads=settings.send_concurrency)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error so nothing is half written."""
        with self._writer, self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            later = session.info.pop(AFTER_COMMIT, [])
        for action in later:  # committed, and the database is free for others again
            action()

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """Read-only figures (``/metrics``): every query inside sees the same moment of the database,
        and none of them waits for or holds up a writer (SQLite: a deferred transaction outside the
        writer lock; PostgreSQL: REPEATABLE READ, READ ONLY). Nothing is ever committed."""
        with self._snapshots() as session:
            try:
                yield session
            finally:
                session.rollback()

    def is_current(self) -> bool:
        return current_revision(self.engine) == head_revision(self.engine)
