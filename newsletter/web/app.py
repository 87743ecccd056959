"""The ASGI app that ``newsletter serve`` runs. Routes are thin: the rules are in the services."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.middleware.base import BaseHTTPMiddleware

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.transports import Transport, get_transport
from newsletter.web import bookings_webhook, metrics, online, pages, tracking
from newsletter.web.ratelimit import RateLimiter
from newsletter.web.sendgrid_webhook import router as sendgrid_webhook_router

# Tokens travel in URLs: never let them leak to other sites through the Referer header.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def create_app(settings: Settings, db: Database, transport: Transport | None = None) -> FastAPI:
    app = FastAPI(title=settings.org_name, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.db = db
    app.state.transport = transport or get_transport(settings)
    app.state.limiter = RateLimiter(settings.public_form_limit_per_hour, 3600)
    app.add_middleware(SecurityHeaders)
    app.include_router(pages.router)
    app.include_router(online.router)
    app.include_router(sendgrid_webhook_router)
    app.include_router(tracking.router)
    app.include_router(bookings_webhook.router)
    app.include_router(metrics.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    return app
