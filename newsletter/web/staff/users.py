"""Staff users (admins): list, add with a role, change a role, disable, reset a password. Each change
is audited by the service. A password, given or generated, is shown once on the page that answers
the form, never put in a URL, a cookie or a log."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from newsletter.staff import users as staff_users
from newsletter.staff.models import StaffUser
from newsletter.staff.roles import Area, Role
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from subscribers.errors import InputError, NotFound

router = APIRouter()
USERS = "/staff/users"
admin = Require(Area.USERS)


def _users_page(request: Request, staff: Staff, status: int = 200, **context: object) -> Response:
    with request.app.state.db.session() as session:
        people = staff_users.list_users(session)
    context.setdefault("values", {"email": "", "role": Role.MARKETING.value})
    context.setdefault("errors", {})
    return page(request, staff, "staff/users.html", status, people=people, roles=list(Role),
                role_options=[("", "Choose a role")] + [(r.value, r.value) for r in Role], **context)


@router.get(USERS)
def users_page(request: Request, staff: Staff = Depends(admin)) -> Response:
    return _users_page(request, staff)


@router.post(USERS)
def add(request: Request, email: str = Form(""), role: str = Form(""), staff: Staff = Depends(admin)) -> Response:
    values = {"email": email.strip(), "role": role}
    errors: dict[str, str] = {}
    if not email.strip():
        errors["email"] = "Enter the person's email address."
    if role not in set(Role):
        errors["role"] = "Choose a role."
    if not errors:
        try:
            with request.app.state.db.session() as session:
                user, password = staff_users.add_user(session, email, role, actor=staff.user)
        except InputError as exc:
            errors["email"] = str(exc)
    if errors:
        return _users_page(request, staff, 400, values=values, errors=errors)
    return _users_page(request, staff, handed_over={"email": user.email, "password": password, "new": True})


def _user_id(value: str) -> int:
    if not value.isdigit() or len(value) > 12:
        raise NotFound(f"staff user {value!r} does not exist")
    return int(value)


def _change(request: Request, staff: Staff, user_id: str,
            act: Callable[[Session, StaffUser], object]) -> tuple[StaffUser | None, object]:
    """Run ``act(session, user)``: (the user, what it returned), or (None, the problem to show)."""
    try:
        with request.app.state.db.session() as session:
            user = staff_users.by_id(session, _user_id(user_id))
            result = act(session, user)
            return user, result
    except (InputError, NotFound) as exc:
        return None, str(exc)


@router.post(USERS + "/{user_id}/disable")
def disable(request: Request, user_id: str, staff: Staff = Depends(admin)) -> Response:
    user, problem = _change(request, staff, user_id,
                            lambda s, u: staff_users.disable_user(s, u, actor=staff.user))
    if user is None:
        return redirect(request, USERS, f"Not disabled: {problem}.", error=True)
    return redirect(request, USERS, f"{user.email} is disabled and signed out everywhere.")


@router.post(USERS + "/{user_id}/role")
def change_role(request: Request, user_id: str, role: str = Form(""), staff: Staff = Depends(admin)) -> Response:
    if role not in set(Role):
        return redirect(request, USERS, "Not changed: choose a role from the list.", error=True)
    user, problem = _change(request, staff, user_id,
                            lambda s, u: staff_users.change_role(s, u, role, actor=staff.user))
    if user is None:
        return redirect(request, USERS, f"Not changed: {problem}.", error=True)
    return redirect(request, USERS, f"{user.email} now has the {user.role} role.")


@router.post(USERS + "/{user_id}/reset-password")
def reset_password(request: Request, user_id: str, staff: Staff = Depends(admin)) -> Response:
    user, password = _change(request, staff, user_id,
                             lambda s, u: staff_users.reset_password(s, u, actor=staff.user))
    if user is None:
        return redirect(request, USERS, f"Not reset: {password}.", error=True)
    return _users_page(request, staff, handed_over={"email": user.email, "password": password, "new": False})
