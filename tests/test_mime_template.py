"""The fast per-recipient message (``MessageTemplate``) is ``build_message``'s message: every header and
every part the same as a mail client reads them, for any recipient, in every layout."""

from __future__ import annotations

import email
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, event, given, settings as hypothesis_settings, strategies as st

from newsletter.compose.mime import build_message
from newsletter.compose.mime_template import MessageTemplate
from newsletter.compose.personalize import RecipientValues, safe_first_name
from newsletter.compose.render import CompiledEmail, render_email
from newsletter.config import Settings
from newsletter.transports.base import Batch, BatchResult, Recipient, each_message_bytes
from newsletter.urls import DeliveryLinks
from subscribers.contacts import UnsupportedAddress
from tests.emailkit import content
from tests.lookkit import LAYOUTS, POSTS

_EMAILS: dict[str, CompiledEmail] = {}


def compiled(kind: str, settings: Settings) -> CompiledEmail:
    """Each layout of each sample post, and the email tests' own content; compiled once per run."""
    if kind not in _EMAILS:
        if kind == "emailkit":
            _EMAILS[kind] = render_email(content(), settings)
        else:
            layout, post = kind.split("/")
            _EMAILS[kind] = LAYOUTS[layout](POSTS[post](), settings)
    return _EMAILS[kind]


KINDS = ["emailkit", *(f"{layout}/{post}" for layout in LAYOUTS for post in POSTS)]
# Names as people type them: quotes, commas, dots, brackets, accents, other scripts, emoji, joiners.
NAME_CHARS = st.sampled_from(list("abcXYZ .,;:\"'\\()<>@[]&%=?-_é漢字ç😀👩‍💻\u200d\t"))
names = st.one_of(st.none(), st.text(NAME_CHARS, max_size=90), st.text(max_size=40))
domains = st.sampled_from(["example.org", "bücher.example", "xn--bcher-kva.example", "例え.テスト", "a.b.example.com"])
locals_ = st.text(st.sampled_from(list("abcdefxyz0123456789._+-")), min_size=1, max_size=30).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
values_text = st.text(max_size=60)  # any characters: the fast path must not care what a value holds


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)  # as a client reads it


def client_view(message: EmailMessage) -> dict:
    """Everything a reader's client shows or uses: headers decoded, each part's type and text."""
    headers = [(k, str(v)) for k, v in message.items() if k.lower() != "content-type"]
    parts = [(p.get_content_type(), p.get_content_charset(), p["Content-Transfer-Encoding"],
              [(k, str(v)) for k, v in p.items()], p.get_content()) for p in message.iter_parts()]
    return {"headers": headers, "type": message.get_content_type(), "parts": parts}


def check_bytes(data: bytes) -> None:
    """What smtplib and SMTP need: ASCII, CRLF line ends only, no line over 998 octets."""
    assert data.isascii()
    assert data.endswith(b"\r\n")
    lines = data.split(b"\r\n")
    assert not any(b"\r" in line or b"\n" in line for line in lines)
    assert max(len(line) for line in lines) <= 998


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), name=names, local=locals_, domain=domains, marketing=st.booleans(),
       first=values_text, link_tail=values_text, track=values_text,
       sender=st.sampled_from([None, ("Clinique Renée, O'Brien", "replies@example.com")]))
def test_fast_message_is_build_messages_message(settings: Settings, kind: str, name: str | None, local: str,
                                                domain: str, marketing: bool, first: str, link_tail: str,
                                                track: str, sender: tuple[str, str] | None) -> None:
    if sender:
        settings = settings.model_copy(update={"from_name": sender[0], "reply_to": sender[1]})
    compiled_email = compiled(kind, settings)
    values = RecipientValues(first_name=first or safe_first_name(name), unsubscribe_url="https://x.example/u/" + link_tail,
                             preferences_url="https://x.example/p?a=1&b=" + link_tail,
                             view_online_url="https://x.example/v/" + link_tail, track=track)
    arguments = dict(to_email=f"{local}@{domain}", to_name=name, values=values,
                     unsubscribe_mailto=f"mailto:unsubscribe@example.com?subject=unsubscribe-{link_tail}"
                     if marketing else None,
                     date=datetime(2026, 12, 7, 5, 0, tzinfo=timezone.utc), message_id="<1.2.3@example.com>")
    template = MessageTemplate(compiled_email, settings)
    try:
        reference = build_message(compiled_email, settings=settings, **arguments).as_bytes()
    except ValueError as refused:  # a value no header can carry: the fast way refuses it too
        with pytest.raises(type(refused)):
            template.message(**arguments)
        event("refused by both")
        return
    message_id, fast = template.message(**arguments)
    check_bytes(fast)
    event("same message")
    assert message_id == "<1.2.3@example.com>"
    assert client_view(parsed(fast)) == client_view(parsed(reference))


def test_same_headers_byte_for_byte_and_a_boundary_the_body_never_holds(settings: Settings) -> None:
    links = DeliveryLinks(settings)
    values, mailto = links.values(7, "Ana María")
    template = MessageTemplate(compiled("full/text", settings), settings)
    arguments = dict(to_email="ana@bücher.example", to_name="Ana María, RN", values=values, unsubscribe_mailto=mailto,
                     date=datetime(2026, 12, 7, tzinfo=timezone.utc), message_id="<9@example.com>")
    _, fast = template.message(**arguments)
    reference = build_message(compiled("full/text", settings), settings=settings, **arguments).as_bytes()
    assert fast.split(b"\r\n\r\n")[0].rpartition(b"MIME-Version")[0] == \
        reference.split(b"\r\n\r\n")[0].rpartition(b"MIME-Version")[0]
    assert b"=?utf-8?" in fast.split(b"\r\n\r\n")[0]  # the non-ASCII name went out as RFC 2047 words
    boundary = parsed(fast).get_boundary().encode()
    assert fast.count(b"--" + boundary) == 3  # two parts and the close: nothing in a body looks like one


def test_a_recipient_who_cannot_have_a_message_is_refused_alone(settings: Settings) -> None:
    links = DeliveryLinks(settings)
    recipients = [Recipient(address, "Reader", *links.values(n + 1, "Reader"))
                  for n, address in enumerate(["one@example.org", "jos\u00e9@example.org", "three@example.org"])]
    result = BatchResult()
    sent = list(each_message_bytes(Batch(compiled("emailkit", settings), recipients), settings, result))
    assert [index for index, _, _ in sent] == [0, 2]
    assert set(result.refused) == {1} and "jos" not in result.refused[1]
    assert [parsed(data)["To"].addresses[0].addr_spec for _, _, data in sent] == ["one@example.org", "three@example.org"]
    assert len({message_id for _, message_id, _ in sent}) == 2


def test_a_header_that_would_write_another_is_refused(settings: Settings) -> None:
    template = MessageTemplate(compiled("emailkit", settings), settings)
    with pytest.raises(UnsupportedAddress):
        template.message(to_email="jos\u00e9@example.org", to_name=None,
                         values=RecipientValues("a", "https://x/u", "https://x/p", "https://x/v"),
                         unsubscribe_mailto=None)
