"""Post and feed URLs cannot reach this machine or its network (server-side request forgery).

Real HTTP servers on loopback stand in for what an attacker would aim at (an admin page on
localhost, the metadata service); only DNS is faked where a name must resolve to a chosen address.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings, get_settings
from newsletter.errors import InputError
from newsletter.posts.addresses import AllowList
from newsletter.posts.fetch import FetchRefused, fetch
from newsletter.posts.source import read_source
from tests.webserver import Site, serve_site

runner = CliRunner()
PAGE = "<html><body><article><h1>Internal</h1><p>Secret admin page.</p></article></body></html>"
RSS = ('<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
       "<item><guid>one</guid><title>One</title><description>First body.</description></item></channel></rss>")
HINT = "; set NEWSLETTER_FETCH_ALLOW_HOSTS to allow it"


def one_error_line(*args: str) -> str:
    """Run a command that must fail; its one error line."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def stored_posts() -> list[dict[str, Any]]:
    result = runner.invoke(app, ["posts", "list", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def allow(monkeypatch: pytest.MonkeyPatch, hosts: str) -> None:
    monkeypatch.setenv("NEWSLETTER_FETCH_ALLOW_HOSTS", hosts)
    get_settings.cache_clear()


@pytest.fixture
def ipv6_site() -> Iterator[Site]:
    with serve_site("::1") as state:
        yield state


@pytest.fixture
def other_loopback_site() -> Iterator[Site]:
    """A server on 127.0.0.2: another address of this machine that no allow-list here names."""
    with serve_site("127.0.0.2") as state:
        yield state


# --- the refusal, through the command line -------------------------------------------------------


@pytest.mark.parametrize("form, why", [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("localhost", r"localhost resolves to (127\.0\.0\.1|::1), a loopback address"),
    ("2130706433", "2130706433 resolves to 127.0.0.1, a loopback address"),  # 127.0.0.1 as one integer
    ("0.0.0.0", "0.0.0.0 is an unspecified address"),  # Linux connects it to this machine
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is an IPv4-mapped form of 127.0.0.1, a loopback address"),
])
def test_posts_import_refuses_this_machine_in_every_spelling(settings: Settings, site: Site, form: str, why: str) -> None:
    site.add("/admin", PAGE)
    port = site.base_url.rsplit(":", 1)[1]
    url = f"http://{form}:{port}/admin"
    line = one_error_line("posts", "import", url)
    assert line.startswith(f"error: refusing to fetch {url}: ")
    assert line.endswith(HINT)
    assert re.fullmatch(why, line[len(f"error: refusing to fetch {url}: "):-len(HINT)])
    assert site.hits == [] and stored_posts() == []


def test_posts_import_refuses_ipv6_loopback(settings: Settings, ipv6_site: Site) -> None:
    url = ipv6_site.add("/admin", PAGE)
    assert url.startswith("http://[::1]:")
    assert one_error_line("posts", "import", url) == f"error: refusing to fetch {url}: ::1 is a loopback address{HINT}"
    assert ipv6_site.hits == [] and stored_posts() == []


def test_posts_import_refuses_the_metadata_service(settings: Settings) -> None:
    url = "http://169.254.169.254/latest/meta-data/"
    assert one_error_line("posts", "import", url) == (
        f"error: refusing to fetch {url}: 169.254.169.254 is a link-local address{HINT}")
    assert stored_posts() == []


def test_the_allow_list_lets_named_hosts_through(settings: Settings, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("/admin", PAGE)
    port = site.base_url.rsplit(":", 1)[1]
    allow(monkeypatch, "127.0.0.0/8")  # by network: the check is on the address, however it is spelled
    result = runner.invoke(app, ["posts", "import", f"http://2130706433:{port}/admin", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["title"] == "Internal"
    allow(monkeypatch, "localhost")  # by name: the URL's host, whatever it resolves to
    site.add("/other", PAGE.replace("Secret admin page.", "Another page."))
    result = runner.invoke(app, ["posts", "import", f"http://localhost:{port}/other"])
    assert result.exit_code == 0, result.output
    assert site.hits == ["/admin", "/other"] and site.hosts == [f"2130706433:{port}", f"localhost:{port}"]


def test_a_bad_allow_list_entry_is_one_clear_error(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    allow(monkeypatch, "127.0.0.1, not a host")
    result = runner.invoke(app, ["posts", "list"])
    assert result.exit_code != 0
    assert "NEWSLETTER_FETCH_ALLOW_HOSTS: 'not a host' is not a host name, IP address or CIDR network" in result.stderr


# --- redirects ---------------------------------------------------------------------------------------


def test_a_redirect_from_an_allowed_host_to_the_metadata_service_is_refused(
    loopback_allowed: Settings, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_FETCH_TIMEOUT", "3")  # what was here before tried to connect
    get_settings.cache_clear()
    start = site.redirect("/start", "http://169.254.169.254/latest/meta-data/")
    assert one_error_line("posts", "import", start) == (
        f"error: refusing to fetch http://169.254.169.254/latest/meta-data/ (redirected from {start}): "
        f"169.254.169.254 is a link-local address{HINT}")
    assert site.hits == ["/start"] and stored_posts() == []


def test_a_redirect_to_another_address_of_this_machine_is_refused(
    loopback_allowed: Settings, site: Site, other_loopback_site: Site
) -> None:
    target = other_loopback_site.add("/admin", PAGE)
    start = site.redirect("/start", target, status=301)
    assert one_error_line("posts", "import", start) == (
        f"error: refusing to fetch {target} (redirected from {start}): 127.0.0.2 is a loopback address{HINT}")
    assert other_loopback_site.hits == [] and stored_posts() == []


def test_a_relative_redirect_on_an_allowed_host_is_followed(loopback_allowed: Settings, site: Site) -> None:
    site.add("/post", PAGE)
    start = site.redirect("/start", "/post")
    raw = read_source(start, allow=AllowList.parse(loopback_allowed.fetch_allow_hosts))
    assert raw.url == site.base_url + "/post" and b"Secret admin page." in raw.data


def test_a_redirect_loop_ends(loopback_allowed: Settings, site: Site) -> None:
    start = site.redirect("/loop", "/loop")
    assert one_error_line("posts", "import", start) == f"error: {start}: more than 10 redirects"
    assert len(site.hits) == 11


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1:70/_x", "ftp://x.example/a"])
def test_a_redirect_to_another_scheme_is_refused(loopback_allowed: Settings, site: Site, location: str) -> None:
    start = site.redirect("/start", location)
    assert one_error_line("posts", "import", start) == (
        f"error: {start}: redirected to {location}, which is not an http:// or https:// URL")
    assert stored_posts() == []


def test_only_http_and_https_urls_are_fetched(settings: Settings) -> None:
    for url in ("file:///etc/passwd", "gopher://127.0.0.1:70/_x", "ftp://x.example/a"):
        assert one_error_line("posts", "import", url) == f"error: {url}: only http:// and https:// URLs can be imported"


# --- feeds ----------------------------------------------------------------------------------------------


def test_feeds_add_refuses_a_loopback_feed_and_stores_nothing(settings: Settings, site: Site) -> None:
    url = site.add("/feed.xml", RSS, "application/rss+xml")
    assert one_error_line("feeds", "add", url) == (
        f"error: refusing to fetch {url}: 127.0.0.1 is a loopback address{HINT}; the feed was not added")
    listed = runner.invoke(app, ["feeds", "list", "--json"])
    assert json.loads(listed.stdout) == [] and stored_posts() == [] and site.hits == []


def test_feed_polling_refuses_a_feed_that_now_redirects_into_this_machine(
    loopback_allowed: Settings, site: Site, other_loopback_site: Site
) -> None:
    url = site.add("/feed.xml", RSS, "application/rss+xml")
    assert runner.invoke(app, ["feeds", "add", url]).exit_code == 0
    target = other_loopback_site.add("/feed.xml", RSS.replace("<guid>one</guid><title>One", "<guid>two</guid><title>Two"),
                                     "application/rss+xml")
    site.redirect("/feed.xml", target)
    polled = runner.invoke(app, ["feeds", "poll"])
    refusal = f"refusing to fetch {target} (redirected from {url}): 127.0.0.2 is a loopback address{HINT}"
    assert refusal in polled.stderr
    (feed,) = json.loads(runner.invoke(app, ["feeds", "list", "--json"]).stdout)
    assert feed["last_error"] == refusal
    assert [p["title"] for p in stored_posts()] == ["One"] and other_loopback_site.hits == []


# --- DNS rebinding and TLS -----------------------------------------------------------------------------------


class FakeDNS:
    """Names given answers resolve to them, one answer per lookup (the last one repeats), and
    every lookup is recorded; other names resolve as usual."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: dict[str, list[str]] = {}


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in dns.answers:
            seen = dns.lookups.setdefault(name, [])
            given = dns.answers[name][min(len(seen), len(dns.answers[name]) - 1)]
            seen.append(given)
            return real(given, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns


def test_dns_rebinding_connects_to_the_address_that_was_checked(fake_dns: FakeDNS, site: Site) -> None:
    """The name answers an allowed address when checked and a forbidden one on any later lookup:
    the request must go to the first, with the name in the Host header."""
    site.add("/post", PAGE)
    port = int(site.base_url.rsplit(":", 1)[1])
    with serve_site("127.0.0.2", port) as attacker_target:
        attacker_target.add("/post", PAGE.replace("Secret admin page.", "Rebound."))
        fake_dns.answers["rebind.test"] = ["127.0.0.1", "127.0.0.2"]
        fetched = fetch(f"http://rebind.test:{port}/post", max_bytes=100_000, timeout=5,
                        allow=AllowList.parse("127.0.0.1"))
        assert b"Secret admin page." in fetched.data and fetched.url == f"http://rebind.test:{port}/post"
        assert attacker_target.hits == []
    assert site.hosts == [f"rebind.test:{port}"]
    assert fake_dns.lookups["rebind.test"] == ["127.0.0.1"]  # resolved once


def test_a_name_with_any_forbidden_address_is_refused(fake_dns: FakeDNS, site: Site) -> None:
    site.add("/post", PAGE)
    port = site.base_url.rsplit(":", 1)[1]
    fake_dns.answers["internal.test"] = ["10.0.0.7"]
    with pytest.raises(FetchRefused, match=rf"^refusing to fetch http://internal\.test:{port}/post: internal\.test "
                       r"resolves to 10\.0\.0\.7, a private or special-purpose address; set NEWSLETTER_FETCH_ALLOW_HOSTS"):
        fetch(f"http://internal.test:{port}/post", max_bytes=100_000, timeout=5, allow=AllowList.parse("127.0.0.1"))


@pytest.fixture
def https_site() -> Iterator[tuple[str, ssl.SSLContext, list[str | None], list[str]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for blog.test only: (base URL's port,
    a client context trusting its CA, the server names clients sent, the Host headers)."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("blog.test").configure_cert(server_context)
    names: list[str | None] = []
    hosts: list[str] = []
    server_context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hosts.append(self.headers.get("Host", ""))
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    yield str(server.server_address[1]), client_context, names, hosts
    server.shutdown()
    server.server_close()


def test_https_keeps_the_host_name_for_tls_while_connecting_to_the_checked_address(
    fake_dns: FakeDNS, https_site: tuple[str, ssl.SSLContext, list[str | None], list[str]]
) -> None:
    port, trusted, names, hosts = https_site
    fake_dns.answers["blog.test"] = ["127.0.0.1"]
    fetched = fetch(f"https://blog.test:{port}/post", max_bytes=100_000, timeout=5,
                    allow=AllowList.parse("blog.test"), verify=trusted)
    assert b"Secret admin page." in fetched.data
    assert names == ["blog.test"] and hosts == [f"blog.test:{port}"]
    # The certificate is still checked against the name: another name on the same address fails.
    fake_dns.answers["other.test"] = ["127.0.0.1"]
    with pytest.raises(InputError, match=r"could not fetch \(ConnectError: .*CERTIFICATE_VERIFY_FAILED"):
        fetch(f"https://other.test:{port}/post", max_bytes=100_000, timeout=5,
              allow=AllowList.parse("other.test"), verify=trusted)
