"""A SendGrid-compatible Mail Send server on 127.0.0.1, for tests and benchmarks.

``POST /v3/mail/send`` checks the bearer key, checks the body against every Mail Send limit SendGrid
documents (``tests/sendgrid_rules.py``, the project's own code) and, when
``NEWSLETTER_TEST_SENDGRID_OPENAPI`` names SendGrid's OpenAPI description (third-party text kept out of
the repository; .ci/run sets it), against that description's schema too, and answers the way SendGrid does: 202 with an
``X-Message-Id``, or an error with ``{"errors": [{"message", "field", "help"}]}``. Tests script faults
(``fail_next``, ``hang_next``, ``reset_next``, ``reject_addresses``, ``max_body_bytes``) and read what was
accepted (``deliveries``, ``requests``). Like a SendGrid account, it can post signed Event Webhook events
back to the app (``post_events_to``: a "processed" event per accepted recipient, request custom args and
the recipient's own on each, retried until the app takes them) and answer the Email Activity API
(``GET /v3/messages?query=unique_args['KEY']="VALUE"``) from what it accepted. ``GET /_stats`` gives counts as JSON, which is how a benchmark
reads a fake that runs in its own process (``run_in_subprocess``) so it does not share the sender's GIL.
"""

from __future__ import annotations

import functools
import hmac
import json
import multiprocessing
import os
import re
import secrets
import time
import urllib.parse
import socket
import struct
import threading
import urllib.request
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.sendgrid_rules import mail_send_errors

if TYPE_CHECKING:
    from tests.webhook_signer import Signer

OPENAPI_VARIABLE = "NEWSLETTER_TEST_SENDGRID_OPENAPI"
MAIL_SEND = "/v3/mail/send"
ACTIVITY = "/v3/messages"
ACTIVITY_QUERY = re.compile(r"""^unique_args\['([^'\]]+)'\]="([^"]*)"$""")
STATS = "/_stats"
SENDGRID_MAX_BYTES = 30 * 1024 * 1024  # SendGrid's limit on a whole message
_DOCUMENT_URI = "urn:sendgrid:tsg_mail_v3"
_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"

# The messages SendGrid sends with each status, for faults scripted without a body.
_MESSAGES = {
    400: "Bad Request",
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "access forbidden",
    404: "not found",
    413: "content too large",
    429: "too many requests",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
}


def _pointer(document: Any, ref: str) -> Any:
    """Follow a local JSON pointer (``#/a/b~1c``) into ``document``."""
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are expected, not {ref!r}")
    node = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def mail_send_schema_pointer(document: dict[str, Any]) -> str:
    """``paths["/v3/mail/send"].post.requestBody`` (following its $ref) → the JSON schema's pointer."""
    pointer = "#/paths/" + MAIL_SEND.replace("/", "~1") + "/post/requestBody"
    request_body = _pointer(document, pointer)
    while "$ref" in request_body:
        pointer = request_body["$ref"]
        request_body = _pointer(document, pointer)
    pointer += "/content/application~1json/schema"
    _pointer(document, pointer)  # fail here, not at the first request, if the document changes shape
    return pointer


