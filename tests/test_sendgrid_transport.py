"""The SendGrid transport, with the real ``sendgrid`` client, against a SendGrid-compatible fake that
validates every request body against SendGrid's OpenAPI description."""

from __future__ import annotations

import json
import logging
import socket
import time
import traceback
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import sendgrid
from jsonschema import Draft202012Validator
from pydantic import SecretStr
from python_http_client import exceptions as http_errors

from newsletter.config import Settings, get_settings
from newsletter.urls import recipient_values, unsubscribe_mailto
from newsletter.compose.mime import build_message
from newsletter.compose.personalize import PLACEHOLDERS, substitute
from newsletter.compose.render import CompiledEmail, render_email
from newsletter.transports import OutboxTransport, get_transport
from newsletter.transports.base import (
    AuthenticationFailed,
    BadRequest,
    Batch,
    BatchTooLarge,
    OutcomeUnknown,
    RateLimited,
    Recipient,
    TemporaryFailure,
)
from newsletter.transports.sendgrid import (
    SendGridTransport,
    blamed_recipients,
    recipient_name,
    sanitise_categories,
)
from tests.emailkit import content
from tests.conftest import outside_file
from tests.sendgrid_fake import OPENAPI_VARIABLE, FakeSendGrid, openapi_path, run_in_subprocess
from tests.sendgrid_rules import mail_send_errors
from tests.webhook_signer import Signer

NAMES = ["Renée O'Brien", None, "Smith, Jo; Dr", "Ana"]


# Helpers


