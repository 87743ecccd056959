"""The complete MIME message a recipient receives."""

from __future__ import annotations

import email
from email import policy
from email.parser import BytesHeaderParser

import pytest

from newsletter.config import Settings
from newsletter.urls import recipient_values, unsubscribe_mailto
from newsletter.compose.mime import UnsafeHeader, build_message
from newsletter.compose.render import CompiledEmail, render_email
from tests.emailkit import content


def _message(settings: Settings) -> email.message.EmailMessage:
    rendered = render_email(content(), settings)
    values = recipient_values(settings, "tokABC", "Renée O'Brien")
    built = build_message(
        rendered, to_email="renee@example.org", to_name="Renée O'Brien", values=values,
        unsubscribe_mailto=unsubscribe_mailto(settings, "tokABC"), settings=settings,
    )
    return email.message_from_bytes(built.as_bytes(), policy=policy.default)  # as a client parses it


def test_multipart_alternative_with_text_first_and_utf8(settings: Settings) -> None:
    msg = _message(settings)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    text, html = (p.get_content() for p in parts)
    assert "Hi Renée," in text and "Hi Renée," in html
    assert "%%" not in text.replace("%\u200b%", "") and "%%" not in html


def test_headers_a_mailbox_provider_expects(settings: Settings) -> None:
    msg = _message(settings)
    assert msg["From"] == f"{settings.from_name} <{settings.from_email}>"
    assert msg["To"].addresses[0].addr_spec == "renee@example.org"
    assert msg["Subject"] == "Small steps for steadier days"
    assert msg["Date"].datetime.tzinfo is not None
    assert msg["Message-ID"].endswith(f"@{settings.from_domain}>")
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Unsubscribe"] == (
        f"<{settings.public_base_url}/u/tokABC>, <mailto:{settings.unsubscribe_email}?subject=unsubscribe-tokABC>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_no_email_address_in_any_link(settings: Settings) -> None:
    msg = _message(settings)
    for part in msg.iter_parts():
        assert "renee@example.org" not in part.get_content()
    assert "renee" not in msg["List-Unsubscribe"]


def test_names_cannot_inject_markup(settings: Settings) -> None:
    values = recipient_values(settings, "t", '<b>Eve</b> "x"')
    assert values.first_name == "bEve/b"
    assert recipient_values(settings, "t", None).first_name == "there"
    assert recipient_values(settings, "t", "   ").first_name == "there"


ENCODED_CRLF = "=?utf-8?q?x=0D=0ABcc:_evil@example.com?="


def _built(settings: Settings, *, subject: str, to_name: str) -> email.message.EmailMessage:
    rendered = CompiledEmail(subject, "", "<p>Hi %%first_name%%</p>", "Hi %%first_name%%")
    return build_message(rendered, to_email="eve@example.org", to_name=to_name,
                         values=recipient_values(settings, "tok", to_name), unsubscribe_mailto=None, settings=settings)


@pytest.mark.parametrize("evil", [ENCODED_CRLF, "x\r\nBcc: evil@example.com", "x\nBcc: evil@example.com",
                                  "=?utf-8?b?eA0KQmNjOiBldmlsQGV4YW1wbGUuY29t?=", "x\u2028Bcc: evil@example.com"])
def test_nothing_written_into_a_header_can_start_a_header_of_its_own(settings: Settings, evil: str) -> None:
    sender = settings.model_copy(update={"from_name": evil})
    raw = _built(sender, subject=evil, to_name=evil).as_bytes()
    headers = BytesHeaderParser().parsebytes(raw)
    assert [name.lower() for name in headers.keys()] == [
        "from", "to", "subject", "date", "message-id", "mime-version", "content-type"]
    parsed = email.message_from_bytes(raw, policy=policy.default)
    for name in ("From", "To", "Subject"):
        assert "\n" not in str(parsed[name]) and "\r" not in str(parsed[name])
    assert parsed["To"].addresses[0].addr_spec == "eve@example.org"
    assert parsed["Subject"] == "x Bcc: evil@example.com"


def test_a_header_value_that_would_add_a_header_is_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Reply-To comes from the configuration as written: refused, never written with a line break.
    risky = settings.model_copy(update={"reply_to": f'"{ENCODED_CRLF}" <care@example.com>'})
    with pytest.raises(ValueError):
        _built(risky, subject="Hello", to_name="Ana")
    # The last guard holds even if the cleaning of free text were ever skipped.
    monkeypatch.setattr("newsletter.compose.mime.header_text", lambda text: text or "")
    with pytest.raises(UnsafeHeader):
        _built(settings, subject="Hello", to_name=ENCODED_CRLF)


def test_list_unsubscribe_travels_as_plain_uris_however_long_the_token(settings: Settings) -> None:
    """A real delivery token makes the mailto URI longer than a header line: the email package would
    fold it into RFC 2047 encoded words, which mailbox providers do not decode in this header."""
    from newsletter.compose.mime_template import MessageTemplate

    token = "d" + "Q" * 90  # as long as a signed delivery token
    rendered = render_email(content(), settings)
    values = recipient_values(settings, token, None)
    mailto = unsubscribe_mailto(settings, token)
    built = build_message(rendered, to_email="a@example.org", to_name=None, values=values, unsubscribe_mailto=mailto,
                          settings=settings).as_bytes()
    _, fast = MessageTemplate(rendered, settings).message(to_email="a@example.org", to_name=None, values=values,
                                                          unsubscribe_mailto=mailto)
    for raw in (built, fast):
        header = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)["List-Unsubscribe"]
        assert "=?" not in header
        assert " ".join(header.split()) == f"<{settings.public_base_url}/u/{token}>, <{mailto}>"
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
