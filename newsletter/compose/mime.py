"""The complete MIME message one recipient receives: what the outbox writes and previews show.

multipart/alternative with the text part first (clients show the last part they understand),
UTF-8, and the RFC 2369 / RFC 8058 unsubscribe headers that Gmail and Yahoo require of bulk mail.

Nothing written into a header can start a header of its own. Free text (display names, the
subject) goes through ``header_text`` first: Python's email package (3.11 before 3.11.10 has no
``verify_generated_headers``) decodes an RFC 2047 encoded word even inside a quoted display name and
writes a CR LF it holds as a real line break, so ``=?utf-8?q?x=0D=0ABcc:_a@b?=`` as a name would add
a ``Bcc:`` header. As a last guard, ``build_message`` checks that the headers it wrote are exactly
the headers it set.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, compat32
from email.utils import format_datetime, make_msgid

from newsletter.config import Settings
from newsletter.compose.personalize import RecipientValues, substitute
from newsletter.compose.render import CompiledEmail
from subscribers.contacts import ascii_address
from subscribers.names import plain_line


class UnsafeHeader(ValueError):
    """What was written into the headers is not what was set: refused rather than sent."""


def header_text(text: str | None) -> str:
    """Free text made safe for a header: one plain line, no encoded word, no control character."""
    return plain_line(text) if text else ""


def list_id_header(settings: Settings) -> str:
    """RFC 2919 List-Id: lets mailbox providers group the newsletter's mail."""
    return f"{settings.newsletter_name} <newsletter.{settings.from_domain}>"


def list_unsubscribe_header(https_url: str, mailto_url: str, *, folded: bool = False) -> str:
    """RFC 2369's list of the two URIs. ``folded``: for a whole message, each URI on a line of its own.
    The email package folds a token longer than a line (our mailto URI is) into RFC 2047 encoded words,
    and a mailbox provider does not decode those in this header: it would see no mailto URI."""
    return f"<{https_url}>,{FOLD if folded else ' '}<{mailto_url}>"


FOLD = "\r\n "
# Headers written exactly as ``header_items`` gives them (already folded, ASCII), never refolded.
WRITTEN_AS_GIVEN = frozenset({"List-Unsubscribe"})
# The raw values above keep their folding; a value set by name is a header object and folds itself.
POLICY = SMTP.clone(refold_source="none")


def header_items(
    email: CompiledEmail,
    *,
    to_email: str,
    to_name: str | None,
    values: RecipientValues,
    unsubscribe_mailto: str | None,
    settings: Settings,
    date: datetime | None = None,
    message_id: str | None = None,
) -> list[tuple[str, object]]:
    """The headers a recipient's message carries, in order: the one place they are decided, for
    ``build_message`` and ``MessageTemplate`` alike."""
    items: list[tuple[str, object]] = [
        ("From", Address(header_text(settings.from_name), addr_spec=ascii_address(settings.from_email))),
        ("To", Address(header_text(to_name), addr_spec=ascii_address(to_email))),
    ]
    if settings.reply_to:
        items.append(("Reply-To", settings.reply_to))
    items += [
        ("Subject", header_text(email.subject)),
        ("Date", format_datetime(date or datetime.now(timezone.utc))),
        ("Message-ID", message_id or make_msgid(domain=settings.from_domain)),
    ]
    if unsubscribe_mailto is not None:  # marketing mail; transactional mail (a confirmation) has none
        items += [
            ("List-Id", list_id_header(settings)),
            ("List-Unsubscribe", list_unsubscribe_header(values.unsubscribe_url, unsubscribe_mailto, folded=True)),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    return items


# The body parts, in order (text first: clients show the last part they understand), and how each travels.
PARTS = (("plain", "text"), ("html", "html"))  # (subtype, CompiledEmail attribute)
CHARSET, CTE = "utf-8", "quoted-printable"


def build_message(
    email: CompiledEmail,
    *,
    to_email: str,
    to_name: str | None,
    values: RecipientValues,
    unsubscribe_mailto: str | None,
    settings: Settings,
    date: datetime | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """Raises ``InputError`` for an address that cannot travel (see ``contacts.ascii_address``) and
    ``UnsafeHeader`` should the headers written differ from the headers set."""
    message = EmailMessage(policy=POLICY)
    for name, value in header_items(email, to_email=to_email, to_name=to_name, values=values,
                                    unsubscribe_mailto=unsubscribe_mailto, settings=settings, date=date,
                                    message_id=message_id):
        if name in WRITTEN_AS_GIVEN:
            message.set_raw(name, as_given(value))
        else:
            message[name] = value
    (first, first_attr), *rest = PARTS
    message.set_content(substitute(getattr(email, first_attr), values), subtype=first, charset=CHARSET, cte=CTE)
    for subtype, attr in rest:
        message.add_alternative(substitute(getattr(email, attr), values), subtype=subtype, charset=CHARSET, cte=CTE)
    _check_headers(message)
    return message


def as_given(value: object) -> str:
    """A header value of ``WRITTEN_AS_GIVEN``: ASCII, and a line break only where it folds."""
    text = str(value)
    # Printable only: a parser also breaks a header's line at other control characters (\x1c-\x1e),
    # found by the template's Hypothesis test.
    if not text.isascii() or not all(line.isprintable() for line in text.split(FOLD)):
        raise UnsafeHeader("a header value would have written a header of its own")
    return text


def _check_headers(message: EmailMessage) -> None:
    """The header block as written, read back, must name exactly the headers that were set."""
    folded = b"".join(message.policy.fold_binary(name, value) for name, value in message.raw_items())
    written = BytesHeaderParser(policy=compat32).parsebytes(folded + b"\r\n").keys()
    if [name.lower() for name in written] != [name.lower() for name in message.keys()]:
        raise UnsafeHeader("a header value would have written a header of its own")
