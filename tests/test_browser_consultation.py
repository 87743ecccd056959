"""The consultation form and the embedded forms in chromium, on real servers.

A visitor comes from a newsletter link (utm_source in the address), fills the form with the keyboard
and mouse (the page's script has put the browser's own time zone in), is told what is missing beside
the field, sends it; clinic staff then find the lead on the Leads board, the dispatcher sends the
acknowledgement and the intake notification (read back from the outbox's .eml files), and the
Consultation follow-up sequence takes the lead on the scheduler's round.

The embedded forms: a page on another origin (a second loopback server) holds the README's snippet;
a visitor signs up through it and lands on this app's own confirmation page; a script on that page
reads a JSON answer (its origin is listed in NEWSLETTER_EMBED_ORIGINS), while the same script on an
origin that is not listed cannot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.due import run_round
from newsletter.models import Enrollment, Sequence
from newsletter.sequences.service import install_shipped, set_status
from newsletter.staff.roles import Role
from subscribers.db import utcnow
from subscribers.leads import find_lead
from subscribers.models import Contact, Subscription
from subscribers.states import SequenceStatus
from tests.liveserver import LiveServer, serving
from tests.staffkit import (assert_accessible, browser_sign_in, make_user, no_horizontal_scroll, shoot, signed_in_page,
                            visited)
from tests.webserver import serve_site

pytestmark = pytest.mark.browser
INTAKE = "intake@clinic.example"


@pytest.fixture
def server(settings: Settings, db: Database) -> Iterator[LiveServer]:
    with serving(settings.model_copy(update={"intake_email": INTAKE}), db) as live:
        yield live


def public_page_checks(page, name: str) -> None:  # noqa: ANN001
    """Axe at 1280 and 390 px, no sideways scroll at 390 px, screenshots at both."""
    assert_accessible(page)
    page.set_viewport_size({"width": 390, "height": 900})
    assert no_horizontal_scroll(page), f"{name} scrolls sideways at 390 px"
    assert_accessible(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    shoot(page, name)


def test_a_visitor_asks_for_a_consultation_and_the_clinic_is_told(browser, server: LiveServer) -> None:  # noqa: ANN001
    db = server.db
    with db.session() as s:  # the clinic runs the follow-up sequence
        install_shipped(s, server.settings, utcnow())
        set_status(s.scalar(select(Sequence).where(Sequence.trigger_type == "lead_created")), SequenceStatus.ACTIVE)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin")
    page = context.new_page()
    elsewhere: list[str] = []
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(server.url) else None)
    page.goto(f"{server.url}/consultation?utm_source=newsletter&utm_medium=email&utm_campaign=spring")

    assert page.get_by_label("Your time zone").input_value() == "Europe/Berlin"  # guessed by the page's script
    assert page.get_by_text("Please do not send medical information here.").is_visible()
    assert not page.get_by_label(server.settings.consent_text).is_checked()  # the newsletter: unticked
    public_page_checks(page, "consultation-form")

    page.get_by_label("Your name").fill("Ana Ruiz")
    page.get_by_label("Email address").fill("ana@example.org")
    page.get_by_label("Text message").check()
    page.get_by_label("Best time to reach you").select_option("weekday_mornings")
    page.get_by_label("How did you hear of us?").select_option("social_media")
    page.get_by_label(server.settings.consultation_consent_text).check()
    page.get_by_role("button", name="Send my request").click()
    # No phone for a text message: said beside the field, and what was typed is kept.
    assert "so we can reach you by text message" in page.locator("#phone-error").inner_text()
    assert page.get_by_label("Your name").input_value() == "Ana Ruiz"
    assert page.get_by_label("Text message").is_checked()
    assert page.get_by_label("Your time zone").input_value() == "Europe/Berlin"
    assert page.get_by_label(server.settings.consultation_consent_text).is_checked()
    public_page_checks(page, "consultation-form-error")

    page.get_by_label("Phone number").fill("+49 30 1234567")
    page.get_by_role("button", name="Send my request").click()
    page.get_by_role("heading", name="Thank you, we have your request").wait_for()
    public_page_checks(page, "consultation-received")
    assert elsewhere == []
    context.close()

    with db.session() as s:
        lead = find_lead(s, "ana@example.org")
        contact_id = lead.contact_id
        assert (lead.utm_source, lead.utm_medium, lead.utm_campaign) == ("newsletter", "email", "spring")
        assert (lead.preferred_contact, lead.phone, lead.heard_from) == ("text", "+49301234567", "social_media")
        assert s.get(Contact, contact_id).timezone == "Europe/Berlin"

    # Clinic staff find her on the Leads board.
    login = make_user(db, "dr.lee@clinic.example", Role.CLINIC)
    staff = browser.new_context(viewport={"width": 1280, "height": 900})
    board = staff.new_page()
    browser_sign_in(board, server.url, login, next_path="/staff/leads")
    card = board.locator(f"#lead-{contact_id}")
    assert "Ana Ruiz" in board.get_by_role("region", name="New").inner_text()
    assert "web form" in card.inner_text()
    visited(board, "consultation-staff-board")

    # The dispatcher sends both emails; the intake one holds the staff link and nothing personal but the name.
    assert server.send_queued().one_offs == 2
    emails = {m["To"].addresses[0].addr_spec.lower(): m for m in server.emails()}
    assert set(emails) == {"ana@example.org", INTAKE}
    intake = emails[INTAKE]
    assert intake["Subject"] == "New consultation request"
    raw = intake.as_string()
    link = f"{server.url}/staff/leads/{contact_id}"
    assert link in intake.get_body(("plain",)).get_content() and "Ana Ruiz" in raw
    for private in ("ana@example.org", "+49301234567", "1234567", "Europe/Berlin", "mornings"):
        assert private not in raw
    assert emails["ana@example.org"]["Subject"] == "Thanks for getting in touch"
    board.goto(link)  # the intake email's link opens her page for signed-in staff
    assert board.get_by_text("ana@example.org").is_visible()
    consent = server.settings.consultation_consent_version
    assert f"(form: consultation-page, wording {consent})" in board.get_by_role("region", name="How to reach them").inner_text()
    assert "social media" in board.get_by_role("region", name="How they came").inner_text()
    visited(board, "consultation-staff-lead")
    staff.close()

    # The scheduler's round enrols her in the Consultation follow-up sequence.
    with db.session() as s:
        assert run_round(s, server.settings, utcnow()).sequences.enrolled == 1
        (enrolment,) = s.scalars(select(Enrollment))
        assert enrolment.contact_id == contact_id and enrolment.state == "active"


README = Path(__file__).resolve().parents[1] / "README.md"
README_BASE = "https://news.clinic.example"  # the snippets' stand-in for NEWSLETTER_PUBLIC_BASE_URL


def readme_snippet(path: str) -> str:
    """The README's copyable snippet that posts to ``path``, exactly as a clinic would paste it."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f'<form method="post" action="{README_BASE}{path}">')
    return text[start:text.index("</form>", start) + len("</form>")]


