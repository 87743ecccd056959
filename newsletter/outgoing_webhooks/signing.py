"""The signature on every outgoing webhook request, the way a receiver checks it.

``X-Newsletter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``: the
timestamp is signed with the body, so a receiver that refuses old timestamps refuses replays, and
``v1`` names the scheme so a second one can be added beside it. README ("Outgoing webhooks") shows
the receiver's side; tests/test_outgoing_webhooks.py runs that very code against our requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

SIGNATURE_HEADER = "X-Newsletter-Signature"
EVENT_ID_HEADER = "X-Newsletter-Event-Id"
EVENT_TYPE_HEADER = "X-Newsletter-Event-Type"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A random per-endpoint signing secret (256 bits), shown once to the admin who registers it."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent: compact, keys sorted, so every attempt of an event sends the same body."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"
