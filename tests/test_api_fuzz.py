"""Fuzzing the REST API over real HTTP (the real app under uvicorn): every operation that takes a body
gets arbitrary JSON (odd text, huge strings, NUL, lone surrogates, wrong types, deep nesting, fields
it does not have) and raw bodies that are not JSON. Whatever comes in: never a 500, every answer is
one the served OpenAPI description lists for that operation (body validated against it), and what
is stored follows the rules (addresses sendable, names clean)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.web.ratelimit import RateLimiter
from subscribers.contacts import sendable_email
from subscribers.models import Contact
from subscribers.names import clean_name
from tests.apikit import ALL_SCOPES, API, Described, bearer, described, make_token
from tests.fuzzing import fuzz_settings, time_limit
from tests.contactskit import BACKENDS, serve_on
from tests.leadskit import web_lead
from tests.liveserver import LiveServer

pytestmark = pytest.mark.fuzz

ODD = st.sampled_from([
    "", " ", "\x00", "a\x00b@example.org", "\ud800", "\r\n", "josé@example.com", "ana@bücher.example",
    "x\r\nBcc: evil@example.com", "=?utf-8?q?x=0D=0ABcc:_evil@example.com?=", "newsletter", "no-such-list",
    "booked", "lost", "web_form", "2026-12-10T10:00:00", "2026-12-10T10:00:00-08:00", "9999-12-31T23:00:00-05:00",
    "weekday_mornings", "+1 415 555 0100", "ana@example.org", "x" * 5000,
])
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                   st.floats(allow_nan=False, allow_infinity=False), ODD, st.text(max_size=40))
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                         max_size=3), max_leaves=8)
FIELDS = ["email", "name", "timezone", "tags", "custom_fields", "lists", "consent", "list", "all_lists", "source",
          "phone", "preferred_contact", "requested_time", "utm", "stage", "external_id", "lead_id", "booked_for",
          "proof", "text", "version"]
BODY = st.one_of(VALUE, st.dictionaries(st.sampled_from(FIELDS), VALUE, max_size=6))
OPERATIONS = [("POST", "/contacts"), ("POST", "/contacts/{contact}/subscriptions"),
              ("POST", "/contacts/{contact}/unsubscribe"), ("POST", "/leads"), ("PUT", "/leads/{lead}/stage"),
              ("POST", "/bookings")]


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, settings: Settings) -> Iterator[LiveServer]:
    yield from serve_on(request, settings)


@pytest.fixture
def api(server: LiveServer) -> Iterator[tuple[httpx.Client, Described, str, dict[str, int]]]:
    server.app.state.api_limiter = RateLimiter(10**9, 60)  # type: ignore[attr-defined]
    _, secret = make_token(server.db, ALL_SCOPES)
    lead = web_lead(server.db, "lead@example.org", "Lead")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client, described(client), secret, {"contact": lead, "lead": lead}


def _path(template: str, ids: dict[str, int]) -> str:
    return API + template.format(**ids)


def _stored_follows_the_rules(db: Database) -> None:
    with db.session() as s:
        for email, name in s.execute(select(Contact.email, Contact.name)):
            assert sendable_email(email) == email
            assert name is None or clean_name(name) == name


@fuzz_settings
@given(operation=st.sampled_from(OPERATIONS), body=BODY)
def test_json_bodies(api: tuple[httpx.Client, Described, str, dict[str, int]], server: LiveServer,
                     operation: tuple[str, str], body: Any) -> None:
    client, described_api, secret, ids = api
    raw = json.dumps(body, ensure_ascii=True).encode()  # lone surrogates travel as \ud800 escapes
    with time_limit():
        answer = client.request(operation[0], _path(operation[1], ids), content=raw,
                                headers={**bearer(secret), "content-type": "application/json"})
    assert answer.status_code != 500, answer.text
    described_api.check(answer)
    _stored_follows_the_rules(server.db)


@fuzz_settings
@given(operation=st.sampled_from(OPERATIONS),
       body=st.one_of(st.binary(max_size=300), st.sampled_from([b"[" * 5000, b'{"email": NaN}', b"\xef\xbb\xbf{}",
                                                                b'{"email": "a@example.org"} trailing', b"{}" * 3])))
def test_bodies_that_are_not_json(api: tuple[httpx.Client, Described, str, dict[str, int]],
                                  operation: tuple[str, str], body: bytes) -> None:
    client, described_api, secret, ids = api
    with time_limit():
        answer = client.request(operation[0], _path(operation[1], ids), content=body,
                                headers={**bearer(secret), "content-type": "application/json"})
    assert answer.status_code != 500, answer.text
    described_api.check(answer)
