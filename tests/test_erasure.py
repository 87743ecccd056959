"""Erasure leaves no trace: after a person's whole journey (sign-up, an issue through the outbox, an
open, a click, a bounce whose reason names them, a lead with a phone and a booking) and
``newsletter contacts erase``, no byte of the database files or of anything under ./var holds any of
their values (SQLite), and no text column of any table does (PostgreSQL). Another person's data stays."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event, func, select, text, update
from typer.testing import CliRunner

from newsletter import erasure, optin
from newsletter.cli import app
from newsletter.config import Settings, get_settings
from newsletter.database import Database, make_engine, truncate_wal, upgrade
from newsletter.models import Delivery, Event, Issue
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.transports import OutboxTransport
from subscribers.db import utcnow
from subscribers.leads import add_lead, record_booking
from subscribers.models import Booking, Contact, Lead, Suppression
from subscribers.traces import ErasedPerson
from tests.audience import subscriber
from tests.conftest import postgres_schema
from tests.liveserver import LiveServer
from tests.webhook_kit import post_sendgrid, webhook_server
from tests.sendkit import make_issue

runner = CliRunner()
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"


class Person:
    def __init__(self, email: str, name: str, phone: str, clinic: str, booking: str) -> None:
        self.email, self.name, self.phone, self.clinic, self.booking = email, name, phone, clinic, booking
        self.local = email.split("@")[0]

    def needles(self) -> list[str]:
        """Every value of theirs, as it could be written anywhere (searched case-insensitively)."""
        digits = re.sub(r"\D", "", self.phone)
        return [self.email, self.email.replace("@", "%40"), self.local, self.name, *self.name.split(),
                self.name.replace(" ", "+"), self.phone, digits, digits[1:], self.clinic, self.booking]


QUINTA = Person("Quinta.Marlowe@example.com", "Quinta Marlowe", "+1 415 555 0199", "Northgate-Clinic-42", "cal-QM-7781")
OTHER = Person("Ottilie.Brandvold@example.net", "Ottilie Brandvold", "+1 503 555 0142", "Riverbend-Clinic-9", "cal-OB-3310")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """This module runs on both backends; the live server and the CLI use the same database."""
    if request.param == "sqlite":
        database = Database.from_settings(settings)
        upgrade(database.engine)
        yield database
        return
    with postgres_schema() as url:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
        get_settings.cache_clear()  # the CLI reads the environment afresh
        database = Database(url)
        upgrade(database.engine)
        yield database
        database.engine.dispose()


def sign_up(server: LiveServer, db: Database, person: Person) -> None:
    """Sign up on the form, confirm from the outbox, then ask for a consultation and book it."""
    with httpx.Client(base_url=server.url, headers={"User-Agent": BROWSER}) as client:
        assert client.post("/subscribe", data={"email": person.email, "name": person.name, "consent": "yes"}).status_code == 200
        server.send_queued()  # the serve process's dispatchers send the queued confirmation
        (confirmation,) = [m for m in server.emails() if person.email in m["To"] and "/confirm/" in m.as_string()]
        confirm = re.search(r'href="http[^"]+(/confirm/[^"]+)"', confirmation.get_body(("html",)).get_content()).group(1)
        assert client.post(confirm).status_code == 200
    with db.session() as s:
        s.execute(update(Contact).where(Contact.email == person.email).values(custom_fields={"clinic": person.clinic}))
        add_lead(s, person.email, default_timezone="UTC", source="web_form", consent_method="form",
                 name=person.name, phone=person.phone, utm={"source": "newsletter"})
        record_booking(s, person.email, booked_for=datetime(2026, 12, 9, 17, tzinfo=timezone.utc), origin="api",
                       external_id=person.booking)


def send_and_engage(server: LiveServer, db: Database, people: list[Person]) -> dict[str, int]:
    """Send an issue to everyone through the outbox; each person opens it and clicks. Returns each
    person's delivery id."""
    issue_id = make_issue(db, server.settings)
    with db.session() as s:
        schedule.start_now(s, server.settings, s.get(Issue, issue_id), utcnow())
    Dispatcher(server.settings, db, OutboxTransport(server.outbox, server.settings)).run_until_idle()
    deliveries = {}
    with db.session() as s:
        s.execute(update(Delivery).values(submitted_at=utcnow() - timedelta(hours=1)))  # read later, as people do
        for person in people:
            contact_id = s.scalar(select(Contact.id).where(Contact.email == person.email))
            deliveries[person.email] = s.scalar(select(Delivery.id).where(Delivery.contact_id == contact_id))
    for person in people:
        (email,) = [m for m in server.emails() if person.email in m["To"] and "/confirm/" not in m.as_string()]
        html = email.get_body(("html",)).get_content()
        assert person.name.split()[0] in html  # "Hi Quinta,": the outbox file holds their name
        pixel = re.search(r'<img src="(http[^"]+/o/[^"]+\.gif)"', html).group(1)
        click = re.search(r'href="(http[^"]+/c/[^"]+)"', html).group(1)
        with httpx.Client(headers={"User-Agent": BROWSER}) as client:
            assert client.get(pixel).status_code == 200
            assert client.get(click, follow_redirects=False).status_code == 302
    server.drained()
    return deliveries


