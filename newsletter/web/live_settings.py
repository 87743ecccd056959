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
        self.applied = live.current_or_base()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.live.stale():
            settings = await run_in_threadpool(self.live.current)
            # Only a change of the stored values replaces the app's settings (the same object back
            # means nothing changed, and whatever else set app.state.settings stands).
            if settings is not self.applied:
                self.state.settings = self.applied = settings
        await self.app(scope, receive, send)
