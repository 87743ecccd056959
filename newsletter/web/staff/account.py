"""A user's own account: two-factor sign-in (set up with a QR code drawn here, confirm, turn off)
and signing out everywhere. An admin who must set up TOTP can open these pages and nothing else."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from newsletter.staff import sessions, totp
from newsletter.staff.audit import AuditAction, record
from newsletter.staff.models import StaffUser
from newsletter.staff.users import target
from newsletter.web.staff import auth
from newsletter.web.staff.auth import SESSION, Staff, account_holder
from newsletter.web.staff.render import page, redirect
from subscribers.db import utcnow

router = APIRouter()
ACCOUNT = "/staff/account"


def _account_page(request: Request, staff: Staff, status: int = 200, **context: object) -> Response:
    settings = request.app.state.settings
    context.setdefault("errors", {})
    return page(request, staff, "staff/account.html", status, user=staff.user,
                totp_required=totp.required_for(staff.user, settings), **context)


@router.get(ACCOUNT)
def account(request: Request, staff: Staff = Depends(account_holder)) -> Response:
    return _account_page(request, staff)


def _two_factor_page(request: Request, staff: Staff, user: StaffUser, status: int = 200,
                     errors: dict[str, str] | None = None) -> Response:
    settings = request.app.state.settings
    uri = totp.provisioning_uri(user, settings) if user.totp_pending_secret else None
    return page(request, staff, "staff/two_factor.html", status, user=user, uri=uri,
                secret=user.totp_pending_secret, qr=totp.qr_svg(uri) if uri else None,
                required=totp.needs_enrolment(user, settings), errors=errors or {})


@router.get(auth.ENROL_PATH)
def two_factor(request: Request, staff: Staff = Depends(account_holder)) -> Response:
    if staff.user.has_totp:
        return redirect(request, ACCOUNT)
    return _two_factor_page(request, staff, staff.user)


@router.post(auth.ENROL_PATH + "/start")
def start_two_factor(request: Request, staff: Staff = Depends(account_holder)) -> Response:
    with request.app.state.db.session() as session:
        user = session.get(StaffUser, staff.user.id)
        assert user is not None
        if user.has_totp:
            return redirect(request, ACCOUNT, "Two-factor sign-in is on already.")
        totp.begin_enrolment(user)
    return redirect(request, auth.ENROL_PATH)


@router.post(auth.ENROL_PATH + "/confirm")
def confirm_two_factor(request: Request, code: str = Form(""), staff: Staff = Depends(account_holder)) -> Response:
    with request.app.state.db.session() as session:
        user = session.get(StaffUser, staff.user.id)
        assert user is not None
        try:
            totp.confirm_enrolment(session, user, code, utcnow())
        except totp.TotpError as exc:
            return _two_factor_page(request, staff, user, 400, {"code": str(exc)})
    return redirect(request, ACCOUNT, "Two-factor sign-in is on. You will be asked for a code each time you sign in.")


@router.post(auth.ENROL_PATH + "/disable")
def disable_two_factor(request: Request, code: str = Form(""), staff: Staff = Depends(account_holder)) -> Response:
    with request.app.state.db.session() as session:
        user = session.get(StaffUser, staff.user.id)
        assert user is not None
        try:
            totp.disable(session, user, code, request.app.state.settings, utcnow())
        except totp.TotpError as exc:
            return _account_page(request, staff, 400, errors={"code": str(exc)}, code=code)
    return redirect(request, ACCOUNT, "Two-factor sign-in is off.")


@router.post(ACCOUNT + "/sign-out-everywhere")
def sign_out_everywhere(request: Request, staff: Staff = Depends(account_holder)) -> Response:
    with request.app.state.db.session() as session:
        user = session.get(StaffUser, staff.user.id)
        assert user is not None
        ended = sessions.sign_out_everywhere(session, user)
        record(session, user, AuditAction.SIGN_OUT, target(user), f"everywhere ({ended} sessions)")
    response = redirect(request, auth.SIGN_IN_PATH, "You are signed out on every device.")
    auth.clear_cookie(response, request, SESSION)
    return response