@pytest.fixture
def sg_settings(settings: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as production reads them, pointing at the fake."""
    monkeypatch.setenv("SENDGRID_API_KEY", fake_sendgrid.api_key)
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", Signer().public)  # SendGrid sending needs it
    monkeypatch.setenv("SENDGRID_API_HOST", fake_sendgrid.url)
    monkeypatch.setenv("NEWSLETTER_SENDGRID_TIMEOUT", "10")
    monkeypatch.setenv("NEWSLETTER_REPLY_TO", "Care Team <care@example.com>")
    get_settings.cache_clear()
    return get_settings()


def simple_email() -> CompiledEmail:
    """A small email with every placeholder (rendering the real layout is only needed once)."""
    links = " ".join(PLACEHOLDERS[f] for f in ("unsubscribe_url", "preferences_url", "view_online_url"))
    return CompiledEmail(
        subject="Small steps for steadier days",
        preheader="A few easy habits.",
        html=f"<p>Hi {PLACEHOLDERS['first_name']},</p><p>{links}</p>",
        text=f"Hi {PLACEHOLDERS['first_name']},\n\n{links}\n",
    )


def make_recipients(settings: Settings, n: int, *, marketing: bool = True) -> list[Recipient]:
    return [
        Recipient(
            email=f"patient{i}@example.org",
            name=NAMES[i % len(NAMES)],
            values=recipient_values(settings, f"tok{i}", NAMES[i % len(NAMES)]),
            unsubscribe_mailto=unsubscribe_mailto(settings, f"tok{i}") if marketing else None,
            delivery_id=str(1000 + i) if marketing else None,
        )
        for i in range(n)
    ]


def make_batch(settings: Settings, n: int = 3, *, marketing: bool = True, email: CompiledEmail | None = None) -> Batch:
    return Batch(email or simple_email(), make_recipients(settings, n, marketing=marketing), ["newsletter", "issue-42"])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def assert_safe(error: BaseException, *secrets: str) -> None:
    """Neither the message nor the whole printed traceback (causes included) holds a secret or address."""
    printed = "".join(traceback.format_exception(error)) + repr(error.args)
    for secret in secrets:
        assert secret not in printed
    assert "@" not in str(error)


def inlined_request_schema(path: Path) -> dict[str, Any]:
    """The Mail Send body schema with every $ref inlined: a second route to the same schema,
    independent of the fake's registry-based validator."""
    document = json.loads(path.read_text(encoding="utf-8"))

    def resolve(ref: str) -> Any:
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            rest = {k: inline(v) for k, v in node.items() if k != "$ref"}
            target = inline(resolve(node["$ref"]))
            return {"allOf": [target], **rest} if rest else target
        return {k: inline(v) for k, v in node.items()}

    request_body = inline(document["paths"]["/v3/mail/send"]["post"]["requestBody"])
    return request_body["content"]["application/json"]["schema"]


def body_errors(body: dict[str, Any]) -> list[str]:
    """"field: message" for each documented limit ``body`` breaks, plus what SendGrid's own OpenAPI
    schema refuses when NEWSLETTER_TEST_SENDGRID_OPENAPI names it."""
    errors = [f"{e['field']}: {e['message']}" for e in mail_send_errors(body)]
    path = openapi_path()
    if path is not None:
        validator = Draft202012Validator(inlined_request_schema(path), format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors += [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    return errors


# The request


def test_openapi_description_is_present() -> None:
    path = outside_file(OPENAPI_VARIABLE)
    assert "/v3/mail/send" in json.loads(path.read_text(encoding="utf-8"))["paths"]


def test_marketing_batch_is_accepted_and_recorded(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    rendered = render_email(content(), sg_settings)
    assert PLACEHOLDERS["first_name"] in rendered.text and PLACEHOLDERS["first_name"] in rendered.html
    batch = make_batch(sg_settings, 3, email=rendered)
    batch.categories = ["newsletter", "issue-42", "Ünïcode  category", "newsletter"]

    result = SendGridTransport(sg_settings).send(batch)

    (request,) = fake_sendgrid.requests
    assert request.status == 202 and request.content_type == "application/json; charset=utf-8"
    assert result.accepted == {0: request.message_id, 1: request.message_id, 2: request.message_id}
    assert len(request.message_id) == 22 and not result.refused
    body = request.body
    # One compiled copy with the placeholders left in, text part first.
    assert body["content"] == [
        {"type": "text/plain", "value": rendered.text},
        {"type": "text/html", "value": rendered.html},
    ]
    assert body["subject"] == rendered.subject
    assert body["from"] == {"email": sg_settings.from_email, "name": sg_settings.from_name}
    assert body["reply_to"] == {"email": "care@example.com", "name": "Care Team"}
    assert body["tracking_settings"] == {
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": False},
        "subscription_tracking": {"enable": False},
    }
    assert body["categories"] == ["newsletter", "issue-42", "Unicode  category"]

    deliveries = fake_sendgrid.deliveries
    assert [d.to for d in deliveries] == [r.email for r in batch.recipients]
    assert [d.name for d in deliveries] == ["Renée O'Brien", None, "Smith Jo Dr"]  # no , or ; for SendGrid to split on
    for recipient, delivery in zip(batch.recipients, deliveries):
        # What SendGrid would deliver is exactly the copy the outbox writes, headers included.
        outbox_copy = message_from_bytes(build_message(
            rendered, to_email=recipient.email, to_name=recipient.name, values=recipient.values,
            unsubscribe_mailto=recipient.unsubscribe_mailto, settings=sg_settings,
        ).as_bytes(), policy=policy.default)
        assert delivery.substitutions == recipient.values.as_substitutions()
        text = rendered.text
        for placeholder, value in delivery.substitutions.items():
            text = text.replace(placeholder, value)
        assert text == substitute(rendered.text, recipient.values)
        assert delivery.headers == {
            "List-Unsubscribe": outbox_copy["List-Unsubscribe"],
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        assert body["headers"] == {"List-Id": outbox_copy["List-Id"]}
        assert delivery.custom_args == {"delivery_id": recipient.delivery_id}
        assert all(isinstance(v, str) for v in delivery.custom_args.values())
        # Nothing personal in what SendGrid shows in its statistics and echoes in events.
        assert "@" not in json.dumps(delivery.custom_args) and "@" not in json.dumps(delivery.categories)
        assert delivery.message_id == request.message_id
    assert body_errors(body) == []


def test_transactional_batch_has_no_list_headers(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    batch = make_batch(sg_settings, 2, marketing=False)
    result = SendGridTransport(sg_settings).send(batch)

    assert set(result.accepted) == {0, 1}
    body = fake_sendgrid.requests[0].body
    assert "headers" not in body
    for personalization in body["personalizations"]:
        assert set(personalization) == {"to", "substitutions"}  # no list headers, no delivery id to carry
    assert [d.headers for d in fake_sendgrid.deliveries] == [{}, {}]


def test_mixed_batch_puts_list_id_only_on_marketing_recipients(
    sg_settings: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    marketing, transactional = make_recipients(sg_settings, 1)[0], make_recipients(sg_settings, 2, marketing=False)[1]
    SendGridTransport(sg_settings).send(Batch(simple_email(), [marketing, transactional]))

    body = fake_sendgrid.requests[0].body
    assert "headers" not in body
    first, second = body["personalizations"]
    assert first["headers"]["List-Id"] == f"{sg_settings.newsletter_name} <newsletter.{sg_settings.from_domain}>"
    assert "headers" not in second


def test_a_thousand_personalizations_validate_against_openapi(
    sg_settings: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    transport = SendGridTransport(sg_settings)
    batch = make_batch(sg_settings, transport.max_batch)
    body = transport.build_body(batch)
    assert len(body["personalizations"]) == 1000
    assert body_errors(body) == []

    result = transport.send(batch)  # the fake validates too, with its own compiled validator

    assert len(result.accepted) == 1000
    assert len(fake_sendgrid.deliveries) == 1000
    assert {d.custom_args["delivery_id"] for d in fake_sendgrid.deliveries} == {str(1000 + i) for i in range(1000)}


def test_the_body_checks_are_not_vacuous(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    body = SendGridTransport(sg_settings).build_body(make_batch(sg_settings, 2))
    too_many = {**body, "personalizations": body["personalizations"] * 501}
    assert any("personalizations" in e for e in body_errors(too_many))
    assert any(e.startswith("categories") for e in body_errors({**body, "categories": [str(i) for i in range(11)]}))
    assert any("to" in e for e in body_errors({**body, "personalizations": [{"substitutions": {}}]}))
    assert any(e.startswith("from.email") for e in body_errors({**body, "from": {"email": "no-at-sign"}}))

    # The fake refuses such a body with SendGrid's error shape.
    client = sendgrid.SendGridAPIClient(fake_sendgrid.api_key, host=fake_sendgrid.url)
    with pytest.raises(http_errors.BadRequestsError) as caught:
        client.client.mail.send.post(request_body={**body, "categories": [str(i) for i in range(11)]}, timeout=10)
    assert caught.value.status_code == 400
    assert [e["field"] for e in json.loads(caught.value.body)["errors"]] == ["categories"]
    # And what SendGrid refuses beyond its schema: HTML before text, a number as a custom arg.
    body["content"].reverse()
    body["personalizations"][1]["custom_args"] = {"delivery_id": 1001}
    with pytest.raises(http_errors.BadRequestsError) as caught:
        client.client.mail.send.post(request_body=body, timeout=10)
    fields = [e["field"] for e in json.loads(caught.value.body)["errors"]]
    assert fields == ["content", "personalizations.1.custom_args.delivery_id"]
    assert fake_sendgrid.deliveries == []


def test_a_batch_over_the_limit_is_not_sent(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    with pytest.raises(BatchTooLarge):
        SendGridTransport(sg_settings).send(make_batch(sg_settings, 1001))
    assert fake_sendgrid.requests == []
    assert SendGridTransport(sg_settings).send(make_batch(sg_settings, 0)).accepted == {}
    assert fake_sendgrid.requests == []


def test_categories_are_made_acceptable() -> None:
    raw = ["café", "x" * 300, "a@b.example", "", "  ", "tab\there", *[f"c{i}" for i in range(12)], "café"]
    cleaned = sanitise_categories(raw)
    assert cleaned[:3] == ["cafe", "x" * 255, "tabhere"]
    assert len(cleaned) == 10 and len(set(cleaned)) == 10
    assert all(c.isascii() and c.isprintable() and "@" not in c and len(c) <= 255 for c in cleaned)


def test_recipient_names_and_blamed_fields() -> None:
    assert recipient_name("Smith, Jo; Dr") == "Smith Jo Dr"
    assert recipient_name(" ,; ") is None and recipient_name(None) is None
    errors = [
        {"field": "personalizations.3.to.0.email"}, {"field": "personalizations.0.substitutions"},
        {"field": "personalizations.9.to.0.email"}, {"field": "from.email"}, {"field": None}, {},
    ]
    assert blamed_recipients(errors, batch_size=5) == {0, 3}


# Outcomes


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, AuthenticationFailed), (403, AuthenticationFailed), (413, BatchTooLarge),
     (500, TemporaryFailure), (502, TemporaryFailure), (503, TemporaryFailure)],
)
def test_status_mapping(
    sg_settings: Settings, fake_sendgrid: FakeSendGrid, status: int, expected: type[Exception]
) -> None:
    fake_sendgrid.fail_next(1, status)
    batch = make_batch(sg_settings)

    with pytest.raises(expected) as caught:
        SendGridTransport(sg_settings).send(batch)

    assert type(caught.value) is expected
    assert str(status) in str(caught.value)
    assert_safe(caught.value, fake_sendgrid.api_key, *(r.email for r in batch.recipients))
    assert [r.status for r in fake_sendgrid.requests] == [status]
    assert fake_sendgrid.deliveries == []


def test_a_wrong_key_is_refused_and_never_shown(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    wrong = sg_settings.model_copy(update={"sendgrid_api_key": SecretStr("SG.wrong.key-value")})
    with pytest.raises(AuthenticationFailed) as caught:
        SendGridTransport(wrong).send(make_batch(sg_settings))
    assert "Mail Send permission" in str(caught.value)
    assert_safe(caught.value, "SG.wrong.key-value", fake_sendgrid.api_key)
    assert [r.status for r in fake_sendgrid.requests] == [401] and fake_sendgrid.deliveries == []


def test_a_body_over_the_size_limit_is_too_large(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.max_body_bytes = 2000
    with pytest.raises(BatchTooLarge):
        SendGridTransport(sg_settings).send(make_batch(sg_settings, 10))
    small = SendGridTransport(sg_settings).send(make_batch(sg_settings, 1))
    assert small.accepted == {0: fake_sendgrid.requests[-1].message_id}


@pytest.mark.parametrize(("headers", "reset_at"), [({"X-RateLimit-Reset": "1767225600"}, 1767225600.0), ({}, None)])
def test_rate_limited(
    sg_settings: Settings, fake_sendgrid: FakeSendGrid, headers: dict[str, str], reset_at: float | None
) -> None:
    fake_sendgrid.fail_next(1, 429, headers={"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", **headers})
    transport = SendGridTransport(sg_settings)
    batch = make_batch(sg_settings)

    with pytest.raises(RateLimited) as caught:
        transport.send(batch)

    assert caught.value.reset_at == reset_at
    assert_safe(caught.value, fake_sendgrid.api_key)
    assert len(transport.send(batch).accepted) == 3  # the same batch goes once the limit resets


def test_bad_request_names_the_refused_recipients(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    batch = make_batch(sg_settings, 4)
    fake_sendgrid.reject_addresses({batch.recipients[1].email, batch.recipients[3].email.upper()})

    with pytest.raises(BadRequest) as caught:
        SendGridTransport(sg_settings).send(batch)

    assert caught.value.recipients == {1, 3}
    assert "personalizations.1.to.0.email" in str(caught.value) and "personalizations.3.to.0.email" in str(caught.value)
    assert_safe(caught.value, fake_sendgrid.api_key, *(r.email for r in batch.recipients))
    assert fake_sendgrid.deliveries == []  # SendGrid takes none of a refused request


def test_provider_messages_lose_addresses_and_the_key(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    batch = make_batch(sg_settings, 2)
    duplicate = (
        "Each email address in the personalization block should be unique between to, cc, and bcc. We found the "
        f"first duplicate instance of [{batch.recipients[0].email.upper()}] in the personalizations.0.to field."
    )
    fake_sendgrid.fail_next(1, 400, body={"errors": [
        {"message": duplicate, "field": "personalizations.0.to", "help": None},
        {"message": f"Invalid reply-to someone.else@clinic.example (key {fake_sendgrid.api_key})", "field": "reply_to"},
        {"message": "The from address does not match a verified Sender Identity.", "field": "from"},
    ]})

    with pytest.raises(BadRequest) as caught:
        SendGridTransport(sg_settings).send(batch)

    message = str(caught.value)
    assert caught.value.recipients == {0}
    assert "first duplicate instance of [<address>] in" in message and "verified Sender Identity" in message
    assert_safe(caught.value, fake_sendgrid.api_key, "someone.else@clinic.example", batch.recipients[0].email.upper())


def test_a_bad_request_without_fields_blames_no_one(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.fail_next(1, 400, body=b"<html>Bad Request</html>")
    with pytest.raises(BadRequest) as caught:
        SendGridTransport(sg_settings).send(make_batch(sg_settings))
    assert caught.value.recipients == set()  # the dispatcher splits the batch to find them
    assert "no details given" in str(caught.value)


def test_connection_refused_is_temporary(sg_settings: Settings) -> None:
    closed = sg_settings.model_copy(update={"sendgrid_api_host": f"http://127.0.0.1:{closed_port()}"})
    with pytest.raises(TemporaryFailure) as caught:
        SendGridTransport(closed).send(make_batch(sg_settings))
    assert "Connection refused" in str(caught.value)
    assert_safe(caught.value, sg_settings.sendgrid_api_key.get_secret_value())


def test_a_connect_timeout_is_temporary_not_unknown(sg_settings: Settings) -> None:
    # A listener whose accept queue is full: Linux drops further SYNs, so connecting times out and
    # the request never leaves (unlike a read timeout, after it was written).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            time.sleep(0.05)
            stuck = sg_settings.model_copy(
                update={"sendgrid_api_host": f"http://127.0.0.1:{port}", "sendgrid_timeout": 0.5}
            )
            with pytest.raises(TemporaryFailure) as caught:
                SendGridTransport(stuck).send(make_batch(sg_settings))
        finally:
            for filler in fillers:
                filler.close()
    assert "TimeoutError" in str(caught.value)


def test_an_unknown_host_is_temporary(sg_settings: Settings) -> None:
    unknown = sg_settings.model_copy(update={"sendgrid_api_host": "http://sendgrid-fake.invalid"})  # RFC 6761
    with pytest.raises(TemporaryFailure) as caught:
        SendGridTransport(unknown).send(make_batch(sg_settings))
    assert "could not be reached" in str(caught.value)


def test_a_wrong_api_path_is_temporary_not_a_bad_request(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    wrong = sg_settings.model_copy(update={"sendgrid_api_host": fake_sendgrid.url + "/proxy"})
    with pytest.raises(TemporaryFailure) as caught:
        SendGridTransport(wrong).send(make_batch(sg_settings))
    assert "404" in str(caught.value) and "SENDGRID_API_HOST" in str(caught.value)


def test_an_answer_other_than_202_is_not_taken_as_sent(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.fail_next(1, 200, body=b"")  # sandbox mode's answer: checked, not sent
    with pytest.raises(OutcomeUnknown):
        SendGridTransport(sg_settings).send(make_batch(sg_settings))


def test_no_answer_within_the_timeout_is_unknown(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    quick = sg_settings.model_copy(update={"sendgrid_timeout": 0.5})
    fake_sendgrid.hang_next(1, 5.0, accept=True)
    batch = make_batch(sg_settings)

    started = time.monotonic()
    with pytest.raises(OutcomeUnknown) as caught:
        SendGridTransport(quick).send(batch)

    assert time.monotonic() - started < 3  # the timeout applied
    assert "may have been accepted" in str(caught.value)
    assert_safe(caught.value, fake_sendgrid.api_key, *(r.email for r in batch.recipients))
    assert len(fake_sendgrid.deliveries) == 3  # and SendGrid did take them: sending again would duplicate


def test_a_slow_answer_within_the_timeout_is_accepted(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.hang_next(1, 0.3)
    patient = sg_settings.model_copy(update={"sendgrid_timeout": 3.0})
    assert len(SendGridTransport(patient).send(make_batch(sg_settings)).accepted) == 3


def test_a_reset_after_the_request_was_sent_is_unknown(sg_settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.reset_next(1, accept=True)
    with pytest.raises(OutcomeUnknown) as caught:
        SendGridTransport(sg_settings).send(make_batch(sg_settings))
    assert_safe(caught.value, fake_sendgrid.api_key)
    assert len(fake_sendgrid.deliveries) == 3


def test_the_client_library_logs_neither_key_nor_addresses(
    sg_settings: Settings, fake_sendgrid: FakeSendGrid, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # python_http_client logs headers and payloads at DEBUG
    batch = make_batch(sg_settings)
    fake_sendgrid.fail_next(1, 400, body={"errors": [{"message": f"bad {batch.recipients[0].email}", "field": None}]})
    transport = SendGridTransport(sg_settings)
    with pytest.raises(BadRequest):
        transport.send(batch)
    transport.send(batch)

    for secret in (fake_sendgrid.api_key, *(r.email for r in batch.recipients)):
        assert secret not in caplog.text


# Choosing the transport; the fake in its own process


def test_get_transport_picks_sendgrid_when_a_key_is_set(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(get_transport(settings), OutboxTransport)  # no key: the outbox
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.from-the-environment")
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", Signer().public)
    get_settings.cache_clear()

    transport = get_transport(get_settings())

    assert isinstance(transport, SendGridTransport)
    assert (transport.name, transport.max_batch) == ("sendgrid", 1000)


def test_fake_in_a_subprocess_counts_what_it_accepted(settings: Settings) -> None:
    with run_in_subprocess(validate=True) as fake:
        remote = settings.model_copy(update={
            "sendgrid_api_key": SecretStr(fake.api_key),
            "sendgrid_api_host": fake.url,
        })
        transport = SendGridTransport(remote)
        transport.send(make_batch(settings, 5))
        transport.send(make_batch(settings, 7))
        stats = fake.stats()
    assert stats["accepted_personalizations"] == 12
    assert stats["accepted_requests"] == 2 and stats["statuses"] == {"202": 2}


def test_nothing_in_the_request_can_become_a_header_of_its_own(sg_settings: Settings, fake_sendgrid: FakeSendGrid,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    evil = "=?utf-8?q?x=0D=0ABcc:_evil@example.com?="
    monkeypatch.setenv("NEWSLETTER_FROM_NAME", evil)
    get_settings.cache_clear()
    settings = get_settings()
    email = CompiledEmail(f"Hello\r\nBcc: evil@example.com {evil}", "", "<p>Hi</p>", "Hi")
    recipient = make_recipients(settings, 1)[0]
    batch = Batch(email, [Recipient("eve@bücher.example", f"Eve {evil}", recipient.values,
                                    recipient.unsubscribe_mailto, recipient.delivery_id)])
    result = SendGridTransport(settings).send(batch)
    assert list(result.accepted) == [0]
    (body,) = [r.body for r in fake_sendgrid.requests]
    assert body["subject"] == "Hello Bcc: evil@example.com x Bcc: evil@example.com"
    assert body["from"]["name"] == "x Bcc: evil@example.com"
    assert body["personalizations"][0]["to"] == [{"email": "eve@xn--bcher-kva.example",
                                                 "name": "Eve x Bcc: evil@example.com"}]
