"""The dialect helpers' one home (subscribers/db.py): which backend, INSERT … ON CONFLICT DO NOTHING
and many rows at once (COPY on PostgreSQL), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from newsletter.database import Database
from newsletter.models import Lease
from subscribers.models import Contact
from subscribers.db import insert_ignoring_conflicts, insert_rows, is_postgresql, utcnow

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


def test_many_rows_go_in_as_written_and_a_refused_one_names_no_value(any_db: tuple[str, Database]) -> None:
    """``insert_rows`` (COPY on PostgreSQL): text COPY would take for its own escapes arrives as it
    was, a datetime in another zone is stored as the same instant, JSON and NULL go through their
    column types, a column not named gets its Python default; a row the schema refuses raises
    SQLAlchemy's IntegrityError, on both backends, naming no value (nor keeping the driver's error,
    which quotes it, as its context)."""
    _, db = any_db
    paris = timezone(timedelta(hours=1))
    holders = ["tab\there", "line\nbreak", "back\\slash", "\\N", ""]
    rows = [{"name": f"job-{n}", "holder": holder, "expires_at": UNTIL.astimezone(paris)}
            for n, holder in enumerate(holders)]
    people = [{"email": f"reader{n}@example.org", "email_hash": f"hash{n}", "name": name, "timezone": "UTC",
               "custom_fields": fields, "source": "import"}
              for n, (name, fields) in enumerate([(None, {"plan": "b", "visits": [1, 2]}), ("Ana", {})])]
    before = utcnow()
    with db.session() as s:
        insert_rows(s, Lease.__table__, rows)
        insert_rows(s, Lease.__table__, [])
        insert_rows(s, Contact.__table__, people)
    with db.session() as s:
        stored = s.execute(select(Lease.name, Lease.holder, Lease.expires_at).order_by(Lease.name)).all()
        contacts = s.execute(select(Contact.name, Contact.custom_fields, Contact.status, Contact.created_at)
                             .order_by(Contact.email)).all()
    assert [(name, holder) for name, holder, _ in stored] == [(r["name"], r["holder"]) for r in rows]
    assert {at for *_, at in stored} == {UNTIL}
    assert [(name, fields, status) for name, fields, status, _ in contacts] == [
        (None, {"plan": "b", "visits": [1, 2]}, "active"), ("Ana", {}, "active")]
    assert all(at >= before for *_, at in contacts)
    with pytest.raises(IntegrityError) as refused, db.session() as s:
        insert_rows(s, Lease.__table__, [{"name": "secret-name@example.org", "holder": "a", "expires_at": UNTIL},
                                         {"name": "secret-name@example.org", "holder": "b", "expires_at": UNTIL}])
    error: BaseException | None = refused.value
    while error is not None:
        assert "secret-name" not in f"{error} {error.args}"
        error = error.__cause__ or error.__context__
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Lease)) == len(rows)
