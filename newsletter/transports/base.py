"""The transport interface: a batch is one compiled email and the recipients it goes to."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.errors import MessageError
from email.message import EmailMessage
from typing import NamedTuple, Protocol

from newsletter.config import Settings
from newsletter.compose.mime import build_message, list_id_header
from newsletter.compose.mime_template import MessageTemplate
from newsletter.compose.personalize import RecipientValues
from newsletter.compose.render import CompiledEmail


class Recipient(NamedTuple):  # a tuple: one per recipient of a send (as RecipientValues)
    email: str
    name: str | None
    values: RecipientValues
    unsubscribe_mailto: str | None  # None for transactional mail (no List-Unsubscribe)
    delivery_id: str | None = None  # the ledger row, when there is one


@dataclass
class Batch:
    email: CompiledEmail
    recipients: list[Recipient]
    categories: list[str] = field(default_factory=list)
    marker: str | None = None  # the ledger batch's marker (SendGrid: a custom arg on every event)


def issue_categories(issue_id: int) -> list[str]:
    """An issue's batches' categories: its number only (categories show in the provider's statistics)."""
    return [f"issue-{issue_id}"]


def sequence_categories(sequence_id: int) -> list[str]:
    return [f"sequence-{sequence_id}"]


def provider_metadata(categories: list[str], settings: Settings) -> list[str]:
    """What a provider is told about an email beside its content and recipients, as text: its
    categories and List-Id header. (The custom args carry only the delivery id and the batch's random
    marker; the other headers only the recipient's unsubscribe links.) The health-information policy
    checks these."""
    return [*categories, list_id_header(settings)]


@dataclass
class BatchResult:
    """Per recipient: the provider's message id, or the reason it was refused. One recipient's bad
    data (an address that cannot travel, a message that cannot be built) is refused here, alone:
    the dispatcher marks that delivery failed with the reason and the rest of the batch goes out."""

    accepted: dict[int, str] = field(default_factory=dict)  # index in batch -> message id
    refused: dict[int, str] = field(default_factory=dict)  # index in batch -> reason
    # A transport that answers per message (SMTP) can also say, per recipient (keys are batch indexes):
    invalid_addresses: set[int] = field(default_factory=set)  # of the refused, those whose address was refused
    deferred: dict[int, str] = field(default_factory=dict)  # refused for now (a 4xx): try this recipient later
    unknown: dict[int, str] = field(default_factory=dict)  # its message left, no final answer came: never resend
    unsent: dict[int, str] = field(default_factory=dict)  # never left (the connection was lost first): resend
    unsent_after: float | None = None  # epoch seconds: the provider asked to slow down; resend not before


def each_message(batch: Batch, settings: Settings, result: BatchResult) -> Iterator[tuple[int, EmailMessage]]:
    """The whole message for each recipient of ``batch`` (the outbox and memory transports); one whose
    data cannot make a message is refused in ``result`` alone, and the others still go."""
    for index, recipient in enumerate(batch.recipients):
        try:
            yield index, build_message(batch.email, to_email=recipient.email, to_name=recipient.name,
                                       values=recipient.values, unsubscribe_mailto=recipient.unsubscribe_mailto,
                                       settings=settings)
        except (ValueError, MessageError) as exc:
            result.refused[index] = refusal(exc)


def each_message_bytes(batch: Batch, settings: Settings, result: BatchResult) -> Iterator[tuple[int, str, bytes]]:
    """``each_message`` as bytes for a transport that sends bytes (SMTP, the outbox): (index, Message-ID,
    the message with CRLF lines), the same message made without the email package's per-recipient
    cost (``compose.mime_template``). One recipient whose data cannot make a message is refused alone."""
    try:
        template = MessageTemplate(batch.email, settings)
    except (ValueError, MessageError) as exc:  # a setting no message can carry: every recipient is refused
        result.refused.update((index, refusal(exc)) for index in range(len(batch.recipients)))
        return
    for index, recipient in enumerate(batch.recipients):
        try:
            message_id, data = template.message(to_email=recipient.email, to_name=recipient.name,
                                                values=recipient.values,
                                                unsubscribe_mailto=recipient.unsubscribe_mailto)
        except (ValueError, MessageError) as exc:
            result.refused[index] = refusal(exc)
            continue
        yield index, message_id, data


def refusal(exc: Exception) -> str:
    """Why one recipient could not be sent, fit to store with the delivery: our own input errors say
    it in words without the address; anything else is named by its type only (its text may hold
    the address)."""
    if isinstance(exc, ValueError) and type(exc).__module__.startswith(("subscribers.", "newsletter.")):
        return f"not sent: {exc}"
    return f"not sent: this recipient's message could not be built ({type(exc).__name__})"


# Any token with an @ in it: crude on purpose, an error message loses a word rather than keep an address.
_ADDRESS_TOKEN = re.compile(r"\S*@\S*")


def scrub(text: str, *, addresses: Iterable[str] = (), secret: str | None = None) -> str:
    """Remove a secret (an API key, a password), the batch's addresses and anything else shaped like an address."""
    if secret:
        text = text.replace(secret, "<key>")
    lowered = text.lower()
    for address in addresses:
        if address and address.lower() in lowered:
            text = re.sub(re.escape(address), "<address>", text, flags=re.IGNORECASE)
            lowered = text.lower()
    return _ADDRESS_TOKEN.sub("<address>", text)


class Transport(Protocol):
    name: str
    max_batch: int
    # The From and Reply-To come from these; a dispatcher replaces them when staff change a setting.
    settings: Settings

    def send(self, batch: Batch) -> BatchResult: ...


@dataclass(frozen=True)
class Evidence:
    """What a provider's own log says of one request, found again by its batch marker."""

    accepted: bool | None  # True: it holds the request's messages; False: it holds none; None: cannot tell
    detail: str  # one line for staff and the batch's record (no addresses)


class RequestLog(Protocol):
    """A provider log that can be asked about a request (SendGrid's Email Activity API)."""

    def find_request(self, marker: str) -> Evidence: ...


# What a transport may raise. The dispatcher owns the policy (retry, split, wait, pause, hold as
# unknown); a transport only says which of these happened.


class TransportError(Exception):
    """Base class; ``str()`` is safe to store and show (no addresses, no secrets)."""


class AuthenticationFailed(TransportError):
    """401/403: the key is wrong or lacks permission. Nothing in the batch was sent; stop the send.
    ``fix`` names the setting staff correct before resuming."""

    def __init__(self, message: str, fix: str = "SENDGRID_API_KEY") -> None:
        super().__init__(message)
        self.fix = fix


class RateLimited(TransportError):
    """429: wait until ``reset_at`` (epoch seconds) and send the same batch again."""

    def __init__(self, message: str, reset_at: float | None) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class BatchTooLarge(TransportError):
    """413: the request body was too large; split the batch and send each half."""


class BadRequest(TransportError):
    """400: the provider refused the request. ``recipients`` holds the batch indexes it blamed, when it
    named them (SendGrid names fields like ``personalizations.3.to.0.email``); empty means unknown,
    so the dispatcher splits the batch to find them."""

    def __init__(self, message: str, recipients: set[int] | None = None,
                 invalid_addresses: set[int] | None = None) -> None:
        super().__init__(message)
        self.recipients = recipients or set()
        # Of those, the ones whose address itself was refused (not, say, a substitution): the
        # dispatcher suppresses these addresses so no later send carries them into a batch again.
        self.invalid_addresses = (invalid_addresses or set()) & self.recipients


class TemporaryFailure(TransportError):
    """5xx, a refused connection, or a timeout before the request was sent: safe to retry."""


class OutcomeUnknown(TransportError):
    """The request left and no answer came (a read timeout, a dropped connection): the provider may
    have accepted it. There is no idempotency key, so it must not be sent again blindly."""
