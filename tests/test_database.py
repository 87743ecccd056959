"""The schema comes from Alembic migrations, the same on SQLite and PostgreSQL, and matches the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from newsletter.database import Database, current_revision, head_revision, upgrade
from subscribers.db import Base

TABLES = {"posts", "feeds", "issues", "alembic_version"}


def _assert_schema_matches_models(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations disagree; add a migration: {diff}"


def test_sqlite_upgrade_is_idempotent_and_matches_models(db: Database) -> None:
    assert current_revision(db.engine) == head_revision(db.engine)
    assert upgrade(db.engine)[0] == head_revision(db.engine)  # second run: nothing to do
    assert TABLES <= set(inspect(db.engine).get_table_names())
    _assert_schema_matches_models(db)


def test_sqlite_runs_with_wal_and_foreign_keys(db: Database) -> None:
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_sqlite_refuses_orphan_rows(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO issues (post_id, subject, preheader, status, html, text, compiled_at, created_at, updated_at)"
                    " VALUES (999, 's', '', 'draft', '', '', '2026-01-01', '2026-01-01', '2026-01-01')"
                )
            )


@pytest.mark.postgres
def test_postgres_migrates_cleanly_and_matches_models(postgres_url: str) -> None:
    database = Database(postgres_url)
    before, after = upgrade(database.engine)
    assert after == head_revision(database.engine)
    assert upgrade(database.engine)[0] == after
    assert TABLES <= set(inspect(database.engine).get_table_names())
    _assert_schema_matches_models(database)
    database.engine.dispose()
