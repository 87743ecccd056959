"""Shared fixtures: settings pointing at a temporary folder, migrated databases (SQLite always,
PostgreSQL when NEWSLETTER_TEST_POSTGRES_URL is set, in a schema of its own per run)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from newsletter.config import Settings, get_settings
from newsletter.database import Database, upgrade
from tests import pgschema

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED_POST = SHARED / "samples" / "seed-post.txt"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for an isolated run; the environment the CLI reads points at the same place."""
    for key in list(os.environ):
        if key.startswith("NEWSLETTER_") and key != "NEWSLETTER_TEST_POSTGRES_URL" or key.startswith("SENDGRID_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)  # no stray .env is read from the developer's checkout
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def db(settings: Settings) -> Database:
    database = Database.from_settings(settings)
    upgrade(database.engine)
    return database


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new schema, dropped afterwards."""
    base = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("NEWSLETTER_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    with pgschema.postgres_schema(base, "test") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A schema for this test run (shared by the tests that ask for it)."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def postgres_db(settings: Settings) -> Iterator[Database]:
    """A migrated PostgreSQL database of this test's own (its own schema)."""
    with postgres_schema() as url:
        database = Database(url)
        upgrade(database.engine)
        yield database
        database.engine.dispose()


# Fixtures that live in their own modules, registered once here so every test shares one instance.
from tests.browser import browser  # noqa: E402,F401
from tests.liveserver import live_server  # noqa: E402,F401
from tests.webserver import loopback_allowed, site  # noqa: E402,F401
from tests.sendgrid_fake import fake_sendgrid  # noqa: E402,F401
