"""Outgoing webhooks (admins): the CRM endpoints, adding one (its signing secret shown once, on the
page that answers the form), disable, enable, remove, a test event, and each endpoint's delivery
log. A thin face over ``newsletter.outgoing_webhooks.endpoints``, which audits each change."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from newsletter.outgoing_webhooks import endpoints as service
from newsletter.outgoing_webhooks.events import SUBSCRIBABLE
from newsletter.outgoing_webhooks.models import WebhookEndpoint
from newsletter.staff.roles import Area
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from subscribers.errors import InputError, NotFound

router = APIRouter()
WEBHOOKS = "/staff/webhooks"
admin = Require(Area.SETTINGS)


def _endpoints_page(request: Request, staff: Staff, status: int = 200, **context: object) -> Response:
    with request.app.state.db.session() as session:
        rows = [service.summary(e) for e in service.list_endpoints(session)]
    context.setdefault("values", {"url": "", "events": []})
    context.setdefault("errors", {})
    return page(request, staff, "staff/webhooks.html", status, endpoints=rows, event_types=SUBSCRIBABLE, **context)


@router.get(WEBHOOKS)
def webhooks_page(request: Request, staff: Staff = Depends(admin)) -> Response:
    return _endpoints_page(request, staff)


@router.post(WEBHOOKS)
async def add(request: Request, staff: Staff = Depends(admin)) -> Response:
    form = await request.form()
    url = str(form.get("url", ""))
    chosen = [str(v) for v in form.getlist("events")]
    values = {"url": url.strip(), "events": chosen}
    errors: dict[str, str] = {}
    if not chosen:
        errors["events"] = "Choose at least one event."
    settings = request.app.state.settings
    try:
        service.check_url(settings, url)
    except InputError as exc:
        errors["url"] = str(exc).rstrip(".") + "."
    if not errors:
        try:
            with request.app.state.db.session() as session:
                endpoint, secret = service.register(session, settings, url, chosen, actor=staff.user)
                number = endpoint.id
        except InputError as exc:
            errors["events"] = str(exc)
    if errors:
        return _endpoints_page(request, staff, 400, values=values, errors=errors)
    return _endpoints_page(request, staff, handed_over={"id": number, "secret": secret})


def _endpoint_id(value: str) -> int:
    if not value.isdigit() or len(value) > 12:
        raise NotFound(f"webhook endpoint {value!r} does not exist")
    return int(value)


def _change(request: Request, endpoint_id: str, act: Callable[[Session, WebhookEndpoint], object]) -> str | None:
    """Run ``act(session, endpoint)``; the problem to show, or None."""
    try:
        with request.app.state.db.session() as session:
            act(session, service.by_id(session, _endpoint_id(endpoint_id)))
    except (InputError, NotFound) as exc:
        return str(exc)
    return None


@router.post(WEBHOOKS + "/{endpoint_id}/disable")
def disable(request: Request, endpoint_id: str, staff: Staff = Depends(admin)) -> Response:
    problem = _change(request, endpoint_id, lambda s, e: service.disable(s, e, actor=staff.user))
    return redirect(request, WEBHOOKS, f"Not disabled: {problem}." if problem else
                    f"Endpoint {endpoint_id} is disabled: nothing more is sent to it.", error=bool(problem))


@router.post(WEBHOOKS + "/{endpoint_id}/enable")
def enable(request: Request, endpoint_id: str, staff: Staff = Depends(admin)) -> Response:
    problem = _change(request, endpoint_id, lambda s, e: service.enable(s, e, actor=staff.user))
    return redirect(request, WEBHOOKS, f"Not enabled: {problem}." if problem else
                    f"Endpoint {endpoint_id} is enabled: it gets the events from now on.", error=bool(problem))


@router.post(WEBHOOKS + "/{endpoint_id}/remove")
def remove(request: Request, endpoint_id: str, staff: Staff = Depends(admin)) -> Response:
    problem = _change(request, endpoint_id, lambda s, e: service.remove(s, e, actor=staff.user))
    return redirect(request, WEBHOOKS, f"Not removed: {problem}." if problem else
                    f"Endpoint {endpoint_id} and its delivery log are removed.", error=bool(problem))


@router.post(WEBHOOKS + "/{endpoint_id}/test")
def send_test(request: Request, endpoint_id: str, staff: Staff = Depends(admin)) -> Response:
    settings = request.app.state.settings
    problem = _change(request, endpoint_id, lambda s, e: service.queue_test(s, settings, e, actor=staff.user))
    return redirect(request, f"{WEBHOOKS}/{endpoint_id}" if not problem else WEBHOOKS,
                    f"Not queued: {problem}." if problem else
                    "A test event is queued; a dispatcher sends it within seconds. Reload to see the result.",
                    error=bool(problem))


@router.get(WEBHOOKS + "/{endpoint_id}")
def delivery_log(request: Request, endpoint_id: str, before: str = "", staff: Staff = Depends(admin)) -> Response:
    with request.app.state.db.session() as session:
        endpoint = service.by_id(session, _endpoint_id(endpoint_id))
        log = service.delivery_log(session, endpoint, before=int(before) if before.isdigit() and len(before) < 19 else None)
        rows = [service.log_row(d) for d in log.rows]
        summary = service.summary(endpoint)
    return page(request, staff, "staff/webhook_log.html", endpoint=summary, rows=rows, older=log.older,
                first=not before)