def provider_events(server: LiveServer, person: Person, delivery_id: int) -> None:
    """SendGrid reports a click with the person's first name in the URL, a hard bounce whose reason
    names them, and a deferral it could not tie to any email of ours that names them too."""
    def event(kind: str, **extra: object) -> dict[str, object]:
        return {"event": kind, "sg_event_id": secrets.token_urlsafe(16), "timestamp": int(utcnow().timestamp()),
                "email": person.email, "sg_message_id": "nomatch.filterdrecv-1", **extra}

    first = person.name.split()[0]
    body = [
        event("click", delivery_id=str(delivery_id), url=f"https://clinic.example/welcome?n={first}&utm_source=email"),
        event("bounce", delivery_id=str(delivery_id), type="bounce", status="5.1.1",
              reason=f"550 5.1.1 <{person.email.lower()}>: Recipient address rejected; user {person.name} unknown"),
        event("deferred", response=f"452 4.2.2 mailbox of {person.name} ({person.local}) is full"),
    ]
    answer = post_sendgrid(server, json.dumps(body).encode())  # signed, as SendGrid posts
    assert answer.status_code in (200, 202), answer.text


def var_bytes(settings: Settings) -> bytes:
    """Every byte under ./var (the SQLite database, its -wal and -shm files, the outbox, previews)."""
    return b"\n".join(p.read_bytes() for p in sorted(settings.var_dir.rglob("*")) if p.is_file()).lower()


def database_text(db: Database) -> str:
    """PostgreSQL: every text, varchar and JSON value of every table in the schema, found by SQL."""
    values = []
    with db.engine.connect() as conn:
        columns = conn.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')")).all()
        for table, column in columns:
            values += [str(v) for (v,) in conn.execute(text(
                f'SELECT "{column}"::text FROM "{table}" WHERE "{column}" IS NOT NULL'))]
    return "\n".join(values).lower()


def traces(person: Person, settings: Settings, db: Database) -> list[str]:
    """The person's values found anywhere: in files under ./var (UTF-8 and UTF-16) and, on
    PostgreSQL, in any text column."""
    found = []
    dump = var_bytes(settings)
    stored = database_text(db) if db.engine.dialect.name == "postgresql" else ""
    for needle in person.needles():
        lowered = needle.lower()
        encodings = {"utf-8": lowered.encode(), "utf-16-le": lowered.encode("utf-16-le"),
                     "utf-16-be": lowered.encode("utf-16-be")}
        found += [f"{needle!r} in ./var ({name})" for name, raw in encodings.items() if raw in dump]
        if lowered in stored:
            found.append(f"{needle!r} in the database")
    return found


@pytest.fixture
def live_server(settings: Settings, db: Database) -> Iterator[LiveServer]:
    """The app with SendGrid's Event Webhook verified, as production runs it."""
    with webhook_server(settings, db) as server:
        yield server


