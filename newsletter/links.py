"""The public URLs a recipient's email links to. Each carries a random token, never an address."""

from __future__ import annotations

import secrets

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
