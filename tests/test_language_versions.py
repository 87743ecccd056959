"""Issues in the reader's language: an issue's Spanish version goes to the contacts who read Spanish,
its own version to everyone else, each contact exactly once, through the real dispatcher and a real
HTTP server speaking SendGrid's API; the batches record which version they carried, so the results
split by language."""

from __future__ import annotations

import email
import json
import re
from collections import Counter
from email import policy
from pathlib import Path
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from pydantic import SecretStr
from alembic import command
from typer.testing import CliRunner
from sqlalchemy import inspect, select, update

from newsletter import issues as issue_service
from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database, alembic_config, upgrade
from newsletter.errors import InputError, NotFound
from newsletter.models import Delivery, EmailVersion, Issue, Link, Post, SendBatch
from newsletter.posts.blocks import Block, ParsedPost
from newsletter.posts.service import store_post
from newsletter.sending import ledger, schedule
from newsletter.due import run_round
from newsletter.reports.by_language import issue_by_language
from newsletter.sequences.definition import parse_definition
from newsletter.sequences.install import install
from newsletter.sending.dispatch import Dispatcher
from newsletter.transports import OutboxTransport, get_transport
from newsletter.web.bookings_webhook import signature_for
from subscribers.contacts import upsert_contact
from subscribers.db import utcnow
from subscribers.leads import add_lead
from subscribers.lists import ensure_list
from subscribers.models import Subscription
from tests.liveserver import LiveServer
from tests.sendgrid_fake import FakeSendGrid
from tests.sendkit import add_audience, make_issue
from tests.test_sending_sendgrid import sendgrid_settings
from tests.test_tracking import BROWSER

SPANISH_SUBJECT = "Pequeños pasos para días más estables"


def spanish_post(db: Database, translation_of: int | None = None) -> int:
    with db.session() as s:
        post = store_post(s, ParsedPost(title="Pequeños pasos", blocks=[Block(
            "paragraph", html='Camine un poco cada día: <a href="https://example.org/es/caminar">una guía</a>.')]),
            language="es", translation_of=translation_of).post
        return post.id


def add_spanish_version(db: Database, settings: Settings, issue_id: int) -> None:
    with db.session() as s:
        original = s.get(Issue, issue_id).post_id
    post_id = spanish_post(db, original)
    with db.session() as s:
        issue_service.add_version(s, settings, s.get(Issue, issue_id), language="es", post_id=post_id,
                                  subject=SPANISH_SUBJECT, preheader="Hábitos para la semana")


def readers_of(db: Database, languages: dict[str, str | None]) -> None:
    """Confirmed subscribers with the given languages (None: never said)."""
    with db.session() as s:
        newsletter = ensure_list(s, "newsletter")
        for address, language in languages.items():
            contact = upsert_contact(s, address, default_timezone="UTC", source="import", language=language).contact
            s.add(Subscription(contact_id=contact.id, list_id=newsletter.id, status="confirmed", frequency="every",
                               confirmation_sends=0))


def send(db: Database, settings: Settings, issue_id: int) -> None:
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), datetime.now(timezone.utc))
    Dispatcher(settings, db, get_transport(settings)).run_until_idle()


def html_to(fake: FakeSendGrid) -> dict[str, str]:
    """Each recipient's address -> the HTML of the request that carried it."""
    out = {}
    for request in fake.requests:
        html = next(c["value"] for c in request.body["content"] if c["type"] == "text/html")
        for personalization in request.body["personalizations"]:
            for to in personalization["to"]:
                out[to["email"]] = html
    return out


