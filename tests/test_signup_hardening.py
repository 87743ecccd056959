"""What an outside attack on the sign-up found, each over its real way in: the public form (the real
app over HTTP), the CLI, CSV import, leads and the bookings webhook.

- The public form must never change a contact that exists already (anyone can type any address).
- A name is plain text on one line wherever it comes from: a CR LF or an RFC 2047 encoded CR LF can
  never become a header of the confirmation email, and never gives a 500 or a half-made contact.
- An internationalised local part (``josé@…``) is refused where it comes in, with a clear message
  (neither SendGrid nor the outbox's SMTP messages can carry it); an internationalised domain works.
"""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from email.parser import BytesHeaderParser
from pathlib import Path

import httpx
import pytest
from lxml import html as lxml_html
from pydantic import SecretStr
from sqlalchemy import func, select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.web.bookings_webhook import signature_for
from subscribers.contacts import find_contact
from subscribers.csv_import import import_csv
from subscribers.models import ConsentEvent, Contact, Subscription
from tests.audience import subscriber
from tests.liveserver import LiveServer

runner = CliRunner()
ENCODED_CRLF = "=?utf-8?q?x=0D=0ABcc:_evil@example.com?="


def sign_up(client: httpx.Client, email: str, name: str = "") -> httpx.Response:
    return client.post("/subscribe", data={"email": email, "name": name, "consent": "yes"})


def contacts(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Contact)) or 0


def stored_name(db: Database, email: str) -> str | None:
    with db.session() as s:
        contact = find_contact(s, email)
        assert contact is not None
        return contact.name


def header_names(path: Path) -> list[str]:
    """The headers of an .eml file as any mail program reads its header block."""
    return [name.lower() for name in BytesHeaderParser().parsebytes(path.read_bytes()).keys()]


def field_error(response: httpx.Response, field: str) -> str:
    page = lxml_html.document_fromstring(response.text)
    assert page.get_element_by_id(field).get("aria-describedby") == f"{field}-error"  # beside its field
    return page.get_element_by_id(f"{field}-error").text_content()


# The public form never rewrites a known contact ---------------------------------------------------


def test_the_form_never_changes_what_is_stored_about_a_known_contact(live_server: LiveServer, db: Database,
                                                                      settings: Settings) -> None:
    with db.session() as s:
        subscriber(s, settings, "robin@example.org", name="Robin")
    with httpx.Client(base_url=live_server.url) as client:
        known = sign_up(client, "ROBIN@example.org", "Mallory")
        unknown = sign_up(client, "new@example.org", "Nia")
        pending_again = sign_up(client, "new@example.org", "Eve")
    assert known.status_code == unknown.status_code == pending_again.status_code == 200
    assert known.text == unknown.text == pending_again.text
    assert stored_name(db, "robin@example.org") == "Robin"  # confirmed: untouched
    assert stored_name(db, "new@example.org") == "Nia"  # pending: the first sign-up's name stays
    with db.session() as s:
        robin = find_contact(s, "robin@example.org")
        assert [sub.status for sub in robin.subscriptions] == ["confirmed"]


# Names: one line of plain text, whatever comes in -------------------------------------------------


