"""The address classifier over the IANA special-purpose address registries, and the allow-list.

The rows below are the registries' entries whose "Globally Reachable" is False (IPv4 and IPv6
Special-Purpose Address Registries, plus the multicast and deprecated site-local blocks, which
have registries of their own): every address in them must be refused.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.posts.addresses import AllowList, refusal_reason
from tests.fuzzing import fuzz_settings

NOT_GLOBAL_V4 = [
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private-use"),
    ("100.64.0.0/10", "shared address space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link local"),
    ("172.16.0.0/12", "private-use"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.0.0/29", "IPv4 service continuity prefix"),
    ("192.0.0.8/32", "IPv4 dummy address"),
    ("192.0.0.170/31", "NAT64/DNS64 discovery"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.168.0.0/16", "private-use"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "limited broadcast"),
    ("224.0.0.0/4", "multicast"),
]
NOT_GLOBAL_V6 = [
    ("::1/128", "loopback"),
    ("::/128", "unspecified"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("64:ff9b:1::/48", "IPv4-IPv6 translation, local use"),
    ("100::/64", "discard-only"),
    ("100:0:0:1::/64", "dummy IPv6 prefix"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:2::/48", "benchmarking"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing SIDs"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local unicast"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
]
GLOBAL = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "151.101.1.69", "2606:4700:4700::1111", "2a00:1450:4001:82b::200e",
          "64:ff9b::808:808"]  # the last: 8.8.8.8 through the well-known NAT64 prefix


def samples(cidr: str) -> list[str]:
    net = ip_network(cidr)
    return [str(net.network_address), str(net[net.num_addresses // 2]), str(net.broadcast_address)]


@pytest.mark.parametrize("cidr, name", NOT_GLOBAL_V4 + NOT_GLOBAL_V6)
def test_every_not_globally_reachable_range_is_refused(cidr: str, name: str) -> None:
    for text in samples(cidr):
        assert refusal_reason(ip_address(text)) is not None, f"{text} ({name}, {cidr})"


@pytest.mark.parametrize("cidr, name", NOT_GLOBAL_V4)
def test_ipv6_forms_that_carry_a_refused_ipv4_address_are_refused(cidr: str, name: str) -> None:
    for text in samples(cidr):
        v4 = int(IPv4Address(text))
        for form in (IPv6Address((0xFFFF << 32) | v4),  # ::ffff:a.b.c.d, mapped
                     IPv6Address(v4),  # ::a.b.c.d, compatible (deprecated)
                     IPv6Address((0x64FF9B << 96) | v4),  # 64:ff9b::a.b.c.d, NAT64
                     IPv6Address((0x2002 << 112) | (v4 << 80) | 1)):  # 2002:aabb:ccdd::1, 6to4
            if int(form) <= 1:
                continue  # ::/128 and ::1 are themselves, judged above
            assert refusal_reason(form) is not None, f"{form} carries {text} ({name})"


@pytest.mark.parametrize("text", GLOBAL)
def test_global_unicast_addresses_are_fetched(text: str) -> None:
    assert refusal_reason(ip_address(text)) is None


@pytest.mark.parametrize("text, reason", [
    ("127.0.0.1", "a loopback address"),
    ("::1", "a loopback address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("169.254.169.254", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("10.1.2.3", "a private or special-purpose address"),
    ("100.100.100.200", "a shared (carrier-grade NAT) address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("::ffff:127.0.0.1", "an IPv4-mapped form of 127.0.0.1, a loopback address"),
    ("::ffff:169.254.169.254", "an IPv4-mapped form of 169.254.169.254, a link-local address"),
    ("::ffff:8.8.8.8", "an IPv4-mapped address, not globally reachable as such (use 8.8.8.8 itself)"),
    ("::808:808", "a reserved address"),  # IPv4-compatible form of a global address: deprecated
    ("::7f00:1", "an IPv4-compatible form of 127.0.0.1, a loopback address"),
    ("64:ff9b::a9fe:a9fe", "a NAT64 form of 169.254.169.254, a link-local address"),
    ("2002:c0a8:101::1", "a 6to4 form of 192.168.1.1, a private or special-purpose address"),
])
def test_the_reason_names_what_the_address_is(text: str, reason: str) -> None:
    assert refusal_reason(ip_address(text)) == reason


def test_allow_list_by_name_address_and_network() -> None:
    allow = AllowList.parse(" localhost , 10.0.0.5, 192.168.0.0/16, [::1], Intranet.Example. ")
    assert allow.allows("localhost", ip_address("127.0.0.1"))
    assert allow.allows("LOCALHOST.", ip_address("::1"))
    assert allow.allows("intranet.example", ip_address("10.9.9.9"))
    assert allow.allows("anything.example", ip_address("10.0.0.5"))
    assert allow.allows("anything.example", ip_address("192.168.44.1"))
    assert allow.allows("anything.example", ip_address("::ffff:192.168.44.1"))  # the same IPv4 address
    assert allow.allows("[::1]", ip_address("::1"))
    assert not allow.allows("anything.example", ip_address("10.0.0.6"))
    assert not allow.allows("anything.example", ip_address("127.0.0.1"))
    assert not allow.allows("localhost.evil.example", ip_address("127.0.0.1"))
    assert AllowList.parse("") == AllowList()


@pytest.mark.parametrize("entry", ["not a host", "http://x.example", "10.0.0.0/33", "a..b", "-x.example", "x/y"])
def test_allow_list_refuses_what_is_no_host_address_or_network(entry: str) -> None:
    with pytest.raises(ValueError, match=rf"NEWSLETTER_FETCH_ALLOW_HOSTS: '{entry}' is not a host name, IP address"):
        AllowList.parse(f"localhost,{entry}")


NOT_GLOBAL_NETS = [ip_network(cidr) for cidr, _ in NOT_GLOBAL_V4 + NOT_GLOBAL_V6]


@st.composite
def address_in_a_special_range(draw: st.DrawFn) -> IPv4Address | IPv6Address:
    net = draw(st.sampled_from(NOT_GLOBAL_NETS))
    return net[draw(st.integers(0, net.num_addresses - 1))]


@pytest.mark.fuzz
@fuzz_settings
@given(address_in_a_special_range())
def test_fuzz_any_address_in_a_special_range_is_refused(ip: IPv4Address | IPv6Address) -> None:
    assert refusal_reason(ip) is not None
    if isinstance(ip, IPv4Address):
        assert refusal_reason(IPv6Address((0xFFFF << 32) | int(ip))) is not None


@pytest.mark.fuzz
@fuzz_settings
@given(st.integers(0, 2**32 - 1))
def test_fuzz_an_ipv4_address_is_fetched_only_when_global_and_never_in_mapped_form(n: int) -> None:
    v4 = IPv4Address(n)
    refused = refusal_reason(v4) is not None
    assert refused == (not v4.is_global or v4.is_multicast or any(v4 in net for net in NOT_GLOBAL_NETS if net.version == 4))
    assert refusal_reason(IPv6Address((0xFFFF << 32) | n)) is not None  # ::ffff:a.b.c.d, never on the wire
    assert (refusal_reason(IPv6Address((0x64FF9B << 96) | n)) is not None) == refused  # NAT64 reaches it