def test_a_spanish_reader_gets_the_spanish_version_and_everyone_else_the_issues_own(
        any_db: Database, settings: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch)
    issue_id = make_issue(any_db, settings)
    add_spanish_version(any_db, settings, issue_id)
    readers_of(any_db, {"lucia@example.org": "es", "mateo@example.org": "es-MX", "ann@example.org": "en",
                        "sam@example.org": None})
    add_audience(any_db, 30)  # bulk imported, no language: the issue's own version
    send(any_db, settings, issue_id)

    received = Counter(d.to for d in fake_sendgrid.deliveries)
    assert len(received) == 34 and set(received.values()) == {1}  # exactly once each, whatever the language
    subjects = {d.to: d.subject for d in fake_sendgrid.deliveries}
    assert subjects["lucia@example.org"] == subjects["mateo@example.org"] == SPANISH_SUBJECT
    assert subjects["ann@example.org"] == subjects["sam@example.org"] == subjects["reader7@example.org"] \
        == "Small steps for steadier days"
    html = html_to(fake_sendgrid)
    assert '<html lang="es"' in html["lucia@example.org"] and "Camine un poco" in html["lucia@example.org"]
    assert '<html lang="en"' in html["sam@example.org"] and "Walk a little" in html["sam@example.org"]
    # Readers without a name are greeted in their version's language, never "Hola there,".
    names = {d.to: d.substitutions.get("%%first_name%%") for d in fake_sendgrid.deliveries}
    assert names["lucia@example.org"] == "a usted" and names["sam@example.org"] == "there"
    # One content per request: no request mixes the versions.
    for request in fake_sendgrid.requests:
        got = {subjects[to["email"]] for p in request.body["personalizations"] for to in p["to"]}
        assert len(got) == 1
    with any_db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 34}
        assert s.get(Issue, issue_id).status == "sent"
        carried = Counter(s.scalars(select(SendBatch.language).join(Delivery, Delivery.batch_id == SendBatch.id)
                                    .where(Delivery.issue_id == issue_id)))
    assert carried == {"es": 2, None: 32}
    # The Spanish version's links are tracked as the issue's: clicks count for it.
    link = re.search(r'href="[^"]*/c/[^"]*"', html["lucia@example.org"])
    assert link is not None
    with any_db.session() as s:
        links = s.scalars(select(Link).where(Link.issue_id == issue_id, Link.version_id.is_not(None))).all()
        assert {l.url for l in links} >= {"https://example.org/es/caminar"}


