"""The public URLs of sent emails (/c/, /o/, /v/, /u/, /preferences/, /confirm/) against tampering:
a token opens only the links of its own email, and no path segment, however long or odd, gets a
500 or records anything."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Event, Issue, Link
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.transports import OutboxTransport
from newsletter.web.ratelimit import RateLimiter
from subscribers.db import utcnow
from subscribers.models import ConsentEvent, Subscription
from tests.fuzzing import fuzz_settings
from tests.liveserver import LiveServer
from tests.sendkit import add_audience, make_issue

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"


@dataclass
class Emails:
    token: str  # the delivery token of one email of issue ``sent``
    sent: int  # a full-tracking issue that went out
    other_sent: int  # another one that went out too
    draft: int  # never sent
    anonymous: int  # went out under anonymous tracking
    anonymous_draft: int


def send(live_server: LiveServer, db: Database, issue_id: int) -> None:
    with db.session() as s:
        schedule.start_now(s, live_server.settings, s.get(Issue, issue_id), utcnow())
    Dispatcher(live_server.settings, db, OutboxTransport(live_server.outbox, live_server.settings)).run_until_idle()


@pytest.fixture
def emails(live_server: LiveServer, db: Database) -> Emails:
    settings = live_server.settings
    anonymous = settings.model_copy(update={"tracking": "anonymous"})
    add_audience(db, 1)
    sent = make_issue(db, settings)
    send(live_server, db, sent)
    html = live_server.emails()[-1].get_body(("html",)).get_content()
    token = re.search(r'href="http[^"]+/c/([^/"]+)/\d+"', html).group(1)
    other_sent = make_issue(db, settings, "Another week")
    send(live_server, db, other_sent)
    anonymous_sent = make_issue(db, anonymous, "Counted, not followed")
    send(live_server, db, anonymous_sent)
    return Emails(token, sent, other_sent, make_issue(db, settings, "Not yet"), anonymous_sent,
                  make_issue(db, anonymous, "Not yet either"))


def link_ids(db: Database, issue_id: int) -> list[int]:
    with db.session() as s:
        return list(s.scalars(select(Link.id).where(Link.issue_id == issue_id).order_by(Link.id)))


def recorded(db: Database) -> tuple[int, int, list[str]]:
    """What a request could have changed: events, consent history, subscription states."""
    with db.session() as s:
        return (s.scalar(select(func.count()).select_from(Event)) or 0,
                s.scalar(select(func.count()).select_from(ConsentEvent)) or 0,
                sorted(s.scalars(select(Subscription.status))))


def is_clear_404(answer: httpx.Response) -> bool:
    return (answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
            and "does not" in answer.text and "Traceback" not in answer.text)


def test_a_token_opens_only_its_own_emails_links(live_server: LiveServer, db: Database, emails: Emails) -> None:
    base = live_server.url
    before = recorded(db)
    with httpx.Client(headers={"User-Agent": BROWSER}) as client:
        # Another issue's link, a draft's link, with this email's token: like an unknown link.
        for issue_id in (emails.other_sent, emails.draft, emails.anonymous, emails.anonymous_draft):
            for link_id in link_ids(db, issue_id):
                answer = client.get(f"{base}/c/{emails.token}/{link_id}", follow_redirects=False)
                assert is_clear_404(answer) and "location" not in answer.headers, (issue_id, link_id)
        # "anon" opens no link of a full-tracking email, nor of an anonymous draft.
        for issue_id in (emails.sent, emails.draft, emails.anonymous_draft):
            for link_id in link_ids(db, issue_id):
                assert is_clear_404(client.get(f"{base}/c/anon/{link_id}", follow_redirects=False))
        # A forged token opens nothing either.
        own = link_ids(db, emails.sent)
        assert is_clear_404(client.get(f"{base}/c/{emails.token[:-2]}AA/{own[0]}", follow_redirects=False))
        # Pixels of other emails with this token count nothing.
        for issue_id in (emails.other_sent, emails.draft, emails.anonymous, emails.anonymous_draft):
            assert client.get(f"{base}/o/{emails.token}/i{issue_id}.gif").status_code == 200
        for issue_id in (emails.sent, emails.other_sent, emails.draft, emails.anonymous_draft):
            assert client.get(f"{base}/o/anon/i{issue_id}.gif").status_code == 200
        live_server.drained()
        assert recorded(db) == before
        assert client.get(f"{base}/o/anon/i{emails.anonymous}.gif").status_code == 200

        # The email's own links still work and are recorded, as is an anonymous email's "anon" link.
        answer = client.get(f"{base}/c/{emails.token}/{own[0]}", follow_redirects=False)
        assert answer.status_code == 302
        anonymous_link = link_ids(db, emails.anonymous)[0]
        assert client.get(f"{base}/c/anon/{anonymous_link}", follow_redirects=False).status_code == 302
    live_server.drained()
    with db.session() as s:
        clicks = s.execute(select(Event.issue_id, Event.link_id, Event.delivery_id.is_not(None))
                           .where(Event.type == "click").order_by(Event.id)).all()
        opens = s.execute(select(Event.issue_id, Event.delivery_id).where(Event.type == "open")).all()
    assert clicks == [(emails.sent, own[0], True), (emails.anonymous, anonymous_link, False)]
    assert opens == [(emails.anonymous, None)]  # the anonymous email's own pixel, counted for nobody


MALFORMED = [
    "/c/{token}/" + "9" * 30, "/c/{token}/99999999999999999999", "/c/{token}/2147483648", "/c/anon/" + "1" * 25,
    "/c/{token}/0", "/c/{token}/-1", "/c/{token}/%C2%B2", "/c/{token}/%D9%A3", "/c/{token}/1e3", "/c/{token}/%201",
    "/o/{token}/i" + "9" * 30 + ".gif", "/o/anon/s" + "9" * 30 + ".gif", "/o/{token}/i%C2%B2.gif", "/o/{token}/x1.gif",
    "/o/{token}/i.gif", "/c/{token}", "/c/{token}/1/2", "/o/{token}/i1",
    "/v/" + "9" * 30, "/v/" + "9" * 30 + ".AAAA", "/u/" + "9" * 30, "/preferences/" + "9" * 30, "/confirm/" + "9" * 30,
]


def test_malformed_and_out_of_range_ids_get_a_clear_404(live_server: LiveServer, db: Database, emails: Emails) -> None:
    before = recorded(db)
    for path in MALFORMED:
        url = live_server.url + path.format(token=emails.token)
        assert is_clear_404(httpx.get(url, follow_redirects=False)), path
        if path.startswith(("/c/", "/o/")):  # the tracking routes answer HEAD too (link scanners use it)
            assert httpx.head(url, follow_redirects=False).status_code == 404, path
    assert recorded(db) == before


def segments(emails: Emails) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(min_size=1, max_size=40),
        st.from_regex(r"\A[0-9]{1,45}\Z"),
        st.from_regex(r"\A[is][0-9]{0,45}(\.gif)?\Z"),
        st.sampled_from(["anon", emails.token, emails.token + "x", "0", "-1", ".", "..", "%", "\x00"]),
        st.builds(lambda cut, tail: emails.token[:cut] + tail, st.integers(0, len(emails.token)), st.text(max_size=8)),
    )


@pytest.mark.fuzz
def test_fuzz_public_email_urls_never_fail_or_record(live_server: LiveServer, db: Database, emails: Emails) -> None:
    live_server.app.state.limiter = RateLimiter(10**9, 3600)  # type: ignore[attr-defined]  # the forms' limit is not under test
    working = {str(i) for i in link_ids(db, emails.sent) + link_ids(db, emails.anonymous)}
    before = recorded(db)
    client = httpx.Client(base_url=live_server.url, headers={"User-Agent": BROWSER}, timeout=30)

    @fuzz_settings
    @given(first=segments(emails), second=segments(emails))
    def check(first: str, second: str) -> None:
        # The pairings that may record something: a token with its own email's link or pixel.
        assume(not (first in (emails.token, "anon") and (second in working or second.startswith(("i", "s")))))
        a, b = quote(first, safe=""), quote(second, safe="")
        requests = [("GET", f"/c/{a}/{b}"), ("HEAD", f"/c/{a}/{b}"), ("GET", f"/o/{a}/{b}.gif"), ("GET", f"/v/{a}")]
        # The POSTs read their token as the pages do, and more; a genuine token may unsubscribe (its job).
        method = "GET" if first == emails.token else "POST"
        requests += [(method, f"/u/{a}"), (method, f"/preferences/{a}"), (method, f"/confirm/{a}")]
        for method, path in requests:
            answer = client.request(method, path, follow_redirects=False)
            assert answer.status_code < 500, (method, path, answer.status_code)
            if answer.status_code == 404 and method != "HEAD":
                assert is_clear_404(answer), (method, path, answer.text[:200])

    try:
        check()
    finally:
        client.close()
    live_server.drained()
    assert recorded(db) == before


def test_only_the_one_spelling_of_a_delivery_token_is_genuine(settings: Settings) -> None:
    """Base64 leaves the low bits of a signature's last character unused: a token with that character
    changed to one that decodes the same must not pass for the real one."""
    from newsletter.urls import delivery_from_token, delivery_token

    token = delivery_token(settings, 42)
    assert delivery_from_token(settings, token) == 42
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    twins = [token[:-1] + c for c in alphabet if c != token[-1] and alphabet.index(c) >> 2 == last >> 2]
    assert twins, "a 32-byte signature leaves two unused bits in its last character"
    assert [delivery_from_token(settings, twin) for twin in twins] == [None] * len(twins)
