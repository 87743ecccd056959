"""CSV export of contacts: columns, list membership, filters (a segment), suppressed contacts,
spreadsheet-safe cells, a private file written whole or not at all, and the CLI."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from subscribers import csv_export, segments
from subscribers.consent import Proof, unsubscribe
from subscribers.contacts import upsert_contact
from subscribers.csv_export import export_csv
from subscribers.errors import NotFound
from subscribers.lists import ensure_list
from subscribers.models import Contact
from subscribers.suppression import suppress
from tests.audience import subscriber


def read(path: Path) -> list[dict[str, str]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM: spreadsheets then read UTF-8
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture
def people(db: Database, settings: Settings) -> Database:
    with db.session() as s:
        ann = subscriber(s, settings, "ann@example.com", name="Ann Zoë", tags=["vip", "blog"])
        ann.custom_fields = {"clinic": "LA", "age": 41}
        ann.timezone = "Europe/Paris"
        subscriber(s, settings, "bob@example.com", confirmed=False)
        left = subscriber(s, settings, "left@example.com")
        unsubscribe(s, left, ensure_list(s, "newsletter"), Proof("email_link"))
        upsert_contact(s, "cy@example.com", default_timezone="UTC", source="form",
                       custom_fields={"Phone": "+1 555 0100"})
        gone = subscriber(s, settings, "gone@example.com")
        suppress(s, gone.email, "hard_bounce")
    return db


def test_every_contact_with_tags_and_custom_fields_as_columns(people: Database, tmp_path: Path) -> None:
    with people.session() as s:
        summary = export_csv(s, tmp_path / "all.csv")
    assert summary.columns == ["email", "name", "timezone", "language", "status", "tags", "created_at", "age", "clinic",
                               "Phone"]
    rows = read(tmp_path / "all.csv")
    assert summary.rows == len(rows) == 4  # the suppressed contact is left out
    assert [r["email"] for r in rows] == ["ann@example.com", "bob@example.com", "left@example.com", "cy@example.com"]
    ann = rows[0]
    assert (ann["name"], ann["timezone"], ann["status"]) == ("Ann Zoë", "Europe/Paris", "active")
    assert ann["tags"] == "blog, vip"
    assert (ann["clinic"], ann["age"], ann["Phone"]) == ("LA", "41", "")
    assert ann["created_at"].endswith("+00:00")
    assert rows[3]["Phone"] == "+1 555 0100"  # a phone number is no formula: left as it is


def test_a_list_export_holds_its_members_and_their_subscription(people: Database, tmp_path: Path) -> None:
    with people.session() as s:
        summary = export_csv(s, tmp_path / "news.csv", list_slug="newsletter")
    rows = {r["email"]: r for r in read(tmp_path / "news.csv")}
    assert summary.columns[7:9] == ["subscription_status", "confirmed_at"]
    assert sorted(rows) == ["ann@example.com", "bob@example.com", "left@example.com"]  # cy is on no list
    assert rows["ann@example.com"]["subscription_status"] == "confirmed" and rows["ann@example.com"]["confirmed_at"]
    assert (rows["bob@example.com"]["subscription_status"], rows["bob@example.com"]["confirmed_at"]) == ("pending", "")
    assert rows["left@example.com"]["subscription_status"] == "unsubscribed"
    with people.session() as s, pytest.raises(NotFound):
        export_csv(s, tmp_path / "none.csv", list_slug="no-such-list")
    assert not (tmp_path / "none.csv").exists()


def test_suppressed_contacts_only_when_asked_and_then_marked(people: Database, tmp_path: Path) -> None:
    with people.session() as s:
        export_csv(s, tmp_path / "all.csv", include_suppressed=True)
    rows = {r["email"]: r["suppressed"] for r in read(tmp_path / "all.csv")}
    assert rows == {"ann@example.com": "", "bob@example.com": "", "left@example.com": "", "cy@example.com": "",
                    "gone@example.com": "yes"}


def test_a_where_clause_filters_the_export(people: Database, tmp_path: Path) -> None:
    with people.session() as s:
        export_csv(s, tmp_path / "vip.csv", where=segments.compile_filter({"tag": "vip"}))
        export_csv(s, tmp_path / "paris.csv", where=Contact.timezone == "Europe/Paris", list_slug="newsletter")
        summary = export_csv(s, tmp_path / "nobody.csv", where=Contact.email == "nobody@example.com")
    assert [r["email"] for r in read(tmp_path / "vip.csv")] == ["ann@example.com"]
    assert [r["email"] for r in read(tmp_path / "paris.csv")] == ["ann@example.com"]
    assert summary.rows == 0 and summary.columns[-1] == "created_at"  # no custom fields among nobody's


def test_cells_a_spreadsheet_would_run_are_neutralised(db: Database, tmp_path: Path) -> None:
    with db.session() as s:
        upsert_contact(s, "eve@example.com", default_timezone="UTC", source="form", name='=HYPERLINK("http://x.example")',
                       custom_fields={"note": "@SUM(1+1)", "Email": "-2+3+cmd|' /C calc'!A0", "balance": "-12.50"},
                       tags=["+vip"])
        summary = export_csv(s, tmp_path / "eve.csv")
    row = read(tmp_path / "eve.csv")[0]
    assert row["name"] == """'=HYPERLINK("http://x.example")""" and row["tags"] == "'+vip"
    assert row["note"] == "'@SUM(1+1)" and row["balance"] == "-12.50"
    # A custom key that reads as one of our columns gets a prefix, so an import does not take it for the address.
    assert "custom Email" in summary.columns and row["custom Email"].startswith("'-2+3")


