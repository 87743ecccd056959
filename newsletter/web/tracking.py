"""First-party tracking endpoints: the open pixel and the click redirect.

Mail filters (Safe Links, Mimecast, Proofpoint) fetch every link of every message within minutes of
delivery, so these two answers come in bursts of thousands a second. ``FastTracking`` answers them in
raw ASGI ahead of the app's middleware (sessions, body limits, settings refresh: none of which these
answers use) with the security headers they need; anything that is not a working link (a mangled
path, a forged token, another method) goes on to the app, whose routes below answer it, the broken
link with the page a reader can read. Both use the process's ``Tracker`` (``app.state.tracker``).
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.tracking.recorder import Tracker
from newsletter.urls import pixel_email
from newsletter.web.pages import message
from newsletter.web.security_headers import public_raw_headers

router = APIRouter()
# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {"cache_control": "no-store, private", "content_type": "image/gif", "content_length": str(len(PIXEL))}
BROKEN = "The link may be incomplete: some email programs break long links across lines. Try copying the whole link."


def _client(request: Request) -> tuple[str, str | None, str | None]:
    return request.method, request.headers.get("user-agent"), request.client.host if request.client else None


@router.api_route("/o/{token}/{key}.gif", methods=["GET", "HEAD"], include_in_schema=False)
async def open_pixel(request: Request, token: str, key: str) -> Response:
    if pixel_email(key) is None:
        return message(request, "This link does not work", BROKEN, 404)
    await request.app.state.tracker.open(token, key, *_client(request))
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store, private"})


@router.api_route("/c/{token}/{link_id}", methods=["GET", "HEAD"], include_in_schema=False)
async def click(request: Request, token: str, link_id: str) -> Response:
    link = await request.app.state.tracker.click(token, link_id, *_client(request))
    if link is None:  # no such link, or not one of the email this token came with
        return message(request, "This link does not work", BROKEN, 404)
    return RedirectResponse(link.url, status_code=302)


class FastTracking:
    """Pure ASGI middleware, outermost: a working click or pixel answered without the app's stack."""

    def __init__(self, app: ASGIApp, tracker: Tracker) -> None:
        self.app, self.tracker = app, tracker
        self._headers = {https: (public_raw_headers(https, content_length="0"),
                                 public_raw_headers(https, **PIXEL_HEADERS)) for https in (False, True)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            if path.startswith("/c/") and await self._click(scope, send, path):
                return
            if path.startswith("/o/") and path.endswith(".gif") and await self._open(scope, send, path):
                return
        await self.app(scope, receive, send)

    async def _click(self, scope: Scope, send: Send, path: str) -> bool:
        token, slash, link_id = path[3:].partition("/")
        if not (token and slash and link_id) or "/" in link_id:
            return False
        link = await self.tracker.click(token, link_id, *_client_of(scope))
        if link is None:
            return False
        redirect, _ = self._headers[scope.get("scheme") == "https"]
        await send({"type": "http.response.start", "status": 302, "headers": [*redirect, (b"location", link.location)]})
        await send({"type": "http.response.body", "body": b""})
        return True

    async def _open(self, scope: Scope, send: Send, path: str) -> bool:
        token, slash, name = path[3:-4].partition("/")
        if not (token and slash and name) or "/" in name or pixel_email(name) is None:
            return False
        await self.tracker.open(token, name, *_client_of(scope))
        _, pixel = self._headers[scope.get("scheme") == "https"]
        await send({"type": "http.response.start", "status": 200, "headers": pixel})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else PIXEL})
        return True


def _client_of(scope: Scope) -> tuple[str, str | None, str | None]:
    agent = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"user-agent"), None)
    client = scope.get("client")
    return scope["method"], agent, client[0] if client else None
