"""Both webhook parsers fuzzed over real HTTP: arbitrary bytes and arbitrary JSON, events and bookings
with every field of any type. SendGrid posts are signed with a valid test signature (and bookings with
the right HMAC), so the parser is always reached. Whatever arrives: never a 500; a clear one-line
message with every refusal; a refused post stores nothing, and an accepted one stores exactly what
its answer says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Event
from newsletter.tracking.provider_events import EVENT_TYPES
from subscribers.leads import add_lead
from subscribers.models import Booking
from tests.fuzzing import fuzz_settings
from tests.liveserver import LiveServer
from tests.sendkit import add_audience
from tests.webhook_kit import post_bookings, post_sendgrid, snapshot, webhook_server

# Text as an attacker writes it: anything, or anything around what breaks storage and parsers (a
# lone surrogate, which json.dumps writes as a \ud800 escape; NUL, which PostgreSQL refuses; other
# control characters; right-to-left marks).
HOSTILE_TEXT = ["\ud800", "\udfff", "\x00", "\x1f\x7f", "\u202e", "\r\n", "%00", "\\"]
TEXT = st.text(max_size=30) | st.builds(lambda a, h, b: a + h + b, st.text(max_size=5),
                                        st.sampled_from(HOSTILE_TEXT), st.text(max_size=5))
# Any JSON value: scalars of every kind (NaN and infinities included: json.dumps writes them as the
# non-standard literals some parsers accept; integers past 64 bits), nested in arrays and objects.
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**40), max_value=10**40)
           | st.floats() | TEXT)
ANY_JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
ADDRESSES = st.sampled_from(["reader0@example.org", "Reader1@Example.org", "stranger@example.net", "", "@",
                             "not an address", "jo\ud800@example.org", "jo\x00@example.org"]) | st.emails()
TIMES = st.sampled_from(["2026-12-01T10:00:00Z", "2026-12-01T10:00", "9999-12-31T23:59:59-14:00",
                         "0001-01-01T00:00:00+14:00", "yesterday", ""]) | st.datetimes().map(lambda d: d.isoformat())
# Bodies no JSON encoder writes: nesting deep enough to exhaust a recursive parser, numbers too long
# to convert, bytes that are not UTF-8, a byte-order mark.
DEEP = st.integers(min_value=900, max_value=20_000)
RAW_HOSTILE = st.one_of(
    DEEP.map(lambda n: b"[" * n + b"]" * n),
    DEEP.map(lambda n: b'[{"event":"dropped","sg_event_id":"x","timestamp":1,"reason":' + b"[" * n + b"]" * n + b"}]"),
    DEEP.map(lambda n: b'{"email":"jo@example.org","external_id":' + b'{"a":' * n + b"1" + b"}" * n + b"}"),
    st.integers(min_value=4000, max_value=20_000).map(lambda n: b'[{"timestamp":' + b"9" * n + b"}]"),
    st.integers(min_value=4000, max_value=20_000).map(lambda n: b'{"external_id":' + b"9" * n + b"}"),
    st.binary(max_size=20).map(lambda b: b'[{"reason":"' + b + b'\xff"}]'),
    st.sampled_from([b"\xef\xbb\xbf[]", b"[] []", b"[1e999]", b"[NaN]", b'{"email":-Infinity}', b""]),
)


def field(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field as a sender would fill it, or any JSON value at all."""
    return plausible | ANY_JSON


EVENT_CORE = {
    "event": st.sampled_from(sorted(EVENT_TYPES)),
    "sg_event_id": st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=110),
    "timestamp": st.integers(min_value=-10, max_value=2**40) | st.floats(),
}
EVENT_FIELDS = {
    "email": field(ADDRESSES),
    "delivery_id": field(st.sampled_from(["1", "2", "0", "999999", "12ab", ""]) | st.integers()),
    "sg_message_id": field(st.sampled_from(["msg-1.filter", "msg-1", ".", ""])),
    "type": field(st.sampled_from(["bounce", "blocked"])),
    "reason": field(TEXT),
    "status": field(TEXT),
    "response": field(TEXT),
    "url": field(TEXT.map(lambda t: "https://clinic.example/" + t)),
    "sg_machine_open": field(st.booleans()),
    "category": field(st.lists(TEXT, max_size=3)),
}
EVENTS = st.one_of(
    st.fixed_dictionaries(EVENT_CORE, optional=EVENT_FIELDS),  # reaches every effect
    st.fixed_dictionaries({}, optional={**{k: field(v) for k, v in EVENT_CORE.items()}, **EVENT_FIELDS}),
    ANY_JSON,
)
BOOKING_FIELDS = {
    "booked_for": field(TIMES),
    "name": field(TEXT),
    "phone": field(TEXT),
}
BOOKINGS = st.one_of(
    st.fixed_dictionaries({"email": ADDRESSES | st.just("jo@example.org"), "external_id": TEXT},
                          optional=BOOKING_FIELDS),
    st.fixed_dictionaries({}, optional={"email": field(ADDRESSES), "external_id": field(TEXT), **BOOKING_FIELDS}),
    ANY_JSON,
)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()  # allow_nan: NaN and Infinity go out as bare literals


