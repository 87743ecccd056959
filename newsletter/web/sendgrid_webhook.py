"""``POST /webhooks/sendgrid``: SendGrid's Event Webhook (a JSON array of events).

The route only guards the door: size, signature, JSON shape. What the events mean is decided in
``newsletter.tracking.provider_events``. A post must carry SendGrid's ECDSA signature over timestamp +
raw body, verified with ``SENDGRID_WEBHOOK_PUBLIC_KEY``, and a timestamp within
``NEWSLETTER_WEBHOOK_MAX_AGE_SECONDS`` of now (so a captured post cannot be replayed later; one
replayed sooner is a duplicate and stores nothing). With no key, every post is refused: unsigned
events could mark real subscribers as complained, bounced or unsubscribed. Only
``NEWSLETTER_ALLOW_UNSIGNED_WEBHOOKS`` (development) lets unsigned posts in while no key is set, and
``create_app`` logs a warning when it does. A refused post stores nothing.

Answers: 200 with counts (SendGrid stops retrying); 400 for a body that is not a JSON array (see
``webhook_body``); 403 without a key, or for a missing, stale or wrong signature; 413 above
``NEWSLETTER_WEBHOOK_MAX_BYTES``; 500 (SendGrid retries) when the key is unusable or the database
fails. Logs carry counts, never payloads.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from newsletter.config import SENDGRID_KEY_HOWTO, UNSIGNED_FOR_DEVELOPMENT, Settings
from newsletter.database import Database
from newsletter.tracking.provider_events import store_events
from newsletter.tracking.signature import public_key, signature_is_valid
from newsletter.web.webhook_body import BodyCheck, Refused, receive_json
from subscribers.db import utcnow

__all__ = ["router", "public_key", "signature_is_valid", "SIGNATURE_HEADER", "TIMESTAMP_HEADER"]

router = APIRouter()
log = logging.getLogger("newsletter.webhooks.sendgrid")
SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE
TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP
UNSIGNED_REFUSED = (f"unsigned webhook posts are refused: SENDGRID_WEBHOOK_PUBLIC_KEY is not set ({SENDGRID_KEY_HOWTO}; "
                    f"or {UNSIGNED_FOR_DEVELOPMENT})")


def accepts_unsigned(settings: Settings) -> bool:
    """Unsigned posts get in only with no key and the development setting on."""
    return settings.sendgrid_webhook_public_key is None and settings.allow_unsigned_webhooks


def warn_if_unsigned(settings: Settings) -> None:
    """Once per process, when the app starts (``create_app``)."""
    if accepts_unsigned(settings):
        log.warning("NEWSLETTER_ALLOW_UNSIGNED_WEBHOOKS is on and SENDGRID_WEBHOOK_PUBLIC_KEY is not set: SendGrid "
                    "webhook posts are accepted without a signature (development only, never in production)")


@router.post("/webhooks/sendgrid", include_in_schema=False)
async def sendgrid_events(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    try:
        result = await receive_json(request, settings.webhook_max_bytes,
                                    signature=lambda: _signature(request, settings),
                                    handle=lambda events: _store(db, events))
    except Refused as refused:
        if refused.status >= 500:
            log.error("sendgrid webhook refused (%d): %s", refused.status, refused.detail)
        else:
            log.warning("sendgrid webhook refused (%d): %s", refused.status, refused.detail)
        return JSONResponse({"detail": refused.detail}, status_code=refused.status)
    log.info("sendgrid webhook: stored %d, duplicates %d, unmatched %d, rejected %d",
             result["stored"], result["duplicates"], result["unmatched"], len(result["rejected"]))
    return JSONResponse(result)


def _signature(request: Request, settings: Settings) -> BodyCheck:
    """A key configured, both headers present and the timestamp fresh, checked before the body is
    read; returns the check of the body's signature."""
    if accepts_unsigned(settings):
        return _unsigned
    if settings.sendgrid_webhook_public_key is None:
        raise Refused(403, UNSIGNED_REFUSED)
    signature = request.headers.get(SIGNATURE_HEADER, "").strip()
    timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    if not signature or not timestamp:
        raise Refused(403, f"the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers are required")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise Refused(403, f"{TIMESTAMP_HEADER} must be seconds since 1970")
    if abs(time.time() - int(timestamp)) > settings.webhook_max_age_seconds:
        raise Refused(403, f"the signature's timestamp is more than {settings.webhook_max_age_seconds} s from now")
    encoded_key = settings.sendgrid_webhook_public_key.get_secret_value()

    def check(body: bytes) -> None:
        try:
            key = public_key(encoded_key)
        except (ValueError, TypeError):
            raise Refused(500, "SENDGRID_WEBHOOK_PUBLIC_KEY is not a valid verification key") from None
        if not signature_is_valid(body, signature, timestamp, key):
            raise Refused(403, "the signature does not match the body")

    return check


def _unsigned(body: bytes) -> None:
    """Unsigned posts let in (development): nothing to check."""


def _store(db: Database, events: Any) -> dict[str, Any]:
    if not isinstance(events, list):
        raise Refused(400, "the body must be a JSON array of events (SendGrid's Event Webhook format)")
    with db.session() as session:
        report = store_events(session, events, now=utcnow())
    return {"stored": report.stored, "duplicates": report.duplicates, "unmatched": report.unmatched,
            "rejected": [{"index": index, "reason": reason} for index, reason in report.rejected]}
