"""How much of a request body the staff app reads: bounded before any route (or form parser) sees it.

FastAPI parses a route's form before its dependencies run, and Starlette spools every file part of a
multipart body to disk whole, so a visitor who never signed in could post hundreds of megabytes to
any staff form with a file part (measured: 300 MB into /tmp in about a second) before being sent to
sign in. So: a request that is not from a signed-in user may send at most ``ANONYMOUS_BYTES`` (the
sign-in forms are tiny); a signed-in user at most the largest upload a page takes, plus the form
around it. (An upload over its page's own limit but under this bound is still answered by that page,
beside its field.) The bound is applied as ``newsletter.web.body_limit`` says.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.staff import contact_imports
from newsletter.web.body_limit import Refusal, call_within
from newsletter.web.staff.auth import SAFE_METHODS, current_staff

PREFIX = "/staff"
ANONYMOUS_BYTES = 64 * 1024
FORM_SLACK = 64 * 1024  # the multipart framing and the other fields around a file
REFUSED = b"This request is larger than the staff app accepts. Nothing was read or changed.\n"
REFUSAL = Refusal(b"text/plain; charset=utf-8", REFUSED)


def signed_in_bytes(settings: Any) -> int:
    """The largest body a signed-in user's request may have: the largest upload a page takes."""
    return max(contact_imports.MAX_UPLOAD_BYTES, settings.max_post_bytes) + FORM_SLACK


class StaffBodyLimit:
    """Pure ASGI middleware (nothing buffered): counts the body of every staff request that has one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or not (
                path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        staff = await current_staff(request)  # cached in the request's state: the route's guard reuses it
        limit = signed_in_bytes(request.app.state.settings) if staff else ANONYMOUS_BYTES
        await call_within(self.app, scope, receive, send, limit=limit, refusal=REFUSAL,
                          detail=REFUSED.decode().strip())
