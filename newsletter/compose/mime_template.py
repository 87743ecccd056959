"""Each recipient's message as bytes, made cheaply: ``build_message``'s message with the email
package's work done once per batch.

Built by the email package, a recipient's message costs milliseconds, nearly all of it parsing each
header into its registry object and folding it back, the same for every recipient. ``MessageTemplate``
builds one reference message with ``build_message`` and keeps what does not change: the structure it
decided (MIME-Version, Content-Type, each part's headers). Per recipient it takes the headers
``header_items`` decides and folds each: a short one-line ASCII value is written as it stands (the email
package writes it the same), anything else goes through the email package's own folding, and the
same value twice (From, Subject) is folded once. Each part is filled (``substitute``) and encoded with
binascii's quoted-printable, the encoding ``build_message`` gives it. tests/test_mime_template.py
checks both ways give the same message for any recipient.
"""

from __future__ import annotations

import binascii
import random
import sys
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import SMTP, compat32
from email.utils import make_msgid

from newsletter.compose.mime import (CHARSET, CTE, PARTS, WRITTEN_AS_GIVEN, UnsafeHeader, as_given, build_message,
                                     header_items)
from newsletter.compose.personalize import RecipientValues, substitute
from newsletter.compose.render import CompiledEmail
from newsletter.config import Settings

_CRLF = b"\r\n"
# Headers whose value differs per recipient: not worth keeping once folded.
_PER_RECIPIENT = frozenset({"To", "Date", "Message-ID", "List-Unsubscribe"})
_PROBE = RecipientValues("probe", "https://probe.invalid/u", "https://probe.invalid/p", "https://probe.invalid/v")


def _boundary() -> str:
    # The email package's own shape. It can never appear in a quoted-printable body, where every "="
    # is followed by two hex digits or ends the line; so one boundary serves the whole batch.
    return "=" * 15 + str(random.randrange(sys.maxsize)) + "=="


def encode_part(text: str) -> bytes:
    """``text`` as the email package writes it with quoted-printable (its lines split as ``bytes.
    splitlines`` splits them, one newline at the end), with CRLF line ends."""
    data = b"\n".join(text.encode(CHARSET).splitlines()) + b"\n"
    return binascii.b2a_qp(data).replace(b"\n", _CRLF)


class MessageTemplate:
    """One compiled email's messages; ``message`` makes one recipient's."""

    def __init__(self, email: CompiledEmail, settings: Settings) -> None:
        self.email = email
        self.settings = settings
        self._folded: dict[tuple[str, str], bytes] = {}
        # The reference: build_message decides the structure (a probe recipient; its headers are not kept).
        reference = build_message(email, to_email="probe@example.org", to_name=None, values=_PROBE,
                                  unsubscribe_mailto=None, settings=settings)
        boundary = _boundary()
        reference.set_boundary(boundary)
        own = len(header_items(email, to_email="probe@example.org", to_name=None, values=_PROBE,
                               unsubscribe_mailto=None, settings=settings))
        self._structure = b"".join(SMTP.fold_binary(k, v) for k, v in list(reference.raw_items())[own:])
        parts = list(reference.iter_parts())
        if [p.get_content_subtype() for p in parts] != [subtype for subtype, _ in PARTS] or any(
                p.get("Content-Transfer-Encoding") != CTE for p in parts):
            raise AssertionError("build_message's structure is not the one MessageTemplate writes")
        delimiter = b"--" + boundary.encode("ascii") + _CRLF
        self._part_heads = [delimiter + b"".join(SMTP.fold_binary(k, v) for k, v in p.raw_items()) + _CRLF
                            for p in parts]
        self._close = b"--" + boundary.encode("ascii") + b"--" + _CRLF

    def message(
        self,
        *,
        to_email: str,
        to_name: str | None,
        values: RecipientValues,
        unsubscribe_mailto: str | None,
        date: datetime | None = None,
        message_id: str | None = None,
    ) -> tuple[str, bytes]:
        """(Message-ID, the whole message with CRLF lines), the message ``build_message`` makes for the
        same arguments. Raises as ``build_message`` does."""
        message_id = message_id or make_msgid(domain=self.settings.from_domain)
        items = header_items(self.email, to_email=to_email, to_name=to_name, values=values,
                             unsubscribe_mailto=unsubscribe_mailto, settings=self.settings, date=date,
                             message_id=message_id)
        chunks = [self._fold(name, value) for name, value in items]
        chunks += [self._structure, _CRLF]
        for head, (_, attr) in zip(self._part_heads, PARTS):
            chunks += [head, encode_part(substitute(getattr(self.email, attr), values)), _CRLF]
        chunks.append(self._close)
        return message_id, b"".join(chunks)

    def _fold(self, name: str, value: object) -> bytes:
        text = str(value)
        key = (name, text)
        folded = self._folded.get(key)
        if folded is not None:
            return folded
        if name in WRITTEN_AS_GIVEN:
            folded = f"{name}: {as_given(text)}\r\n".encode("ascii")
        elif text.isascii() and text.isprintable() and len(name) + 2 + len(text) <= SMTP.max_line_length:
            folded = f"{name}: {text}\r\n".encode("ascii")  # one line, nothing to fold or encode
        else:
            if len(text.splitlines()) > 1:  # the email package refuses such a value as it is set
                raise ValueError("Header values may not contain linefeed or carriage return characters")
            folded = SMTP.fold_binary(name, SMTP.header_factory(name, value))
            # As build_message checks: what was written must be exactly the one header that was set.
            written = BytesHeaderParser(policy=compat32).parsebytes(folded + _CRLF).keys()
            if [k.lower() for k in written] != [name.lower()]:
                raise UnsafeHeader("a header value would have written a header of its own")
        if name not in _PER_RECIPIENT:
            self._folded[key] = folded
        return folded
