"""Signing in (address and password, then the TOTP code for a user who has one) and signing out.

The sign-in form is posted before any session exists, so its CSRF token is bound to a cookie of its
own (``auth.sign_in_token``). Signing in always starts a new session with a new token, and ends the
one the browser had: a session id planted in a browser before sign-in is worth nothing after it.
"""

from __future__ import annotations

from math import ceil
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter.config import Settings
from newsletter.staff import sessions, throttle
from newsletter.staff.audit import AuditAction, record
from newsletter.staff.users import Attempt, Outcome, SignIn, authenticate, verify_code_step
from newsletter.web.staff import auth
from newsletter.web.staff.auth import SESSION, SIGN_IN, Staff, account_holder
from newsletter.web.staff.render import page, redirect
from subscribers.db import utcnow

router = APIRouter()
CODE_PATH = "/staff/sign-in/code"
REFUSED = "The email address or password is not right."


def attempt_of(request: Request) -> Attempt:
    settings: Settings = request.app.state.settings
    return Attempt(client=request.client.host if request.client else "unknown", secret=settings.signing_key(),
                   limits=throttle.Limits(settings.signin_max_failures, settings.signin_client_max_failures))


def wait_text(result: SignIn) -> str:
    minutes = max(1, ceil(result.wait.total_seconds() / 60)) if result.wait else 15
    return (f"Too many sign-ins failed. Please wait {minutes} minute{'s' if minutes != 1 else ''} and try again, "
            "or ask an admin to reset your password.")


def _form(request: Request, status: int = 200, *, email: str = "", next_value: str = "",
          errors: dict[str, str] | None = None, notice: str | None = None) -> Response:
    cookie, new = auth.sign_in_cookie(request)
    response = page(request, None, "staff/sign_in.html", status, csrf_token=auth.sign_in_token(request, cookie),
                    email=email, next=auth.safe_next(next_value), errors=errors or {}, notice=notice,
                    # Plain http to another host: the browser would drop the Secure session cookie.
                    needs_https=request.url.scheme != "https" and auth.secure_cookies(request))
    if new:
        auth.set_cookie(response, request, SIGN_IN, cookie)
    return response


@router.get("/staff/sign-in")
async def sign_in_form(request: Request, next: str = "") -> Response:
    # Shown to a signed-in user too (to sign in as someone else): the new session replaces theirs.
    staff = await auth.current_staff(request)
    notice = f"You are signed in as {staff.user.email}. Signing in again ends that session." if staff else None
    return _form(request, next_value=next, notice=notice)


def _signed_in(request: Request, started: sessions.Started, next_value: str) -> Response:
    response = RedirectResponse(auth.safe_next(next_value), status_code=303)
    auth.set_cookie(response, request, SESSION, started.token)
    auth.clear_cookie(response, request, SIGN_IN)
    return response


def _end_previous(request: Request) -> None:
    """The session this browser had before signing in again ends (a new one replaces it)."""
    token = auth.session_token(request)
    if token:
        with request.app.state.db.session() as session:
            row = sessions.resolve(session, token, utcnow(), auth.idle_limit(request.app.state.settings))
            if row is not None:
                sessions.end(session, row)


@router.post("/staff/sign-in")
async def sign_in(request: Request, email: str = Form(""), password: str = Form(""),
                  next: str = Form("")) -> Response:
    cookie = request.cookies.get(auth.cookie_name(request, SIGN_IN), "")
    await auth.check_csrf(request, auth.sign_in_token(request, cookie) if cookie else "")
    email = email.strip()
    errors = {}
    if not email:
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        return _form(request, 400, email=email, next_value=next, errors=errors)
    def check() -> SignIn:
        _end_previous(request)
        with request.app.state.db.session() as session:
            return authenticate(session, email, password, attempt_of(request))

    result = await run_in_threadpool(check)
    if result.outcome is Outcome.THROTTLED:
        return _form(request, 429, email=email, next_value=next, errors={"password": wait_text(result)})
    if result.outcome is Outcome.REFUSED or result.started is None:
        return _form(request, 400, email=email, next_value=next, errors={"password": REFUSED})
    if result.outcome is Outcome.NEEDS_CODE:
        back = auth.safe_next(next)
        target = CODE_PATH + (f"?next={quote(back, safe='/')}" if back != auth.HOME else "")
        response = RedirectResponse(target, status_code=303)
        auth.set_cookie(response, request, SESSION, result.started.token)
        return response
    return _signed_in(request, result.started, next)


async def _pending(request: Request) -> sessions.StaffSession | None:
    row = await auth.session_of(request)
    return row if row is not None and row.pending_totp else None


@router.get("/staff/sign-in/code")
async def code_form(request: Request, next: str = "") -> Response:
    pending = await _pending(request)
    if pending is None:
        return RedirectResponse(auth.sign_in_url(next), status_code=303)
    return page(request, None, "staff/sign_in_code.html", csrf_token=pending.csrf_token, next=auth.safe_next(next),
                errors={})


@router.post("/staff/sign-in/code")
async def code(request: Request, code: str = Form(""), next: str = Form("")) -> Response:
    pending = await _pending(request)
    if pending is None:  # no password step behind it (or it timed out): start again
        return RedirectResponse(auth.sign_in_url(next), status_code=303)
    await auth.check_csrf(request, pending.csrf_token)
    def check() -> SignIn:
        with request.app.state.db.session() as session:
            row = session.merge(pending)
            return verify_code_step(session, row, code, attempt_of(request))

    result = await run_in_threadpool(check)
    if result.outcome is Outcome.THROTTLED:
        response = _form(request, 429, email=pending.user.email, next_value=next,
                         errors={"password": wait_text(result)})
        auth.clear_cookie(response, request, SESSION)
        return response
    if result.outcome is Outcome.REFUSED or result.started is None:
        return page(request, None, "staff/sign_in_code.html", 400, csrf_token=pending.csrf_token,
                    next=auth.safe_next(next), code=code,
                    errors={"code": "That code is not right. Type the newest code from your app."})
    return _signed_in(request, result.started, next)


@router.post("/staff/sign-out")
def sign_out(request: Request, staff: Staff = Depends(account_holder)) -> Response:
    with request.app.state.db.session() as session:
        row = session.get(sessions.StaffSession, staff.session.id)
        if row is not None:
            sessions.end(session, row)
        record(session, staff.user, AuditAction.SIGN_OUT, f"user {staff.user.id}")
    response = redirect(request, auth.SIGN_IN_PATH, "You are signed out.")
    auth.clear_cookie(response, request, SESSION)
    return response
