"""Endpoint secrets sealed at rest with the app's secret key (``Settings.signing_key``).

A signing secret must be read back to sign, so it cannot be hashed like a password; sealed with
Fernet (AES-CBC + HMAC, from ``cryptography``) under a key derived from the secret key, a copy of
the database alone does not let anyone forge our signatures. A secret key that changed since the
endpoint was registered cannot open it: ``SealBroken`` says so, and the admin makes a new secret.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

PURPOSE = b"outgoing-webhook-secret\x00"  # keeps this key apart from every other use of the secret key


class SealBroken(RuntimeError):
    """The sealed secret cannot be opened with today's secret key."""


def _fernet(app_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(PURPOSE + app_key.encode("utf-8")).digest()))


def seal(app_key: str, secret: str) -> str:
    return _fernet(app_key).encrypt(secret.encode("utf-8")).decode("ascii")


def unseal(app_key: str, sealed: str) -> str:
    try:
        return _fernet(app_key).decrypt(sealed.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError):
        raise SealBroken("the endpoint's signing secret cannot be opened with this NEWSLETTER_SECRET_KEY "
                         "(was it changed?); make a new secret for the endpoint") from None