def test_every_cell_is_neutralised_the_address_and_the_header_too(db: Database, tmp_path: Path) -> None:
    """The public form accepts =1+2@example.com (valid syntax): the address column and a custom-field
    key become cells too, and a tab or carriage return first is a formula start as well."""
    with db.session() as s:
        upsert_contact(s, "=1+2@example.com", default_timezone="UTC", source="form", name="Eve",
                       custom_fields={"=cmd|' /C calc'!A0": "x", "note": "\t=1+2", "cr": "\r@SUM(1)"})
        upsert_contact(s, "+vip@example.com", default_timezone="UTC", source="form")
        upsert_contact(s, "-minus@example.com", default_timezone="UTC", source="form")
        summary = export_csv(s, tmp_path / "eve.csv")
    rows = read(tmp_path / "eve.csv")
    assert [r["email"] for r in rows] == ["'=1+2@example.com", "'+vip@example.com", "'-minus@example.com"]
    assert "=cmd|' /C calc'!A0" in summary.columns and rows[0]["'=cmd|' /C calc'!A0"] == "x"
    assert (rows[0]["note"], rows[0]["cr"]) == ("'\t=1+2", "'\r@SUM(1)")


def test_the_file_is_private_and_written_whole_or_not_at_all(people: Database, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "export.csv"
    with people.session() as s:
        export_csv(s, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    before = out.read_bytes()

    def fail_on_second_row(record, keys, **flags):
        if record[0] == "bob@example.com":
            raise RuntimeError("connection lost")
        return real_cells(record, keys, **flags)

    real_cells = csv_export._cells
    monkeypatch.setattr(csv_export, "_cells", fail_on_second_row)
    with people.session() as s, pytest.raises(RuntimeError):
        export_csv(s, out)
    assert out.read_bytes() == before  # the earlier export is intact
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_an_unwritable_path_is_a_clear_error(db: Database, tmp_path: Path) -> None:
    with db.session() as s, pytest.raises(ValueError, match="cannot write the export"):
        export_csv(s, tmp_path / "no-such-folder" / "out.csv")


def test_a_large_export_streams_every_row(db: Database, tmp_path: Path) -> None:
    with db.session() as s:
        s.execute(Contact.__table__.insert(), [
            {"email": f"p{i}@example.com", "email_hash": f"{i:064x}", "timezone": "UTC", "source": "import",
             "custom_fields": {f"k{i % 3}": str(i)}} for i in range(5000)])
        summary = export_csv(s, tmp_path / "big.csv")
        assert summary.rows == s.scalar(select(func.count()).select_from(Contact)) == 5000
    rows = read(tmp_path / "big.csv")
    assert summary.columns[-3:] == ["k0", "k1", "k2"] and rows[4999]["k1"] == "4999" and rows[4999]["k0"] == ""


def test_cli_export(people: Database, settings: Settings, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["contacts", "export", str(tmp_path / "news.csv"), "--list", "newsletter"])
    assert result.exit_code == 0, result.output
    assert f"Exported 3 contacts to {tmp_path / 'news.csv'}." in result.output
    result = CliRunner().invoke(app, ["contacts", "export", str(tmp_path / "all.csv"), "--include-suppressed"])
    assert result.exit_code == 0 and "Exported 5 contacts" in result.output
    result = CliRunner().invoke(app, ["contacts", "export", str(tmp_path / "x.csv"), "--list", "nope"])
    assert result.exit_code == 1 and "there is no list 'nope'" in result.output


def test_cli_export_of_a_segment(settings, tmp_path) -> None:
    """`newsletter contacts export FILE --segment NAME` writes exactly the segment's contacts."""
    import csv as csv_module
    import json

    from typer.testing import CliRunner

    from newsletter.cli import app

    runner = CliRunner()
    for email, tag in (("vip@example.org", "vip"), ("plain@example.org", "blog")):
        assert runner.invoke(app, ["contacts", "add", email, "--tag", tag, "--confirmed", "--consent-note", "form"]).exit_code == 0
    assert runner.invoke(app, ["segments", "save", "vips", "--json", json.dumps({"tag": "vip"})]).exit_code == 0
    out = tmp_path / "vips.csv"
    result = runner.invoke(app, ["contacts", "export", str(out), "--segment", "vips"])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        assert [row["email"] for row in csv_module.DictReader(handle)] == ["vip@example.org"]
    missing = runner.invoke(app, ["contacts", "export", str(out), "--segment", "nope"])
    assert missing.exit_code == 1 and "nope" in missing.stderr
