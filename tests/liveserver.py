"""The real ASGI app served by uvicorn on a loopback port, in a thread."""

from __future__ import annotations

import email
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import uvicorn

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.transports import OutboxTransport
from newsletter.web.app import create_app


@dataclass
class LiveServer:
    url: str
    app: object
    settings: Settings
    outbox: Path

    def emails(self) -> list[EmailMessage]:
        """Every message the outbox transport wrote, oldest first."""
        return [
            email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for p in sorted(self.outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
        ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app: object, port: int | None = None) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port (a free one by default), in a thread; yields its URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server(settings: Settings, db: Database) -> Iterator[LiveServer]:
    port = free_port()
    live_settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    assert live_settings.outbox_dir is not None
    app = create_app(live_settings, db, OutboxTransport(live_settings.outbox_dir, live_settings))
    with serving(app, port) as url:
        yield LiveServer(url, app, live_settings, live_settings.outbox_dir)
