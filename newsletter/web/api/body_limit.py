"""How much of a request body the API reads: ``MAX_BODY_BYTES``, bounded before any operation (or
FastAPI's JSON parsing) sees it. A declared Content-Length over it is answered at once; a body that
does not declare its length, or sends more than it declared, is cut off where it passes the bound.
Every body the API takes is a small JSON object, far under the bound."""

from __future__ import annotations

import json
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.web.api.problems import MEDIA_TYPE

MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = f"the body is larger than the API accepts ({MAX_BODY_BYTES} bytes); nothing was read or changed"
_REFUSED = json.dumps({"type": "about:blank", "title": HTTPStatus(413).phrase, "status": 413, "detail": TOO_LARGE,
                       "code": "too_large"}).encode()


class _TooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body reading passes it on as it is (413), not as a 400; the
    API's handler answers it as a problem."""

    def __init__(self) -> None:
        super().__init__(413, TOO_LARGE)


class ApiBodyLimit:
    """Pure ASGI middleware (nothing buffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await _refuse(send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise _TooLarge()
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if started:
                raise
            await _refuse(send)


async def _refuse(send: Send) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"connection", b"close"),
                            (b"content-length", str(len(_REFUSED)).encode())]})
    await send({"type": "http.response.body", "body": _REFUSED})
