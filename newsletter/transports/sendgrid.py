"""SendGrid: one v3 Mail Send request per batch, one personalization per recipient.

The compiled email goes once per request with its placeholders left in; each personalization carries
the recipient's ``substitutions`` (SendGrid fills them), ``custom_args`` with the delivery id and the batch's marker (echoed
back in every webhook event; the Email Activity API finds a request whose answer was lost by its
marker), and, for marketing mail, the same List-Unsubscribe headers
``newsletter.compose.mime`` writes. SendGrid's click/open/subscription tracking is switched off: the product
tracks first-party, and link rewriting would put SendGrid's domain on every link.

The body is built as plain dicts rather than with ``sendgrid.helpers.mail``: the helpers build one
object per address, header and substitution and then walk them all again in ``get()``, which is most
of the time spent on a 1000-personalization batch, for JSON we can write directly. The request still
goes through the ``sendgrid`` client.

What happened is mapped onto the errors in ``newsletter.transports.base``; the dispatcher owns the
policy. The line between ``TemporaryFailure`` and ``OutcomeUnknown`` follows urllib (which
python_http_client uses): urllib wraps every ``OSError`` raised while connecting and writing the
request in ``URLError``, so a ``URLError`` means the request was not (completely) sent; anything raised
later, while waiting for or reading the answer (a read timeout, a reset, a dropped connection), means
the request left and SendGrid may have accepted it. Each request uses a fresh connection
(urllib sends ``Connection: close``), so there is no stale keep-alive connection to confuse the two.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import unicodedata
import urllib.error
from collections.abc import Iterable, Mapping
from email.utils import parseaddr
from typing import Any

import orjson
import sendgrid
from python_http_client import exceptions as http_errors

from newsletter.config import Settings
from newsletter.compose.mime import header_text, list_id_header, list_unsubscribe_header
from newsletter.compose.personalize import placeholders_of
from newsletter.transports.base import (
    AuthenticationFailed,
    BadRequest,
    Batch,
    BatchResult,
    BatchTooLarge,
    Evidence,
    OutcomeUnknown,
    RateLimited,
    Recipient,
    TemporaryFailure,
    refusal,
    scrub,
)
from subscribers.contacts import ascii_address
from subscribers.names import plain_line

MAX_CATEGORIES = 10  # SendGrid's limits on categories
MAX_CATEGORY_LENGTH = 255
MAX_MESSAGE_CHARS = 1000  # of a stored error message
JSON_UTF8 = {"Content-Type": "application/json; charset=utf-8"}
BATCH_ARG = "send_batch"  # the custom arg naming the ledger batch (its random marker) on every event
MARKER = re.compile(r"^[0-9a-f]{1,32}$")
ACTIVITY_LIMIT = 1000  # messages asked for at once; a request holds at most 1000

# "personalizations.3.to.0.email" (and the bracket form, in case) names the fourth recipient.
_PERSONALIZATION_FIELD = re.compile(r"^personalizations(?:\.|\[)(\d+)")
_ADDRESS_FIELD = re.compile(r"^personalizations(?:\.|\[)(\d+)\]?\.(?:to|cc|bcc)(?:\.|\[)\d+\]?\.email$")
# SendGrid splits to.name on these and then delivers to part of the name (or drops the mail).
_NAME_SEPARATORS = re.compile(r"[,;]+")


class _DropLibraryDebugLog(logging.Filter):
    """python_http_client logs every request's headers (``Authorization: Bearer <key>``) and whole
    body (every address) at DEBUG, and error bodies too; none of that may reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_LIBRARY_LOGGER = logging.getLogger("python_http_client.client")
if not any(isinstance(f, _DropLibraryDebugLog) for f in _LIBRARY_LOGGER.filters):
    _LIBRARY_LOGGER.addFilter(_DropLibraryDebugLog())


