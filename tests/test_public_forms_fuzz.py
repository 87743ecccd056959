"""Fuzzing the public forms over real HTTP (the real app under uvicorn): sign-up, resend, preferences,
unsubscribe and confirm, with arbitrary field values (control characters, huge strings, odd unicode,
encoded words), missing and repeated fields, raw bodies that are not valid form encoding, and
arbitrary link tokens. Whatever comes in: never a 500, a refused sign-up says why beside the field
it is about, and nothing is half stored (every contact has its subscription and consent record, a
pending one its queued confirmation email, and every stored name and address follows the rules)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import html as lxml_html
from sqlalchemy import and_, exists, func, or_, select

from newsletter import optin, urls
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import ConfirmationEmail
from newsletter.web.ratelimit import RateLimiter
from subscribers.consent import Proof
from subscribers.contacts import find_contact, sendable_email
from subscribers.models import ConsentEvent, Contact, Subscription
from subscribers.names import clean_name
from tests.audience import subscriber
from tests.fuzzing import fuzz_settings
from tests.liveserver import LiveServer

pytestmark = pytest.mark.fuzz
TIMEOUT = 10.0  # seconds per request: a hang fails the example instead of stalling the run
ANSWERS = {200, 400, 404, 409, 410}  # 429 never: the rate limit is lifted for the fuzzing
# A path that is no token at all ("..", "x/") is the router's: a redirect, 404 or 405, never a 500.
ROUTED = ANSWERS | {307, 405}

ODD = st.sampled_from([
    "", " ", "\x00", "\r\n", "a@b", "@", "a@@b.example", "josé@example.com", "ana@bücher.example",
    "=?utf-8?q?x=0D=0ABcc:_evil@example.com?=", "x\r\nBcc: evil@example.com", "\u202eevil", "\ufeff",
    "%00", "%%first_name%%", "<script>alert(1)</script>", "new@example.org", "reader@example.org",
    "READER@EXAMPLE.ORG", "x" * 300 + "@example.org", "yes", "One-Click", "1", "-1", "99999999999999999999",
])
TEXT = st.one_of(ODD, st.text(max_size=60), st.text(min_size=2000, max_size=20000), st.emails())
# A field: missing, once, or repeated.
FIELD = st.one_of(TEXT.map(lambda v: [v]), st.lists(TEXT, min_size=2, max_size=3))


def form(**fields: Any) -> st.SearchStrategy[dict[str, list[str]]]:
    return st.fixed_dictionaries({}, optional={name: FIELD for name in fields}) | st.dictionaries(TEXT, FIELD, max_size=4)


def once_or_more(values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.one_of(values.map(lambda v: [v]), st.lists(values, min_size=2, max_size=3))


# Sign-ups that mostly get past the consent box with a new, valid address, so that hostile names
# reach the storing and the sending, not only the first check.
ADDRESSES = st.one_of(st.emails(), st.emails(), st.sampled_from([
    "new@example.org", "reader@example.org", "josé@example.com", "ana@bücher.example", " Mixed.Case@Example.ORG "]),
    TEXT)
HOSTILE = st.text(st.sampled_from("Ana \r\n\t\x00\x07\x1b\x7f\u0085\u2028\u2029\u202e\ufeff=?_:@<>\",;%é"),
                  max_size=40)
NAMES = st.one_of(HOSTILE, HOSTILE, TEXT, st.text(min_size=195, max_size=210))
SIGN_UPS = st.one_of(
    st.fixed_dictionaries({"email": once_or_more(ADDRESSES), "name": once_or_more(NAMES), "consent": st.just(["yes"])},
                          optional={"website": FIELD}),
    st.fixed_dictionaries({"email": once_or_more(ADDRESSES), "name": once_or_more(NAMES), "consent": st.just(["yes"])}),
    form(email=1, name=1, consent=1, website=1),
)


RAW_BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"email=%ZZ&name=%", b"email=%ff%fe&consent=yes", b"=&&==", b"name=" + b"%0D%0A" * 500,
                     b"email=a%40b.example&consent=yes&email=\xff"]),
)
CONTENT_TYPES = st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                 "multipart/form-data", "text/plain", "application/json"])


@pytest.fixture
def site(live_server: LiveServer, db: Database, settings: Settings) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """The server with its rate limit lifted, a confirmed reader and a pending one, and the links
    their emails would carry."""
    live_server.app.state.limiter = RateLimiter(10**9, 3600)  # type: ignore[attr-defined]
    with db.session() as s:
        reader = subscriber(s, settings, "reader@example.org", name="Reader")
        pending = optin.sign_up(s, settings, "pending@example.org", name="Pen", proof=Proof("form"))
        sub = s.get(Subscription, s.get(ConfirmationEmail, pending.confirmation_id).subscription_id)
        links = {
            "preferences": urls.preferences_url(settings, reader).rsplit("/", 1)[1],
            "unsubscribe": urls.unsubscribe_token(settings, reader, None),
            "confirm": urls.page_tokens(settings).make("confirm", s=sub.id),
        }
    with httpx.Client(base_url=live_server.url, timeout=TIMEOUT) as client:
        yield client, links


def assert_nothing_half_stored(db: Database) -> None:
    with db.session() as s:
        no_subscription = ~exists().where(Subscription.contact_id == Contact.id)
        no_consent = ~exists().where(ConsentEvent.contact_id == Contact.id)
        assert s.scalar(select(func.count()).where(or_(no_subscription, no_consent))) == 0
        unqueued = and_(Subscription.status == "pending",
                        ~exists().where(ConfirmationEmail.subscription_id == Subscription.id))
        assert s.scalar(select(func.count()).select_from(Subscription).where(unqueued)) == 0
        for email, name in s.execute(select(Contact.email, Contact.name)):
            assert sendable_email(email) == email
            assert name is None or clean_name(name) == name


def assert_errors_beside_fields(response: httpx.Response) -> None:
    page = lxml_html.document_fromstring(response.text)
    errors = page.find_class("error")
    assert errors, "a refused sign-up must say why"
    for error in errors:
        field = error.get("id", "").removesuffix("-error")
        assert page.get_element_by_id(field).get("aria-describedby") == f"{field}-error"


def token_strategy(kind: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(kind), st.text(max_size=80), st.sampled_from(["", ".", "..", "%2F", "a" * 5000]))


def path_for(links: dict[str, str], prefix: str, token: str) -> str:
    return f"{prefix}/{quote(links.get(token, token), safe='') or 'x'}"


@fuzz_settings
@given(fields=SIGN_UPS)
def test_sign_up(site: tuple[httpx.Client, dict[str, str]], db: Database, fields: dict[str, list[str]]) -> None:
    client, _ = site
    response = client.post("/subscribe", data=fields)
    assert response.status_code in ANSWERS
    if response.status_code == 400:
        assert_errors_beside_fields(response)
    assert_nothing_half_stored(db)
    given_values = {key: values[-1] for key, values in fields.items()}  # a repeated field: the last one counts
    if response.status_code == 200 and given_values.get("consent") == "yes" and not given_values.get("website"):
        with db.session() as s:
            assert find_contact(s, given_values["email"]) is not None  # a sign-up said yes: it is stored


@fuzz_settings
@given(body=RAW_BODIES, content_type=CONTENT_TYPES, path=st.sampled_from(["/subscribe", "/confirm/resend"]))
def test_bodies_that_are_not_forms(site: tuple[httpx.Client, dict[str, str]], db: Database, body: bytes,
                                   content_type: str, path: str) -> None:
    client, _ = site
    response = client.post(path, content=body, headers={"Content-Type": content_type})
    assert response.status_code in ANSWERS
    assert_nothing_half_stored(db)


@fuzz_settings
@given(fields=form(email=1))
def test_resend(site: tuple[httpx.Client, dict[str, str]], db: Database, fields: dict[str, list[str]]) -> None:
    client, _ = site
    response = client.post("/confirm/resend", data=fields)
    assert response.status_code == 200 and "Check your inbox" in response.text  # the same for any address
    assert_nothing_half_stored(db)


@fuzz_settings
@given(token=token_strategy("preferences"), fields=form(list=1, **{"frequency-1": 1, "frequency-x": 1}))
def test_preferences(site: tuple[httpx.Client, dict[str, str]], db: Database, token: str,
                     fields: dict[str, list[str]]) -> None:
    client, links = site
    path = path_for(links, "/preferences", token)
    assert client.get(path).status_code in ROUTED
    assert client.post(path, data=fields).status_code in ROUTED
    assert_nothing_half_stored(db)


@fuzz_settings
@given(token=token_strategy("unsubscribe"), fields=form(**{"List-Unsubscribe": 1}))
def test_unsubscribe(site: tuple[httpx.Client, dict[str, str]], db: Database, token: str,
                     fields: dict[str, list[str]]) -> None:
    client, links = site
    path = path_for(links, "/u", token)
    assert client.get(path).status_code in ROUTED
    assert client.post(path, data=fields).status_code in ROUTED
    assert_nothing_half_stored(db)
    with db.session() as s:
        assert find_contact(s, "reader@example.org") is not None  # leaving never deletes anyone


@fuzz_settings
@given(token=token_strategy("confirm"), fields=form(email=1, name=1))
def test_confirm(site: tuple[httpx.Client, dict[str, str]], db: Database, token: str,
                 fields: dict[str, list[str]]) -> None:
    client, links = site
    path = path_for(links, "/confirm", token)
    assert client.get(path).status_code in ROUTED
    assert client.post(path, data=fields).status_code in ROUTED
    assert_nothing_half_stored(db)
