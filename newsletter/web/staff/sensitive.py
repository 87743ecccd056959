"""The Sensitive information page (admins, under Settings): the custom fields, tags and segments
marked as revealing health information, a form to mark one and a button to unmark each, with the
health-information policy they serve. One page rather than a toggle beside every field, tag and
segment: those lists are open to the marketing role, while marking changes what may be sent, an
admin's decision like the other settings; and custom fields have no page of their own to put a toggle
on. Routes only: the service (``newsletter.sensitive``) checks, stores and audits."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from newsletter import health_policy
from newsletter import sensitive as sensitive_service
from newsletter.staff.roles import Area
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from subscribers.errors import InputError, NotFound
from subscribers.segments import list_segments

router = APIRouter()
SENSITIVE = "/staff/settings/sensitive"
admin = Require(Area.SETTINGS)
KIND_OPTIONS = [(kind, label[0].upper() + label[1:]) for kind, label in sensitive_service.KINDS.items()]


def _page(request: Request, staff: Staff, status: int = 200, *, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None) -> Response:
    settings = request.app.state.settings
    with request.app.state.db.session() as session:
        marks = sensitive_service.listing(session)
        segments = [s.name for s in list_segments(session)]
    return page(request, staff, "staff/settings/sensitive.html", status, marks=marks, segments=segments,
                kind_options=KIND_OPTIONS, values=values or {"kind": sensitive_service.FIELD, "name": ""},
                errors=errors or {}, policy=health_policy.summary(settings),
                effect=health_policy.marks_effect(settings))


@router.get(SENSITIVE)
def sensitive_page(request: Request, staff: Staff = Depends(admin)) -> Response:
    return _page(request, staff)


@router.post(SENSITIVE + "/mark")
def mark(request: Request, kind: str = Form(""), name: str = Form(""), staff: Staff = Depends(admin)) -> Response:
    values = {"kind": kind, "name": name}
    try:
        kind = sensitive_service.check_kind(kind)
    except InputError as exc:
        return _page(request, staff, 400, values=values, errors={"kind": str(exc)})
    try:
        with request.app.state.db.session() as session:
            marked, new = sensitive_service.mark(session, kind, name, staff.user)
    except (InputError, NotFound) as exc:
        return _page(request, staff, 400, values=values, errors={"name": str(exc)})
    said = "is now marked" if new else "was already marked"
    return redirect(request, SENSITIVE, f"The {marked.kind_label} “{marked.name}” {said} sensitive.")


@router.post(SENSITIVE + "/unmark")
def unmark(request: Request, kind: str = Form(""), name: str = Form(""), staff: Staff = Depends(admin)) -> Response:
    try:
        with request.app.state.db.session() as session:
            kind = sensitive_service.check_kind(kind)
            name = sensitive_service.unmark(session, kind, name, staff.user)
    except (InputError, NotFound) as exc:
        return redirect(request, SENSITIVE, f"Nothing was unmarked: {exc}.", error=True)
    return redirect(request, SENSITIVE, f"The {sensitive_service.KINDS[kind]} “{name}” is no longer marked sensitive.")