def sanitise_categories(categories: Iterable[str]) -> list[str]:
    """At most 10 unique, printable ASCII categories of at most 255 characters; anything that looks
    like an address is dropped (categories are visible in SendGrid's statistics)."""
    cleaned: list[str] = []
    for raw in categories:
        ascii_text = unicodedata.normalize("NFKD", str(raw)).encode("ascii", "ignore").decode("ascii")
        category = "".join(ch for ch in ascii_text if ch.isprintable()).strip()[:MAX_CATEGORY_LENGTH]
        if category and "@" not in category and category not in cleaned:
            cleaned.append(category)
        if len(cleaned) == MAX_CATEGORIES:
            break
    return cleaned


def recipient_name(name: str | None) -> str | None:
    """A display name SendGrid will not misparse: one plain line (``names.plain_line``: no control
    characters, no encoded words) without commas or semicolons."""
    if not name:
        return None
    cleaned = plain_line(name)
    if "," in cleaned or ";" in cleaned:
        cleaned = " ".join(_NAME_SEPARATORS.sub(" ", cleaned).split())
    return cleaned or None


def _screen(recipients: list[Recipient]) -> tuple[list[int], list[Recipient], dict[int, str]]:
    """The recipients a request can carry (with their addresses in ASCII form) and their indexes in
    the batch, and the reason for each one it cannot: one recipient's bad address must not make
    SendGrid refuse (or drop) the whole request."""
    indexes: list[int] = []
    sendable: list[Recipient] = []
    refused: dict[int, str] = {}
    for index, recipient in enumerate(recipients):
        try:
            address = ascii_address(recipient.email)
        except ValueError as exc:
            refused[index] = refusal(exc)
            continue
        indexes.append(index)
        sendable.append(recipient if address == recipient.email else
                        Recipient(address, recipient.name, recipient.values, recipient.unsubscribe_mailto,
                                  recipient.delivery_id))
    return indexes, sendable, refused


def blamed_recipients(errors: Iterable[Mapping[str, Any]], batch_size: int, *, addresses_only: bool = False) -> set[int]:
    """The batch indexes SendGrid's ``errors[].field`` names (``personalizations.3.to.0.email`` → 3);
    ``addresses_only``: only those whose address field itself was refused."""
    pattern = _ADDRESS_FIELD if addresses_only else _PERSONALIZATION_FIELD
    indexes: set[int] = set()
    for error in errors:
        match = pattern.match(str(error.get("field") or ""))
        if match and int(match.group(1)) < batch_size:
            indexes.add(int(match.group(1)))
    return indexes


