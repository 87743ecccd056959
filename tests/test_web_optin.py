"""Double opt-in, preferences and unsubscribe over real HTTP, with the outbox transport."""

from __future__ import annotations

import re

import httpx
import pytest
from lxml import html as lxml_html
from sqlalchemy import func, select

from newsletter.database import Database
from subscribers.models import ConsentEvent, Contact, Subscription
from subscribers.suppression import suppress
from tests.liveserver import LiveServer

SIGN_UP = {"email": "Reader@Example.org", "name": "Robin", "consent": "yes"}


def visible_text(response: httpx.Response) -> str:
    return " ".join(lxml_html.document_fromstring(response.text).text_content().split())


def link_in(message, path: str) -> str:
    text = message.get_body(("plain",)).get_content()
    match = re.search(rf"https?://\S+/{path}/\S+", text)
    assert match, text
    return match.group(0)


def subscription(db: Database) -> Subscription:
    with db.session() as s:
        return s.scalar(select(Subscription))


def events(db: Database) -> list[tuple[str, str]]:
    with db.session() as s:
        return [(e.action, e.method) for e in s.scalars(select(ConsentEvent).order_by(ConsentEvent.id))]


def test_double_opt_in_round_trip(live_server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        form = client.get("/subscribe")
        assert form.status_code == 200 and live_server.settings.consent_text in visible_text(form)
        answer = client.post("/subscribe", data=SIGN_UP)
        assert answer.status_code == 200 and "Check your inbox" in answer.text
        assert live_server.emails() == []  # queued in the sign-up's transaction, not sent by the request

        assert live_server.send_queued().one_offs == 1  # what serve's dispatchers do in the background
        (confirmation,) = live_server.emails()
        assert confirmation["To"].addresses[0].addr_spec == "Reader@example.org"
        assert confirmation["List-Unsubscribe"] is None  # transactional: no list headers
        assert "reader" not in confirmation["Subject"].lower()
        link = link_in(confirmation, "confirm")
        assert "@" not in link and "Reader" not in link

        page = client.get(link)  # a link scanner's GET changes nothing
        assert page.status_code == 200 and "Yes, subscribe me" in page.text
        assert subscription(db).status == "pending"

        done = client.post(link)
        assert done.status_code == 200 and "You're subscribed" in done.text
        assert subscription(db).status == "confirmed"
        again = client.post(link)  # a double click
        assert again.status_code == 200 and "You're subscribed" in again.text
    assert events(db) == [("requested", "form"), ("confirmed", "email_link")]
    with db.session() as s:
        first = s.scalar(select(ConsentEvent).order_by(ConsentEvent.id))
        assert first.form_id == "subscribe-page" and first.consent_text_hash and first.ip_address is None
        assert first.user_agent is None  # not kept unless the setting turns it on


def test_the_form_answers_the_same_for_known_and_unknown_addresses(live_server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        new = client.post("/subscribe", data={**SIGN_UP, "email": "new@example.org"})
        known = client.post("/subscribe", data={**SIGN_UP, "email": "new@example.org"})
        with db.session() as s:
            suppress(s, "gone@example.org", "hard_bounce")
        suppressed = client.post("/subscribe", data={**SIGN_UP, "email": "gone@example.org"})
    live_server.send_queued()
    assert new.status_code == known.status_code == suppressed.status_code == 200
    assert new.text == known.text == suppressed.text
    assert len(live_server.emails()) == 1  # the repeat is rate limited; the suppressed address gets nothing
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 1  # nothing stored for the suppressed one


def test_bad_input_is_explained_and_nothing_is_stored(live_server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        bad = client.post("/subscribe", data={**SIGN_UP, "email": "not-an-address"})
        no_consent = client.post("/subscribe", data={"email": "ok@example.org"})
        bot = client.post("/subscribe", data={**SIGN_UP, "website": "http://spam.example"})
    live_server.send_queued()
    assert bad.status_code == 400 and "like name@example.com" in bad.text and 'value="not-an-address"' in bad.text
    assert no_consent.status_code == 400 and "tick the box" in no_consent.text
    assert bot.status_code == 200 and "Check your inbox" in bot.text
    assert live_server.emails() == []
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 0


def test_public_forms_are_rate_limited(live_server: LiveServer) -> None:
    from newsletter.web.ratelimit import RateLimiter

    live_server.app.state.limiter = RateLimiter(3, 3600)  # as NEWSLETTER_PUBLIC_FORM_LIMIT_PER_HOUR=3 would
    with httpx.Client(base_url=live_server.url) as client:
        codes = [client.post("/subscribe", data={**SIGN_UP, "email": f"r{n}@example.org"}).status_code for n in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    live_server.send_queued()
    assert len(live_server.emails()) == 3


def test_expired_and_tampered_links(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        client.post("/subscribe", data=SIGN_UP)
        live_server.send_queued()
        link = link_in(live_server.emails()[0], "confirm")
        tampered = client.get(link[:-3] + "xyz")
        assert tampered.status_code == 404 and "does not work" in tampered.text
        monkeypatch.setattr(live_server.settings, "confirm_link_hours", -1)  # every link is now too old
        expired = client.post(link)
        assert expired.status_code == 410 and "has expired" in expired.text and "Send me a new link" in expired.text


def test_preferences_and_unsubscribe_pages(live_server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        client.post("/subscribe", data=SIGN_UP)
        live_server.send_queued()
        confirmed = client.post(link_in(live_server.emails()[0], "confirm"))
        prefs = re.search(r'href="(http[^"]+/preferences/[^"]+)"', confirmed.text).group(1)
        page = client.get(prefs)
        assert page.status_code == 200 and "Every issue" in page.text and "checked" in page.text
        list_id = subscription(db).list_id
        saved = client.post(prefs, data={"list": str(list_id), f"frequency-{list_id}": "monthly"})
        assert saved.status_code == 200 and "Your preferences are saved" in saved.text
        assert subscription(db).frequency == "monthly"

        unsubscribe_all = re.search(r'action="(/u/[^"]+)"', saved.text).group(1)
        scanner = client.get(unsubscribe_all)  # a GET shows a button and changes nothing
        assert scanner.status_code == 200 and "<button" in scanner.text
        assert subscription(db).status == "confirmed"
        one_click = client.post(unsubscribe_all, data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200 and "You're unsubscribed" in one_click.text  # 200, no redirect
        assert subscription(db).status == "unsubscribed"
        assert client.post(unsubscribe_all).status_code == 200  # repeated: still fine, nothing more recorded
        after = client.get(prefs)
        assert "unsubscribed from all our emails" in after.text
    assert events(db)[-2:] == [("withdrawn", "one_click"), ("withdrawn", "one_click")]
    with db.session() as s:
        assert s.scalar(select(Contact)).status == "unsubscribed"


def test_leaving_one_list_from_preferences_and_coming_back(live_server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        client.post("/subscribe", data=SIGN_UP)
        live_server.send_queued()
        confirmed = client.post(link_in(live_server.emails()[0], "confirm"))
        prefs = re.search(r'href="(http[^"]+/preferences/[^"]+)"', confirmed.text).group(1)
        client.post(prefs, data={})  # nothing ticked: leave the list
        assert subscription(db).status == "unsubscribed"
        list_id = subscription(db).list_id
        client.post(prefs, data={"list": str(list_id)})  # ticked again on the page that shows the consent text
        assert subscription(db).status == "confirmed"


def test_pages_send_privacy_headers(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/subscribe")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_list_ids_in_the_preferences_form_that_are_not_ids_name_no_list(live_server: LiveServer, db: Database) -> None:
    """"²" is a digit to str.isdigit but not an id, and a 30-digit id fits no column: both gave a 500."""
    with httpx.Client(base_url=live_server.url) as client:
        client.post("/subscribe", data=SIGN_UP)
        live_server.send_queued()
        confirmed = client.post(link_in(live_server.emails()[0], "confirm"))
        prefs = re.search(r'href="(http[^"]+/preferences/[^"]+)"', confirmed.text).group(1)
        list_id = subscription(db).list_id
        odd = client.post(prefs, data={"list": [str(list_id), "\u00b2", "9" * 30], "frequency-\u00b2": "monthly",
                                       f"frequency-{'9' * 30}": "monthly"})
        assert odd.status_code == 200 and "Your preferences are saved" in odd.text
        assert subscription(db).status == "confirmed" and subscription(db).frequency != "monthly"