def test_erasure_leaves_no_trace_in_any_file_or_column(live_server: LiveServer, db: Database) -> None:
    settings = live_server.settings
    for person in (QUINTA, OTHER):
        sign_up(live_server, db, person)
    deliveries = send_and_engage(live_server, db, [QUINTA, OTHER])
    for person in (QUINTA, OTHER):
        provider_events(live_server, person, deliveries[person.email])
    with db.session() as s:
        events_before = s.scalar(select(func.count()).select_from(Event))
    # The searches see every value while it is stored (in the database or its files, and the outbox).
    seen = " ".join(traces(QUINTA, settings, db))
    for needle in (QUINTA.email, QUINTA.local, QUINTA.name, "Quinta", "Marlowe", "14155550199", QUINTA.clinic, QUINTA.booking):
        assert repr(needle) in seen, needle
    other_outbox = [p.name for p in settings.outbox_dir.glob("*.eml") if OTHER.email.encode() in p.read_bytes()]
    assert len(other_outbox) == 2  # confirmation and issue

    erased = runner.invoke(app, ["contacts", "erase", QUINTA.email.upper(), "--yes"])
    assert erased.exit_code == 0 and erased.output.strip() == "erased", erased.output

    assert traces(QUINTA, settings, db) == []
    if db.engine.dialect.name == "sqlite":
        wal = Path(str(settings.database_url).removeprefix("sqlite:///") + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated
    with db.session() as s:
        # What stays is anonymous: counts, and the provider's words without the person in them.
        assert s.scalar(select(func.count()).select_from(Event)) == events_before
        reasons = set(s.scalars(select(Event.reason).where(Event.delivery_id == deliveries[QUINTA.email])))
        assert "5.1.1 550 5.1.1 <<address>>: Recipient address rejected; user <erased> unknown" in reasons
        urls = set(s.scalars(select(Event.url).where(Event.delivery_id == deliveries[QUINTA.email], Event.url.is_not(None))))
        assert "https://clinic.example/welcome" in urls and not any("?" in u for u in urls)
        assert s.scalar(select(Delivery.contact_id).where(Delivery.id == deliveries[QUINTA.email])) is None
        assert s.scalar(select(Suppression.reason).where(Suppression.email.is_(None))) == "erased"
        assert s.scalar(select(func.count()).select_from(Booking).where(Booking.lead_id.is_(None))) == 1
        # The other person is untouched: contact, lead, booking, events with their own words.
        other = s.scalar(select(Contact).where(Contact.email == OTHER.email))
        assert other.name == OTHER.name and other.custom_fields == {"clinic": OTHER.clinic}
        lead = s.scalar(select(Lead).where(Lead.contact_id == other.id))
        assert lead.phone == "+15035550142"
        assert s.scalar(select(Booking.external_id).where(Booking.lead_id == lead.id)) == OTHER.booking
        other_reasons = set(s.scalars(select(Event.reason).where(Event.reason.is_not(None))))
        assert f"5.1.1 550 5.1.1 <<address>>: Recipient address rejected; user {OTHER.name} unknown" in other_reasons
        assert f"452 4.2.2 mailbox of {OTHER.name} ({OTHER.local}) is full" in other_reasons
        assert "https://clinic.example/welcome?n=Ottilie&utm_source=email" in set(s.scalars(select(Event.url)))
    assert sorted(p.name for p in settings.outbox_dir.glob("*.eml")) == sorted(other_outbox)


def test_sqlite_zeroes_what_is_deleted_even_where_its_build_does_not(tmp_path: Path) -> None:
    """Debian's SQLite zeroes deleted content by default; other builds (python.org's, macOS's) do
    not. The engine turns it on for every connection, so a build that starts with it off is covered."""
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    # Runs before the engine's own listener: a connection as such a build opens it.
    event.listen(engine, "connect", lambda conn, _record: conn.execute("PRAGMA secure_delete=OFF"), insert=True)
    marker = "Zephyrine Quillfeather +1 206 555 0123"
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.exec_driver_sql("INSERT INTO notes (body) VALUES (?), (?)", (marker, "kept"))
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM notes WHERE body = ?", (marker,))
    assert truncate_wal(engine)
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"kept" in files and marker.encode() not in files
    engine.dispose()


def test_outbox_files_of_the_person_go_whatever_their_name(db: Database, settings: Settings) -> None:
    """Files are found by the recipient tag in their names; files named before tags existed, by
    their headers. Other people's files stay."""
    def legacy(name: str, to: str) -> Path:
        message = EmailMessage()
        message["To"], message["Subject"] = to, "Small steps"
        message.set_content("Hi there")
        path = settings.outbox_dir / name
        path.write_bytes(bytes(message))
        return path

    settings.outbox_dir.mkdir(parents=True)
    theirs = legacy("20261101T090000-0123456789abcdef.eml", f'"{QUINTA.name}" <{QUINTA.email.lower()}>')
    other = legacy("20261101T090001-fedcba9876543210.eml", f"{OTHER.name} <{OTHER.email}>")
    with db.session() as s:
        subscriber(s, settings, QUINTA.email, name=QUINTA.name, confirmed=False)
        subscriber(s, settings, OTHER.email, name=OTHER.name, confirmed=False)
    transport = OutboxTransport(settings.outbox_dir, settings)
    with db.session() as s:  # a confirmation email each, through the outbox
        for person in (QUINTA, OTHER):
            contact = s.scalar(select(Contact).where(Contact.email == person.email))
            optin.queue_confirmation(s, contact.subscriptions[0])
    Dispatcher(settings, db, transport).run_until_idle()
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 4
    with db.session() as s:
        result = erasure.erase(s, settings, QUINTA.email)
    assert result.erased and result.outbox_files == 2 and result.wal_truncated
    left = sorted(settings.outbox_dir.glob("*.eml"))
    assert other in left and theirs not in left and len(left) == 2
    assert all(OTHER.email.encode() in p.read_bytes() for p in left)


def test_scrubbing_finds_a_person_however_written_and_spares_others() -> None:
    person = ErasedPerson(7, ("Quinta.Marlowe@example.com",), names=("Quinta Marlowe",), phones=("+14155550199",),
                          others=("Northgate-Clinic-42",))
    theirs = person.scrub("user QUINTA MARLOWE (quinta.marlowe%40example.com) at +1 415-555-0199, "
                          "Northgate-Clinic-42, Quinta", theirs=True)
    assert theirs == "user <erased> (<erased>) at <erased>, <erased>, <erased>"
    assert person.scrub_url("https://clinic.example/welcome/quinta-marlowe?n=Quinta#top", theirs=True) == "https://clinic.example/"
    assert person.scrub_url("https://u:p@clinic.example:8443/book?ref=x", theirs=True) == "https://clinic.example:8443/book"
    # Another row loses only what names them unmistakably, never a shared word.
    assert person.scrub("mailbox of Quinta+Marlowe full; Quinta from Northgate-Clinic-42", theirs=False) \
        == "mailbox of <erased> full; Quinta from Northgate-Clinic-42"
    assert person.scrub("550 unknown user quinta.marlowe", theirs=False) == "550 unknown user <erased>"
    assert person.scrub("user Quintana Marlowes", theirs=False) == "user Quintana Marlowes"
