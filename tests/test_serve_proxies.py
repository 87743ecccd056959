"""X-Forwarded-For is believed only from NEWSLETTER_TRUSTED_PROXIES: a client that names another
address in it is still the same client to the public forms' rate limit. A real uvicorn server,
configured by ``server_config`` as ``newsletter serve`` is, and ``newsletter serve`` itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from newsletter.config import Settings, get_settings
from newsletter.database import Database
from tests.liveserver import free_port, serving, wait_for_health

LIMIT = 3


def spoofed_posts(base: str, count: int) -> list[int]:
    """Sign-up posts, each claiming to come from a different address (no consent ticked: a 400 that
    stores nothing, once the rate limit has let the post in)."""
    return [httpx.post(f"{base}/subscribe", data={"email": f"someone{n}@example.org"},
                       headers={"X-Forwarded-For": f"203.0.113.{n + 1}"}, timeout=30).status_code
            for n in range(count)]


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    monkeypatch.setenv("NEWSLETTER_PUBLIC_FORM_LIMIT_PER_HOUR", str(LIMIT))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return get_settings()


def test_a_spoofed_forwarded_for_is_the_same_client(settings: Settings, db: Database,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(settings_with(monkeypatch), db) as server:
        assert spoofed_posts(server.url, LIMIT + 2) == [400] * LIMIT + [429, 429]


def test_behind_a_trusted_proxy_each_forwarded_client_counts_apart(settings: Settings, db: Database,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(settings_with(monkeypatch, NEWSLETTER_TRUSTED_PROXIES="127.0.0.1, ::1"), db) as server:
        assert spoofed_posts(server.url, LIMIT + 2) == [400] * (LIMIT + 2)
        same = [httpx.post(f"{server.url}/subscribe", data={}, headers={"X-Forwarded-For": "198.51.100.7"},
                           timeout=30).status_code for _ in range(LIMIT + 1)]
    assert same == [400] * LIMIT + [429]  # one forwarded client is still limited


def test_newsletter_serve_ignores_forwarded_for_by_default(settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env.update({"NEWSLETTER_VAR_DIR": str(tmp_path / "var"), "NEWSLETTER_PUBLIC_FORM_LIMIT_PER_HOUR": str(LIMIT)})
    port = free_port()
    newsletter = str(Path(sys.executable).parent / "newsletter")
    process = subprocess.Popen([newsletter, "serve", "--web-only", "--port", str(port)], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, lambda: process.poll() is None)
        assert spoofed_posts(base, LIMIT + 1) == [400] * LIMIT + [429]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
