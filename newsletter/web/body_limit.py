"""How much of a request body the app reads: the one rule each face's bound goes through.

A bound is applied before any route (or form or JSON parser) sees the body: a declared
Content-Length over it is answered at once; a body that does not say its length (chunked), or says
less than it sends, is cut off where it passes the bound. Pure ASGI (nothing is buffered here).
The faces choose the bound and the answer: the staff app (newsletter.web.staff.body_limit), the
REST API (newsletter.web.api.body_limit, a problem+json answer) and the public forms (below).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.web.staff.auth import SAFE_METHODS  # noqa: E402 - the one list of methods that change nothing


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's form or JSON reading passes it on as it is (413), not as a 400."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


@dataclass(frozen=True)
class Refusal:
    """The 413 a face answers with, whole (its body is small and fixed)."""

    content_type: bytes
    body: bytes

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", self.content_type), (b"connection", b"close"),
                                (b"content-length", str(len(self.body)).encode())]})
        await send({"type": "http.response.body", "body": self.body})


async def call_within(app: ASGIApp, scope: Scope, receive: Receive, send: Send, *, limit: int,
                      refusal: Refusal, detail: str) -> None:
    """Call ``app`` reading at most ``limit`` bytes of the request's body; above it, ``refusal``
    (unless the app has started answering already, when the connection is dropped)."""
    declared = dict(scope.get("headers") or []).get(b"content-length", b"").strip()
    if declared.isdigit() and int(declared) > limit:
        await refusal.send(send)
        return
    received = 0
    started = False

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(detail)
        return message

    async def tracked(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, counted, tracked)
    except BodyTooLarge:
        if started:
            raise
        await refusal.send(send)


# The public forms (sign-up, confirm, preferences, unsubscribe, consultation, and their embedded
# variants): each is a few short fields; a stranger must not make the app read megabytes.
PUBLIC_FORM_BYTES = 64 * 1024
# Faces with their own bound: the staff app, the API, and the provider webhooks (NEWSLETTER_WEBHOOK_MAX_BYTES).
OWN_BOUND_PREFIXES = ("/staff", "/api/", "/webhooks/")
PUBLIC_TOO_LARGE = "This form is too large for us to read. Please go back and shorten what you typed."
PUBLIC_REFUSAL = Refusal(b"text/plain; charset=utf-8", (PUBLIC_TOO_LARGE + "\n").encode())


class PublicFormBodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or path.startswith(OWN_BOUND_PREFIXES):
            await self.app(scope, receive, send)
            return
        await call_within(self.app, scope, receive, send, limit=PUBLIC_FORM_BYTES, refusal=PUBLIC_REFUSAL,
                          detail=PUBLIC_TOO_LARGE)
