"""The real ASGI app served by uvicorn on a loopback port, in a thread, configured as ``newsletter
serve`` configures it (``newsletter.web.server.server_config``)."""

from __future__ import annotations

import email
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import uvicorn

from newsletter.config import Settings, get_settings
from newsletter.database import Database
from newsletter.sending.dispatch import Dispatcher, RoundResult
from newsletter.transports import OutboxTransport, Transport
from newsletter.web.app import create_app
from newsletter.web.server import server_config


@dataclass
class LiveServer:
    url: str
    app: object
    settings: Settings
    outbox: Path
    db: Database
    transport: Transport  # what the dispatchers of ``serve`` would send with (the app itself has none)

    def send_queued(self) -> RoundResult:
        """Run a dispatcher until nothing is due: what the ``serve`` process's dispatchers do in the
        background (confirmation emails are queued by the forms and sent here)."""
        return Dispatcher(self.settings, self.db, self.transport).run_until_idle()

    def drained(self) -> None:
        """Every click and open answered so far is in the events table when this returns (the app
        writes them to its tracking log before answering and drains the log in the background)."""
        self.app.state.tracker.flush()  # type: ignore[attr-defined]

    def emails(self) -> list[EmailMessage]:
        """Every message the outbox transport wrote, oldest first."""
        return [
            email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for p in sorted(self.outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
        ]


def wait_for_health(base: str, alive: Callable[[], bool], seconds: float = 60) -> None:
    """Wait until the app at ``base`` answers ``/healthz`` (a server started in another process);
    RuntimeError if ``alive`` says the process ended, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app at {base} did not start")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(settings: Settings, db: Database) -> Iterator[LiveServer]:
    """The app with the outbox transport."""
    with serving(settings, db) as server:
        yield server


@contextmanager
def serving(settings: Settings, db: Database,
            transport: Callable[[Settings], Transport] | None = None) -> Iterator[LiveServer]:
    """The app on a free loopback port; ``transport`` makes the transport from the live settings
    (default: the outbox)."""
    port = free_port()
    live_settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    assert live_settings.outbox_dir is not None
    made = transport(live_settings) if transport else OutboxTransport(live_settings.outbox_dir, live_settings)
    app = create_app(live_settings, db)
    with serving_app(app, live_settings, port) as url:
        yield LiveServer(url, app, live_settings, live_settings.outbox_dir, db, made)


@contextmanager
def serving_app(app: Any, settings: Settings | None = None, port: int | None = None) -> Iterator[str]:
    """``app`` served by uvicorn as ``newsletter serve`` configures it, on a loopback port (a free one
    by default), in a thread; yields its URL."""
    port = port or free_port()
    server = uvicorn.Server(server_config(app, settings or get_settings(), "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
