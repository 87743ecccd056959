"""Telling people from machines: opens and clicks we believe no person caused are labelled, kept, and
never counted as human engagement.

- Apple Mail Privacy Protection fetches every image through Apple's proxies (17.0.0.0/8, and a fixed
  user agent without a browser version) whether or not the email is read.
- Link scanners of mail gateways (Proofpoint, Mimecast, Barracuda, Microsoft Defender...) and scripts
  fetch links with their own user agents, often with HEAD, often within seconds of delivery, and
  often every link of an email at once.
Gmail's image proxy fetches when the reader opens the email, so its opens stay human.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from datetime import datetime, timedelta

from subscribers.states import EventType

APPLE_PROXY = ipaddress.ip_network("17.0.0.0/8")
# The exact user agent Apple's privacy proxy sends (no Version/Safari tokens, unlike Safari itself).
APPLE_MPP_AGENT = re.compile(r"^Mozilla/5\.0 \(Macintosh; Intel Mac OS X [\d_]+\) AppleWebKit/[\d.]+ \(KHTML, like Gecko\)$")
SCANNERS = re.compile(
    r"proofpoint|mimecast|barracuda|bitdefender|symantec|messagelabs|trendmicro|forcepoint|sophos|"
    r"fireeye|cisco|ironport|safelinks|microsoft office|outlook-safelinks|zscaler|urlscan|virustotal|"
    r"bot\b|crawler|spider|preview|curl|wget|python-requests|python-urllib|httpx|go-http-client|java/|"
    r"okhttp|libwww|headless|phantomjs|yahoomailproxy",
    re.IGNORECASE,
)
TOO_SOON = timedelta(seconds=10)  # nobody reads and clicks within seconds of delivery
ALL_AT_ONCE = timedelta(seconds=5)  # a person does not click three links of one email in five seconds
ALL_AT_ONCE_LINKS = 3
BURST = "clicked every link at once"


def machine_reason(*, method: str, user_agent: str | None, ip: str | None, kind: str,
                   submitted_at: datetime | None = None, now: datetime | None = None) -> str | None:
    """Why this request looks automatic, or None when a person plausibly made it."""
    if method.upper() == "HEAD":
        return "HEAD request"
    agent = (user_agent or "").strip()
    if not agent:
        return "no user agent"
    if ip:
        try:
            if ipaddress.ip_address(ip) in APPLE_PROXY:
                return "Apple Mail Privacy Protection"
        except ValueError:
            pass
    if APPLE_MPP_AGENT.match(agent) and kind == EventType.OPEN:
        return "Apple Mail Privacy Protection"
    if SCANNERS.search(agent):
        return "known scanner or proxy"
    if kind == EventType.CLICK:
        return too_soon(submitted_at, now)
    return None


@lru_cache(maxsize=4096)
def request_reason(method: str, user_agent: str | None, ip: str | None, kind: str) -> str | None:
    """``machine_reason`` of the request alone (no delivery), remembered: scanners and browsers come
    back with the same agent and address, and a burst asks thousands of times a second."""
    return machine_reason(method=method, user_agent=user_agent, ip=ip, kind=kind)


def too_soon(submitted_at: datetime | None, now: datetime | None) -> str | None:
    """The one label that needs the delivery: a click within seconds of its email being sent."""
    if submitted_at is not None and now is not None and now - submitted_at < TOO_SOON:
        return "clicked within seconds of sending"
    return None
