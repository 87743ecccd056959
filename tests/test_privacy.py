"""A person's data: exported whole, and erased so that nothing personal is left in any table."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import func, select, text
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from newsletter import erasure, optin
from subscribers.consent import Proof
from subscribers.db import Base
from subscribers.models import Booking, Contact, Lead, LeadStageChange
from subscribers.privacy import erasure_count, export_personal_data
from subscribers.suppression import is_suppressed

runner = CliRunner()
EMAIL, NAME, PHONE, CLINIC, EXTERNAL = "Pat.Jones@Example.org", "Pat Jones", "+1 555 0100", "Westside-Clinic-7", "cal-ABC-991"


def populate(db: Database, settings: Settings) -> None:
    with db.session() as s:
        optin.sign_up(s, settings, EMAIL, name=NAME, tags=["walks"],
                      proof=Proof("form", form_id="f", text="I agree", ip_address="203.0.113.9", user_agent="Browser/1"))
        contact = s.scalar(select(Contact))
        contact.custom_fields = {"clinic": CLINIC}
        lead = Lead(contact_id=contact.id, phone=PHONE, source="web_form", utm_campaign="spring", stage="booked")
        s.add(lead)
        s.flush()
        s.add(LeadStageChange(lead_id=lead.id, from_stage="new", to_stage="booked", by="booking"))
        s.add(Booking(lead_id=lead.id, origin="api", external_id=EXTERNAL, source="web_form",
                      booked_for=datetime(2026, 12, 1, 17, tzinfo=timezone.utc)))


def every_text_value(db: Database) -> str:
    """Every value of every column of every table, as one string to search."""
    values = []
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                values.extend(str(v) for v in row if v is not None)
        values.extend(str(r[0]) for r in conn.execute(text("SELECT version_num FROM alembic_version")))
    return "\n".join(values).lower()


def test_export_one_gives_everything_we_hold(db: Database, settings: Settings) -> None:
    populate(db, settings)
    with db.session() as s:
        data = export_personal_data(s, EMAIL.lower())
    assert data["contact"]["name"] == NAME and data["contact"]["custom_fields"] == {"clinic": CLINIC}
    assert data["subscriptions"][0]["status"] == "pending"
    assert data["consent_history"][0]["consent_text"] == "I agree"
    assert data["consent_history"][0]["ip_address"] == "203.0.113.9"
    assert data["lead"]["phone"] == PHONE and data["lead"]["bookings"][0]["external_id"] == EXTERNAL
    assert data["lead"]["stage_history"][0]["to"] == "booked"
    assert data["suppression"] is None


def test_erasure_leaves_no_personal_data_in_any_table(db: Database, settings: Settings) -> None:
    populate(db, settings)
    before = every_text_value(db)
    for secret in (EMAIL.lower(), NAME.lower(), PHONE, CLINIC.lower(), EXTERNAL.lower(), "203.0.113.9", "browser/1"):
        assert secret in before  # the search can see them while they are stored
    with db.session() as s:
        assert erasure.erase(s, settings, EMAIL).erased
    after = every_text_value(db)
    for secret in (EMAIL.lower(), "pat.jones", NAME.lower(), "pat", PHONE, CLINIC.lower(), EXTERNAL.lower(),
                   "203.0.113.9", "browser/1", "walks"):
        assert secret not in after, secret
    with db.session() as s:
        assert is_suppressed(s, EMAIL) and is_suppressed(s, "pat.jones@example.org")
        assert erasure_count(s) == 1
        booking = s.scalar(select(Booking))
        assert booking.lead_id is None and booking.source == "web_form"  # an anonymous count remains
        # A later sign-up or re-import of the address is refused, and stores nothing.
        result = optin.sign_up(s, settings, EMAIL, name=NAME, proof=Proof("form"))
        assert result.state == "suppressed"
        assert s.scalar(select(func.count()).select_from(Contact)) == 0


def test_cli_add_show_export_erase(settings: Settings, tmp_path) -> None:
    added = runner.invoke(app, ["contacts", "add", "kim@example.org", "--name", "Kim", "--tag", "Blog"])
    assert added.exit_code == 0 and "confirmation email was sent" in added.output
    assert len(list((tmp_path / "var" / "outbox").glob("*.eml"))) == 1  # the default outbox transport
    confirmed = runner.invoke(app, ["contacts", "add", "lee@example.org", "--confirmed", "--consent-note", "paper form 2026-10"])
    assert confirmed.exit_code == 0 and "added and subscribed" in confirmed.output
    refused = runner.invoke(app, ["contacts", "add", "x@example.org", "--confirmed"])
    assert refused.exit_code == 2 and "--consent-note" in refused.stderr

    shown = json.loads(runner.invoke(app, ["contacts", "show", "LEE@example.org", "--json"]).stdout)
    assert shown["subscriptions"][0]["status"] == "confirmed"
    assert [e["note"] for e in shown["consent_history"]] == ["paper form 2026-10", "paper form 2026-10"]
    listed = json.loads(runner.invoke(app, ["contacts", "list", "--list", "newsletter", "--status", "pending", "--json"]).stdout)
    assert [c["email"] for c in listed] == ["kim@example.org"] and listed[0]["tags"] == ["blog"]

    out_file = tmp_path / "kim.json"
    exported = runner.invoke(app, ["contacts", "export-one", "kim@example.org", "--out", str(out_file)])
    assert exported.exit_code == 0 and json.loads(out_file.read_text())["contact"]["name"] == "Kim"

    assert runner.invoke(app, ["contacts", "erase", "kim@example.org", "--yes"]).output.strip() == "erased"
    gone = runner.invoke(app, ["contacts", "show", "kim@example.org"])
    assert gone.exit_code == 1 and "kim@example.org" not in gone.stderr  # no address echoed into logs
    again = runner.invoke(app, ["contacts", "add", "kim@example.org"])
    assert again.exit_code == 1 and "suppression list" in again.output
    assert runner.invoke(app, ["contacts", "unsuppress", "kim@example.org"]).exit_code == 2  # erasure stands


def test_cli_suppress_and_unsuppress(settings: Settings) -> None:
    assert runner.invoke(app, ["contacts", "suppress", "noisy@example.org"]).exit_code == 0
    assert runner.invoke(app, ["contacts", "add", "noisy@example.org"]).exit_code == 1
    assert runner.invoke(app, ["contacts", "unsuppress", "noisy@example.org"]).exit_code == 0
    assert "confirmation email was sent" in runner.invoke(app, ["contacts", "add", "noisy@example.org"]).output
