"""Every way a contact's language comes in: CSV import (a language column), the REST API (contacts
and leads), the staff app (the add form and the contact page) and the CLI (``contacts add``)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.staff.models import AuditEntry
from subscribers.csv_import import import_csv
from subscribers.models import Contact
from tests.apikit import API, bearer, described, make_token
from tests.contactskit import BACKENDS, serve_on
from tests.liveserver import LiveServer
from tests.staffkit import make_user, post_form, signed_in


def language_of(db: Database, email: str) -> str | None:
    with db.session() as s:
        return s.scalar(select(Contact.language).where(Contact.email == email))


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, settings: Settings) -> Iterator[LiveServer]:
    yield from serve_on(request, settings)


# CSV import -------------------------------------------------------------------------------------


def test_a_language_column_is_read_and_a_bad_value_is_rejected_naming_the_column(db: Database,
                                                                                tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email,Preferred Language,name\n"
                    "ana@example.org,es-MX,Ana\n"
                    "bo@example.org,,Bo\n"
                    "cy@example.org,fr,Cy\n"
                    "di@example.org,EN,Di\n", encoding="utf-8")
    summary = import_csv(db.engine, path, list_slug="newsletter", default_timezone="UTC")
    assert (summary.added, summary.rejected) == (3, 1)
    assert [language_of(db, f"{who}@example.org") for who in ("ana", "bo", "cy", "di")] == ["es", None, None, "en"]
    with summary.report_path.open(encoding="utf-8-sig", newline="") as file:
        (rejected, *_) = list(csv.DictReader(file))
    assert (rejected["line"], rejected["column"], rejected["value"]) == ("4", "Preferred Language", "fr")
    assert "not one we send in" in rejected["reason"]

    path.write_text("email,language\nbo@example.org,es\nana@example.org,\n", encoding="utf-8")
    again = import_csv(db.engine, path, list_slug="newsletter", default_timezone="UTC")
    assert (again.updated, again.unchanged) == (1, 1)  # an empty cell keeps what is stored
    assert language_of(db, "bo@example.org") == "es" and language_of(db, "ana@example.org") == "es"


# The REST API -----------------------------------------------------------------------------------


def test_the_api_takes_a_language_for_contacts_and_leads_and_describes_it(server: LiveServer) -> None:
    _, secret = make_token(server.db, ["contacts:write", "leads:write"])
    with httpx.Client(base_url=server.url, headers=bearer(secret), timeout=30) as http:
        api = described(http)
        schema = http.get(f"{API}/openapi.json").json()["components"]["schemas"]
        for name in ("ContactIn", "LeadIn"):
            assert "en, es" in schema[name]["properties"]["language"]["description"]
        saved = http.post(f"{API}/contacts", json={"email": "ana@example.org", "language": "es-ES"})
        api.check(saved)
        assert saved.status_code == 201 and language_of(server.db, "ana@example.org") == "es"
        lead = http.post(f"{API}/leads", json={"email": "ben@example.org", "language": "es"})
        api.check(lead)
        assert lead.status_code == 201 and language_of(server.db, "ben@example.org") == "es"
        refused = http.post(f"{API}/contacts", json={"email": "cy@example.org", "language": "fr"})
        assert refused.status_code == 422 and "language" in refused.text and "en (English)" in refused.text
    assert language_of(server.db, "cy@example.org") is None


# The staff app ----------------------------------------------------------------------------------


def test_staff_set_a_language_when_adding_a_contact_and_change_it_on_their_page(live_server: LiveServer) -> None:
    db, login = live_server.db, make_user(live_server.db)
    with signed_in(live_server, login) as http:
        bad = post_form(http, "/staff/contacts/new", "/staff/contacts/new",
                        {"email": "ana@example.org", "lists": "newsletter", "language": "fr", "timezone": "UTC"})
        assert bad.status_code == 400 and "not one we send in" in bad.text
        added = post_form(http, "/staff/contacts/new", "/staff/contacts/new",
                          {"email": "ana@example.org", "lists": "newsletter", "language": "es", "timezone": "UTC"})
        assert added.status_code == 303 and language_of(db, "ana@example.org") == "es"
        page = added.headers["location"].split("?")[0]
        shown = http.get(page)
        assert "Español" in shown.text and '<option value="es" selected>' in shown.text
        cleared = post_form(http, page, page + "/language", {"language": ""})
        assert cleared.status_code == 303 and language_of(db, "ana@example.org") is None
        refused = post_form(http, page, page + "/language", {"language": "klingon"})
        assert refused.status_code == 400 and "not one we send in" in refused.text
    with db.session() as s:
        details = [e.detail for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "contact_edited"))]
    assert details == ["language"]  # the change is audited, and nothing of the contact's is in it


# The CLI ----------------------------------------------------------------------------------------


def test_contacts_add_takes_a_language(settings: Settings, db: Database) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["contacts", "add", "ana@example.org", "--language", "es", "--confirmed",
                               "--consent-note", "asked at the front desk"])
    assert done.exit_code == 0, done.output
    assert language_of(db, "ana@example.org") == "es"
    shown = runner.invoke(app, ["contacts", "show", "ana@example.org"])
    assert "language: es" in shown.output
    refused = runner.invoke(app, ["contacts", "add", "bo@example.org", "--language", "fr"])
    assert refused.exit_code != 0 and "not one we send in" in refused.output
    assert language_of(db, "bo@example.org") is None


def test_an_export_carries_the_language_and_imports_back_unchanged(db: Database, tmp_path: Path) -> None:
    from subscribers.csv_export import export_csv

    source = tmp_path / "in.csv"
    source.write_text("email,language\nana@example.org,es\nbo@example.org,\n", encoding="utf-8")
    import_csv(db.engine, source, list_slug="newsletter", default_timezone="UTC")
    out = tmp_path / "out.csv"
    with db.session() as s:
        export_csv(s, out)
    with out.open(encoding="utf-8-sig", newline="") as file:
        assert {row["email"]: row["language"] for row in csv.DictReader(file)} == {"ana@example.org": "es",
                                                                                   "bo@example.org": ""}
    again = import_csv(db.engine, out, list_slug="newsletter", default_timezone="UTC")
    assert (again.unchanged, again.updated) == (2, 0)
