"""Who is asking, and may they: the staff app's session cookie, role checks and CSRF checks.

Every staff route depends on ``Require(area)`` (or is one of the sign-in routes, which check their
own CSRF token): an anonymous visitor is sent to sign in (303), a signed-in user whose role may not
open the area gets a 403 page, an admin who must set up TOTP first is sent to do so, and every
request that is not a GET or HEAD must carry the session's CSRF token, in the form field
``csrf_token`` or the ``X-CSRF-Token`` header, or it is refused with a 403 page.

Cookies are HttpOnly, SameSite=Lax and Secure, except on plain http to localhost/127.0.0.1 (the
embedded default and the tests), where a browser would drop a Secure cookie. Secure cookies carry the
``__Host-`` prefix: the browser then refuses one set by another host or for another path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter.config import Settings
from newsletter.staff import sessions
from newsletter.staff.models import StaffSession, StaffUser
from newsletter.staff.roles import Area, may
from newsletter.staff.totp import needs_enrolment
from newsletter.web.staff.text_input import NulInField, refuse_nul
from subscribers.db import utcnow

SESSION = "staff_session"
SIGN_IN = "staff_sign_in"  # the anonymous sign-in form's CSRF cookie (double submit, keyed)
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
HOME = "/staff/"
SIGN_IN_PATH = "/staff/sign-in"
ENROL_PATH = "/staff/account/two-factor"


@dataclass(frozen=True)
class Staff:
    """The signed-in user of this request and their session."""

    user: StaffUser
    session: StaffSession

    @property
    def csrf(self) -> str:
        return self.session.csrf_token


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class EnrolmentRequired(Exception):
    pass


class Forbidden(Exception):
    def __init__(self, staff: Staff) -> None:
        self.staff = staff


class CsrfRefused(Exception):
    def __init__(self, staff: Staff | None) -> None:
        self.staff = staff


# Cookies ------------------------------------------------------------------------------------------


def secure_cookies(request: Request) -> bool:
    """Secure everywhere but plain http on this machine (a browser drops Secure cookies there)."""
    return not (request.url.scheme == "http" and request.url.hostname in LOCAL_HOSTS)


def cookie_name(request: Request, base: str) -> str:
    return f"__Host-{base}" if secure_cookies(request) else base


def set_cookie(response: Response, request: Request, base: str, value: str) -> None:
    # No Max-Age: the cookie ends with the browser; the server ends the session by time anyway.
    response.set_cookie(cookie_name(request, base), value, path="/", secure=secure_cookies(request),
                        httponly=True, samesite="lax")


def clear_cookie(response: Response, request: Request, base: str) -> None:
    response.delete_cookie(cookie_name(request, base), path="/", secure=secure_cookies(request),
                           httponly=True, samesite="lax")


def session_token(request: Request) -> str | None:
    return request.cookies.get(cookie_name(request, SESSION))


# Sessions -----------------------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def idle_limit(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.staff_idle_minutes)


def _resolve(request: Request) -> StaffSession | None:
    with request.app.state.db.session() as session:
        return sessions.resolve(session, session_token(request), utcnow(), idle_limit(_settings(request)))


async def session_of(request: Request) -> StaffSession | None:
    """The live session of this request's cookie (signed in, or between password and code)."""
    if not hasattr(request.state, "staff_session"):
        request.state.staff_session = await run_in_threadpool(_resolve, request)
    return request.state.staff_session


async def current_staff(request: Request) -> Staff | None:
    """The signed-in user, or None (anonymous, or only past the password with the code to come)."""
    row = await session_of(request)
    if row is None or row.pending_totp:
        return None
    return Staff(row.user, row)


class Require:
    """A route's dependency: the signed-in ``Staff`` whose role may open ``area`` (None: any role).
    ``enrolling``: a page an admin who must set up TOTP may still open (account, sign-out)."""

    def __init__(self, area: Area | None, *, enrolling: bool = False) -> None:
        self.area = area
        self.enrolling = enrolling

    async def __call__(self, request: Request) -> Staff:
        staff = await current_staff(request)
        if staff is None:
            raise SignInRequired(next_path(request))
        if not self.enrolling and needs_enrolment(staff.user, _settings(request)):
            raise EnrolmentRequired()
        if self.area is not None and not may(staff.user.role, self.area):
            raise Forbidden(staff)
        if request.method not in SAFE_METHODS:
            await check_csrf(request, staff.csrf, staff)
        await refuse_nul(request, staff)
        return staff


signed_in = Require(None)
account_holder = Require(None, enrolling=True)  # own account, two-factor set-up and sign-out


# CSRF ---------------------------------------------------------------------------------------------


async def posted_token(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    form = await request.form()  # cached on the request: the route reads the same form
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else ""


async def check_csrf(request: Request, expected: str, staff: Staff | None = None) -> None:
    token = await posted_token(request)
    if not token or not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise CsrfRefused(staff)


def sign_in_token(request: Request, cookie: str) -> str:
    """The sign-in form's CSRF token: bound to its cookie by the app's key (no session exists yet)."""
    key = _settings(request).signing_key().encode()
    return hmac.new(key, f"staff-sign-in:{cookie}".encode(), hashlib.sha256).hexdigest()


def sign_in_cookie(request: Request) -> tuple[str, bool]:
    """The sign-in form's cookie value, and whether it is new (to be set on the answer)."""
    value = request.cookies.get(cookie_name(request, SIGN_IN))
    return (value, False) if value else (secrets.token_urlsafe(32), True)


# Where to go after signing in -------------------------------------------------------------------------


def safe_next(value: str | None) -> str:
    """A path inside the staff app to return to after signing in; anything else (another site,
    ``//host``, a scheme, a backslash) becomes the staff home."""
    if not value or "\\" in value or any(ord(c) < 32 for c in value):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not (parts.path == "/staff" or parts.path.startswith("/staff/")):
        return HOME
    if parts.path.startswith(SIGN_IN_PATH):
        return HOME
    return value


def next_path(request: Request) -> str:
    if request.method != "GET":
        return HOME  # a form's target is not a page to return to
    query = f"?{request.url.query}" if request.url.query else ""
    return safe_next(request.url.path + query)


def sign_in_url(next_value: str) -> str:
    target = safe_next(next_value)
    return SIGN_IN_PATH if target == HOME else f"{SIGN_IN_PATH}?next={quote(target, safe='/')}"


def install(app: FastAPI) -> None:
    """The answers to the exceptions above (called by ``create_app``)."""
    from newsletter.web.staff.render import page

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(sign_in_url(exc.next_path), status_code=303)

    @app.exception_handler(EnrolmentRequired)
    async def _enrol(request: Request, exc: EnrolmentRequired) -> Response:
        return RedirectResponse(ENROL_PATH, status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return page(request, exc.staff, "staff/forbidden.html", 403)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return page(request, exc.staff, "staff/csrf_refused.html", 403)

    @app.exception_handler(NulInField)
    async def _nul(request: Request, exc: NulInField) -> Response:
        return page(request, exc.staff, "staff/bad_text.html", 400, field=exc.field)
