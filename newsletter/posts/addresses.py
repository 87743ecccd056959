"""Which network addresses a post or feed fetch may connect to.

A URL given to the importer, or a redirect it follows, must not reach this machine or the network
it sits in (the cloud metadata service at 169.254.169.254, an admin page on localhost, a database
on 10.x): only globally reachable addresses are fetched, unless staff name a host in
``NEWSLETTER_FETCH_ALLOW_HOSTS``. The judgement is the standard library's (``ipaddress``), with
IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) refused when that
address is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

ALLOW_SETTING = "NEWSLETTER_FETCH_ALLOW_HOSTS"

# Special-purpose ranges the IANA registries mark not globally reachable that ``is_global`` of
# Python before 3.13 still calls global (192.0.0.0/24 holds two anycast exceptions, .9 and .10,
# that a post is never fetched from; 3fff::/20 is documentation since 2024).
_NOT_GLOBAL_ON_OLDER_PYTHONS = (ip_network("192.0.0.0/24"), ip_network("3fff::/20"))
_SHARED = ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598); the stdlib has no name for it
_COMPATIBLE = ip_network("::/96")  # deprecated IPv4-compatible IPv6 (RFC 4291 2.5.5.1)
_NAT64 = ip_network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052): reaches the IPv4 inside
_HOST_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$")


def _article(noun: str) -> str:
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def _own_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` itself (not an address inside it) is not globally reachable, or None."""
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:  # is_global is true for global-scope multicast: never a web server
        return "a multicast address"
    if isinstance(ip, IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private or special-purpose address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global or any(ip in net for net in _NOT_GLOBAL_ON_OLDER_PYTHONS if net.version == ip.version):
        return "a special-purpose address that is not globally reachable"
    return None


def embedded_ipv4(ip: IPAddress) -> tuple[IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries and the name of that form, if it carries one."""
    if not isinstance(ip, IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _COMPATIBLE and int(ip) > 1:  # not :: or ::1, which are themselves
        return IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-compatible"
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip.teredo is not None:
        return ip.teredo[1], "Teredo"
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """Why connecting to ``ip`` is refused (e.g. "a loopback address"), or None when it is global."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        v4, form = inner
        why = _own_reason(v4)
        if why is not None:
            return f"{_article(form)} form of {v4}, {why}"
        if form == "NAT64":
            return None  # an IPv6-only network's way to the (global) IPv4 address inside
        if form == "IPv4-mapped":  # never on the wire (RFC 4291); a name answering it is a trick
            return f"an IPv4-mapped address, not globally reachable as such (use {v4} itself)"
    return _own_reason(ip)


@dataclass(frozen=True)
class AllowList:
    """Hosts staff allow despite a non-global address: names (matched against the URL's host),
    addresses and networks (matched against the address it resolves to)."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str, setting: str = ALLOW_SETTING) -> "AllowList":
        """``"localhost, 10.0.0.5, 192.168.0.0/16, ::1"``; a bad entry is a ValueError naming it (and
        ``setting``, the variable it came from)."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in (text or "").split(",")):
            if not entry:
                continue
            literal = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
            try:
                networks.append(ip_network(literal, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.match(literal):
                raise ValueError(f"{setting}: {entry!r} is not a host name, IP address or CIDR network "
                                 "(write an international name in its xn-- form)")
            names.add(normal_host(literal))
        return cls(frozenset(names), tuple(networks))

    def allows(self, host: str, ip: IPAddress) -> bool:
        if normal_host(host) in self.names:
            return True
        candidates = [ip] + ([inner[0]] if (inner := embedded_ipv4(ip)) else [])
        return any(c in net for c in candidates for net in self.networks if net.version == c.version)


def normal_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def parse_ip(text: str) -> IPAddress:
    """An address as getaddrinfo gives it (an IPv6 one may carry a %scope)."""
    return ip_address(text.split("%", 1)[0])