def openapi_path() -> Path | None:
    """SendGrid's OpenAPI description (tsg_mail_v3.json), when ``NEWSLETTER_TEST_SENDGRID_OPENAPI`` names it."""
    value = os.environ.get(OPENAPI_VARIABLE, "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise RuntimeError(f"{OPENAPI_VARIABLE}={value} is not a file")
    return path


@functools.cache
def mail_send_validator() -> Draft202012Validator | None:
    """The request-body validator, compiled once per process (None without the description). The whole
    OpenAPI document is a resource in the registry, so the schema's ``#/components/...`` references
    resolve inside it; OpenAPI 3.1's schema dialect is JSON Schema 2020-12."""
    path = openapi_path()
    if path is None:
        return None
    document = json.loads(path.read_text(encoding="utf-8"))
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource(_DOCUMENT_URI, resource)
    schema = {"$ref": _DOCUMENT_URI + mail_send_schema_pointer(document)}
    return Draft202012Validator(schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(body: Any, limit: int = 20) -> list[dict[str, Any]]:
    """SendGrid-style errors for everything the OpenAPI schema refuses in ``body`` (empty when valid,
    or when the description is not at hand)."""
    validator = mail_send_validator()
    if validator is None:
        return []
    errors = []
    for error in validator.iter_errors(body):
        field_name = ".".join(map(str, error.absolute_path)) or None  # "personalizations.3.to.0.email"
        errors.append({"message": error.message, "field": field_name, "help": None})
        if len(errors) == limit:
            break
    return errors


def body_errors(body: Any) -> list[dict[str, Any]]:
    """What the fake refuses: the schema's errors first (as SendGrid reports them), else the
    documented limits the schema does not state."""
    return schema_errors(body) or mail_send_errors(body)


def new_message_id() -> str:
    """Like SendGrid's X-Message-Id: 22 URL-safe base64 characters (16 random bytes)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Delivery:
    """One accepted personalization, with the request-level fields a test checks alongside."""

    to: str
    name: str | None
    substitutions: dict[str, str]
    custom_args: dict[str, Any]
    headers: dict[str, str]
    categories: list[str]
    subject: str | None
    message_id: str
    index: int  # its position in the request


@dataclass(frozen=True)
class ReceivedRequest:
    """One POST as the fake saw it (the Authorization header is not kept)."""

    status: int
    body: Any  # the parsed JSON, None if it was not JSON
    content_type: str | None
    size: int
    message_id: str | None


@dataclass
class _Fault:
    kind: str  # "fail" | "hang" | "reset"
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    seconds: float = 0.0
    accept: bool = False


class FakeSendGrid:
    """The server, in a thread. ``validate=False`` and ``record=False`` make it cheap for benchmarks."""

    def __init__(self, api_key: str | None = None, *, validate: bool = True, record: bool = True,
                 latency: float = 0.0) -> None:
        self.api_key = api_key or f"SG.{secrets.token_urlsafe(16)}.{secrets.token_urlsafe(32)}"
        self.validate = validate
        self.record = record
        self.latency = latency  # seconds before every answer: the real API's response time
        self.max_body_bytes: int | None = SENDGRID_MAX_BYTES
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._rejected: set[str] = set()
        self._deliveries: list[Delivery] = []
        self._requests: list[ReceivedRequest] = []
        self._statuses: Counter[int] = Counter()
        self._accepted_personalizations = 0
        self._stopping = threading.Event()
        self._by_arg: dict[tuple[str, str], list[Delivery]] = {}  # (custom arg, value) -> accepted, for the activity API
        self.activity_status = 200  # what the Email Activity API answers (403: the account lacks the add-on)
        self._events: deque[dict[str, Any]] = deque()
        self._events_ready = threading.Condition(self._lock)
        self._webhook: tuple[str, Signer] | None = None
        self._poster: threading.Thread | None = None
        self.events_posted = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if validate:
            mail_send_validator()  # compile before the first request, not during it

    # Lifecycle

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        server.block_on_close = False  # stop() must not wait for a hanging answer
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-sendgrid", daemon=True
        )  # a short poll: shutdown() waits up to one interval, once per test
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers
        with self._lock:
            self._events_ready.notify_all()
        if self._poster is not None:
            self._poster.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The value for SENDGRID_API_HOST."""
        return f"http://127.0.0.1:{self.port}"

    # Scripting

    def fail_next(self, n: int, status: int, headers: dict[str, str] | None = None, body: Any = None) -> None:
        """Answer the next ``n`` sends with ``status`` (before any check; nothing is recorded). ``body``
        is JSON-encoded unless bytes; default: SendGrid's error shape with its usual message."""
        if body is None:
            body = {"errors": [{"message": _MESSAGES.get(status, "error"), "field": None, "help": None}]}
        self._script(n, _Fault("fail", status=status, headers=dict(headers or {}), body=body))

    def hang_next(self, n: int, seconds: float, *, accept: bool = True) -> None:
        """Wait ``seconds`` before answering the next ``n`` sends. ``accept=True``: the mail is checked
        and recorded first, then the answer is late (SendGrid took it, the client timed out: outcome
        unknown). ``accept=False``: nothing is recorded and the late answer is a 503."""
        self._script(n, _Fault("hang", seconds=seconds, accept=accept))

    def reset_next(self, n: int, *, accept: bool = True) -> None:
        """Read the next ``n`` sends in full, then drop the connection with a TCP reset and no answer
        (recording the mail first when ``accept``)."""
        self._script(n, _Fault("reset", accept=accept))

    def reject_addresses(self, addresses: Iterable[str]) -> None:
        """From now on, a request with any of these recipients gets a 400 naming
        ``personalizations.<i>.to.0.email`` for each, and nothing in it is accepted (as SendGrid does)."""
        with self._lock:
            self._rejected = {a.lower() for a in addresses}

    def post_events_to(self, url: str, signer: Signer) -> None:
        """From now on, post a signed "processed" event for every accepted recipient to ``url`` (the
        app's /webhooks/sendgrid), in batches as SendGrid does, retrying a refused or failed post."""
        with self._lock:
            self._webhook = (url, signer)
        if self._poster is None:
            self._poster = threading.Thread(target=self._post_events, name="fake-sendgrid-events", daemon=True)
            self._poster.start()

    def events_pending(self) -> int:
        with self._lock:
            return len(self._events)

    def _post_events(self) -> None:
        import httpx

        with httpx.Client(timeout=30) as client:
            while not self._stopping.is_set():
                with self._lock:
                    while not self._events and not self._stopping.is_set():
                        self._events_ready.wait(0.5)
                    batch = [self._events[i] for i in range(min(len(self._events), 1000))]
                    target = self._webhook
                if not batch or target is None:
                    continue
                url, signer = target
                body = json.dumps(batch).encode()
                try:
                    answer = client.post(url, content=body, headers=signer.headers(body))
                    ok = answer.status_code < 300
                except httpx.HTTPError:
                    ok = False
                if not ok:  # SendGrid retries for 24 hours; here, until the app is back
                    self._stopping.wait(0.2)
                    continue
                with self._lock:
                    for _ in batch:
                        self._events.popleft()
                    self.events_posted += len(batch)

    def _script(self, n: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.extend(fault for _ in range(n))

    # What was received

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": sum(self._statuses.values()),
                "accepted_requests": self._statuses[202],
                "accepted_personalizations": self._accepted_personalizations,
                "statuses": {str(k): v for k, v in sorted(self._statuses.items())},
            }

    # The request, as SendGrid would handle it

    def _handle_send(self, authorization: str | None, content_type: str | None, raw: bytes) -> _Answer:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            rejected = set(self._rejected)
        if fault is not None and fault.kind == "fail":
            return self._finish(_Answer(fault.status, fault.body, fault.headers), None, content_type, raw)
        if fault is not None and not fault.accept:
            answer = _error(503, _MESSAGES[503])
            answer.delay, answer.drop = fault.seconds, fault.kind == "reset"
            return self._finish(answer, None, content_type, raw)

        body: Any = None
        expected = f"Bearer {self.api_key}"
        if not authorization or not hmac.compare_digest(authorization.encode(), expected.encode()):
            answer = _error(401, _MESSAGES[401])
        elif self.max_body_bytes is not None and len(raw) > self.max_body_bytes:
            answer = _error(413, _MESSAGES[413])
        elif (content_type or "").split(";")[0].strip().lower() != "application/json":
            answer = _error(415, "Unsupported Media Type: the request body must be application/json")
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                answer = _error(400, "Bad Request: the request body is not valid JSON")
            else:
                answer = self._check(body, rejected)
        if fault is not None:  # accepted faults: checked and recorded, then late or dropped
            answer.delay = fault.seconds
            answer.drop = fault.kind == "reset"
        return self._finish(answer, body, content_type, raw)

    def _check(self, body: Any, rejected: set[str]) -> _Answer:
        if self.validate and (errors := body_errors(body)):
            return _Answer(400, {"errors": errors})
        personalizations = (body.get("personalizations") or []) if isinstance(body, dict) else []
        if rejected:
            errors = [
                {"message": "Does not contain a valid address.", "field": f"personalizations.{i}.to.0.email",
                 "help": _HELP}
                for i, p in enumerate(personalizations)
                if str(((p.get("to") or [{}])[0]).get("email", "")).lower() in rejected
            ]
            if errors:
                return _Answer(400, {"errors": errors})
        message_id = new_message_id()
        self._accept(body, personalizations, message_id)
        return _Answer(202, None, {"X-Message-Id": message_id}, message_id=message_id)

    def _accept(self, body: dict[str, Any], personalizations: list[dict[str, Any]], message_id: str) -> None:
        deliveries = []
        if self.record:
            categories = list(body.get("categories") or [])
            request_args = dict(body.get("custom_args") or {})
            for index, p in enumerate(personalizations):
                to = (p.get("to") or [{}])[0]
                deliveries.append(Delivery(
                    to=to.get("email", ""), name=to.get("name"), substitutions=dict(p.get("substitutions") or {}),
                    # As SendGrid merges them: the request's custom args, then the personalization's.
                    custom_args={**request_args, **(p.get("custom_args") or {})}, headers=dict(p.get("headers") or {}),
                    categories=categories, subject=p.get("subject") or body.get("subject"),
                    message_id=message_id, index=index,
                ))
        now = int(time.time())
        with self._lock:
            self._deliveries.extend(deliveries)
            self._accepted_personalizations += len(personalizations)
            for delivery in deliveries:
                for key, value in delivery.custom_args.items():
                    self._by_arg.setdefault((key, str(value)), []).append(delivery)
            if self._webhook is not None:
                self._events.extend(
                    {"email": d.to, "timestamp": now, "event": "processed", "sg_event_id": secrets.token_urlsafe(16),
                     "sg_message_id": f"{d.message_id}.filterdrecv-fake-1-{d.index}.0", "category": d.categories,
                     **d.custom_args}
                    for d in deliveries)
                self._events_ready.notify_all()

    def _activity(self, authorization: str | None, path: str) -> _Answer:
        """``GET /v3/messages``: the accepted messages one custom arg names (the only query the app asks)."""
        expected = f"Bearer {self.api_key}"
        if not authorization or not hmac.compare_digest(authorization.encode(), expected.encode()):
            return _error(401, _MESSAGES[401])
        if self.activity_status != 200:
            return _error(self.activity_status, "access forbidden")
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        match = ACTIVITY_QUERY.match((params.get("query") or [""])[0])
        if match is None:
            return _error(400, "invalid query")
        limit = int((params.get("limit") or ["10"])[0])
        with self._lock:
            found = list(self._by_arg.get((match.group(1), match.group(2)), []))[:limit]
        return _Answer(200, {"messages": [
            {"from_email": "newsletter@example.com", "msg_id": f"{d.message_id}.filterdrecv-fake-1-{d.index}.0",
             "subject": d.subject, "to_email": d.to, "status": "processed", "opens_count": 0, "clicks_count": 0,
             "last_event_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} for d in found]})

    def _finish(self, answer: _Answer, body: Any, content_type: str | None, raw: bytes) -> _Answer:
        with self._lock:
            self._statuses[answer.status] += 1
            if self.record:
                self._requests.append(ReceivedRequest(answer.status, body, content_type, len(raw), answer.message_id))
        return answer


@dataclass
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None
    delay: float = 0.0
    drop: bool = False  # reset the connection instead of answering


def _error(status: int, message: str, field_name: str | None = None) -> _Answer:
    return _Answer(status, {"errors": [{"message": message, "field": field_name, "help": None}]})


def _handler_for(fake: FakeSendGrid) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive for clients that want it (benchmarks)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # always read it all
            if self.path.split("?")[0] != MAIL_SEND:
                self._send(_error(404, _MESSAGES[404]))
                return
            answer = fake._handle_send(self.headers.get("Authorization"), self.headers.get("Content-Type"), raw)
            if fake.latency and fake._stopping.wait(fake.latency):
                self.close_connection = True
                return
            if answer.delay and fake._stopping.wait(answer.delay):
                self.close_connection = True
                return
            if answer.drop:
                # SO_LINGER 0: close() sends a RST, the client sees a reset connection and no answer.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            self._send(answer)

        def do_GET(self) -> None:
            if self.path.split("?")[0] == STATS:
                self._send(_Answer(200, fake.stats()))
            elif self.path.split("?")[0] == ACTIVITY:
                self._send(fake._activity(self.headers.get("Authorization"), self.path))
            else:
                self._send(_error(404, _MESSAGES[404]))

        def _send(self, answer: _Answer) -> None:
            body = answer.body
            payload = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up (timed out) first
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: request lines would only clutter test output

    return Handler


# A fake in its own process, for benchmarks.


@dataclass
class FakeProcess:
    url: str
    api_key: str
    _process: Any
    _stop: Any

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + STATS, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve_in_child(api_key: str, validate: bool, record: bool, latency: float, port_out: Any, stop: Any) -> None:
    with FakeSendGrid(api_key, validate=validate, record=record, latency=latency) as fake:
        port_out.send(fake.port)
        stop.wait()


def run_in_subprocess(
    api_key: str | None = None, *, validate: bool = False, record: bool = False, latency: float = 0.0,
    start_timeout: float = 60,
) -> FakeProcess:
    """Start a fake in a separate (spawned) process; read its counts with ``.stats()``, end it with
    ``.stop()`` or a ``with`` block. Scripted faults are not available across the process boundary."""
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    key = api_key or f"SG.{secrets.token_urlsafe(16)}.{secrets.token_urlsafe(32)}"
    port_in, port_out = context.Pipe(duplex=False)
    stop = context.Event()
    process = context.Process(target=_serve_in_child, args=(key, validate, record, latency, port_out, stop), daemon=True)
    process.start()
    if not port_in.poll(start_timeout):
        process.terminate()
        raise RuntimeError("the SendGrid fake did not start")
    return FakeProcess(f"http://127.0.0.1:{port_in.recv()}", key, process, stop)


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    """A started fake for one test (validating requests, recording everything)."""
    with FakeSendGrid() as fake:
        yield fake
