"""``POST /webhooks/sendgrid``: SendGrid's Event Webhook (a JSON array of events).

The route only guards the door: size, signature, JSON shape. What the events mean is decided in
``newsletter.tracking.provider_events``. With ``SENDGRID_WEBHOOK_PUBLIC_KEY`` set, a post must carry
SendGrid's ECDSA signature over timestamp + raw body, and a timestamp within
``NEWSLETTER_WEBHOOK_MAX_AGE_SECONDS`` of now (so a captured post cannot be replayed later; one
replayed sooner is a duplicate and stores nothing). A refused post stores nothing.

Answers: 200 with counts (SendGrid stops retrying); 400 for a body that is not a JSON array; 403 for
a missing, stale or wrong signature; 413 above ``NEWSLETTER_WEBHOOK_MAX_BYTES``; 500 (SendGrid
retries) when the configured key is unusable or the database fails. Logs carry counts, never payloads.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from starlette.concurrency import run_in_threadpool

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.tracking.provider_events import store_events
from subscribers.db import utcnow

router = APIRouter()
log = logging.getLogger("newsletter.webhooks.sendgrid")
SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE
TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP
_verifier = EventWebhook()
_warned_unsigned = False


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@functools.lru_cache(maxsize=4)
def public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The configured key, converted once (PEM parsing costs more than a verification)."""
    key = _verifier.convert_public_key_to_ecdsa(text.strip())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve key")
    return key


def configured_key(settings: Settings) -> str | None:
    """The verification key, if set (an empty value, as an env file may leave it, is unset)."""
    key = settings.sendgrid_webhook_public_key
    if key is None:
        return None
    return key.get_secret_value().strip() or None


def signature_is_valid(payload: bytes, signature: str, timestamp: str, key: ec.EllipticCurvePublicKey) -> bool:
    """SendGrid's helper over timestamp + body; any malformed input is simply not valid."""
    try:
        return bool(_verifier.verify_signature(payload.decode("utf-8"), signature, timestamp, key))
    except ValueError:  # a body that is not UTF-8, a signature that is not base64
        return False


@router.post("/webhooks/sendgrid", include_in_schema=False)
async def sendgrid_events(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    try:
        _check_length(request, settings.webhook_max_bytes)
        signed = _signature_headers(request, settings) if configured_key(settings) else None
        body = await _read(request, settings.webhook_max_bytes)
        # Verifying, parsing and storing are CPU and database work: off the event loop.
        result = await run_in_threadpool(_handle, settings, request.app.state.db, body, signed)
    except _Refused as refused:
        if refused.status >= 500:
            log.error("sendgrid webhook refused (%d): %s", refused.status, refused.detail)
        else:
            log.warning("sendgrid webhook refused (%d): %s", refused.status, refused.detail)
        return JSONResponse({"detail": refused.detail}, status_code=refused.status)
    log.info("sendgrid webhook: stored %d, duplicates %d, unmatched %d, rejected %d",
             result["stored"], result["duplicates"], result["unmatched"], len(result["rejected"]))
    return JSONResponse(result)


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return  # chunked: counted while reading
    if not declared.strip().isdigit():
        raise _Refused(400, "Content-Length is not a number")
    if int(declared) > limit:
        raise _Refused(413, f"the body is larger than {limit} bytes")


def _signature_headers(request: Request, settings: Settings) -> tuple[str, str]:
    """Both headers present and the timestamp fresh, checked before the body is even read."""
    signature = request.headers.get(SIGNATURE_HEADER, "").strip()
    timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    if not signature or not timestamp:
        raise _Refused(403, f"the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers are required")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise _Refused(403, f"{TIMESTAMP_HEADER} must be seconds since 1970")
    if abs(time.time() - int(timestamp)) > settings.webhook_max_age_seconds:
        raise _Refused(403, f"the signature's timestamp is more than {settings.webhook_max_age_seconds} s from now")
    return signature, timestamp


async def _read(request: Request, limit: int) -> bytes:
    """The raw body (the signature covers its exact bytes), counted as it arrives."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Refused(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _handle(settings: Settings, db: Database, body: bytes, signed: tuple[str, str] | None) -> dict[str, Any]:
    global _warned_unsigned
    key_text = configured_key(settings)
    if key_text is None and not _warned_unsigned:
        _warned_unsigned = True  # once per process: the setting is the fix, not a log line per post
        log.warning("SENDGRID_WEBHOOK_PUBLIC_KEY is not set: SendGrid webhook posts are accepted unverified")
    if key_text is not None:
        assert signed is not None
        try:
            key = public_key(key_text)
        except (ValueError, TypeError):
            raise _Refused(500, "SENDGRID_WEBHOOK_PUBLIC_KEY is not a valid verification key") from None
        if not signature_is_valid(body, signed[0], signed[1], key):
            raise _Refused(403, "the signature does not match the body")
    events = _parse(body)
    with db.session() as session:
        report = store_events(session, events, now=utcnow())
    return {"stored": report.stored, "duplicates": report.duplicates, "unmatched": report.unmatched,
            "rejected": [{"index": index, "reason": reason} for index, reason in report.rejected]}


def _parse(body: bytes) -> list[Any]:
    try:
        events = json.loads(body)
    except UnicodeDecodeError:
        raise _Refused(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:  # its message names the place, not the content
        raise _Refused(400, f"the body is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    if not isinstance(events, list):
        raise _Refused(400, "the body must be a JSON array of events (SendGrid's Event Webhook format)")
    return events
