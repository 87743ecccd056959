"""POST /webhooks/bookings: a booking system reports a consultation booked.

JSON ``{"email", "external_id", "booked_for"?, "name"?, "phone"?}``, signed with HMAC-SHA256 of the raw
body under NEWSLETTER_BOOKINGS_WEBHOOK_SECRET in ``X-Signature: sha256=<hex>``. Idempotent by
external id: a retried delivery records nothing twice. The booking moves the lead to booked, ends its
nurture sequences and is attributed (booking listeners, wired by ``newsletter.bootstrap.wire``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from newsletter.config import Settings
from newsletter.web.webhook_body import BodyCheck, Refused, receive_json
from subscribers.errors import InputError
from subscribers.leads import ErasedAddress, parse_datetime, record_booking

router = APIRouter()
log = logging.getLogger("newsletter.webhooks")


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@router.post("/webhooks/bookings", include_in_schema=False)
async def bookings(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    if settings.bookings_webhook_secret is None:
        return JSONResponse({"error": "the bookings webhook is not configured"}, status_code=404)
    secret = settings.bookings_webhook_secret.get_secret_value()
    db = request.app.state.db

    def signature() -> BodyCheck:
        given = request.headers.get("x-signature", "").encode("latin-1")  # headers arrive as latin-1: bytes again

        def check(body: bytes) -> None:
            if not hmac.compare_digest(signature_for(secret, body).encode(), given):
                raise Refused(403, "bad or missing X-Signature")

        return check

    def store(data: Any) -> dict[str, Any]:  # in a worker thread: blocking database work off the event loop
        email, external_id, when = _fields(data)
        booked_for = parse_datetime(when, "booked_for") if when else None
        with db.session() as session:
            result = record_booking(session, email, booked_for=booked_for, origin="api",
                                    external_id=external_id, default_timezone=settings.default_timezone)
            return {"booking": result.booking.id, "created": result.created}

    try:
        answer = await receive_json(request, settings.webhook_max_bytes, signature=signature, handle=store)
    except Refused as refused:
        return JSONResponse({"error": refused.detail}, status_code=refused.status)
    except ErasedAddress:
        return JSONResponse({"status": "ignored: the person asked to be erased"}, status_code=202)
    except InputError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    log.info("booking webhook: %s", "recorded" if answer["created"] else "already recorded")
    return JSONResponse(answer, status_code=201 if answer["created"] else 200)


def _fields(data: Any) -> tuple[str, str, str | None]:
    """(email, external_id, booked_for) with their types checked; InputError says which is wrong."""
    if not isinstance(data, dict):
        raise InputError("the body must be a JSON object")
    email, external_id, when = data.get("email"), data.get("external_id"), data.get("booked_for")
    if not isinstance(email, str) or not isinstance(external_id, str) or not external_id.strip():
        raise InputError("email and external_id (strings) are required")
    if when is not None and not isinstance(when, str):
        raise InputError("booked_for must be an ISO 8601 date-time string with an offset")
    return email, external_id.strip(), when
