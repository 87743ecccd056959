"""Signed links for confirmation, preferences and unsubscribe: no login, nothing guessable.

Each purpose has its own salt, so a preferences token never works as a confirmation token. Tokens
carry internal ids only, never an address.
"""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from subscribers.errors import InputError

PURPOSES = ("confirm", "preferences", "unsubscribe")


class LinkExpired(InputError):
    """The link was genuine but is too old (confirmation links expire)."""


class Tokens:
    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 characters")
        self._serializers = {p: URLSafeTimedSerializer(secret, salt=f"newsletter.{p}") for p in PURPOSES}

    def make(self, purpose: str, **payload: int) -> str:
        return self._serializers[purpose].dumps(payload)

    def read(self, purpose: str, token: str, *, max_age_seconds: int | None = None) -> dict[str, Any]:
        try:
            data = self._serializers[purpose].loads(token, max_age=max_age_seconds)
        except SignatureExpired:
            raise LinkExpired("this link has expired") from None
        except BadSignature:
            raise InputError("this link is not valid") from None
        if not isinstance(data, dict):
            raise InputError("this link is not valid")
        return data
