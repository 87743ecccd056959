"""The consultation request form over real HTTP (the app under uvicorn, the outbox transport): the lead
it records, its consent, the emails it queues (acknowledgement, intake notification) and the rules
that guard it (honeypot, rate limit, the same answer for any address, one acknowledgement a day, bad
input named by field), the embedded forms' JSON and CORS answers, and the Consultation follow-up
sequence picking the lead up on the scheduler's round."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from lxml import html as lxml_html
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.consultation import FIELDS, REPLAY_WINDOW
from newsletter.database import Database
from newsletter.due import run_round
from newsletter.erasure import erase
from newsletter.models import ConsultationEmail, Enrollment, Sequence
from newsletter.sequences.service import install_shipped, set_status
from newsletter.web.ratelimit import RateLimiter
from subscribers.db import utcnow
from subscribers.leads import add_lead, change_stage, find_lead
from subscribers.models import ConsentEvent, ConsentText, Contact, Lead, Subscription
from subscribers.states import SequenceStatus
from subscribers.suppression import suppress
from tests.liveserver import LiveServer, serving

REQUEST = {"name": "Ana Ruiz", "email": "Ana@Example.org", "phone": "+1 (415) 555-0100", "preferred_contact": "phone",
           "requested_time": "weekday_evenings", "timezone": "America/Chicago", "heard_from": "search_engine",
           "consent_contact": "yes", "utm_source": "newsletter", "utm_campaign": "spring"}
INTAKE = "intake@clinic.example"


@pytest.fixture
def server(settings: Settings, db: Database) -> Iterator[LiveServer]:
    """The app with an intake address set (NEWSLETTER_INTAKE_EMAIL)."""
    with serving(settings.model_copy(update={"intake_email": INTAKE}), db) as live:
        yield live


def text_of(response: httpx.Response) -> str:
    return " ".join(lxml_html.document_fromstring(response.text).text_content().split())


def lead_of(db: Database, email: str = "ana@example.org") -> Lead | None:
    with db.session() as s:
        lead = find_lead(s, email)
        if lead is not None:
            s.expunge(lead)
        return lead


def queued(db: Database) -> list[tuple[str, str]]:
    with db.session() as s:
        return [(row.kind, row.status) for row in s.scalars(select(ConsultationEmail).order_by(ConsultationEmail.id))]


def count(db: Database, model: type) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def to_of(message) -> str:  # noqa: ANN001
    return message["To"].addresses[0].addr_spec.lower()


def test_a_request_records_the_lead_and_queues_both_emails(server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=server.url) as client:
        form = client.get("/consultation", params={"utm_source": "newsletter", "utm_campaign": "spring",
                                                   "utm_medium": "x" * 500})  # too long: not carried
        assert form.status_code == 200
        page = lxml_html.document_fromstring(form.text)
        assert page.xpath("//input[@type='hidden'][@name='utm_source']/@value") == ["newsletter"]
        assert page.xpath("//input[@type='hidden'][@name='utm_campaign']/@value") == ["spring"]
        assert page.xpath("//input[@name='utm_medium']") == []
        assert page.xpath("//input[@id='timezone']/@value") == [server.settings.default_timezone]
        assert "do not send medical information" in text_of(form)
        assert page.xpath("//textarea") == []  # no free text that could hold health details
        assert page.xpath("//input[@id='newsletter']/@checked") == []  # the newsletter box starts unticked
        answer = client.post("/consultation", data=REQUEST, headers={"User-Agent": "pytest-browser"})
    assert answer.status_code == 200 and "we have your request" in text_of(answer)
    assert server.emails() == []  # queued in the request's transaction; sent by the dispatchers

    lead = lead_of(db)
    assert lead is not None and lead.stage == "new" and lead.source == "web_form"
    assert (lead.phone, lead.preferred_contact, lead.requested_time) == ("+14155550100", "phone", "weekday_evenings")
    assert (lead.utm_source, lead.utm_campaign, lead.utm_medium) == ("newsletter", "spring", None)
    assert lead.heard_from == "search_engine"
    assert (lead.contact_consent_method, lead.contact_consent_form_id) == ("form", "consultation-page")
    assert lead.contact_consent_text_version == server.settings.consultation_consent_version
    assert (lead.contact_consent_ip, lead.contact_consent_agent) == (None, None)  # not kept unless the setting says so
    with db.session() as s:
        wording = s.get(ConsentText, lead.contact_consent_text_hash)
        assert wording.text == server.settings.consultation_consent_text
        contact = s.get(Contact, lead.contact_id)
        assert (contact.name, contact.timezone) == ("Ana Ruiz", "America/Chicago")
        assert s.scalar(select(func.count()).select_from(Subscription)) == 0  # the newsletter box was not ticked
    assert queued(db) == [("acknowledgement", "queued"), ("intake", "queued")]

    assert server.send_queued().one_offs == 2
    ack, intake = sorted(server.emails(), key=to_of)
    assert to_of(ack) == "ana@example.org" and to_of(intake) == INTAKE
    assert ack["Subject"] == "Thanks for getting in touch" and ack["List-Unsubscribe"] is None
    assert "Ana" in ack.get_body(("plain",)).get_content()
    assert intake["Subject"] == "New consultation request"
    body = intake.get_body(("plain",)).get_content() + intake.get_body(("html",)).get_content()
    assert f"{server.url}/staff/leads/{lead.contact_id}" in body and "Ana Ruiz" in body
    for private in ("ana@example.org", "Ana@Example.org", "4155550100", "555-0100", "evenings"):
        assert private not in body.lower() and private not in intake.as_string().lower().replace(INTAKE, "")
    assert queued(db) == [("acknowledgement", "sent"), ("intake", "sent")]


def test_ip_and_agent_are_kept_only_when_the_setting_says_so(settings: Settings, db: Database) -> None:
    with serving(settings.model_copy(update={"record_ip_and_agent": True}), db) as live:
        httpx.post(live.url + "/consultation", data=REQUEST, headers={"User-Agent": "pytest-agent"})
    lead = lead_of(db)
    assert (lead.contact_consent_ip, lead.contact_consent_agent) == ("127.0.0.1", "pytest-agent")


def test_without_an_intake_address_only_the_lead_is_emailed(live_server: LiveServer, db: Database) -> None:
    assert live_server.settings.intake_email is None  # the default
    assert httpx.post(live_server.url + "/consultation", data=REQUEST).status_code == 200
    assert queued(db) == [("acknowledgement", "queued")]
    live_server.send_queued()
    assert [to_of(m) for m in live_server.emails()] == ["ana@example.org"]


def test_a_replayed_form_sends_one_acknowledgement_a_day(server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=server.url) as client:
        answers = [client.post("/consultation", data=REQUEST) for _ in range(3)]
    assert {a.status_code for a in answers} == {200} and len({a.text for a in answers}) == 1
    assert count(db, Lead) == 1
    assert queued(db) == [("acknowledgement", "queued"), ("intake", "queued")]
    with db.session() as s:  # a day later, the same person asks again: a new acknowledgement
        for row in s.scalars(select(ConsultationEmail)):
            row.created_at = utcnow() - REPLAY_WINDOW - timedelta(minutes=1)
    httpx.post(server.url + "/consultation", data=REQUEST)
    assert [kind for kind, _ in queued(db)] == ["acknowledgement", "intake", "acknowledgement", "intake"]


def test_the_answer_is_the_same_for_known_unknown_and_suppressed_addresses(server: LiveServer, db: Database) -> None:
    with db.session() as s:
        suppress(s, "gone@example.org", "hard_bounce")
    with httpx.Client(base_url=server.url) as client:
        new = client.post("/consultation", data=REQUEST)
        known = client.post("/consultation", data=REQUEST)
        gone = client.post("/consultation", data={**REQUEST, "email": "gone@example.org"})
    assert new.status_code == known.status_code == gone.status_code == 200
    assert new.text == known.text == gone.text
    server.send_queued()
    # The suppressed address gets no acknowledgement; staff are still told of the request.
    assert sorted(to_of(m) for m in server.emails()) == ["ana@example.org", INTAKE, INTAKE]


def test_the_acknowledgement_is_skipped_when_the_address_is_suppressed_before_it_goes(live_server: LiveServer,
                                                                                      db: Database) -> None:
    httpx.post(live_server.url + "/consultation", data=REQUEST)
    with db.session() as s:
        suppress(s, "ana@example.org", "spam_complaint")
    live_server.send_queued()
    assert live_server.emails() == []
    assert queued(db) == [("acknowledgement", "skipped")]


def test_the_honeypot_answers_as_usual_and_stores_nothing(server: LiveServer, db: Database) -> None:
    real = httpx.post(server.url + "/consultation", data={**REQUEST, "email": "someone@example.org"})
    bot = httpx.post(server.url + "/consultation", data={**REQUEST, "website": "http://spam.example"})
    assert bot.status_code == 200 and bot.text == real.text
    assert lead_of(db) is None and count(db, Lead) == 1


def test_the_form_is_rate_limited(live_server: LiveServer, db: Database) -> None:
    live_server.app.state.limiter = RateLimiter(3, 3600)  # as NEWSLETTER_PUBLIC_FORM_LIMIT_PER_HOUR=3 would
    with httpx.Client(base_url=live_server.url) as client:
        codes = [client.post("/consultation", data={**REQUEST, "email": f"p{n}@example.org"}).status_code
                 for n in range(5)]
        json_answer = client.post("/consultation", data=REQUEST, headers={"Accept": "application/json"})
    assert codes == [200, 200, 200, 429, 429]
    assert json_answer.status_code == 429 and "too many requests" in json_answer.json()["error"]
    assert count(db, Lead) == 3


BAD = [
    ("name", "", "Please tell us your name"),
    ("name", "n" * 201, "200 characters or fewer"),
    ("email", "", "like name@example.com"),
    ("email", "not-an-address", "like name@example.com"),
    ("email", "josé@example.com", "accented or non-Latin letters"),
    ("phone", "call me maybe", "digits only"),
    ("phone", "", "so we can reach you by phone call"),
    ("preferred_contact", "pigeon", "how we should contact you"),
    ("requested_time", "after my appointment with dr. x", "best time to reach you"),
    ("timezone", "Mars/Olympus_Mons", "time zone such as"),
    ("timezone", "", "your time zone"),
    ("heard_from", "my therapist told me about my depression", "Please choose one of the answers"),
    ("consent_contact", "", "tick the box"),
    ("utm_source", "s" * 201, "200 characters or fewer"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD, ids=[f"{f}-{n}" for n, (f, _, _) in enumerate(BAD)])
def test_bad_input_is_named_beside_its_field_and_nothing_is_stored(live_server: LiveServer, db: Database,
                                                                   field: str, value: str, message: str) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        answer = client.post("/consultation", data={**REQUEST, field: value})
        as_json = client.post("/consultation", data={**REQUEST, field: value}, headers={"Accept": "application/json"})
    assert answer.status_code == 400
    page = lxml_html.document_fromstring(answer.text)
    (error,) = page.xpath(f"//*[@id='{field}-error']")
    assert message in error.text_content()
    if field not in ("preferred_contact", "consent_contact") and not field.startswith("utm_"):
        assert page.xpath(f"//*[@id='{field}']/@aria-describedby")[0].endswith(f"{field}-error")
    kept = "Ana Ruiz" if field != "name" else "+1 (415) 555-0100"  # what was typed is kept
    assert kept in answer.text
    assert as_json.status_code == 400 and list(as_json.json()["errors"]) == [field]
    assert count(db, Contact) == 0 and count(db, ConsultationEmail) == 0


@pytest.mark.parametrize("field", ["name", "email", "phone", "timezone", "utm_campaign", "heard_from"])
def test_nul_bytes_and_oversized_fields_get_a_400_naming_the_field(live_server: LiveServer, db: Database,
                                                                   field: str) -> None:
    with httpx.Client(base_url=live_server.url, headers={"Accept": "application/json"}) as client:
        nul = client.post("/consultation", data={**REQUEST, field: "a\x00b"})
        huge = client.post("/consultation", data={**REQUEST, field: "x" * 5000})
    assert nul.status_code == 400 and "null byte" in nul.json()["errors"][field]
    fixed_choice = field == "heard_from"  # any value that is not one of its choices is refused as such
    assert huge.status_code == 400
    assert ("choose one" if fixed_choice else "characters or fewer") in huge.json()["errors"][field]
    whole = httpx.post(live_server.url + "/consultation", data={**REQUEST, "name": "x" * 100_000})
    assert whole.status_code == 413 and "too large" in whole.text
    assert count(db, Contact) == 0


def test_a_lost_lead_who_asks_again_is_new_once_more(live_server: LiveServer, db: Database) -> None:
    with db.session() as s:
        lead = add_lead(s, "ana@example.org", default_timezone="UTC", source="phone", consent_method="phone",
                        utm={"utm_source": "old"}).lead
        change_stage(s, lead, "lost", by="staff")
    assert httpx.post(live_server.url + "/consultation", data=REQUEST).status_code == 200
    lead = lead_of(db)
    assert (lead.stage, lead.source, lead.utm_source) == ("new", "web_form", "newsletter")
    assert count(db, Lead) == 1
    live_server.send_queued()
    assert [to_of(m) for m in live_server.emails()] == ["ana@example.org"]


def test_a_stranger_typing_a_known_leads_address_cannot_change_their_details(live_server: LiveServer,
                                                                             db: Database) -> None:
    """Anyone may type anyone's address into a public form: a known lead's name, phone, contact method,
    time and time zone stay as staff hold them; only what was missing is filled in."""
    with db.session() as s:
        add_lead(s, "ana@example.org", default_timezone="UTC", source="phone", consent_method="phone",
                 name="Ana Ruiz", phone="+1 415 555 0199", preferred_contact="email", timezone="Europe/Madrid")
    forged = {**REQUEST, "name": "Someone Else", "phone": "+1 212 555 0123", "preferred_contact": "text",
              "timezone": "Asia/Tokyo"}
    assert httpx.post(live_server.url + "/consultation", data=forged).status_code == 200
    lead = lead_of(db)
    with db.session() as s:
        contact = s.get(Contact, lead.contact_id)
        assert (contact.name, contact.timezone) == ("Ana Ruiz", "Europe/Madrid")
    assert (lead.phone, lead.preferred_contact) == ("+14155550199", "email")
    assert lead.requested_time == "weekday_evenings"  # it had none: filled in
    assert count(db, Lead) == 1


def test_an_erased_address_is_not_acknowledged(server: LiveServer, db: Database) -> None:
    httpx.post(server.url + "/consultation", data=REQUEST)
    with db.session() as s:
        erase(s, server.settings, "ana@example.org")
    assert count(db, ConsultationEmail) == 0  # erasure took the queued emails with the lead
    again = httpx.post(server.url + "/consultation", data=REQUEST)
    assert again.status_code == 200 and "we have your request" in text_of(again)
    # The person's own new request is recorded (staff may call them) but the address stays suppressed.
    assert lead_of(db) is not None and queued(db) == [("intake", "queued")]
    server.send_queued()
    assert [to_of(m) for m in server.emails()] == [INTAKE]


def test_the_newsletter_box_asks_for_a_confirmed_subscription(live_server: LiveServer, db: Database) -> None:
    httpx.post(live_server.url + "/consultation", data={**REQUEST, "newsletter": "yes"})
    with db.session() as s:
        (sub,) = s.scalars(select(Subscription))
        assert sub.status == "pending"
        (event,) = s.scalars(select(ConsentEvent))
        assert (event.action, event.method, event.form_id) == ("requested", "form", "consultation-page")
        assert s.get(ConsentText, event.consent_text_hash).text == live_server.settings.consent_text
        lead = find_lead(s, "ana@example.org")
        assert lead.contact_consent_text_hash != event.consent_text_hash  # two consents, two wordings
    live_server.send_queued()
    subjects = sorted(m["Subject"] for m in live_server.emails())
    assert subjects == [f"Please confirm your subscription to {live_server.settings.newsletter_name}",
                        "Thanks for getting in touch"]


def test_the_follow_up_sequence_picks_the_lead_up_on_the_schedulers_round(live_server: LiveServer,
                                                                          db: Database) -> None:
    with db.session() as s:
        install_shipped(s, live_server.settings, utcnow())
        sequence = s.scalar(select(Sequence).where(Sequence.trigger_type == "lead_created"))
        set_status(sequence, SequenceStatus.ACTIVE)  # as `sequences resume "Consultation follow-up"` does
    httpx.post(live_server.url + "/consultation", data=REQUEST)
    with db.session() as s:
        report = run_round(s, live_server.settings, utcnow())  # what the scheduler runs on each tick
    assert report.sequences.enrolled == 1
    with db.session() as s:
        (enrolment,) = s.scalars(select(Enrollment))
        assert enrolment.contact_id == find_lead(s, "ana@example.org").contact_id and enrolment.state == "active"


# Embedded forms: JSON and CORS -----------------------------------------------------------------------

CLINIC = "https://clinic.example"


@pytest.fixture
def embedded(settings: Settings, db: Database) -> Iterator[LiveServer]:
    with serving(settings.model_copy(update={"embed_origins": [CLINIC]}), db) as live:
        yield live


def test_json_answers_carry_cors_headers_only_for_listed_origins(embedded: LiveServer, db: Database) -> None:
    asks = {"Accept": "application/json", "Origin": CLINIC}
    with httpx.Client(base_url=embedded.url) as client:
        taken = client.post("/consultation", data=REQUEST, headers=asks)
        signed_up = client.post("/subscribe", data={"email": "r@example.org", "consent": "yes"}, headers=asks)
        bad = client.post("/subscribe", data={"email": "nope"}, headers=asks)
        other = client.post("/subscribe", data={"email": "o@example.org", "consent": "yes"},
                            headers={**asks, "Origin": "https://elsewhere.example"})
        plain = client.post("/subscribe", data={"email": "p@example.org", "consent": "yes"},
                            headers={"Origin": "https://elsewhere.example"})  # a plain form: taken from anywhere
        preflight = client.options("/consultation", headers={"Origin": CLINIC, "Access-Control-Request-Method": "POST"})
        refused = client.options("/subscribe", headers={"Origin": "https://elsewhere.example",
                                                        "Access-Control-Request-Method": "POST"})
    assert taken.status_code == 200 and taken.json() == {"ok": True, "message": taken.json()["message"]}
    assert taken.headers["Access-Control-Allow-Origin"] == CLINIC and "Origin" in taken.headers["Vary"]
    assert signed_up.status_code == 200 and signed_up.json()["ok"] is True
    assert signed_up.headers["Access-Control-Allow-Origin"] == CLINIC
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"email", "consent"}
    assert other.status_code == 403 and "Access-Control-Allow-Origin" not in other.headers
    assert plain.status_code == 200 and "Check your inbox" in plain.text
    assert "set-cookie" not in taken.headers and "set-cookie" not in plain.headers  # public forms use no cookies
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == CLINIC
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    with db.session() as s:
        emails = set(s.scalars(select(Contact.email)))
    assert emails == {"Ana@example.org", "r@example.org", "p@example.org"}  # not the refused JSON request's


def test_no_origin_is_listed_by_default(live_server: LiveServer) -> None:
    answer = httpx.post(live_server.url + "/subscribe", data={"email": "r@example.org", "consent": "yes"},
                        headers={"Accept": "application/json", "Origin": CLINIC})
    assert answer.status_code == 403
    same_site = httpx.post(live_server.url + "/subscribe", data={"email": "r@example.org", "consent": "yes"},
                           headers={"Accept": "application/json", "Origin": live_server.url})
    assert same_site.status_code == 200 and same_site.json()["ok"] is True


def test_the_time_zone_script_is_served_from_this_app(live_server: LiveServer) -> None:
    script = httpx.get(live_server.url + "/static/time-zone.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "resolvedOptions().timeZone" in script.text
    assert httpx.get(live_server.url + "/static/../config.py").status_code == 404
    page = httpx.get(live_server.url + "/consultation")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migration_0018_goes_down_and_up_again(request: pytest.FixtureRequest, backend: str) -> None:
    """Down to the revision before 0018 (whatever it is chained after) and up again."""
    from alembic import command
    from sqlalchemy import inspect

    from newsletter.database import alembic_config, current_revision, head_revision

    database: Database = request.getfixturevalue("postgres_db" if backend == "postgresql" else "db")
    command.downgrade(alembic_config(database.engine), "0018-1")
    assert "consultation_emails" not in inspect(database.engine).get_table_names()
    assert "heard_from" not in {c["name"] for c in inspect(database.engine).get_columns("leads")}
    command.upgrade(alembic_config(database.engine), "head")
    assert current_revision(database.engine) == head_revision(database.engine)
    assert "consultation_emails" in inspect(database.engine).get_table_names()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_service_records_once_and_queues_once_on_both_databases(request: pytest.FixtureRequest,
                                                                    settings: Settings, backend: str) -> None:
    from newsletter.consultation import check_request, request_consultation

    database: Database = request.getfixturevalue("postgres_db" if backend == "postgresql" else "db")
    checked, errors = check_request({**REQUEST, "newsletter": "yes"})
    assert errors == {} and checked is not None
    with_intake = settings.model_copy(update={"intake_email": INTAKE})
    for _ in range(2):
        with database.session() as s:
            request_consultation(s, with_intake, checked, now=utcnow())
    assert count(database, Lead) == 1 and count(database, Subscription) == 1
    assert sorted(kind for kind, _ in queued(database)) == ["acknowledgement", "intake"]


def test_the_readmes_consultation_snippet_posts_a_request_the_app_takes(live_server: LiveServer, db: Database) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index('<form method="post" action="https://news.clinic.example/consultation">')
    form = lxml_html.fragment_fromstring(readme[start:readme.index("</form>", start) + 7])
    data = dict(form.form_values())  # what the browser sends untouched: hidden fields, the checked radio, selects
    assert data["preferred_contact"] == "email" and data["requested_time"] == "any_time" and "website" not in data
    data.update(name="Ana Ruiz", email="ana@example.org", consent_contact="yes")  # what the visitor types and ticks
    assert set(data) <= set(FIELDS)
    answer = httpx.post(live_server.url + form.get("action").removeprefix("https://news.clinic.example"), data=data)
    assert answer.status_code == 200 and lead_of(db) is not None


def test_the_readme_shows_the_snippets_the_app_makes(settings: Settings) -> None:
    """One text for the snippets: the staff Settings page's (made from the settings) is the README's."""
    from newsletter.web.embed import snippets

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    made = snippets(settings.model_copy(update={"public_base_url": "https://news.clinic.example"}))
    assert made["subscribe"] in readme and made["consultation"] in readme


@pytest.mark.parametrize("path", ["/consultation", "/subscribe", "/confirm/resend", "/u/sometoken"])
def test_a_public_form_body_that_hides_its_length_is_cut_off(live_server: LiveServer, db: Database,
                                                             path: str) -> None:
    """A chunked body declares no length: the bound still holds where it is passed, not after the
    whole body has been read, and nothing is stored."""
    def chunks() -> Iterator[bytes]:
        yield b"email=ana%40example.org&name="
        for _ in range(64):
            yield b"x" * 16384

    answer = httpx.post(live_server.url + path, content=chunks(), timeout=30,
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413 and "too large" in answer.text
    assert count(db, Contact) == 0
