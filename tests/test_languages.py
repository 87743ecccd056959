"""A contact's language: the one rule that reads a language someone gave, and where it is stored."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text

from newsletter.database import Database, alembic_config, upgrade
from subscribers.contacts import upsert_contact
from subscribers.errors import InputError
from subscribers.languages import check_language, language_of


@pytest.mark.parametrize(("given", "read"), [("es", "es"), ("ES", "es"), ("es-MX", "es"), ("en_US", "en"),
                                             (" en ", "en")])
def test_a_language_we_speak_is_read_as_its_primary_subtag(given: str, read: str) -> None:
    assert check_language(given) == read


@pytest.mark.parametrize("given", ["fr", "", "klingon", "e", "x" * 500, "es" + "-x" * 40])
def test_a_language_we_do_not_speak_is_refused_with_the_ones_we_do(given: str) -> None:
    with pytest.raises(InputError, match=r"not one we send in: use one of en \(English\), es \(Español\)"):
        check_language(given)


def test_a_contact_without_a_language_reads_the_newsletters() -> None:
    assert language_of(None, "en") == "en" and language_of("es", "en") == "es"


def test_a_contact_keeps_the_language_it_was_given_until_another_is(db: Database) -> None:
    with db.session() as s:
        contact = upsert_contact(s, "ana@example.org", default_timezone="UTC", source="form", language="es-MX").contact
        assert contact.language == "es"
        assert upsert_contact(s, "ana@example.org", default_timezone="UTC", source="form").contact.language == "es"
        with pytest.raises(InputError):
            upsert_contact(s, "ana@example.org", default_timezone="UTC", source="form", language="fr")
        assert contact.language == "es"
        assert upsert_contact(s, "bo@example.org", default_timezone="UTC", source="form").contact.language is None


def _contact_indexes(database: Database) -> set[str]:
    """Every index of ``contacts``, expression indexes too (SQLAlchemy's inspector skips those on SQLite)."""
    sql = ("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contacts'"
           if database.engine.dialect.name == "sqlite" else
           "SELECT indexname FROM pg_indexes WHERE tablename = 'contacts' AND schemaname = current_schema()")
    with database.engine.connect() as conn:
        return {row[0] for row in conn.execute(text(sql))}


def _down_and_up(database: Database) -> None:
    upgrade(database.engine)
    command.downgrade(alembic_config(database.engine), "0022")
    assert "language" not in {c["name"] for c in inspect(database.engine).get_columns("contacts")}
    indexes = _contact_indexes(database)
    assert "ix_contacts_email_lower" in indexes
    upgrade(database.engine)
    assert "language" in {c["name"] for c in inspect(database.engine).get_columns("contacts")}
    assert _contact_indexes(database) == indexes


def test_the_migration_goes_down_and_up_keeping_the_contacts_indexes_on_sqlite(db: Database) -> None:
    _down_and_up(db)


@pytest.mark.postgres
def test_the_migration_goes_down_and_up_on_postgres(postgres_db: Database) -> None:
    _down_and_up(postgres_db)
