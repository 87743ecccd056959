"""API tokens (admins): list, make one with its scopes (the secret is shown once, on the page that
answers the form: never in a URL, a cookie or a log), and revoke one after a confirm page. Each change
is audited by the service (``newsletter.api_tokens``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from newsletter import api_tokens
from newsletter.staff.roles import Area
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from subscribers.errors import InputError, NotFound

router = APIRouter()
TOKENS = "/staff/api-tokens"
admin = Require(Area.SETTINGS)
SCOPES = [(scope.value, api_tokens.SCOPE_ABOUT[scope]) for scope in api_tokens.Scope]


def _tokens_page(request: Request, staff: Staff, status: int = 200, **context: object) -> Response:
    with request.app.state.db.session() as session:
        tokens = api_tokens.all_tokens(session)
    context.setdefault("values", {"name": "", "scopes": []})
    context.setdefault("errors", {})
    return page(request, staff, "staff/api_tokens.html", status, tokens=tokens, scopes=SCOPES, **context)


@router.get(TOKENS)
def tokens_page(request: Request, staff: Staff = Depends(admin)) -> Response:
    return _tokens_page(request, staff)


@router.post(TOKENS)
def create(request: Request, name: str = Form(""), scopes: list[str] = Form([]),
           staff: Staff = Depends(admin)) -> Response:
    values = {"name": name, "scopes": scopes}
    errors: dict[str, str] = {}
    try:
        api_tokens.clean_name(name)
    except InputError as exc:
        errors["name"] = str(exc)
    try:
        api_tokens.parse_scopes(scopes)
    except InputError as exc:
        errors["scopes"] = "Choose at least one scope." if not scopes else str(exc)
    if errors:
        return _tokens_page(request, staff, 400, values=values, errors=errors)
    with request.app.state.db.session() as session:
        token, secret = api_tokens.create(session, name, scopes, actor=staff.user)
        made = {"id": token.id, "name": token.name, "secret": secret}
    return _tokens_page(request, staff, made=made)


def _token_id(value: str) -> int:
    if not value.isdigit() or len(value) > 12:
        raise NotFound(f"API token {value[:20]!r} does not exist")
    return int(value)


@router.get(TOKENS + "/{token_id}/revoke")
def confirm_revoke(request: Request, token_id: str, staff: Staff = Depends(admin)) -> Response:
    """A page that asks first: a revoked token cannot be brought back."""
    try:
        with request.app.state.db.session() as session:
            token = api_tokens.by_id(session, _token_id(token_id))
    except NotFound:
        return page(request, staff, "staff/not_found.html", 404)
    return page(request, staff, "staff/api_token_revoke.html", token=token)


@router.post(TOKENS + "/{token_id}/revoke")
def revoke(request: Request, token_id: str, staff: Staff = Depends(admin)) -> Response:
    try:
        with request.app.state.db.session() as session:
            token = api_tokens.by_id(session, _token_id(token_id))
            changed = api_tokens.revoke(session, token, actor=staff.user)
            name = token.name
    except NotFound as exc:
        return redirect(request, TOKENS, f"Not revoked: {exc}.", error=True)
    return redirect(request, TOKENS, f"Revoked “{name}”: its calls are refused from now on." if changed
                    else f"“{name}” was revoked already.")
