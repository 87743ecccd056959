"""Fuzzing the consultation form over real HTTP (the real app under uvicorn): arbitrary values in
every field (control characters, huge strings, odd unicode, repeated and missing fields), asked for
as a page or as JSON. Whatever comes in: never a 500; a refusal names each field it is about (beside
the field on the page, by name in JSON); and nothing is half stored (every lead has its consent
record, and a lead's emails are at most one of each kind)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import html as lxml_html
from sqlalchemy import func, select

from newsletter.consultation import FIELDS
from newsletter.database import Database
from newsletter.models import ConsultationEmail
from newsletter.web.ratelimit import RateLimiter
from subscribers.contacts import check_timezone, sendable_email
from subscribers.leads import CONTACT_METHODS, HEARD_FROM, REQUESTED_WINDOWS
from subscribers.models import Contact, Lead
from subscribers.names import clean_name
from tests.fuzzing import fuzz_settings
from tests.liveserver import LiveServer

pytestmark = pytest.mark.fuzz
TIMEOUT = 10.0
ODD = st.sampled_from([
    "", " ", "\x00", "\r\n", "a@b", "josé@example.com", "ana@bücher.example", "x\r\nBcc: evil@example.com",
    "\u202eevil", "\ufeff", "%00", "<script>alert(1)</script>", "ana@example.org", "ANA@EXAMPLE.ORG", "yes",
    "phone", "text", "email", "weekday_mornings", "social_media", "Europe/Berlin", "../../etc/passwd", "+1 415 555 0100",
    "x" * 300, "99999999999999999999",
])
TEXT = st.one_of(ODD, ODD, st.text(max_size=60), st.text(min_size=2000, max_size=8000))
VALUES = st.one_of(TEXT.map(lambda v: [v]), st.lists(TEXT, min_size=2, max_size=3))
GOOD = {"name": ["Ana"], "email": ["ana@example.org"], "preferred_contact": ["email"], "requested_time": ["any_time"],
        "timezone": ["UTC"], "consent_contact": ["yes"]}
REQUESTS = st.one_of(
    st.fixed_dictionaries({}, optional={name: VALUES for name in FIELDS}),
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4).map(lambda changed: {**GOOD, **changed}),
)


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    live_server.app.state.limiter = RateLimiter(10**9, 3600)  # type: ignore[attr-defined]
    with httpx.Client(base_url=live_server.url, timeout=TIMEOUT) as c:
        yield c


def assert_nothing_half_stored(db: Database) -> None:
    with db.session() as s:
        for lead in s.scalars(select(Lead)):
            assert lead.contact_consent_method == "form" and lead.contact_consent_text_hash
            assert lead.preferred_contact in CONTACT_METHODS and lead.requested_time in REQUESTED_WINDOWS
            assert lead.heard_from is None or lead.heard_from in HEARD_FROM
        for email, name, zone in s.execute(select(Contact.email, Contact.name, Contact.timezone)):
            assert sendable_email(email) == email and check_timezone(zone) == zone
            assert name is None or clean_name(name) == name
        per_kind = select(func.count()).select_from(ConsultationEmail).group_by(ConsultationEmail.lead_id,
                                                                                 ConsultationEmail.kind)
        assert all(n == 1 for n in s.scalars(per_kind))


@fuzz_settings
@given(fields=REQUESTS, as_json=st.booleans())
def test_consultation_request(client: httpx.Client, db: Database, fields: dict[str, list[str]], as_json: bool) -> None:
    headers = {"Accept": "application/json"} if as_json else {}
    response = client.post("/consultation", data=fields, headers=headers)
    assert response.status_code in (200, 400)
    if response.status_code == 400 and as_json:
        assert set(response.json()["errors"]) <= set(FIELDS)
    elif response.status_code == 400:
        page = lxml_html.document_fromstring(response.text)
        named = [e.get("id").removesuffix("-error") for e in page.find_class("error") if e.get("id") != "form-error"]
        assert named and set(named) <= set(FIELDS)
    assert_nothing_half_stored(db)
