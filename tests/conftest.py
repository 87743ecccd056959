"""Shared fixtures: settings pointing at a temporary folder, migrated databases (SQLite always,
PostgreSQL when NEWSLETTER_TEST_POSTGRES_URL is set, in a schema of its own per run)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from newsletter.bootstrap import unwire, wire
from newsletter.config import Settings, get_settings
from newsletter.database import Database, upgrade
from tests import pgschema

FIXTURES = Path(__file__).parent / "fixtures"
# The project's own post in the shape posts arrive in from the clinic's blog (site-name line, empty
# category/date labels, short heading lines, footnote numbers glued to words, a quoted passage, a
# numbered reference list). Written for these tests; the real blog post is third-party text.
SAMPLE_POST = FIXTURES / "posts" / "clinic-post.txt"
SEED_POST_VARIABLE = "NEWSLETTER_TEST_SEED_POST"


def outside_file(variable: str) -> Path:
    """A file from outside the repository that a test may also check against (third-party text that
    is never committed): its path comes from ``variable``, which .ci/run sets. Unset, the test is
    skipped with a reason that names the variable; the project's own fixtures cover the behaviour."""
    value = os.environ.get(variable, "").strip()
    if not value:
        pytest.skip(f"{variable} is not set (.ci/run sets it); the project's own fixtures cover this")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"{variable}={value} is not a file")
    return path


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for an isolated run; the environment the CLI reads points at the same place."""
    for key in list(os.environ):
        if key.startswith("NEWSLETTER_") and not key.startswith("NEWSLETTER_TEST_") or key.startswith("SENDGRID_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("NEWSLETTER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)  # no stray .env is read from the developer's checkout
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _listeners_unwired_after() -> Iterator[None]:
    """Whatever a test wired (the CLI and ``create_app`` wire where they start) ends with it: no test
    relies on another having started the CLI or the app before it."""
    yield
    unwire()


@pytest.fixture
def wired(settings: Settings) -> Settings:
    """The booking listeners wired as a process wires them at start (``newsletter.bootstrap.wire``),
    for a test that records bookings in-process, through neither the CLI nor the web app."""
    wire(settings)
    return settings


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> Database:
    """Each backend in turn: ``db`` (SQLite), then ``postgres_db`` (skipped without a server)."""
    return request.getfixturevalue("db" if request.param == "sqlite" else "postgres_db")


# Fixtures that live in their own modules, registered once here so every test shares one instance.
from tests.browser import browser  # noqa: E402,F401
from tests.liveserver import live_server  # noqa: E402,F401
from tests.webserver import loopback_allowed, site  # noqa: E402,F401
from tests.sendgrid_fake import fake_sendgrid  # noqa: E402,F401
from tests.ses_fake import fake_ses  # noqa: E402,F401