def test_an_issue_without_a_spanish_version_sends_its_own_to_everyone(
        db: Database, settings: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = sendgrid_settings(settings, fake_sendgrid, monkeypatch)
    issue_id = make_issue(db, settings)
    readers_of(db, {"lucia@example.org": "es", "sam@example.org": None})
    send(db, settings, issue_id)
    assert {d.to: d.subject for d in fake_sendgrid.deliveries} == {
        "lucia@example.org": "Small steps for steadier days", "sam@example.org": "Small steps for steadier days"}
    assert len(fake_sendgrid.requests) == 1


def test_a_version_is_checked_and_compiled_before_anything_is_stored(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    post_id = spanish_post(db)
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        with pytest.raises(InputError, match="'fr' is not one we send in"):
            issue_service.add_version(s, settings, issue, language="fr", post_id=post_id, subject="Bonjour")
        with pytest.raises(InputError, match="itself in 'en'"):
            issue_service.add_version(s, settings, issue, language="en", post_id=post_id, subject="Hello")
        with pytest.raises(InputError, match="subject is empty"):
            issue_service.add_version(s, settings, issue, language="es", post_id=post_id, subject="  ")
        with pytest.raises(NotFound, match="no post 999"):
            issue_service.add_version(s, settings, issue, language="es", post_id=999, subject="Hola")
        assert s.scalars(select(EmailVersion)).all() == []
        # Preflight checks every version: a health word in the Spanish subject is named as the version's,
        # and an image without alt text in the translated post stops the issue from being sent.
        issue_service.add_version(s, settings, issue, language="es", post_id=post_id,
                                  subject="Un paso para la depresión")
        assert any(f.code == "health-words-in-subject" and f.message.startswith("[es] ") and "depresión" in f.message
                   for f in issue_service.preflight(issue, settings))
        bare = store_post(s, ParsedPost(title="Con imagen", blocks=[
            Block("paragraph", html="Un paseo corto."), Block("image", src="https://example.org/a.jpg", alt="")]),
            language="es").post
        issue_service.add_version(s, settings, issue, language="es", post_id=bare.id, subject=SPANISH_SUBJECT)
        assert any(f.code == "image-alt-missing" and f.message.startswith("[es] ")
                   for f in issue_service.preflight(issue, settings))
        with pytest.raises(InputError, match="preflight failed"):
            schedule.start_now(s, settings, issue, datetime.now(timezone.utc))
        # A post in another language, or the issue's own post, is not its translation.
        other = store_post(s, ParsedPost(title="Another walk", blocks=[Block("paragraph", html="Walk more.")]),
                           language="en").post
        with pytest.raises(InputError, match=f"post {other.id} is in 'en': choose a post in 'es'"):
            issue_service.add_version(s, settings, issue, language="es", post_id=other.id, subject="Hola")
        with pytest.raises(InputError, match="the issue's own post"):
            issue_service.add_version(s, settings, issue, language="es", post_id=issue.post_id, subject="Hola")
        # Replacing the version keeps one row per language; the post chosen now says it translates the issue's.
        issue_service.add_version(s, settings, issue, language="es", post_id=post_id, subject=SPANISH_SUBJECT)
        assert [v.subject for v in s.scalars(select(EmailVersion))] == [SPANISH_SUBJECT]
        assert s.get(Post, post_id).translation_of_id == issue.post_id
        # A digest has no versions: the layout cannot become one while the issue has any.
        with pytest.raises(InputError, match="has language versions, and a digest has none"):
            issue_service.edit_layout(s, settings, issue, layout="digest")
        with pytest.raises(InputError, match="has language versions, and a digest has none"):
            issue_service.edit_digest(s, settings, issue, "add", other.id)
        issue_service.edit_layout(s, settings, issue, layout="teaser")  # another layout: each version follows
        assert s.scalars(select(EmailVersion)).one().html.count("Camine un poco") == 1
        assert any(f.code == "read-url-missing" and f.message.startswith("[es] ") and "Pequeños pasos" in f.message
                   for f in issue_service.preflight(issue, settings))
        issue_service.edit_layout(s, settings, issue, layout="full")
        assert not [f for f in issue_service.preflight(issue, settings) if f.level == "error"]


def _down_and_up(database: Database) -> None:
    config = alembic_config(database.engine)
    command.downgrade(config, "0023")
    assert "email_versions" not in inspect(database.engine).get_table_names()
    assert "version_id" not in {c["name"] for c in inspect(database.engine).get_columns("links")}
    upgrade(database.engine)
    assert "email_versions" in inspect(database.engine).get_table_names()
    assert "language" in {c["name"] for c in inspect(database.engine).get_columns("send_batches")}
    assert {"language", "translation_of_id"} <= {c["name"] for c in inspect(database.engine).get_columns("posts")}


def test_the_migration_goes_down_and_up_on_sqlite(db: Database, settings: Settings) -> None:
    add_spanish_version(db, settings, make_issue(db, settings))
    _down_and_up(db)


@pytest.mark.postgres
def test_the_migration_goes_down_and_up_on_postgres(postgres_db: Database, settings: Settings) -> None:
    add_spanish_version(postgres_db, settings, make_issue(postgres_db, settings))
    _down_and_up(postgres_db)


# The terminal: posts import --language --translation-of, issues version, preview, send, report ------

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_the_cli_adds_a_spanish_version_sends_it_and_reports_by_language(settings: Settings, tmp_path: Path) -> None:
    english = tmp_path / "walk.md"
    english.write_text("# Small Steps\n\nWalk a little every day: [a walking guide](https://example.org/walk).\n")
    spanish = tmp_path / "caminar.md"
    spanish.write_text("# Pequeños pasos\n\nCamine un poco cada día: [una guía](https://example.org/es/caminar).\n")
    post_id = run("posts", "import", str(english)).strip()
    refused = runner.invoke(app, ["posts", "import", str(spanish), "--language", "fr"])
    assert refused.exit_code != 0 and "'fr' is not one we send in" in refused.output
    spanish_id = run("posts", "import", str(spanish), "--language", "es-MX", "--translation-of", post_id).strip()
    shown = json.loads(run("posts", "show", spanish_id, "--json"))
    assert shown["language"] == "es" and shown["translation_of"] == int(post_id)
    issue_id = run("issues", "create", "--post", post_id, "--subject", "Small steps for steadier days",
                   "--preheader", "Habits for the week, one small step at a time").splitlines()[0]
    missing = runner.invoke(app, ["issues", "version", issue_id, "--language", "es"])
    assert missing.exit_code != 0 and "give --post" in missing.output
    saved = run("issues", "version", issue_id, "--language", "es", "--post", spanish_id,
                "--subject", SPANISH_SUBJECT, "--preheader", "Hábitos para la semana, un pequeño paso a la vez")
    assert "version in es saved" in saved and "all checks pass" in saved
    listed = json.loads(run("issues", "versions", issue_id, "--json"))
    assert [(v["language"], v["default"]) for v in listed] == [("en", True), ("es", False)]
    run("issues", "preview", issue_id, "--out", str(tmp_path / "es"), "--language", "es")
    assert '<html lang="es"' in (tmp_path / "es" / "issue.html").read_text(encoding="utf-8")
    # A test of the Spanish version; one of a version the issue does not have is refused.
    assert "mia@clinic.example: sent" in run("issues", "test", issue_id, "--to", "mia@clinic.example", "--language", "es")
    (test_copy,) = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in settings.outbox_dir.glob("*.eml")]
    assert test_copy["Subject"] == "[Test] " + SPANISH_SUBJECT
    assert '<html lang="es"' in test_copy.get_body(("html",)).get_content()
    for path in settings.outbox_dir.glob("*.eml"):
        path.unlink()
    none = runner.invoke(app, ["issues", "test", issue_id, "--to", "mia@clinic.example", "--language", "en"])
    assert none.exit_code != 0 and "has no version in 'en'" in none.output

    db = Database.from_settings(settings)
    readers_of(db, {"lucia@example.org": "es", "sam@example.org": None, "ann@example.org": "en"})
    assert "submitted 3" in run("issues", "send", issue_id)
    sent = {m["To"].addresses[0].addr_spec: m for m in (
        email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in settings.outbox_dir.glob("*.eml"))}
    assert sent["lucia@example.org"]["Subject"] == SPANISH_SUBJECT
    assert sent["sam@example.org"]["Subject"] == sent["ann@example.org"]["Subject"] == "Small steps for steadier days"
    html = sent["lucia@example.org"].get_body(("html",)).get_content()
    assert '<html lang="es"' in html and "Camine un poco" in html

    report = json.loads(run("report", "issue", issue_id, "--by-language", "--json"))
    assert [(r["language"], r["default"], r["sent"]) for r in report["by_language"]] == [("en", True, 2), ("es", False, 1)]
    table = run("report", "issue", issue_id, "--by-language")
    assert "By language version" in table
    # Sent: a version can no longer change.
    late = runner.invoke(app, ["issues", "version", issue_id, "--language", "es", "--remove"])
    assert late.exit_code != 0 and "can be edited only before sending" in late.output


def test_a_click_and_a_booking_from_the_spanish_version_count_for_it(live_server: LiveServer, db: Database) -> None:
    """Real HTTP: the Spanish email's booking button (a first-party click URL of the version's own
    link), then a booking through the signed webhook; the report splits them by language."""
    settings = live_server.settings
    issue_id = make_issue(db, settings)
    add_spanish_version(db, settings, issue_id)
    readers_of(db, {"lucia@example.org": "es", "sam@example.org": None})
    with db.session() as s:
        add_lead(s, "lucia@example.org", default_timezone="UTC", source="campaign", consent_method="form", origin="api")
        schedule.start_now(s, settings, s.get(Issue, issue_id), utcnow())
    Dispatcher(settings, db, OutboxTransport(live_server.outbox, settings)).run_until_idle()
    with db.session() as s:  # read long after delivery, as a person would
        s.execute(update(Delivery).values(submitted_at=utcnow() - timedelta(hours=1)))
    received = {m["To"].addresses[0].addr_spec: m for m in live_server.emails()}
    spanish = received["lucia@example.org"].get_body(("html",)).get_content()
    button = re.search(r'href="(http[^"]+/c/[^"]+)"[^>]*>\s*Reserve una consulta', spanish).group(1)  # the button, in Spanish
    assert httpx.get(button, headers={"User-Agent": BROWSER}, follow_redirects=False).status_code == 302
    live_server.drained()  # the click is in the events table within a moment (minutes before anyone books)
    secret = "s3cret-for-tests"
    live_server.app.state.settings = settings.model_copy(update={"bookings_webhook_secret": SecretStr(secret)})
    body = json.dumps({"email": "lucia@example.org", "external_id": "cal-7"}).encode()
    assert httpx.post(f"{live_server.url}/webhooks/bookings", content=body,
                      headers={"X-Signature": signature_for(secret, body)}).status_code == 201
    with db.session() as s:
        rows = {r.language: r for r in issue_by_language(s, issue_id, "en")}
    assert (rows["es"].sent, rows["es"].unique_opens, rows["es"].unique_clicks, rows["es"].bookings) == (1, 1, 1, 1)
    assert (rows["en"].sent, rows["en"].unique_opens, rows["en"].unique_clicks, rows["en"].bookings) == (1, 0, 0, 0)
    assert rows["en"].default and not rows["es"].default


# Sequences: a step's translation ---------------------------------------------------------------------

ALWAYS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"}


def test_a_sequence_step_goes_out_in_the_contacts_language(settings: Settings, db: Database, tmp_path: Path) -> None:
    definition = {"name": "Welcome", "trigger": {"type": "lead_created"}, "window": ALWAYS,
                  "steps": [{"key": "hello", "delay": "0m", "subject": "About a first visit",
                             "body": "Hello, and [welcome](https://example.org/welcome).",
                             "translations": {"es": {"subject": "Sobre una primera visita",
                                                     "preheader": "Lo que conviene saber antes de venir",
                                                     "body": "Hola, y [bienvenida](https://example.org/es/bienvenida)."}}},
                            {"key": "later", "delay": "1d", "subject": "Common questions", "body": "Answers."}]}
    start = utcnow() - timedelta(days=3)
    with db.session() as s:
        install(s, settings, parse_definition(definition, source="test"), now=start - timedelta(minutes=1))
        for address, language in (("lucia@example.org", "es"), ("sam@example.org", None)):
            upsert_contact(s, address, default_timezone="UTC", source="import", language=language)
            add_lead(s, address, default_timezone="UTC", source="campaign", consent_method="form", origin="api")
    outbox = tmp_path / "outbox"
    transport = OutboxTransport(outbox, settings)
    for day in range(2):
        moment = start + timedelta(days=day, minutes=5)
        with db.session() as s:
            run_round(s, settings, moment)
        Dispatcher(settings, db, transport, clock=lambda m=moment: m).run_until_idle()
    sent = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(outbox.glob("*.eml"))]
    got = sorted((m["To"].addresses[0].addr_spec, m["Subject"]) for m in sent)
    assert got == [("lucia@example.org", "Common questions"), ("lucia@example.org", "Sobre una primera visita"),
                   ("sam@example.org", "About a first visit"), ("sam@example.org", "Common questions")]
    spanish = next(m for m in sent if m["Subject"] == "Sobre una primera visita").get_body(("html",)).get_content()
    assert '<html lang="es"' in spanish and "bienvenida" in spanish
    # Loading the definition again without the translation removes the version, and its links.
    del definition["steps"][0]["translations"]
    with db.session() as s:
        install(s, settings, parse_definition(definition, source="test"), now=utcnow())
        assert s.scalars(select(EmailVersion)).all() == []
        assert s.scalars(select(Link).where(Link.version_id.is_not(None))).all() == []


