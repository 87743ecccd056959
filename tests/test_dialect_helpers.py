"""The dialect helpers' one home (subscribers/db.py): which backend, and INSERT … ON CONFLICT DO
NOTHING, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from newsletter.database import Database
from newsletter.models import Lease
from subscribers.db import insert_ignoring_conflicts, is_postgresql

UNTIL = datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> tuple[str, Database]:
    return request.param, request.getfixturevalue("db" if request.param == "sqlite" else "postgres_db")


def test_is_postgresql_from_a_session_an_engine_or_a_connection(any_db: tuple[str, Database]) -> None:
    backend, db = any_db
    expected = backend == "postgresql"
    assert is_postgresql(db.engine) is expected
    with db.engine.connect() as connection:
        assert is_postgresql(connection) is expected
    with db.session() as s:
        assert is_postgresql(s) is expected


def test_a_conflicting_insert_changes_nothing(any_db: tuple[str, Database]) -> None:
    _, db = any_db
    for holder in ("first", "second"):
        with db.session() as s:
            s.execute(insert_ignoring_conflicts(s, Lease).values(name="job", holder=holder, expires_at=UNTIL)
                      .on_conflict_do_nothing(index_elements=["name"]))
    with db.session() as s:
        assert s.execute(select(Lease.holder, func.count()).group_by(Lease.holder)).all() == [("first", 1)]
