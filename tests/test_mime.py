"""The complete MIME message a recipient receives."""

from __future__ import annotations

import email
from email import policy

from newsletter.config import Settings
from newsletter.links import recipient_values, unsubscribe_mailto
from newsletter.mime import build_message
from newsletter.render import render_email
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
