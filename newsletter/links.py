"""The public URLs a recipient's email links to. Each carries a random token, never an address."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from itsdangerous import BadSignature, Signer

from newsletter.config import Settings
from newsletter.personalize import RecipientValues, safe_first_name


# Ids read from URL paths. Links, issues and steps have INTEGER keys on PostgreSQL; the ledger's are
# BIGINT (SQLite's are 64-bit). A larger number would overflow the database driver.
MAX_ID = 2**31 - 1
MAX_LEDGER_ID = 2**63 - 1
ANONYMOUS_TOKEN = "anon"  # the token of emails under anonymous tracking: counts, nobody's


def url_id(text: str, *, largest: int = MAX_ID) -> int | None:
    """The id a URL path segment names, or None when it names none: only ASCII digits count ("²"
    and "٣" are digits to ``str.isdigit`` but not ids), from 1 to what the column holds."""
    if not text or len(text) > 19 or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 0 < value <= largest else None


def new_token() -> str:
    """An unguessable, URL-safe token (128 bits)."""
    return secrets.token_urlsafe(16)


def unsubscribe_url(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url}/u/{token}"


def unsubscribe_mailto(settings: Settings, token: str) -> str:
    return f"mailto:{settings.unsubscribe_email}?subject=unsubscribe-{token}"


def recipient_values(settings: Settings, token: str, name: str | None) -> RecipientValues:
    base = settings.public_base_url
    return RecipientValues(
        first_name=safe_first_name(name),
        unsubscribe_url=unsubscribe_url(settings, token),
        preferences_url=f"{base}/preferences/{token}",
        view_online_url=f"{base}/v/{token}",
    )


# Delivery tokens: one per email sent, in the unsubscribe, preferences and view-online links. A signed
# delivery id (HMAC-SHA256): unguessable, nothing stored, and cheap enough to make 20,000 a second.


@lru_cache(maxsize=4)
def _delivery_signer(key: str) -> Signer:
    return Signer(key, salt="newsletter.delivery", digest_method=hashlib.sha256)


def delivery_token(settings: Settings, delivery_id: int) -> str:
    return DeliveryLinks(settings).token(delivery_id)


def delivery_from_token(settings: Settings, token: str) -> int | None:
    """The delivery id a token was made for, or None when it is not a genuine delivery token."""
    try:
        value = _delivery_signer(settings.signing_key()).unsign(token).decode()
    except (BadSignature, UnicodeDecodeError):
        return None
    return url_id(value, largest=MAX_LEDGER_ID)


class DeliveryLinks:
    """Makes the per-recipient values of a batch: one signature per delivery serves the unsubscribe,
    preferences and view-online links and the List-Unsubscribe mailto (the hot path of sending)."""

    def __init__(self, settings: Settings) -> None:
        # The same tokens itsdangerous's Signer makes (and verifies), with the key derived once and
        # the HMAC state reused: a few microseconds a recipient instead of tens.
        self._key = _delivery_signer(settings.signing_key()).derive_key()
        self._base = settings.public_base_url
        self._mailto = f"mailto:{settings.unsubscribe_email}?subject=unsubscribe-"

    def token(self, delivery_id: int) -> str:
        value = str(delivery_id)
        mac = hmac.digest(self._key, value.encode(), "sha256")  # one-shot: OpenSSL's HMAC in one call
        return f"{value}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"  # itsdangerous's encoding

    def values(self, delivery_id: int, name: str | None) -> tuple[RecipientValues, str]:
        token = self.token(delivery_id)
        base = self._base
        values = RecipientValues(
            first_name=safe_first_name(name),
            unsubscribe_url=f"{base}/u/{token}",
            preferences_url=f"{base}/preferences/{token}",
            view_online_url=f"{base}/v/{token}",
            track=token,
        )
        return values, self._mailto + token


def delivery_values(settings: Settings, delivery_id: int, name: str | None) -> RecipientValues:
    return DeliveryLinks(settings).values(delivery_id, name)[0]
