"""Amazon SES through its v2 API (``NEWSLETTER_TRANSPORT=ses``): one ``SendEmail`` call per recipient.

SES is covered by AWS's Business Associate Agreement; SendGrid signs none. Each recipient gets the
whole personalised MIME message the outbox writes (``transports.base.each_message_bytes``, with its
List-Unsubscribe headers), sent as ``Content.Raw`` to that one address, naming the configuration set
(whose event destination publishes bounces and complaints to SNS: ``POST /webhooks/ses``) and two
message tags, ``delivery_id`` and ``send_batch`` (the batch's marker): nothing personal, nothing about
health. SES's ``MessageId`` is each delivery's provider message id.

Several calls are in flight at once (``NEWSLETTER_SES_CONCURRENCY`` threads), as the SendGrid transport
keeps requests in flight. The transport only says what happened to each message; the dispatcher owns
the policy:

- accepted: the MessageId. ``MessageRejected`` (or ``BadRequestException``) for one message refuses
  that recipient alone.
- throttled (SES's sending rate or daily quota): the calls still to make pause together and try
  again for a while; if SES keeps refusing, no new call is made. Nothing of the batch gone yet: the
  batch is ``RateLimited``; otherwise the messages not sent are handed back in ``BatchResult.unsent``
  (not before ``unsent_after``).
- no connection (refused, DNS, connect timeout, TLS handshake) or a 5xx: nothing left; the same,
  as ``TemporaryFailure``.
- the account is suspended, sending is paused, the credentials or the configuration set are refused:
  ``AuthenticationFailed`` when nothing of the batch went, else the rest goes back (``unsent``) and the
  next batch meets the same refusal and stops the send.
- a read timeout or a connection lost after the request was written: SES may have accepted it. That
  message is in ``BatchResult.unknown`` (the batch's others are recorded as they went); when every
  message's outcome is unknown the batch raises ``OutcomeUnknown``.

botocore retries are off (``total_max_attempts`` 1): its standard and adaptive modes retry a read
timeout and a closed connection (``HTTPClientError``) as transient, which would send a message SES may
already have accepted a second time, and SendEmail has no idempotency key. The only retries are ours,
of calls SES answered with a refusal (throttling, 5xx) or that never connected.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions as aws
from botocore.config import Config

from newsletter.config import Settings
from newsletter.transports.base import (
    AuthenticationFailed,
    Batch,
    BatchResult,
    BatchTooLarge,
    OutcomeUnknown,
    RateLimited,
    TemporaryFailure,
    TransportError,
    each_message_bytes,
)
from newsletter.transports.sendgrid import MAX_MESSAGE_CHARS, scrub
from subscribers.contacts import ascii_address

BATCH_TAG = "send_batch"  # the tag naming the ledger batch (its marker), as SendGrid's custom arg does
DELIVERY_TAG = "delivery_id"
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.@-]{1,256}$")  # what SES allows in a tag value
THROTTLED = frozenset({"TooManyRequestsException", "LimitExceededException", "Throttling", "ThrottlingException"})
REFUSED_MESSAGE = frozenset({"MessageRejected", "BadRequestException", "InvalidParameterValue"})
STOPS = {
    "AccountSuspendedException": "the SES account is suspended",
    "SendingPausedException": "sending is paused for the SES account or configuration set",
    "MailFromDomainNotVerifiedException": "the MAIL FROM domain is not verified in SES",
    "NotFoundException": "SES does not know the configuration set (NEWSLETTER_SES_CONFIGURATION_SET)",
    "AccessDeniedException": "the AWS credentials lack ses:SendEmail",
    "AccessDenied": "the AWS credentials lack ses:SendEmail",
    "UnrecognizedClientException": "SES does not recognise AWS_ACCESS_KEY_ID",
    "InvalidClientTokenId": "SES does not recognise AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID",
    "IncompleteSignature": "the request's AWS signature was refused",
    "MissingAuthenticationToken": "the request carried no AWS credentials",
    "ExpiredTokenException": "AWS_SESSION_TOKEN has expired",
    "ExpiredToken": "AWS_SESSION_TOKEN has expired",
}
THROTTLE_PATIENCE = 20.0  # seconds a throttled message is tried again before the rest of the batch goes back
THROTTLE_FIRST_PAUSE, THROTTLE_MAX_PAUSE = 0.25, 5.0
RATE_LIMIT_RETRY = 30.0  # seconds until a throttled batch is tried again (SES names no reset time)
CONNECT_TIMEOUT = 10.0


def _quiet_library_logs() -> None:
    """botocore logs each request's headers and body (every address, in the raw message) at DEBUG;
    its loggers stop at INFO whatever the root logger's level."""
    for name in ("botocore", "boto3", "urllib3"):
        library = logging.getLogger(name)
        if library.level == logging.NOTSET or library.level < logging.INFO:
            library.setLevel(logging.INFO)


