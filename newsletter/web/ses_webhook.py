"""``POST /webhooks/ses``: Amazon SNS's HTTPS notifications of the SES configuration set's events.

The route only guards the door: size, the SNS signature and topic (``newsletter.tracking.sns``), JSON
shape. What an SES event means is decided in ``newsletter.tracking.ses_events``, through the same
service functions as SendGrid's events. Without ``NEWSLETTER_SES_SNS_TOPIC_ARN`` every post is
refused. A refused post stores nothing.

Answers: 200 with counts (SNS stops retrying); 400 for a body that is not JSON; 403 for a message
that is not signed by SNS for the configured topic; 413 above ``NEWSLETTER_WEBHOOK_MAX_BYTES``; 429
for a client that sent too many refused posts lately (each may cost a certificate fetch); 503 when
the signing certificate or the subscription URL cannot be reached now (SNS retries). Logs carry the
message type and counts, never addresses or payloads.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.tracking.ses_events import NotAnSesEvent, store_ses_notification
from newsletter.tracking.sns import SnsRefused, SnsVerifier
from newsletter.web.ratelimit import RateLimiter
from newsletter.web.webhook_body import Refused, receive_json
from subscribers.db import utcnow

router = APIRouter()
log = logging.getLogger("newsletter.webhooks.ses")
BAD_POSTS, BAD_POSTS_WINDOW = 30, 600.0  # refused posts per client per window before it gets 429s
NO_TOPIC = "SNS posts are refused: NEWSLETTER_SES_SNS_TOPIC_ARN is not set"


def verifier(settings: Settings) -> SnsVerifier | None:
    """The app's SNS verifier (``create_app`` keeps it in ``app.state.sns_verifier``), or None without a topic."""
    return SnsVerifier(settings.ses_sns_topic_arn) if settings.ses_sns_topic_arn else None


def bad_post_limiter() -> RateLimiter:
    return RateLimiter(BAD_POSTS, BAD_POSTS_WINDOW)


@router.post("/webhooks/ses", include_in_schema=False)
async def ses_notifications(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    sns: SnsVerifier | None = request.app.state.sns_verifier
    bad_posts: RateLimiter = request.app.state.ses_bad_posts
    client = request.client.host if request.client else "unknown"
    if bad_posts.over("ses", client):
        return JSONResponse({"detail": "too many refused posts; try again later"}, status_code=429,
                            headers={"Retry-After": str(bad_posts.retry_after("ses", client))})
    try:
        if sns is None:
            raise Refused(403, NO_TOPIC)
        result = await receive_json(request, settings.webhook_max_bytes, signature=lambda: _no_header_check,
                                    handle=lambda data: _handle(db, sns, data))
    except Refused as refused:
        # Counted whatever the status: a made-up certificate URL on SNS's host costs a fetch and ends in 503.
        bad_posts.allow("ses", client)
        (log.error if refused.status >= 500 else log.warning)("ses webhook refused (%d): %s", refused.status,
                                                              refused.detail)
        return JSONResponse({"detail": refused.detail}, status_code=refused.status)
    return JSONResponse(result)


def _no_header_check(body: bytes) -> None:
    """SNS's signature is inside the JSON body: it is checked once the body is parsed (``_handle``)."""


def _handle(db: Database, sns: SnsVerifier, data: Any) -> dict[str, Any]:
    try:
        message = sns.verify(data)
        if message.type == "SubscriptionConfirmation":
            sns.confirm(message)
            log.info("ses webhook: confirmed the SNS subscription to the configured topic")
            return {"confirmed": True}
    except SnsRefused as refused:
        raise Refused(refused.status, refused.detail) from None
    if message.type == "UnsubscribeConfirmation":
        log.warning("ses webhook: SNS says this endpoint was unsubscribed from the configured topic; SES events "
                    "no longer arrive (bounces and complaints will not suppress addresses until it is subscribed again)")
        return {"unsubscribed": True}
    try:
        with db.session() as session:
            report = store_ses_notification(session, message.message_id, message.message, now=utcnow())
    except NotAnSesEvent as error:
        raise Refused(400, str(error)) from None
    log.info("ses webhook: stored %d, duplicates %d, unmatched %d, rejected %d",
             report.stored, report.duplicates, report.unmatched, len(report.rejected))
    return {"stored": report.stored, "duplicates": report.duplicates, "unmatched": report.unmatched,
            "rejected": [{"index": index, "reason": reason} for index, reason in report.rejected]}
