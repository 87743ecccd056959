"""A real HTTP server on loopback serving canned pages, for URL and feed imports."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsletter.config import Settings, get_settings


class Site:
    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, bytes, dict[str, str]]] = {}
        self.base_url = ""
        self.hits: list[str] = []
        self.hosts: list[str] = []  # the Host header of each request
        self.held: dict[str, tuple[threading.Event, threading.Event]] = {}

    def add(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8", status: int = 200) -> str:
        self.pages[path] = (status, content_type, body.encode("utf-8") if isinstance(body, str) else body, {})
        return self.base_url + path

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.pages[path] = (status, "text/plain", b"moved", {"Location": location})
        return self.base_url + path

    def hold(self, path: str) -> tuple[threading.Event, threading.Event]:
        """Make requests for ``path`` wait: returns (a request arrived, let it be answered)."""
        self.held[path] = (threading.Event(), threading.Event())
        return self.held[path]


@contextmanager
def serve_site(host: str = "127.0.0.1", port: int = 0) -> Iterator[Site]:
    """A Site listening on ``host`` (an IPv4 or IPv6 loopback address), on ``port`` or a free one."""
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.hits.append(self.path)
            state.hosts.append(self.headers.get("Host", ""))
            if self.path in state.held:
                arrived, release = state.held[self.path]
                arrived.set()
                release.wait(30)
            status, content_type, body, headers = state.pages.get(self.path, (404, "text/plain", b"not found", {}))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = Server((host, port), Handler)
    state.base_url = f"http://[{host}]:{server.server_address[1]}" if ":" in host else \
        f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    with serve_site() as state:
        yield state


@pytest.fixture
def loopback_allowed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings (and the command line's environment) that let post and feed URLs reach the loopback
    test servers, the way a deployment names a host of its own network that it means to fetch from."""
    monkeypatch.setenv("NEWSLETTER_FETCH_ALLOW_HOSTS", "127.0.0.1")
    get_settings.cache_clear()
    return get_settings()