_quiet_library_logs()


def aws_credentials(settings: Settings) -> dict[str, str]:
    """The standard AWS variables as the settings read them (checked there), for boto3: nothing else,
    no profile file, no instance metadata endpoint probed from a clinic's server. Never logged."""
    if settings.aws_access_key_id is None or settings.aws_secret_access_key is None:
        raise ValueError("NEWSLETTER_TRANSPORT=ses needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
    credentials = {"aws_access_key_id": settings.aws_access_key_id.get_secret_value().strip(),
                   "aws_secret_access_key": settings.aws_secret_access_key.get_secret_value().strip()}
    if settings.aws_session_token is not None and settings.aws_session_token.get_secret_value().strip():
        credentials["aws_session_token"] = settings.aws_session_token.get_secret_value().strip()
    return credentials


@dataclass(frozen=True)
class _Outcome:
    """What became of one message: ``kind`` accepted | refused | unknown | again | stop."""

    kind: str
    value: str = ""  # the MessageId, or the reason
    error: TransportError | None = None  # for again and stop: what the batch raises when nothing went


class _Throttle:
    """The pause every call of this transport observes after SES said to slow down."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.until = 0.0
        self.pause = THROTTLE_FIRST_PAUSE

    def slowed(self) -> float:
        with self.lock:
            self.until = max(self.until, time.monotonic() + self.pause * (0.5 + random.random()))
            self.pause = min(self.pause * 2, THROTTLE_MAX_PAUSE)
            return self.until

    def eased(self) -> None:
        with self.lock:
            self.pause = THROTTLE_FIRST_PAUSE

    def wait(self) -> None:
        delay = self.until - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class SesTransport:
    name = "ses"
    max_batch = 1000

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        if not (settings.ses_region and settings.ses_configuration_set and settings.ses_sns_topic_arn):
            raise ValueError("the SES transport needs NEWSLETTER_SES_REGION, NEWSLETTER_SES_CONFIGURATION_SET and "
                             "NEWSLETTER_SES_SNS_TOPIC_ARN")
        self.settings = settings
        ascii_address(settings.from_email)  # an address that cannot travel is refused at start
        self.concurrency = settings.ses_concurrency
        self._client = client or boto3.session.Session(**aws_credentials(settings)).client(
            "sesv2", region_name=settings.ses_region, endpoint_url=settings.ses_endpoint_url,
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 1},  # never resend blindly: the module's docstring
                connect_timeout=min(CONNECT_TIMEOUT, settings.ses_timeout), read_timeout=settings.ses_timeout,
                max_pool_connections=self.concurrency, user_agent_extra="clinic-newsletter",
            ))
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="ses")
        self._throttle = _Throttle()

    def send(self, batch: Batch) -> BatchResult:
        if len(batch.recipients) > self.max_batch:
            raise BatchTooLarge(f"{len(batch.recipients)} recipients; this transport takes at most {self.max_batch}")
        result = BatchResult()
        messages = ((index, data) for index, _, data in each_message_bytes(batch, self.settings, result))
        outcomes: dict[int, _Outcome] = {}
        in_flight: dict[Future[_Outcome], int] = {}
        halted = False  # SES said stop, or slow down for good: no new call
        while True:
            while not halted and len(in_flight) < self.concurrency:
                item = next(messages, None)
                if item is None:
                    break
                index, message = item
                in_flight[self._pool.submit(self._send_one, batch, index, message)] = index
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = outcomes[in_flight.pop(future)] = future.result()
                halted = halted or outcome.kind in ("again", "stop")
        return self._result(result, outcomes, [index for index, _ in messages])

    @staticmethod
    def _result(result: BatchResult, outcomes: dict[int, _Outcome], untried: list[int]) -> BatchResult:
        """The batch's answer from each message's outcome (the module's docstring)."""
        for index, outcome in outcomes.items():
            if outcome.kind == "accepted":
                result.accepted[index] = outcome.value
            elif outcome.kind == "refused":
                result.refused[index] = outcome.value
            elif outcome.kind == "unknown":
                result.unknown[index] = outcome.value
        again = {index for index, outcome in outcomes.items() if outcome.kind in ("again", "stop")} | set(untried)
        gone = bool(result.accepted or result.unknown)
        if again and not gone:
            stop = next((o.error for o in outcomes.values() if o.kind == "stop"), None)
            raise stop or next(o.error for o in outcomes.values() if o.kind == "again" and o.error)
        if result.unknown and not result.accepted and not result.refused and not again:
            reasons = set(result.unknown.values())
            raise OutcomeUnknown(f"{next(iter(reasons))} ({len(result.unknown)} message(s))")
        for index in again:
            error = outcomes[index].error if index in outcomes else None
            result.unsent[index] = str(error) if error else "not sent: Amazon SES asked to slow down or stop first"
        if again and any(isinstance(o.error, RateLimited) for o in outcomes.values()):
            result.unsent_after = time.time() + RATE_LIMIT_RETRY
        return result

    def _send_one(self, batch: Batch, index: int, message: bytes) -> _Outcome:
        recipient = batch.recipients[index]
        request = self._request(batch, index, message)
        deadline: float | None = None
        while True:
            self._throttle.wait()
            outcome = self._call(request, recipient.email)
            if outcome.kind != "again" or not isinstance(outcome.error, RateLimited):
                if outcome.kind == "accepted":
                    self._throttle.eased()
                return outcome
            deadline = deadline or time.monotonic() + THROTTLE_PATIENCE
            if self._throttle.slowed() > deadline:
                return outcome  # SES kept refusing: hand the rest back rather than hold the batch's lease

    def _request(self, batch: Batch, index: int, message: bytes) -> dict[str, Any]:
        recipient = batch.recipients[index]
        tags = [{"Name": name, "Value": value} for name, value in ((DELIVERY_TAG, recipient.delivery_id),
                                                                    (BATCH_TAG, batch.marker))
                if value is not None and _TAG_VALUE.match(value)]
        request: dict[str, Any] = {
            "FromEmailAddress": ascii_address(self.settings.from_email),
            "Destination": {"ToAddresses": [ascii_address(recipient.email)]},  # this one address, nobody else
            "Content": {"Raw": {"Data": message}},
            "ConfigurationSetName": self.settings.ses_configuration_set,
        }
        if tags:
            request["EmailTags"] = tags
        return request

    def _call(self, request: dict[str, Any], address: str) -> _Outcome:
        try:
            answer = self._client.send_email(**request)
        except aws.ClientError as error:
            return self._refusal(error, address)
        except aws.ParamValidationError:
            # botocore refused the call before sending it: this message's data, not SES.
            return _Outcome("refused", "not sent: this recipient's message could not be put in an SES call "
                                       "(ParamValidationError)")
        except (aws.EndpointConnectionError, aws.ConnectTimeoutError, aws.ProxyConnectionError, aws.SSLError) as error:
            # Raised while connecting (or during the TLS handshake): the request never left.
            return _Outcome("again", error=TemporaryFailure(f"Amazon SES could not be reached ({type(error).__name__})"))
        except (aws.ReadTimeoutError, aws.ConnectionClosedError, aws.HTTPClientError) as error:
            # Raised after the request was written: SES may have accepted it.
            return _Outcome("unknown", f"no answer from Amazon SES after the message was sent ({type(error).__name__}); "
                                       "it may have been accepted")
        message_id = answer.get("MessageId") if isinstance(answer, dict) else None
        if not isinstance(message_id, str) or not message_id:
            return _Outcome("unknown", "Amazon SES answered without a MessageId; the message may have been accepted")
        return _Outcome("accepted", message_id[:200])

    @staticmethod
    def _refusal(error: aws.ClientError, address: str) -> _Outcome:
        info = error.response.get("Error", {}) if isinstance(error.response, dict) else {}
        code = str(info.get("Code") or "")
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        words = scrub(" ".join(str(info.get("Message") or "").split()), addresses=[address])[:300]
        if code in THROTTLED or status == 429:
            return _Outcome("again", error=RateLimited(f"Amazon SES: sending rate or quota exceeded ({code or status})",
                                                       time.time() + RATE_LIMIT_RETRY))
        if code in STOPS or status in (401, 403):
            why = STOPS.get(code, f"Amazon SES refused the credentials ({code or status})")
            return _Outcome("stop", error=AuthenticationFailed(f"Amazon SES: {why}", fix="the AWS credentials or the SES account"))
        if status >= 500 or status == 0:
            return _Outcome("again", error=TemporaryFailure(f"Amazon SES server error ({code or status})"))
        if code in REFUSED_MESSAGE or 400 <= status < 500:
            reason = f"refused by Amazon SES ({code or status})" + (f": {words}" if words else "")
            return _Outcome("refused", reason[:MAX_MESSAGE_CHARS])
        return _Outcome("again", error=TemporaryFailure(f"unexpected answer from Amazon SES ({code or status})"))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

