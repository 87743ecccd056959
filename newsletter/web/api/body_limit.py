"""How much of a request body the API reads: ``MAX_BODY_BYTES`` (every body it takes is a small JSON
object, far under it), bounded as ``newsletter.web.body_limit`` says, answered as a problem."""

from __future__ import annotations

import json
from http import HTTPStatus

from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.web.body_limit import Refusal, call_within
from newsletter.web.api.problems import MEDIA_TYPE

MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = f"the body is larger than the API accepts ({MAX_BODY_BYTES} bytes); nothing was read or changed"
_REFUSED = json.dumps({"type": "about:blank", "title": HTTPStatus(413).phrase, "status": 413, "detail": TOO_LARGE,
                       "code": "too_large"}).encode()
REFUSAL = Refusal(MEDIA_TYPE.encode(), _REFUSED)


class ApiBodyLimit:
    """Pure ASGI middleware (nothing buffered), through the app's one body bound."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await call_within(self.app, scope, receive, send, limit=MAX_BODY_BYTES, refusal=REFUSAL, detail=TOO_LARGE)
