"""A stand-in for the Amazon SES v2 API on 127.0.0.1, for tests: ``SendEmail`` as SES answers it.

``POST /v2/email/outbound-emails`` checks the request's AWS Signature Version 4: the Authorization
header's shape (``AWS4-HMAC-SHA256 Credential=AKID/yyyymmdd/region/ses/aws4_request,
SignedHeaders=…host…x-amz-date…, Signature=<64 hex>``) and X-Amz-Date, then recomputes the signature
with botocore's own signer from the test secret over the headers the client signed, and refuses a
mismatch (403 SignatureDoesNotMatch) as SES does. An accepted message answers 200 ``{"MessageId"}``
and is kept (``deliveries``: its recipient, tags, configuration set and raw MIME message).

Faults, scripted by tests: ``throttle_next(n)`` (SES's 429 TooManyRequestsException), ``reject_addresses``
(400 MessageRejected for those recipients only), ``hang_next(n, seconds)`` (the message is accepted and
kept, and the answer comes only after ``seconds``: the client's read timeout), ``stop_with(code)`` (every
call refused with, say, AccountSuspendedException).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SEND_EMAIL = "/v2/email/outbound-emails"
REGION = "us-east-1"
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]{16,128})/(?P<day>\d{8})/(?P<region>[a-z0-9-]+)/ses/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$")


@dataclass(frozen=True)
class SentMessage:
    to: str  # the Destination's one address
    message: Message  # the raw MIME message, parsed
    tags: dict[str, str]
    configuration_set: str | None
    from_address: str | None
    message_id: str


class FakeSes:
    def __init__(self, *, region: str = REGION, record: bool = True) -> None:
        self.region = region
        self.record = record  # False (benchmarks): answer without parsing or keeping the messages
        self.access_key = "AKIA" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.deliveries: list[SentMessage] = []
        self.refused: list[tuple[str, int]] = []  # (error code, status) of each refusal
        self.reject_addresses: set[str] = set()
        self._lock = threading.Lock()
        self._throttle = 0
        self._hangs: list[float] = []
        self._stop_code: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Scripting ----------------------------------------------------------------------------------

    def throttle_next(self, count: int) -> None:
        with self._lock:
            self._throttle += count

    def lift_throttle(self) -> None:
        with self._lock:
            self._throttle = 0

    def hang_next(self, count: int, seconds: float) -> None:
        with self._lock:
            self._hangs.extend([seconds] * count)

    def stop_with(self, code: str | None) -> None:
        self._stop_code = code

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def environment(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "NEWSLETTER_SES_ENDPOINT_URL": self.url, "NEWSLETTER_SES_REGION": self.region}

    # Serving ------------------------------------------------------------------------------------

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-ses", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # Answering ----------------------------------------------------------------------------------

    def signature_problem(self, method: str, path: str, headers: Any, body: bytes) -> str | None:
        """Why the request's SigV4 signature is not this account's, or None."""
        authorization = headers.get("Authorization", "")
        shape = AUTHORIZATION.match(authorization)
        stamp = headers.get("X-Amz-Date", "")
        if shape is None:
            return "the Authorization header is not an AWS4-HMAC-SHA256 signature for ses"
        if not re.match(r"^\d{8}T\d{6}Z$", stamp) or not stamp.startswith(shape["day"]):
            return "X-Amz-Date is missing or does not match the credential's date"
        signed = shape["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return "SignedHeaders must include host and x-amz-date"
        if shape["key"] != self.access_key or shape["region"] != self.region:
            return "the credential names another access key or region"
        request = AWSRequest(method=method, url=f"http://{headers.get('Host')}{path}", data=body,
                             headers={name: headers.get(name) for name in signed if headers.get(name) is not None})
        request.context["timestamp"] = stamp
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key, headers.get("X-Amz-Security-Token")),
                           "ses", self.region)
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        return None if expected == shape["signature"] else "the signature does not match"

    def send_email(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        """(status, answer, seconds to wait before answering)."""
        if self._stop_code is not None:
            return 400, _error(self._stop_code, "Sending is not possible now."), 0.0
        with self._lock:
            if self._throttle > 0:
                self._throttle -= 1
                return 429, _error("TooManyRequestsException", "Maximum sending rate exceeded."), 0.0
            hang = self._hangs.pop(0) if self._hangs else 0.0
        to = (body.get("Destination") or {}).get("ToAddresses") or []
        raw = base64.b64decode(((body.get("Content") or {}).get("Raw") or {}).get("Data", ""))
        if len(to) != 1 or not raw:
            return 400, _error("BadRequestException", "One destination and a raw message are expected here."), 0.0
        if to[0] in self.reject_addresses:
            return 400, _error("MessageRejected", f"Email address is not verified: {to[0]}"), 0.0
        message_id = f"0100{secrets.token_hex(8)}-{secrets.token_hex(4)}-{secrets.token_hex(2)}-000000"
        if not self.record:
            return 200, {"MessageId": message_id}, hang
        sent = SentMessage(to[0], message_from_bytes(raw, policy=default_policy),
                           {tag["Name"]: tag["Value"] for tag in body.get("EmailTags") or []},
                           body.get("ConfigurationSetName"), body.get("FromEmailAddress"), message_id)
        with self._lock:
            self.deliveries.append(sent)
        return 200, {"MessageId": message_id}, hang


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}


def _handler_for(fake: FakeSes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go in two writes: without this, Nagle's algorithm holds the body for the
            # client's delayed ACK (40 ms a call).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != SEND_EMAIL:
                return self._answer(404, _error("NotFoundException", "no such operation here"))
            problem = fake.signature_problem("POST", self.path, self.headers, body)
            if problem is not None:
                return self._answer(403, _error("SignatureDoesNotMatch", problem))
            try:
                request = json.loads(body)
            except ValueError:
                return self._answer(400, _error("BadRequestException", "the body is not JSON"))
            status, answer, hang = fake.send_email(request)
            if hang:
                time.sleep(hang)
            self._answer(status, answer)

        def _answer(self, status: int, answer: dict[str, Any]) -> None:
            if status != 200:
                with fake._lock:
                    fake.refused.append((answer["__type"], status))
            payload = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("x-amzn-RequestId", secrets.token_hex(16))
                if status != 200:
                    self.send_header("x-amzn-ErrorType", answer["__type"])
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up waiting (a hang): nothing to answer

    return Handler


@pytest.fixture
def fake_ses() -> Iterator[FakeSes]:
    fake = FakeSes().start()
    try:
        yield fake
    finally:
        fake.stop()
