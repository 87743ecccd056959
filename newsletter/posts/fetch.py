"""Fetching a post or feed URL without letting the URL reach where it should not.

The one way posts and feeds are fetched. Each URL, and each redirect, is checked the same way:
only http and https; its host is resolved once, every address it resolves to must be globally
reachable (or allowed by ``NEWSLETTER_FETCH_ALLOW_HOSTS``), and the request goes to the address
that was checked, never to a second resolution a DNS-rebinding attacker could answer differently.
The Host header and the TLS server name stay those of the URL's host, so virtual hosting and
certificate checks work as usual. The body is read under a hard cap while it streams (compressed
bodies are inflated under the same cap), whatever Content-Length says, within an overall deadline.
"""

from __future__ import annotations

import socket
import ssl
import time
import zlib
from dataclasses import dataclass

import httpx

from newsletter.errors import InputError
from newsletter.posts.addresses import ALLOW_SETTING, AllowList, IPAddress, parse_ip, refusal_reason
from newsletter.posts.limits import CappedBody, size_text

USER_AGENT = "clinic-newsletter/0.1 (post importer)"
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SCHEMES = ("http", "https")


@dataclass
class Fetched:
    url: str  # the final URL after redirects, with its host name (never the address connected to)
    data: bytes
    content_type: str | None


class FetchRefused(InputError):
    """The URL, or a redirect, points where fetches may not go (a non-global address)."""


def checked_addresses(url: httpx.URL, shown: str, allow: AllowList, setting: str = ALLOW_SETTING,
                      doing: str = "fetch") -> list[IPAddress]:
    """The host's addresses, each one allowed; refused if any is not (a name that also resolves
    to 127.0.0.1 is as suspect as one that only does). ``setting`` is the variable that allows more."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"{shown}: could not {doing} ({host} does not resolve: "
                         f"{getattr(exc, 'strerror', None) or exc})") from exc
    found: list[IPAddress] = []
    for info in infos:
        ip = parse_ip(str(info[4][0]))
        if ip in found:
            continue
        why = refusal_reason(ip)
        if why is not None and not allow.allows(host, ip):
            said = f"{url.host} is {why}" if _literal_ip(url.host) == ip else f"{url.host} resolves to {ip}, {why}"
            raise FetchRefused(f"refusing to {doing} {shown}: {said}; set {setting} to allow it")
        found.append(ip)
    return found


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return parse_ip(host)
    except ValueError:
        return None


class _Inflater:
    """Content-Encoding undone under the cap: a few kilobytes of gzip can inflate to gigabytes."""

    def __init__(self, encoding: str, name: str) -> None:
        self.name = name
        kind = encoding.strip().lower()
        if kind in ("", "identity"):
            self._z = None
        elif kind in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif kind == "deflate":
            self._z = zlib.decompressobj()  # zlib-wrapped, as HTTP says; raw deflate handled below
        else:
            raise InputError(f"{name}: the server sent Content-Encoding {encoding!r}, which is not supported")
        self._raw_deflate_possible = kind == "deflate"

    def __call__(self, chunk: bytes, limit: int) -> bytes:
        """At most ``limit`` bytes of output (reaching it means the body is over the cap)."""
        if self._z is None:
            return chunk
        try:
            try:
                out = self._z.decompress(chunk, limit)
            except zlib.error:
                if not self._raw_deflate_possible:
                    raise
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # servers that send raw deflate
                out = self._z.decompress(chunk, limit)
        except zlib.error as exc:
            raise InputError(f"{self.name}: the compressed body is corrupt ({exc})") from exc
        self._raw_deflate_possible = False  # only the first bytes tell which of the two it is
        return out


def _read_body(response: httpx.Response, name: str, max_bytes: int, deadline: float, timeout: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:  # refuse early; the cap below holds anyway
        raise InputError(f"{name}: is {size_text(int(declared))}; the limit is {size_text(max_bytes)}")
    inflate = _Inflater(response.headers.get("content-encoding", ""), name)
    body = CappedBody(name, max_bytes)
    wire = 0
    for chunk in response.iter_raw():
        wire += len(chunk)
        if wire > max_bytes:  # e.g. endless empty deflate blocks: nothing comes out, bytes keep coming
            raise InputError(f"{name}: is larger than the {size_text(max_bytes)} limit")
        body.add(inflate(chunk, body.room))
        if time.monotonic() > deadline:
            raise InputError(f"{name}: no complete answer within {timeout:g} seconds")
    return body.data()


def send_pinned(client: httpx.Client, url: httpx.URL, addresses: list[IPAddress], method: str = "GET", *,
                content: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """Request ``url`` from the first of ``addresses`` (those checked) that takes the connection,
    never from a second resolution of its name."""
    error: httpx.ConnectError | None = None
    for ip in addresses:
        request = client.build_request(
            method, url.copy_with(host=str(ip)), content=content,
            headers={**(headers or {}), "Host": url.netloc.decode("ascii")},
            extensions={"sni_hostname": url.raw_host.decode("ascii")},  # and the certificate's name
        )
        try:
            return client.send(request, stream=True)
        except httpx.ConnectError as exc:
            error = exc
    assert error is not None  # getaddrinfo never answers an empty list
    raise error


def fetch(url: str, *, max_bytes: int, timeout: float, allow: AllowList,
          verify: ssl.SSLContext | bool = True) -> Fetched:
    """GET an http(s) URL, following up to ``MAX_REDIRECTS`` redirects, each checked as the first.

    Errors name ``url``; a refusal names the URL refused (and where a redirect came from).
    """
    deadline = time.monotonic() + timeout
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            target = httpx.URL(current)
            if target.scheme not in _SCHEMES:
                raise InputError(f"{url}: only http:// and https:// URLs can be imported")
            if not target.raw_host:
                raise InputError(f"{current}: the URL has no host")
            shown = current if current == url else f"{current} (redirected from {url})"
            addresses = checked_addresses(target, shown, allow)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InputError(f"{url}: no complete answer within {timeout:g} seconds")
            # A client per hop: its pooled connection is tied to the address and name checked here.
            with httpx.Client(timeout=remaining, verify=verify, trust_env=False, follow_redirects=False,
                              headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}) as client:
                response = send_pinned(client, target, addresses)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECTS and location:
                        following = target.join(location)
                        if following.scheme not in _SCHEMES:
                            raise InputError(f"{url}: redirected to {location}, which is not an http:// or "
                                             "https:// URL")
                        current = str(following.copy_with(fragment=None))
                        continue
                    if response.status_code >= 400:
                        raise InputError(f"{url}: the server answered HTTP {response.status_code} "
                                         f"{response.reason_phrase}".rstrip())
                    data = _read_body(response, url, max_bytes, deadline, timeout)
                    return Fetched(url=current, data=data, content_type=response.headers.get("content-type"))
                finally:
                    response.close()
        raise InputError(f"{url}: more than {MAX_REDIRECTS} redirects")
    except httpx.TimeoutException as exc:
        raise InputError(f"{url}: no answer within {timeout:g} seconds") from exc
    except httpx.InvalidURL as exc:
        raise InputError(f"{url}: not a valid URL ({exc})") from exc
    except httpx.HTTPError as exc:
        raise InputError(f"{url}: could not fetch ({exc.__class__.__name__}: {exc})") from exc
