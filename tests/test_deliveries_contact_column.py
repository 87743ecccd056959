"""Migration 0029: deliveries.contact_id without a foreign key (erasure clears it itself), and the
pool's ping of a connection that rested (instead of one before every checkout)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.pool import NullPool

from newsletter import database as database_module
from newsletter.database import Database, alembic_config, upgrade
from newsletter.models import Delivery
from subscribers.contacts import upsert_contact
from subscribers.states import DeliveryStatus

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _contact_keys(database: Database) -> list[dict]:
    return [key for key in inspect(database.engine).get_foreign_keys("deliveries")
            if key["referred_table"] == "contacts"]


def _down_and_up(database: Database) -> None:
    with database.session() as s:
        contact = upsert_contact(s, "ana@example.org", default_timezone="UTC", source="form").contact
        s.flush()
        s.add(Delivery(issue_id=1, contact_id=contact.id, status=DeliveryStatus.SUBMITTED, due_at=NOW, attempts=1))
        # A row whose contact is gone (only possible without the key): the downgrade clears it first.
        s.add(Delivery(issue_id=1, contact_id=contact.id + 1000, status=DeliveryStatus.SUBMITTED, due_at=NOW,
                       attempts=1))
    assert _contact_keys(database) == []
    command.downgrade(alembic_config(database.engine), "0028")
    keys = _contact_keys(database)
    assert [(k["constrained_columns"], k["options"].get("ondelete")) for k in keys] == [(["contact_id"], "SET NULL")]
    with database.engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT contact_id FROM deliveries")).scalars(),
                      key=lambda v: v is None) == [contact.id, None]
    upgrade(database.engine)
    assert _contact_keys(database) == []


def test_the_migration_goes_down_and_up_on_sqlite(db: Database) -> None:
    _down_and_up(db)


@pytest.mark.postgres
def test_the_migration_goes_down_and_up_on_postgres(postgres_db: Database) -> None:
    _down_and_up(postgres_db)


@pytest.mark.postgres
def test_a_pooled_connection_closed_while_it_rested_is_replaced(postgres_db: Database,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE", 0.0)  # every rested connection is pinged
    with postgres_db.engine.connect() as conn:
        first = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    other = create_engine(postgres_db.url, poolclass=NullPool)
    with other.begin() as conn:  # the server ends the pooled one (a restart, an idle timeout)
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    other.dispose()
    with postgres_db.session() as s:
        assert s.scalar(select(Delivery.id).limit(1)) is None
        assert s.scalar(text("SELECT pg_backend_pid()")) != first
