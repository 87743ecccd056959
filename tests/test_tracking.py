"""First-party opens and clicks over HTTP, machine labels, no open redirect, the bookings webhook and
attribution along a lead's journey."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
from pydantic import SecretStr
from sqlalchemy import select, update

from newsletter.database import Database
from newsletter.models import Attribution, Delivery, Enrollment, Event, Issue, Link
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.transports import OutboxTransport
from newsletter.web.bookings_webhook import signature_for
from subscribers.db import utcnow
from subscribers.leads import add_lead, get_lead
from subscribers.models import Booking
from tests.liveserver import LiveServer
from tests.sendkit import add_audience, make_issue

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"
APPLE_PROXY = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def sent_issue(live_server: LiveServer, db: Database, tracking: str = "full") -> tuple[int, str]:
    """Send a one-recipient issue through the outbox; return the issue id and the received HTML."""
    settings = live_server.settings.model_copy(update={"tracking": tracking})
    issue_id = make_issue(db, settings)
    add_audience(db, 1)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), utcnow())
    Dispatcher(settings, db, OutboxTransport(live_server.outbox, settings)).run_until_idle()
    with db.session() as s:  # read long after delivery, as a person would
        s.execute(update(Delivery).values(submitted_at=utcnow() - timedelta(hours=1)))
    return issue_id, live_server.emails()[-1].get_body(("html",)).get_content()


def events(server: LiveServer) -> list[Event]:
    server.drained()
    with server.db.session() as s:
        return list(s.scalars(select(Event).order_by(Event.id)))


def test_links_are_rewritten_once_at_compile_time(live_server: LiveServer, db: Database) -> None:
    issue_id, html = sent_issue(live_server, db)
    clicks = re.findall(r'href="(http[^"]+/c/[^"]+)"', html)
    assert clicks and all("@" not in c and "reader" not in c for c in clicks)
    assert re.search(r'<img src="http[^"]+/o/[^"/]+/i\d+\.gif"', html)
    with db.session() as s:
        links = s.scalars(select(Link).where(Link.issue_id == issue_id).order_by(Link.position)).all()
        # The button, and its text link near the top.
        assert [link.url for link in links if link.is_booking] == [live_server.settings.booking_url] * 2
    text = live_server.emails()[-1].get_body(("plain",)).get_content()
    assert "/c/" not in text  # the plain-text part keeps the real links


def test_a_person_clicking_is_recorded_and_redirected_to_the_stored_target(live_server: LiveServer, db: Database) -> None:
    _, html = sent_issue(live_server, db)
    booking_click = re.search(r'href="(http[^"]+/c/[^"]+)"[^>]*>\s*Book a consultation', html).group(1)
    with httpx.Client(headers={"User-Agent": BROWSER}) as client:
        answer = client.get(booking_click, follow_redirects=False)
        assert answer.status_code == 302 and answer.headers["location"] == live_server.settings.booking_url
        token, link_id = booking_click.rsplit("/", 2)[-2:]
        # Tampering: a forged token opens nothing (see test_a_token_opens_only_its_own_emails_links);
        # an unknown link is a 404; a query string cannot change the target.
        forged = client.get(booking_click.replace(token, token[:-3] + "xyz"), follow_redirects=False)
        assert forged.status_code == 404 and "location" not in forged.headers
        assert client.get(booking_click.rsplit("/", 1)[0] + "/999999", follow_redirects=False).status_code == 404
        assert client.get(booking_click + "?next=https://evil.example", follow_redirects=False).headers["location"] \
            == live_server.settings.booking_url
    recorded = events(live_server)  # the genuine click and the one with a query string; not the forged token
    assert len(recorded) == 2
    for click in recorded:
        assert click.type == "click" and not click.machine and click.delivery_id and click.contact_id
        assert click.url == live_server.settings.booking_url and click.source == "first_party"


def test_machines_are_labelled_not_counted(live_server: LiveServer, db: Database) -> None:
    _, html = sent_issue(live_server, db)
    pixel = re.search(r'<img src="(http[^"]+/o/[^"]+\.gif)"', html).group(1)
    clicks = re.findall(r'href="(http[^"]+/c/[^"]+)"', html)
    with httpx.Client() as client:
        assert client.get(pixel, headers={"User-Agent": APPLE_PROXY}).headers["content-type"] == "image/gif"
        client.get(pixel, headers={"User-Agent": BROWSER})
        client.head(clicks[0], headers={"User-Agent": BROWSER})
        client.get(clicks[0], headers={"User-Agent": "Mozilla/5.0 (compatible; Proofpoint URL Defense)"}, follow_redirects=False)
    seen = [(e.type, e.machine, e.reason) for e in events(live_server)]
    assert seen == [("open", True, "Apple Mail Privacy Protection"), ("open", False, None),
                    ("click", True, "HEAD request"), ("click", True, "known scanner or proxy")]


def test_every_link_at_once_and_clicks_right_after_sending_are_machine(live_server: LiveServer, db: Database) -> None:
    _, html = sent_issue(live_server, db)
    clicks = list(dict.fromkeys(re.findall(r'href="(http[^"]+/c/[^"]+)"', html)))
    assert len(clicks) >= 3
    with httpx.Client(headers={"User-Agent": BROWSER}) as client:
        for url in clicks[:3]:
            client.get(url, follow_redirects=False)
    assert all(e.machine and e.reason == "clicked every link at once" for e in events(live_server))
    with db.session() as s:
        s.execute(update(Delivery).values(submitted_at=utcnow()))  # "delivered" a moment ago
    httpx.get(clicks[0], headers={"User-Agent": BROWSER}, follow_redirects=False)
    assert events(live_server)[-1].reason == "clicked within seconds of sending"


def test_anonymous_tracking_keeps_counts_only(live_server: LiveServer, db: Database) -> None:
    issue_id, html = sent_issue(live_server, db, tracking="anonymous")
    assert "/c/anon/" in html and "/o/anon/" in html
    click = re.search(r'href="(http[^"]+/c/anon/\d+)"', html).group(1)
    httpx.get(click, headers={"User-Agent": BROWSER}, follow_redirects=False)
    (event,) = events(live_server)
    assert event.issue_id == issue_id and event.delivery_id is None and event.contact_id is None


def test_tracking_off_leaves_links_alone(live_server: LiveServer, db: Database) -> None:
    _, html = sent_issue(live_server, db, tracking="off")
    assert "/c/" not in html and "/o/" not in html and live_server.settings.booking_url in html


def _booking_server(live_server: LiveServer, secret: str = "s3cret-for-tests") -> str:
    live_server.app.state.settings = live_server.settings.model_copy(update={"bookings_webhook_secret": SecretStr(secret)})
    return secret


def test_bookings_webhook_is_signed_and_idempotent(live_server: LiveServer, db: Database) -> None:
    url = f"{live_server.url}/webhooks/bookings"
    assert httpx.post(url, content=b"{}").status_code == 404  # off until a secret is set
    secret = _booking_server(live_server)
    with db.session() as s:
        add_lead(s, "jo@example.org", default_timezone="UTC", source="web_form", consent_method="form", origin="api")
    body = json.dumps({"email": "jo@example.org", "external_id": "cal-77", "booked_for": "2026-12-01T10:00:00Z"}).encode()
    good = {"X-Signature": signature_for(secret, body), "Content-Type": "application/json"}
    first = httpx.post(url, content=body, headers=good)
    again = httpx.post(url, content=body, headers=good)
    assert (first.status_code, first.json()["created"]) == (201, True)
    assert (again.status_code, again.json()["created"]) == (200, False)
    assert httpx.post(url, content=body, headers={"X-Signature": "sha256=" + "0" * 64}).status_code == 403
    assert httpx.post(url, content=body + b" ", headers=good).status_code == 403  # a changed body
    bad = b'{"email": "jo@example.org"}'
    assert httpx.post(url, content=bad, headers={"X-Signature": signature_for(secret, bad)}).status_code == 400
    huge = b" " * (live_server.settings.webhook_max_bytes + 1)
    assert httpx.post(url, content=huge, headers={"X-Signature": signature_for(secret, huge)}).status_code == 413
    with db.session() as s:
        assert len(s.scalars(select(Booking)).all()) == 1 and get_lead(s, "jo@example.org").stage == "booked"


def test_a_leads_journey_ends_in_an_attributed_booking(live_server: LiveServer, db: Database) -> None:
    """lead -> nurture emails -> a human click on the booking button -> a booking via the webhook."""
    from newsletter.due import run_round
    from newsletter.sequences.definition import parse_definition
    from newsletter.sequences.install import install

    settings = live_server.settings
    start = utcnow() - timedelta(days=3)
    always = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"}
    definition = {"name": "Follow-up", "trigger": {"type": "lead_created"}, "window": always,
                  "goals": [{"type": "booking"}],
                  "steps": [{"delay": "0m", "subject": "About a first visit", "body": "Hello."},
                            {"delay": "1d", "subject": "Common questions", "body": "Answers."},
                            {"delay": "1d", "subject": "Still thinking it over?", "body": "Bye."},
                            {"delay": "10d", "subject": "A last note", "body": "Bye."}]}
    with db.session() as s:
        install(s, settings, parse_definition(definition, source="test"), now=start - timedelta(minutes=1))
        add_lead(s, "sam@example.org", default_timezone="UTC", source="campaign", consent_method="form", origin="api")
        s.execute(update(get_lead(s, "sam@example.org").__class__).values(requested_at=start))
    transport = OutboxTransport(live_server.outbox, settings)
    for day in range(3):  # three days of the scheduler's rounds
        moment = start + timedelta(days=day, minutes=5)
        with db.session() as s:
            run_round(s, settings, moment)
        Dispatcher(settings, db, transport, clock=lambda m=moment: m).run_until_idle()
    assert [m["Subject"] for m in live_server.emails()] == ["About a first visit", "Common questions", "Still thinking it over?"]
    second = live_server.emails()[1].get_body(("html",)).get_content()
    button = re.search(r'href="(http[^"]+/c/[^"]+)"[^>]*>\s*Book a consultation', second).group(1)
    with db.session() as s:
        s.execute(update(Delivery).values(submitted_at=start))
    assert httpx.get(button, headers={"User-Agent": BROWSER}, follow_redirects=False).status_code == 302
    live_server.drained()  # the click is in the events table within a moment (minutes before anyone books)
    secret = _booking_server(live_server)
    body = json.dumps({"email": "sam@example.org", "external_id": "cal-1"}).encode()
    assert httpx.post(f"{live_server.url}/webhooks/bookings", content=body,
                      headers={"X-Signature": signature_for(secret, body)}).status_code == 201
    with db.session() as s:
        (attribution,) = s.scalars(select(Attribution)).all()
        step_of_second = s.scalar(select(Delivery.step_id).order_by(Delivery.id).offset(1).limit(1))
        assert attribution.kind == "click" and attribution.step_id == step_of_second
        assert s.scalar(select(Enrollment.exit_reason)) == "goal: booking"
    with db.session() as s:  # nothing more goes out after the booking
        run_round(s, settings, start + timedelta(days=30))
    Dispatcher(settings, db, transport, clock=lambda: start + timedelta(days=30)).run_until_idle()
    assert len(live_server.emails()) == 3


def test_tracking_is_chosen_per_issue_and_per_sequence(settings, tmp_path) -> None:
    from typer.testing import CliRunner

    from newsletter.cli import app
    from newsletter.models import Sequence, SequenceStep
    from tests.conftest import SAMPLE_POST

    runner = CliRunner()
    post_id = runner.invoke(app, ["posts", "import", str(SAMPLE_POST)]).stdout.strip()
    issue_id = runner.invoke(app, ["issues", "create", "--post", post_id, "--subject", "Hello",
                                   "--tracking", "off"]).stdout.splitlines()[0]
    assert runner.invoke(app, ["issues", "create", "--post", post_id, "--tracking", "sometimes"]).exit_code == 2
    from newsletter.cli.common import open_database

    db = open_database(settings)
    with db.session() as s:
        issue = s.get(Issue, int(issue_id))
        assert issue.tracking == "off" and "/c/" not in issue.html
    assert runner.invoke(app, ["issues", "tracking", issue_id, "anonymous"]).exit_code == 0
    with db.session() as s:
        assert "/c/anon/" in s.get(Issue, int(issue_id)).html
    assert runner.invoke(app, ["sequences", "tracking", "welcome", "off"]).exit_code == 0
    with db.session() as s:
        welcome = s.scalar(select(Sequence).where(Sequence.name == "Welcome"))
        htmls = s.scalars(select(SequenceStep.html).where(SequenceStep.sequence_id == welcome.id)).all()
        assert welcome.tracking == "off" and htmls and all("/c/" not in h and "/o/" not in h for h in htmls)
