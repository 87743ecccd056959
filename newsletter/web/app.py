"""The ASGI app that ``newsletter serve`` runs. Routes are thin: the rules are in the services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException

from newsletter.bootstrap import wire
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.stored_settings import LiveSettings
from newsletter.tracking.recorder import Tracker
from newsletter.web import archive, bookings_webhook, metrics, online, pages, tracking
from newsletter.web import consultation, embed, public_static
from newsletter.web.live_settings import AppliedSettings
from newsletter.web.api.app import PREFIX as API_PREFIX, create_api
from newsletter.web.ratelimit import RateLimiter
from newsletter.web.security_headers import SecurityHeaders
from newsletter.web.sendgrid_webhook import router as sendgrid_webhook_router
from newsletter.web import ses_webhook
from newsletter.web.sendgrid_webhook import warn_if_unsigned
from newsletter.web.staff import account as staff_account
from newsletter.web.staff import audit as staff_audit
from newsletter.web.staff import contacts as staff_contacts
from newsletter.web.staff import auth as staff_auth
from newsletter.web.staff.render import page as staff_page
from newsletter.web.staff.body_limit import StaffBodyLimit
from newsletter.web.body_limit import PublicFormBodyLimit
from newsletter.web.staff import contact_imports as staff_contact_imports
from newsletter.web.staff import segments as staff_segments
from newsletter.web.staff import home as staff_home
from newsletter.web.staff import issues as staff_issues
from newsletter.web.staff import issue_layout as staff_issue_layout
from newsletter.web.staff import leads as staff_leads
from newsletter.web.staff import posts as staff_posts
from newsletter.web.staff import automations as staff_automations
from newsletter.web.staff import settings as staff_settings
from newsletter.web.staff import sequences as staff_sequences
from newsletter.web.staff import issue_sending as staff_issue_sending
from newsletter.web.staff import issue_versions as staff_issue_versions
from newsletter.web.staff import static as staff_static
from newsletter.web.staff import signin as staff_signin
from newsletter.web.staff import users as staff_users
from newsletter.web.staff import webhooks as staff_webhooks
from newsletter.web.staff import api_tokens as staff_api_tokens
from newsletter.web.staff import sensitive as staff_sensitive

def create_app(settings: Settings, db: Database) -> FastAPI:
    """The app holds no transport: no answer it gives waits for the email provider (confirmation
    emails are queued, and the dispatchers send them). Making it wires the listeners (a booking the
    webhook records is attributed and ends nurture)."""
    wire(settings)
    warn_if_unsigned(settings)
    tracker = Tracker(settings, db)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tracker.start()  # replays a tracking log a process that died left behind
        try:
            yield
        finally:
            tracker.stop()

    app = FastAPI(title=settings.org_name, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.db = db
    app.state.tracker = tracker
    app.state.live_settings = LiveSettings(settings, db)  # what staff saved applies within seconds
    app.state.settings = settings
    app.state.limiter = RateLimiter(settings.public_form_limit_per_hour, 3600)
    app.state.sns_verifier = ses_webhook.verifier(settings)  # tests hand in one that trusts their CA
    app.state.ses_bad_posts = ses_webhook.bad_post_limiter()
    app.add_middleware(StaffBodyLimit)  # innermost: its 413 carries the security headers too
    app.add_middleware(PublicFormBodyLimit)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AppliedSettings, live=app.state.live_settings, state=app.state)
    app.include_router(pages.router)
    app.include_router(consultation.router)
    app.include_router(embed.router)
    app.include_router(public_static.router)
    app.include_router(online.router)
    app.include_router(archive.router)
    app.include_router(sendgrid_webhook_router)
    app.include_router(ses_webhook.router)
    app.include_router(tracking.router)
    app.include_router(bookings_webhook.router)
    app.include_router(metrics.router)
    app.mount(API_PREFIX, create_api(app.state, settings.api_rate_per_minute))  # the REST API, problem+json errors
    staff_auth.install(app)
    for staff_router in (staff_signin.router, staff_home.router, staff_account.router, staff_audit.router,
                         staff_users.router, staff_sensitive.router, staff_settings.router, staff_webhooks.router,
                         staff_api_tokens.router,
                         staff_automations.router, staff_posts.router,  # automations first: /staff/posts/{post_id} would take /digest
                         staff_issues.router, staff_issue_layout.router, staff_issue_versions.router,
                         staff_issue_sending.router, staff_static.router,
                         staff_leads.router, staff_sequences.router, staff_contact_imports.router,
                         staff_segments.router,
                         staff_contacts.router):  # after contact_imports: /staff/contacts/{id} would take /import
        app.include_router(staff_router)

    @app.exception_handler(HTTPException)
    async def not_found(request: Request, exc: HTTPException) -> Response:
        # A mangled link (a path no route matches) gets a page a person can read, not JSON.
        if exc.status_code == 404 and request.url.path.startswith("/staff/"):
            return staff_page(request, None, "staff/not_found.html", 404)  # staff get a way back to their app
        if exc.status_code == 404:
            return pages.message(request, "This page does not exist", "The link may be incomplete: some email "
                                 "programs break long links across lines. Try copying the whole link.", 404)
        return await http_exception_handler(request, exc)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    return app