def test_an_encoded_line_break_in_a_name_never_becomes_a_header(live_server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        answer = sign_up(client, "target@example.org", ENCODED_CRLF)
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    live_server.send_queued()
    (eml,) = live_server.outbox.glob("*.eml")
    assert "bcc" not in header_names(eml)
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert [a.addr_spec for a in message["To"].addresses] == ["target@example.org"]
    assert message["To"].addresses[0].display_name == "x Bcc: evil@example.com"  # flattened, harmless text
    assert stored_name(db, "target@example.org") == "x Bcc: evil@example.com"


@pytest.mark.parametrize("name", ["Eve\r\nBcc: evil@example.com", "Eve\nBcc: evil@example.com", "Eve\x00\x07\u2028Bcc"])
def test_control_characters_in_a_name_give_no_500_and_no_header(live_server: LiveServer, db: Database,
                                                                  name: str) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        answer = sign_up(client, "eve@example.org", name)
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    stored = stored_name(db, "eve@example.org")
    assert stored is not None and stored.startswith("Eve Bcc") and stored.isprintable()
    live_server.send_queued()
    (eml,) = live_server.outbox.glob("*.eml")
    assert "bcc" not in header_names(eml)


def test_an_overlong_name_is_refused_beside_its_field_and_nothing_is_stored(live_server: LiveServer,
                                                                             db: Database) -> None:
    typed = "N" * 201
    with httpx.Client(base_url=live_server.url) as client:
        answer = sign_up(client, "long@example.org", typed)
    assert answer.status_code == 400
    assert "200 characters" in field_error(answer, "name")
    assert f'value="{typed}"' in answer.text and 'value="long@example.org"' in answer.text  # what was typed is kept
    assert contacts(db) == 0


def test_every_way_in_stores_names_by_the_same_rule(settings: Settings, db: Database, tmp_path: Path) -> None:
    added = runner.invoke(app, ["contacts", "add", "cli@example.org", "--name", "Cli\r\nBcc: evil@example.com"])
    assert added.exit_code == 0, added.output
    lead = runner.invoke(app, ["leads", "add", "lead@example.org", "--name", ENCODED_CRLF])
    assert lead.exit_code == 0, lead.output
    path = tmp_path / "people.csv"
    # A line break inside a quoted name is refused as a stray quote (tests/test_contacts_import.py);
    # other control characters and encoded words are flattened by the same rule as everywhere.
    path.write_text(f'email,name\ncsv@example.org,"Csv\x0bBcc: evil@example.com"\nenc@example.org,{ENCODED_CRLF}\n',
                    encoding="utf-8")
    summary = import_csv(db.engine, path, list_slug="newsletter", default_timezone="UTC")
    assert summary.added == 2 and summary.rejected == 0
    assert stored_name(db, "cli@example.org") == "Cli Bcc: evil@example.com"
    assert stored_name(db, "lead@example.org") == "x Bcc: evil@example.com"
    assert stored_name(db, "csv@example.org") == "Csv Bcc: evil@example.com"
    assert stored_name(db, "enc@example.org") == "x Bcc: evil@example.com"
    too_long = runner.invoke(app, ["leads", "add", "long@example.org", "--name", "x" * 201])
    assert too_long.exit_code == 2 and "name is longer than 200 characters" in too_long.stderr
    assert "Traceback" not in too_long.output


# Internationalised addresses ----------------------------------------------------------------------


def test_an_internationalised_local_part_is_refused_beside_the_field(live_server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        answer = sign_up(client, "josé@example.com", "José")
    assert answer.status_code == 400
    assert "accented or non-Latin letters before the @" in field_error(answer, "email")
    assert 'value="josé@example.com"' in answer.text and 'value="José"' in answer.text
    assert contacts(db) == 0
    live_server.send_queued()
    assert live_server.emails() == []


def test_an_internationalised_local_part_is_refused_by_the_cli_the_import_and_the_webhook(
        live_server: LiveServer, settings: Settings, db: Database, tmp_path: Path) -> None:
    added = runner.invoke(app, ["contacts", "add", "josé@example.com", "--name", "José"])
    assert added.exit_code == 2 and "before the @" in added.stderr and "Traceback" not in added.output
    lead = runner.invoke(app, ["leads", "add", "zoë@example.com"])
    assert lead.exit_code == 2 and "before the @" in lead.stderr
    path = tmp_path / "people.csv"
    path.write_text("email,name\nok@example.org,Ok\njosé@example.com,José\n", encoding="utf-8")
    summary = import_csv(db.engine, path, list_slug="newsletter", default_timezone="UTC")
    assert (summary.added, summary.rejected) == (1, 1)
    with summary.report_path.open(encoding="utf-8-sig") as report:
        rejected = report.read().splitlines()[1]
    assert rejected.startswith("3,email,josé@example.com,") and "before the @" in rejected  # the line number
    secret = "s3cret-for-tests"
    live_server.app.state.settings = live_server.settings.model_copy(  # type: ignore[attr-defined]
        update={"bookings_webhook_secret": SecretStr(secret)})
    body = json.dumps({"email": "josé@example.com", "external_id": "cal-1"}).encode()
    booked = httpx.post(f"{live_server.url}/webhooks/bookings", content=body,
                        headers={"X-Signature": signature_for(secret, body), "Content-Type": "application/json"})
    assert booked.status_code == 400 and "before the @" in booked.json()["error"]
    with db.session() as s:
        assert list(s.scalars(select(Contact.email))) == ["ok@example.org"]  # nothing half made
        assert s.scalar(select(func.count()).select_from(ConsentEvent)) == 1


def test_an_internationalised_domain_keeps_working(live_server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        answer = sign_up(client, "ana@BÜCHER.example", "Ana")
    assert answer.status_code == 200
    live_server.send_queued()
    (message,) = live_server.emails()
    assert [a.addr_spec for a in message["To"].addresses] == ["ana@xn--bcher-kva.example"]  # its ASCII form
    with db.session() as s:
        assert s.scalar(select(Contact.email)) == "ana@bücher.example"
        assert s.scalar(select(Subscription.status)) == "pending"
