"""A real HTTP server on loopback serving canned pages, for URL and feed imports."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsletter.config import Settings, get_settings


class Site:
    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, bytes]] = {}
        self.base_url = ""
        self.hits: list[str] = []
        self.held: dict[str, tuple[threading.Event, threading.Event]] = {}

    def add(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8", status: int = 200) -> str:
        self.pages[path] = (status, content_type, body.encode("utf-8") if isinstance(body, str) else body)
        return self.base_url + path

    def hold(self, path: str) -> tuple[threading.Event, threading.Event]:
        """Make requests for ``path`` wait: returns (a request arrived, let it be answered)."""
        self.held[path] = (threading.Event(), threading.Event())
        return self.held[path]


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.hits.append(self.path)
            if self.path in state.held:
                arrived, release = state.held[self.path]
                arrived.set()
                release.wait(30)
            status, content_type, body = state.pages.get(self.path, (404, "text/plain", b"not found"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def loopback_allowed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings (and the command line's environment) that let post and feed URLs reach the loopback
    test servers, the way a deployment names a host of its own network that it means to fetch from."""
    monkeypatch.setenv("NEWSLETTER_FETCH_ALLOW_HOSTS", "127.0.0.1")
    get_settings.cache_clear()
    return get_settings()