@pytest.fixture
def server(settings: Settings, db: Database) -> Iterator[LiveServer]:
    add_audience(db, 2)
    with db.session() as s:
        add_lead(s, "jo@example.org", default_timezone="UTC", source="web_form", consent_method="form", origin="api")
    with webhook_server(settings, db) as live:
        yield live


def count(db: Database, model: Any) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def check_refusal(answer: httpx.Response, key: str) -> None:
    """A refusal is JSON with a one-line message (never a traceback or a page)."""
    message = answer.json()[key]
    assert isinstance(message, str) and message.strip() and "\n" not in message and "Traceback" not in message


def check_sendgrid(db: Database, body: bytes, answer: httpx.Response, before: dict[str, list[str]],
                   events_before: int) -> None:
    assert answer.status_code in (200, 400, 403, 413), (answer.status_code, answer.text[:300])
    if answer.status_code != 200:
        check_refusal(answer, "detail")
        assert snapshot(db) == before
        return
    report = answer.json()
    posted = json.loads(body)
    assert isinstance(posted, list)
    assert report["stored"] + report["duplicates"] + len(report["rejected"]) == len(posted)
    assert 0 <= report["unmatched"] <= report["stored"]
    assert all(isinstance(r["reason"], str) and "\n" not in r["reason"] for r in report["rejected"])
    assert count(db, Event) == events_before + report["stored"]


def check_bookings(db: Database, answer: httpx.Response, before: dict[str, list[str]], bookings_before: int) -> None:
    assert answer.status_code in (200, 201, 202, 400, 403, 413), (answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        check_refusal(answer, "error")
        assert snapshot(db) == before
    else:
        assert count(db, Booking) == bookings_before + (answer.status_code == 201)


@pytest.mark.fuzz
@fuzz_settings
@given(body=st.binary(max_size=300) | RAW_HOSTILE
       | st.lists(EVENTS, max_size=3).map(encode).map(lambda b: b[: len(b) // 2]))  # and truncated JSON
def test_sendgrid_webhook_takes_any_bytes(server: LiveServer, db: Database, body: bytes) -> None:
    before, events_before = snapshot(db), count(db, Event)
    check_sendgrid(db, body, post_sendgrid(server, body), before, events_before)


@pytest.mark.fuzz
@fuzz_settings
@given(events=st.lists(EVENTS, max_size=6) | ANY_JSON)
def test_sendgrid_webhook_takes_any_json_signed(server: LiveServer, db: Database, events: Any) -> None:
    body = encode(events)
    before, events_before = snapshot(db), count(db, Event)
    check_sendgrid(db, body, post_sendgrid(server, body), before, events_before)


@pytest.mark.fuzz
@fuzz_settings
@given(body=st.binary(max_size=300) | RAW_HOSTILE | BOOKINGS.map(encode).map(lambda b: b[: len(b) // 2]))
def test_bookings_webhook_takes_any_bytes(server: LiveServer, db: Database, body: bytes) -> None:
    before, bookings_before = snapshot(db), count(db, Booking)
    check_bookings(db, post_bookings(server, body), before, bookings_before)


@pytest.mark.fuzz
@fuzz_settings
@given(booking=BOOKINGS)
def test_bookings_webhook_takes_any_json_signed(server: LiveServer, db: Database, booking: Any) -> None:
    before, bookings_before = snapshot(db), count(db, Booking)
    check_bookings(db, post_bookings(server, encode(booking)), before, bookings_before)