class SendGridTransport:
    """Sends a batch as one ``POST /v3/mail/send``.

    On 202 every recipient is accepted with the request's ``X-Message-Id`` (one id for the whole batch,
    22 URL-safe characters); SendGrid gives each recipient its own ``sg_message_id`` later, in webhook
    events, and each of those starts with this id (events also carry ``custom_args.delivery_id``).
    """

    name = "sendgrid"
    max_batch = 1000  # SendGrid's limit on personalizations per request

    def __init__(self, settings: Settings) -> None:
        if settings.sendgrid_api_key is None:
            raise ValueError("the SendGrid transport needs SENDGRID_API_KEY")
        host = settings.sendgrid_api_host.rstrip("/")
        if not re.match(r"^https?://[^/\s]+", host):
            raise ValueError("SENDGRID_API_HOST must be an absolute http(s) URL")
        self.settings = settings
        self._sender(settings)  # an address that cannot travel is refused at start
        self.timeout = settings.sendgrid_timeout
        self._key = settings.sendgrid_api_key.get_secret_value()
        self._client = sendgrid.SendGridAPIClient(self._key, host=host)

    @staticmethod
    def _sender(settings: Settings) -> dict[str, str]:
        return {"email": ascii_address(settings.from_email), "name": header_text(settings.from_name)}

    def send(self, batch: Batch) -> BatchResult:
        if not batch.recipients:
            return BatchResult()
        if len(batch.recipients) > self.max_batch:
            raise BatchTooLarge(f"{len(batch.recipients)} recipients; SendGrid takes at most {self.max_batch}")
        indexes, sendable, refused = _screen(batch.recipients)
        if not sendable:
            return BatchResult(refused=refused)
        batch = Batch(batch.email, sendable, batch.categories, batch.marker)
        body = self.encode_body(self.build_body(batch))
        try:
            # Pre-encoded JSON (orjson: a tenth of json.dumps's time on a 1000-recipient body): with a
            # Content-Type other than the bare "application/json", python_http_client sends the string
            # as it is instead of encoding it again. Its timeout is per socket operation, in seconds.
            response = self._client.client.mail.send.post(
                request_body=body, request_headers=JSON_UTF8, timeout=self.timeout
            )
        except http_errors.HTTPError as error:
            problem = self._http_error(error, batch)
            if isinstance(problem, BadRequest):  # name the blamed by their place in the batch given
                problem.recipients = {indexes[i] for i in problem.recipients}
            raise problem from None  # its body may hold addresses
        except urllib.error.URLError as error:
            # Raised while connecting or writing: the request did not (completely) leave.
            raise TemporaryFailure(f"SendGrid could not be reached ({_reason(error.reason)})") from error
        except (OSError, http.client.HTTPException) as error:
            # Raised after the request was written: a read timeout, a reset, a closed connection.
            raise OutcomeUnknown(
                f"no answer from SendGrid after the request was sent ({_reason(error)}); it may have been accepted"
            ) from error
        if response.status_code != 202:
            # Another 2xx (200 is sandbox mode, or a redirect that ended on some page): SendGrid's
            # answer to a real send is 202, so whether this mail will go out is not known.
            raise OutcomeUnknown(f"unexpected answer from SendGrid ({response.status_code}) instead of 202")
        message_id = str(response.headers.get("X-Message-Id") or "")
        return BatchResult(accepted={index: message_id for index in indexes}, refused=refused)

    def build_body(self, batch: Batch) -> dict[str, Any]:
        """The Mail Send request body for ``batch`` (public so tests can validate it)."""
        settings = self.settings
        all_marketing = all(r.unsubscribe_mailto is not None for r in batch.recipients)
        list_id = list_id_header(settings)
        personalizations: list[dict[str, Any]] = []
        fields = placeholders_of(batch.email)  # each recipient's own value, or the fallback (a test email)
        for recipient in batch.recipients:
            to: dict[str, str] = {"email": recipient.email}
            if name := recipient_name(recipient.name):
                to["name"] = name
            personalization: dict[str, Any] = {"to": [to], "substitutions": recipient.values.as_substitutions(fields)}
            if recipient.delivery_id is not None:
                personalization["custom_args"] = {"delivery_id": str(recipient.delivery_id)}
                if batch.marker is not None:  # per personalization: the request-level field is a string
                    personalization["custom_args"][BATCH_ARG] = batch.marker
            if recipient.unsubscribe_mailto is not None:  # marketing; transactional mail has no list headers
                headers = {
                    "List-Unsubscribe": list_unsubscribe_header(
                        recipient.values.unsubscribe_url, recipient.unsubscribe_mailto
                    ),
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                }
                if not all_marketing:  # a mixed batch: List-Id only where it belongs
                    headers["List-Id"] = list_id
                personalization["headers"] = headers
            personalizations.append(personalization)

        email = batch.email
        # text/plain first: SendGrid requires it, and clients show the last part they understand.
        parts = (("text/plain", email.text), ("text/html", email.html))
        content = [{"type": kind, "value": value} for kind, value in parts if value]  # SendGrid refuses ""
        body: dict[str, Any] = {
            "personalizations": personalizations,
            "from": self._sender(settings),
            "subject": header_text(email.subject),
            "content": content,
            "tracking_settings": {
                "click_tracking": {"enable": False, "enable_text": False},
                "open_tracking": {"enable": False},
                "subscription_tracking": {"enable": False},
            },
        }
        if settings.reply_to:
            reply_name, reply_address = parseaddr(settings.reply_to)
            reply_to = {"email": reply_address or settings.reply_to}
            if reply_name:
                reply_to["name"] = header_text(reply_name)
            body["reply_to"] = reply_to
        if all_marketing:
            body["headers"] = {"List-Id": list_id}
        if categories := sanitise_categories(batch.categories):
            body["categories"] = categories
        return body

    def find_request(self, marker: str) -> Evidence:
        """Ask the Email Activity API (a paid add-on, the key with Email Activity access) for the
        messages of the request that carried ``marker``: some means SendGrid accepted it (it takes a
        request whole), none means it never did, given time for its log to catch up."""
        if not MARKER.match(marker):
            return Evidence(None, "the batch has no marker SendGrid could be asked about")
        query = f"unique_args['{BATCH_ARG}']=\"{marker}\""
        try:
            response = self._client.client.messages.get(
                query_params={"query": query, "limit": ACTIVITY_LIMIT}, timeout=self.timeout)
        except http_errors.HTTPError as error:
            status = int(error.status_code)
            why = (" (the API key lacks Email Activity access, or the account lacks the add-on)"
                   if status in (401, 403) else "")
            return Evidence(None, f"SendGrid's Email Activity API answered {status}{why}")
        except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
            return Evidence(None, f"SendGrid's Email Activity API could not be reached ({_reason(error)})")
        messages = _activity_messages(response.body)
        if messages is None or response.status_code != 200:
            return Evidence(None, f"SendGrid's Email Activity API gave an answer that is not a message list "
                                  f"({response.status_code})")
        if messages:
            return Evidence(True, f"SendGrid's activity log holds {len(messages)} message(s) of this request")
        return Evidence(False, "SendGrid's activity log holds no message of this request")

    @staticmethod
    def encode_body(body: dict[str, Any]) -> str:
        return orjson.dumps(body).decode()

    def _http_error(self, error: http_errors.HTTPError, batch: Batch) -> Exception:
        status = int(error.status_code)
        if status in (401, 403):
            return AuthenticationFailed(
                f"SendGrid refused the API key ({status}): SENDGRID_API_KEY is wrong, revoked, "
                "or lacks the Mail Send permission"
            )
        if status == 413:
            return BatchTooLarge(f"SendGrid: request too large (413, {len(batch.recipients)} recipients)")
        if status == 429:
            return RateLimited("SendGrid: rate limit reached (429)", _reset_at(error.headers))
        if status == 400:
            errors = _errors(error.body)
            details = "; ".join(
                f"{e['field']}: {e.get('message')}" if e.get("field") not in (None, "null") else str(e.get("message"))
                for e in errors
            ) or "no details given"
            addresses = (r.email for r in batch.recipients)
            message = scrub(f"SendGrid refused the request (400): {details}", addresses=addresses, secret=self._key)
            return BadRequest(message[:MAX_MESSAGE_CHARS], blamed_recipients(errors, len(batch.recipients)),
                              blamed_recipients(errors, len(batch.recipients), addresses_only=True))
        if status >= 500:
            return TemporaryFailure(f"SendGrid server error ({status})")
        # 404/405/415 and the like: a wrong SENDGRID_API_HOST or path; nothing was sent.
        return TemporaryFailure(f"unexpected answer from SendGrid ({status}); check SENDGRID_API_HOST")


def _errors(body: bytes | str | None) -> list[Mapping[str, Any]]:
    """SendGrid's ``{"errors": [{"message", "field", "help"}]}``, or nothing if the body is not that."""
    try:
        parsed = json.loads(body or b"")
    except (ValueError, TypeError):
        return []
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _activity_messages(body: bytes | str | None) -> list[Any] | None:
    """``{"messages": [...]}`` from the Email Activity API; None for any other body (which must
    never be read as "no message": that would resend an accepted request)."""
    try:
        parsed = json.loads(body or b"")
    except (ValueError, TypeError):
        return None
    messages = parsed.get("messages") if isinstance(parsed, dict) else None
    return messages if isinstance(messages, list) else None


def _reset_at(headers: Any) -> float | None:
    """``X-RateLimit-Reset``: epoch seconds at which the limit resets."""
    value = headers.get("X-RateLimit-Reset") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _reason(error: object) -> str:
    """A short, address-free description of a network error (its class, and errno text if any)."""
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    if isinstance(error, BaseException):
        return type(error).__name__
    return str(error)[:200]
