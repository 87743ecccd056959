"""A CRM on loopback for outgoing webhook tests: a real HTTP server in a thread that checks each
request's signature with the code README.md gives receivers (taken from README itself, so the
documented example is the one tested), and answers as a test scripts it."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_verify() -> Callable[[str, bytes, str], bool]:
    """The ``verify`` function of README's "Outgoing webhooks" section, run as written."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Outgoing webhooks"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "README's outgoing webhooks section has no Python example"
    scope: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), scope)  # noqa: S102 - our own documentation
    return scope["verify"]


@dataclass
class Received:
    event_id: str
    type: str
    payload: dict[str, Any]
    body: bytes
    signed: bool


@dataclass
class Receiver:
    secret: str = ""
    url: str = ""
    # What to answer, one entry per request in order (then 200): a status, or (seconds to wait, status),
    # or a threading.Event to wait for before answering 200.
    script: list[Any] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered_ids(self) -> list[str]:
        return [r.event_id for r in self.received]

    def types(self) -> list[str]:
        return [r.type for r in self.received]


@contextmanager
def serve_receiver(path: str = "/hooks/newsletter", tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (over TLS with ``tls``, a server context); its ``url`` says where."""
    state = Receiver()
    verify = readme_verify()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.in_flight += 1
                state.most_in_flight = max(state.most_in_flight, state.in_flight)
                answer = state.script.pop(0) if state.script else 200
                payload = json.loads(body)
                state.received.append(Received(self.headers.get("X-Newsletter-Event-Id", ""), payload.get("type", ""),
                                               payload, body, verify(state.secret, body,
                                                                     self.headers.get("X-Newsletter-Signature", ""))))
            state.arrived.set()
            try:
                if isinstance(answer, threading.Event):
                    answer.wait(30)
                    answer = 200
                elif isinstance(answer, tuple):
                    time.sleep(answer[0])
                    answer = answer[1]
                self.send_response(answer)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up waiting (a timeout test)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
