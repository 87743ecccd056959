"""The SendGrid fake refuses every documented Mail Send limit on its own (tests/sendgrid_rules.py), so
a clone of the repository alone tests the transport against SendGrid's rules; SendGrid's OpenAPI
description adds its schema only where NEWSLETTER_TEST_SENDGRID_OPENAPI names it."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import sendgrid
from python_http_client import exceptions as http_errors

from tests.sendgrid_fake import FakeSendGrid
from tests.sendgrid_rules import mail_send_errors


def valid_body(recipients: int = 2) -> dict[str, Any]:
    return {
        "personalizations": [
            {"to": [{"email": f"reader{i}@example.org", "name": f"Reader {i}"}],
             "substitutions": {"%%first_name%%": f"Reader {i}"}, "custom_args": {"delivery_id": str(i)},
             "headers": {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}}
            for i in range(recipients)
        ],
        "from": {"email": "newsletter@clinic.example", "name": "Clinic"},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi %%first_name%%"}, {"type": "text/html", "value": "<p>Hi</p>"}],
        "categories": ["newsletter"],
    }


def changed(change: Callable[[dict[str, Any]], None], recipients: int = 2) -> dict[str, Any]:
    body = copy.deepcopy(valid_body(recipients))
    change(body)
    return body


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return apply


_DELETE = object()

# (what breaks the limit, the body, the field SendGrid names)
LIMITS: list[tuple[str, Callable[[], dict[str, Any]], str]] = [
    ("no personalizations", lambda: changed(_set("personalizations", [])), "personalizations"),
    ("1,001 personalizations", lambda: valid_body(1001), "personalizations"),
    ("over 1,000 recipients with cc and bcc", lambda: changed(
        lambda b: [p.update(cc=[{"email": f"c{i}@example.org"}], bcc=[{"email": f"b{i}@example.org"}])
                   for i, p in enumerate(b["personalizations"])], 400), "personalizations"),
    ("a personalization without to", lambda: changed(_set("personalizations.0.to", [])), "personalizations.0.to"),
    ("an address without @", lambda: changed(_set("personalizations.1.to.0.email", "no-at-sign")),
     "personalizations.1.to.0.email"),
    ("the same address in to and bcc", lambda: changed(
        _set("personalizations.0.bcc", [{"email": "READER0@example.org"}])), "personalizations.0.bcc.0.email"),
    ("no from", lambda: changed(_set("from", _DELETE)), "from"),
    ("a from without a valid address", lambda: changed(_set("from", {"email": "clinic"})), "from.email"),
    ("no subject anywhere", lambda: changed(_set("subject", _DELETE)), "personalizations.0.subject"),
    ("an empty subject", lambda: changed(_set("subject", "")), "subject"),
    ("no content", lambda: changed(_set("content", [])), "content"),
    ("an empty content value", lambda: changed(_set("content.1.value", "")), "content.1.value"),
    ("html before text", lambda: changed(lambda b: b["content"].reverse()), "content"),
    ("eleven categories", lambda: changed(_set("categories", [f"c{i}" for i in range(11)])), "categories"),
    ("a category of 256 characters", lambda: changed(_set("categories", ["x" * 256])), "categories.0"),
    ("the same category twice", lambda: changed(_set("categories", ["a", "a"])), "categories"),
    ("a number as a custom argument", lambda: changed(_set("personalizations.1.custom_args.delivery_id", 7)),
     "personalizations.1.custom_args.delivery_id"),
    ("custom arguments over 10,000 bytes", lambda: changed(_set("custom_args", {"big": "x" * 10_001})), "custom_args"),
    ("substitutions over 10,000 bytes", lambda: changed(
        _set("personalizations.0.substitutions", {"%%a%%": "x" * 10_001})), "personalizations.0.substitutions"),
    ("a number as a header", lambda: changed(_set("personalizations.0.headers", {"X-Count": 3})),
     "personalizations.0.headers.X-Count"),
    ("a reserved header", lambda: changed(_set("headers", {"Bcc": "someone@example.org"})), "headers.Bcc"),
    ("reply_to with reply_to_list", lambda: changed(lambda b: b.update(
        reply_to={"email": "a@example.org"}, reply_to_list=[{"email": "b@example.org"}])), "reply_to_list"),
    ("a send 73 hours ahead", lambda: changed(_set("send_at", int(time.time()) + 73 * 3600)), "send_at"),
    ("26 unsubscribe groups shown", lambda: changed(_set("asm", {"group_id": 1, "groups_to_display": list(range(26))})),
     "asm.groups_to_display"),
]


def test_a_valid_body_breaks_no_limit() -> None:
    assert mail_send_errors(valid_body(1000)) == []


@pytest.mark.parametrize(("what", "make", "field"), LIMITS, ids=[what for what, _, _ in LIMITS])
def test_each_documented_limit_is_refused_with_the_field_named(
    fake_sendgrid: FakeSendGrid, what: str, make: Callable[[], dict[str, Any]], field: str
) -> None:
    body = make()
    assert field in [e["field"] for e in mail_send_errors(body)], what

    client = sendgrid.SendGridAPIClient(fake_sendgrid.api_key, host=fake_sendgrid.url)
    with pytest.raises(http_errors.BadRequestsError) as caught:
        client.client.mail.send.post(request_body=body, timeout=10)
    assert caught.value.status_code == 400
    errors = json.loads(caught.value.body)["errors"]
    assert errors and all(set(e) == {"message", "field", "help"} and e["message"] for e in errors)
    assert fake_sendgrid.deliveries == []  # nothing of a refused request is accepted


def test_a_valid_body_is_accepted_by_the_fake(fake_sendgrid: FakeSendGrid) -> None:
    client = sendgrid.SendGridAPIClient(fake_sendgrid.api_key, host=fake_sendgrid.url)
    response = client.client.mail.send.post(request_body=valid_body(3), timeout=10)
    assert response.status_code == 202
    assert [d.to for d in fake_sendgrid.deliveries] == [f"reader{i}@example.org" for i in range(3)]
