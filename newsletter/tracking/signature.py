"""SendGrid's Signed Event Webhook: the verification key and the signature check, in one place (the
settings check the key when they load; the webhook route checks each post)."""

from __future__ import annotations

import base64
import binascii
import functools

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook

_verifier = EventWebhook()


@functools.lru_cache(maxsize=4)
def public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The key as SendGrid shows it (base64, no PEM lines), converted once (parsing costs more than a
    verification). ValueError when it is not an elliptic-curve public key."""
    key = _verifier.convert_public_key_to_ecdsa(text.strip())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve key")
    return key


def signature_is_valid(payload: bytes, signature: str, timestamp: str, key: ec.EllipticCurvePublicKey) -> bool:
    """ECDSA-SHA256 over timestamp + the exact body bytes, as SendGrid signs (its helper takes the body
    as text, so a body that is not UTF-8 could not even be checked); anything malformed is not valid."""
    try:
        key.verify(base64.b64decode(signature), timestamp.encode("utf-8") + payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):  # a signature that is not base64, or not ours
        return False
    return True
