"""The public URLs a recipient's email links to. Each carries a random token, never an address."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from itsdangerous import BadSignature, Signer

from newsletter.config import Settings
from newsletter.personalize import RecipientValues, safe_first_name


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
    return _delivery_signer(settings.signing_key()).sign(str(delivery_id)).decode()


def delivery_from_token(settings: Settings, token: str) -> int | None:
    """The delivery id a token was made for, or None when it is not a genuine delivery token."""
    try:
        value = _delivery_signer(settings.signing_key()).unsign(token).decode()
    except (BadSignature, UnicodeDecodeError):
        return None
    return int(value) if value.isdigit() else None


def delivery_values(settings: Settings, delivery_id: int, name: str | None) -> RecipientValues:
    token = delivery_token(settings, delivery_id)
    base = settings.public_base_url
    return RecipientValues(
        first_name=safe_first_name(name),
        unsubscribe_url=f"{base}/u/{token}",
        preferences_url=f"{base}/preferences/{token}",
        view_online_url=f"{base}/v/{token}",
    )


def delivery_mailto(settings: Settings, delivery_id: int) -> str:
    return unsubscribe_mailto(settings, delivery_token(settings, delivery_id))
