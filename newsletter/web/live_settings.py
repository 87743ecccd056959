"""The web app's settings follow what staff save on the settings page: before a request, when the
last look is more than a couple of seconds old, the stored values are read again (one small query,
in a worker thread) and ``app.state.settings`` is replaced when they changed."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.stored_settings import LiveSettings


class AppliedSettings:
    """Pure ASGI middleware (no body buffering): cheap on every request, a query only when stale."""

    def __init__(self, app: ASGIApp, live: LiveSettings, state: State) -> None:
        self.app, self.live, self.state = app, live, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.live.stale():
            self.state.settings = await run_in_threadpool(self.live.current)
        await self.app(scope, receive, send)
