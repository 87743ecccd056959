"""Every answer of the app carries the security headers (``newsletter.web.security_headers``): each GET
route is taken from the app itself, not from a list, so a new page cannot miss them. Over https (as a
trusted proxy reports it) HSTS is added; over plain http it is not."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from newsletter.bootstrap import unwire
from newsletter.config import Settings, get_settings
from newsletter.database import Database, upgrade
from newsletter.web.app import create_app
from newsletter.web.security_headers import HSTS, apply
from newsletter.web.staff.routes import served_routes
from tests.liveserver import LiveServer, serving


def _get_paths() -> list[str]:
    """The app's GET routes, each with "1" for every path parameter."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(var_dir=folder), Database("sqlite://"))
        unwire()
        paths = [re.sub(r"\{[^}]+\}", "1", path) for path, methods in served_routes(app) if "GET" in methods]
    return sorted(set(paths))


GET_PATHS = _get_paths()
PUBLIC_PATHS = [p for p in GET_PATHS if not (p == "/staff" or p.startswith("/staff/"))]
STAFF_PATHS = [p for p in GET_PATHS if p not in PUBLIC_PATHS]
# Not routes, and still answers a browser may render: a path no route has, a method a route refuses.
OTHER = ["/no-such-page", "/archive/no-such-issue"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server for the walk; loopback is its trusted proxy, so a request may say it came over https."""
    with pytest.MonkeyPatch.context() as env:
        for key in list(os.environ):
            if key.startswith("NEWSLETTER_") and not key.startswith("NEWSLETTER_TEST_"):
                env.delenv(key)
        env.setenv("NEWSLETTER_VAR_DIR", str(tmp_path_factory.mktemp("headers") / "var"))
        env.setenv("NEWSLETTER_TRUSTED_PROXIES", "127.0.0.1")
        get_settings.cache_clear()
        settings: Settings = get_settings()
        db = Database.from_settings(settings)
        upgrade(db.engine)
        with serving(settings, db) as live:
            yield live
        get_settings.cache_clear()


def _directives(csp: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in csp.split(";") if part.strip()}


def _common(answer: httpx.Response, path: str) -> None:
    headers = answer.headers
    assert headers["x-content-type-options"] == "nosniff", path
    assert headers["referrer-policy"] == "no-referrer", path
    assert headers["cross-origin-opener-policy"] == "same-origin", path
    assert "camera=()" in headers["permissions-policy"] and "geolocation=()" in headers["permissions-policy"], path
    assert headers["cache-control"] == "no-store", path
    csp = _directives(headers["content-security-policy"])
    assert csp["default-src"] == "default-src 'none'", path
    assert csp["frame-ancestors"] == "frame-ancestors 'none'", path
    assert csp["base-uri"] == "base-uri 'none'", path
    assert "'unsafe-inline'" not in csp.get("script-src", "") and "'unsafe-eval'" not in csp.get("script-src", ""), path
    assert headers["x-frame-options"] == "DENY", path


def test_the_walk_finds_the_public_pages() -> None:
    """The walk is of the real app: the pages a reader reaches are among what it found."""
    for path in ("/", "/subscribe", "/confirm/1", "/preferences/1", "/u/1", "/v/1", "/archive", "/archive/1",
                 "/archive/feed.atom", "/robots.txt"):
        assert path in PUBLIC_PATHS
    assert len(STAFF_PATHS) >= 15


@pytest.mark.parametrize("path", PUBLIC_PATHS + OTHER)
def test_every_public_answer_has_the_security_headers(server: LiveServer, path: str) -> None:
    answer = httpx.get(server.url + path, timeout=30)
    assert answer.status_code < 500, (path, answer.status_code)
    _common(answer, path)
    csp = _directives(answer.headers["content-security-policy"])
    assert csp["script-src"] == "script-src 'self'", path  # first-party files only; no inline script
    assert csp["form-action"] == "form-action 'self'", path
    assert "frame-src" not in csp, path
    assert "strict-transport-security" not in answer.headers, path  # plain http: a browser ignores it anyway
    if not path.startswith("/archive"):
        assert answer.headers["x-robots-tag"] == "noindex", path


@pytest.mark.parametrize("path", STAFF_PATHS)
def test_every_staff_answer_has_the_staff_headers(server: LiveServer, path: str) -> None:
    answer = httpx.get(server.url + path, timeout=30)  # signed out: sent to sign in, with the headers
    _common(answer, path)
    csp = _directives(answer.headers["content-security-policy"])
    assert csp["frame-src"] == "frame-src 'self'" and "https:" not in csp["img-src"], path
    assert answer.headers["x-robots-tag"] == "noindex", path


@pytest.mark.parametrize("path", PUBLIC_PATHS[:1] + ["/archive", "/subscribe", "/staff/sign-in"])
def test_hsts_only_when_the_request_came_over_https(server: LiveServer, path: str) -> None:
    over_https = httpx.get(server.url + path, headers={"X-Forwarded-Proto": "https"}, timeout=30)
    assert over_https.headers["strict-transport-security"] == HSTS
    assert "strict-transport-security" not in httpx.get(server.url + path, timeout=30).headers


def test_a_route_with_its_own_policy_keeps_it(server: LiveServer) -> None:
    """The staff preview may be framed by the staff app: its own CSP says so, and X-Frame-Options,
    which would forbid it, is left out; no header a route set itself is overwritten."""
    request = Request({"type": "http", "method": "GET", "path": "/staff/issues/1/preview.html", "headers": [],
                       "scheme": "http", "server": ("127.0.0.1", 80), "query_string": b""})
    response = Response("x", headers={"Content-Security-Policy": "frame-ancestors 'self'", "X-Robots-Tag": "all"})
    apply(request, response)
    assert response.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert "x-frame-options" not in response.headers and response.headers["x-robots-tag"] == "all"
    assert response.headers["referrer-policy"] == "no-referrer"