def test_a_translation_in_the_sequences_own_language_or_one_we_do_not_send_in_is_refused(
        settings: Settings, db: Database) -> None:
    step = {"key": "hello", "delay": "0m", "subject": "Hello", "body": "Hi."}
    with pytest.raises(InputError, match=r"steps\[0\]\.translations: language 'fr' is not one we send in"):
        parse_definition({"name": "W", "trigger": {"type": "manual"},
                          "steps": [{**step, "translations": {"fr": {"subject": "Salut", "body": "Salut."}}}]},
                         source="w.yaml")
    with pytest.raises(InputError, match=r"translations\.es: a translation needs a body"):
        parse_definition({"name": "W", "trigger": {"type": "manual"},
                          "steps": [{**step, "translations": {"es": {"subject": "Hola"}}}]}, source="w.yaml")
    with db.session() as s, pytest.raises(InputError, match="the sequence is itself in 'en'"):
        install(s, settings, parse_definition({"name": "W", "trigger": {"type": "manual"}, "steps": [
            {**step, "translations": {"en": {"subject": "Hi there", "body": "Hi."}}}]}, source="w.yaml"), now=utcnow())


def test_an_issue_made_from_a_spanish_post_is_itself_in_spanish(db: Database, settings: Settings) -> None:
    """Its own version says lang="es" and is what contacts without a version in their language get;
    an English version can then be added for the others."""
    post_id = spanish_post(db)
    with db.session() as s:
        issue = issue_service.create_issue(s, settings, post_id, SPANISH_SUBJECT, "Hábitos para la semana")
        assert '<html lang="es"' in issue.html
        with pytest.raises(InputError, match="itself in 'es'"):
            issue_service.add_version(s, settings, issue, language="es", post_id=post_id, subject="Hola")
        english = store_post(s, ParsedPost(title="Small Steps", blocks=[Block("paragraph", html="Walk a little.")])).post
        version = issue_service.add_version(s, settings, issue, language="en", post_id=english.id,
                                            subject="Small steps for steadier days")
        assert '<html lang="en"' in version.html
