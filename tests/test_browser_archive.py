"""The public archive in chromium on a real uvicorn server: a marketing user publishes a sent issue from
its page; a visitor finds it in /archive and reads it (axe clean, no sideways scroll at 390 px,
screenshots at 390 and 1280 px); the feed lists it. And no public page, reached as a reader reaches it,
breaks its Content Security Policy."""

from __future__ import annotations

import re
from typing import Any

import feedparser
import httpx
import pytest
from sqlalchemy import select

from newsletter.models import Delivery
from newsletter.staff.roles import Role
from newsletter.urls import archive_path, delivery_values
from newsletter.web.staff.routes import served_routes
from tests.archivekit import WALK, no_reader_in, sent_issue
from tests.liveserver import LiveServer
from tests.sendkit import add_audience
from tests.staffkit import make_user, signed_in_page, visited

pytestmark = pytest.mark.browser
SUBJECT = "Small steps for steadier days"
# Collects every CSP violation a document reports, from its first moment (before any page script).
WATCH_CSP = """window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"""


def watched_page(browser: Any, base_url: str) -> tuple[Any, Any, list[str], list[str]]:
    """A signed-out desktop page; the console's CSP complaints and requests to other hosts are kept."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    console: list[str] = []
    elsewhere: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("request", lambda r: elsewhere.append(r.url)
            if not r.url.startswith((base_url, "data:", "about:", "blob:")) else None)
    return context, page, console, elsewhere


def violations(page: Any, console: list[str]) -> list[str]:
    return list(page.evaluate("window.__csp || []")) + console


def test_marketing_publishes_an_issue_and_a_visitor_reads_it(browser: Any, live_server: LiveServer) -> None:
    db, settings = live_server.db, live_server.settings
    add_audience(db, 2)
    issue_id = sent_issue(db, settings, SUBJECT, publish=False)
    login = make_user(db, "mo@clinic.example", Role.MARKETING)

    # Staff: the issue's page offers to publish it; one click, and the page says where it is.
    context, page, elsewhere = signed_in_page(browser, live_server.url, login, next_path="/staff/")
    page.goto(f"{live_server.url}/staff/issues/{issue_id}")
    page.get_by_role("heading", level=2, name="Public archive").wait_for()
    visited(page, "staff-issue-archive")
    page.get_by_role("button", name="Publish in the archive").click()
    page.wait_for_url(f"**/staff/issues/{issue_id}#archive")
    assert "It is in the public archive now" in page.get_by_role("status").inner_text()
    assert page.get_by_role("link", name="read it there").get_attribute("href") == archive_path(issue_id, SUBJECT)
    visited(page, "staff-issue-archive-published")
    assert elsewhere == []
    context.close()

    # A visitor: the list, then the issue, as nobody's copy.
    context, page, console, elsewhere = watched_page(browser, live_server.url)
    page.goto(f"{live_server.url}/archive")
    page.get_by_role("heading", level=1, name=f"Past issues of {settings.newsletter_name}").wait_for()
    visited(page, "public-archive")
    page.get_by_role("link", name=SUBJECT).click()
    page.wait_for_url(f"{live_server.url}{archive_path(issue_id, SUBJECT)}")
    page.get_by_role("heading", level=1, name="Small Steps").wait_for()
    assert page.get_by_text("Hi there,").is_visible()
    assert page.get_by_role("link", name="a walking guide").get_attribute("href") == WALK
    assert page.get_by_role("link", name=f"Subscribe to {settings.newsletter_name}").get_attribute("href") == "/subscribe"
    no_reader_in(page.content())
    visited(page, "public-archive-issue")
    assert violations(page, console) == [] and elsewhere == []
    context.close()

    # The feed lists it, with its address.
    feed = feedparser.parse(httpx.get(f"{live_server.url}/archive/feed.atom", timeout=30).content)
    assert feed.bozo == 0 and [e.title for e in feed.entries] == [SUBJECT]
    assert feed.entries[0].link == settings.public_base_url + archive_path(issue_id, SUBJECT)


def test_no_public_page_breaks_its_content_security_policy(browser: Any, live_server: LiveServer) -> None:
    """Every public GET route of the app (from the app, with "1" for each parameter: the pages a mangled
    link shows), then the pages a reader really reaches: the sign-up form and its answer, the
    confirmation page, and an issue's unsubscribe, preferences and view-online pages, and the archive."""
    db, settings = live_server.db, live_server.settings
    add_audience(db, 1)
    issue_id = sent_issue(db, settings, SUBJECT)
    with db.session() as s:
        delivery_id = s.scalar(select(Delivery.id).where(Delivery.issue_id == issue_id))
    reader = delivery_values(settings, delivery_id, "Reader 0")
    routes = sorted({re.sub(r"\{[^}]+\}", "1", path) for path, methods in served_routes(live_server.app)
                     if "GET" in methods and not path.startswith("/staff")})
    pages = [live_server.url + p for p in routes] + [
        reader.unsubscribe_url, reader.preferences_url, reader.view_online_url,
        live_server.url + archive_path(issue_id, SUBJECT), live_server.url + "/no-such-page",
    ]
    context, page, console, elsewhere = watched_page(browser, live_server.url)
    found: dict[str, list[str]] = {}
    for url in pages:
        page.goto(url)
        page.wait_for_load_state("load")
        if problems := violations(page, console):
            found[url] = problems
        console.clear()

    # Signing up through the form, then the confirmation link from the email.
    page.goto(f"{live_server.url}/subscribe")
    page.get_by_label("Email address").fill("csp.reader@example.org")
    page.get_by_label(settings.consent_text).check()
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    found.update({"check inbox": violations(page, console)} if violations(page, console) else {})
    live_server.send_queued()
    confirm = next(re.search(r"http\S+/confirm/\S+", m.get_body(("plain",)).get_content()).group(0)
                   for m in live_server.emails() if "/confirm/" in m.get_body(("plain",)).get_content())
    page.goto(confirm)
    page.get_by_role("button", name="Yes, subscribe me").wait_for()
    found.update({"confirm": violations(page, console)} if violations(page, console) else {})
    assert found == {}, found
    assert elsewhere == []
    assert len(pages) >= 15
    context.close()