def clinic_page(app_url: str) -> str:
    """The clinic's own page, holding the README's sign-up snippet pointed at this app."""
    snippet = readme_snippet("/subscribe").replace(README_BASE, app_url)
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Clinic site</title></head>'
            f"<body><h1>The clinic's own site</h1>{snippet}</body></html>")


ASK_FOR_JSON = """async (app) => {
  const body = new FormData();
  body.append("email", "script@example.org");
  body.append("consent", "yes");
  try {
    const answer = await fetch(app + "/subscribe", {method: "POST", body, headers: {"Accept": "application/json"}});
    return {status: answer.status, json: await answer.json()};
  } catch (error) {
    return {error: String(error)};
  }
}"""


def test_the_embedded_snippet_signs_up_from_another_origin(browser, settings: Settings, db: Database) -> None:  # noqa: ANN001
    with serve_site() as site:
        with serving(settings.model_copy(update={"embed_origins": [site.base_url]}), db) as server:
            site.add("/newsletter.html", clinic_page(server.url))
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(site.base_url + "/newsletter.html")
            page.get_by_label("Email address").fill("reader@example.org")
            page.get_by_label("Yes, send me").check()
            page.get_by_role("button", name="Subscribe").click()
            page.get_by_role("heading", name="Check your inbox").wait_for()
            assert page.url == server.url + "/subscribe"  # this app's own confirmation page
            assert page.context.cookies() == []  # nothing was set by either site
            public_page_checks(page, "embedded-sign-up-answer")

            # A script on the listed origin reads the JSON answer.
            page.goto(site.base_url + "/newsletter.html")
            answer = page.evaluate(ASK_FOR_JSON, server.url)
            assert answer["status"] == 200 and answer["json"]["ok"] is True
            assert answer["json"]["message"].startswith("Check your inbox")
            # The same page on an origin that is not listed (localhost is another host than 127.0.0.1).
            page.goto(site.base_url.replace("127.0.0.1", "localhost") + "/newsletter.html")
            refused = page.evaluate(ASK_FOR_JSON.replace("script@", "elsewhere@"), server.url)
            assert "error" in refused and "Failed to fetch" in refused["error"]
            page.close()
    with db.session() as s:
        assert set(s.scalars(select(Contact.email))) == {"reader@example.org", "script@example.org"}
        assert len(list(s.scalars(select(Subscription)))) == 2


def test_admins_find_the_snippets_on_the_settings_page(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    login = make_user(live_server.db, "admin@clinic.example", Role.ADMIN)
    context, page, elsewhere = signed_in_page(browser, live_server.url, login, next_path="/staff/settings")
    page.get_by_role("link", name="Forms for your website").click()
    snippet = page.get_by_label("Consultation request form").input_value()
    assert f'action="{live_server.url}/consultation"' in snippet
    assert page.get_by_label("Newsletter sign-up form").input_value().startswith(
        f'<form method="post" action="{live_server.url}/subscribe">')
    visited(page, "staff-settings-embed")
    assert elsewhere == []
    context.close()


def test_without_javascript_the_form_offers_the_clinics_time_zone_and_works(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 390, "height": 900}, java_script_enabled=False,
                                  timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.goto(live_server.url + "/consultation")
    assert page.get_by_label("Your time zone").input_value() == live_server.settings.default_timezone
    page.get_by_label("Your name").fill("Kenji Sato")
    page.get_by_label("Email address").fill("kenji@example.org")
    page.get_by_label("Your time zone").fill("Asia/Tokyo")  # editable by hand
    page.get_by_label(live_server.settings.consultation_consent_text).check()
    page.get_by_role("button", name="Send my request").click()
    page.get_by_role("heading", name="Thank you, we have your request").wait_for()
    context.close()
    with live_server.db.session() as s:
        lead = find_lead(s, "kenji@example.org")
        assert lead.preferred_contact == "email" and s.get(Contact, lead.contact_id).timezone == "Asia/Tokyo"
