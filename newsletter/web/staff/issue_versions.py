"""An issue's language versions on its Overview tab (marketing and admins): add or replace the
version in another language (the translated post, its subject and preheader), remove it, and
preview it. Contacts who read that language get it; everyone else the issue's own. Each change is
compiled at once and written to the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from newsletter import issues as issue_service
from newsletter.errors import InputError, NotFound
from newsletter.staff import audit
from newsletter.staff.audit import AuditAction
from newsletter.web.staff.auth import Staff
from newsletter.web.staff.issues import ISSUES, PREVIEW_CSP, _issue, _overview, marketing, target
from newsletter.web.staff.render import redirect

router = APIRouter()


@router.post(ISSUES + "/{issue_id}/versions")
def save_version(request: Request, issue_id: str, version_language: str = Form(""), version_post: str = Form(""),
                 version_subject: str = Form(""), version_preheader: str = Form(""),
                 staff: Staff = Depends(marketing)) -> Response:
    settings = request.app.state.settings
    values = {"version_language": version_language, "version_post": version_post.strip(),
              "version_subject": version_subject, "version_preheader": version_preheader}
    try:
        with request.app.state.db.session() as session:
            issue = _issue(session, issue_id)
            errors = issue_service.version_field_errors(
                session, settings, issue, language=version_language, post=values["version_post"],
                subject=version_subject, preheader=version_preheader)
            if not errors:
                version = issue_service.add_version(session, settings, issue, language=version_language,
                                                    post_id=int(values["version_post"]), subject=version_subject,
                                                    preheader=version_preheader)
                audit.record(session, staff.user, AuditAction.ISSUE_VERSION_SAVED, target(issue), version.language)
                number, language = issue.id, version.language
    except InputError as exc:  # sent since the page was opened, or a digest: nothing was changed
        return _overview(request, staff, issue_id, 409, values=values, flash=f"Not saved: {exc}.")
    if errors:
        return _overview(request, staff, issue_id, 400, values=values, errors=errors)
    return redirect(request, f"{ISSUES}/{number}#versions",
                    f"The {language} version is saved. Contacts who read {language} get it; the checks below cover it.")


@router.post(ISSUES + "/{issue_id}/versions/{language}/remove")
def remove_version(request: Request, issue_id: str, language: str, staff: Staff = Depends(marketing)) -> Response:
    try:
        with request.app.state.db.session() as session:
            issue = _issue(session, issue_id)
            if issue_service.remove_version(session, issue, language):
                audit.record(session, staff.user, AuditAction.ISSUE_VERSION_REMOVED, target(issue), language)
            number = issue.id
    except InputError as exc:
        return _overview(request, staff, issue_id, 409, flash=f"Not removed: {exc}.")
    return redirect(request, f"{ISSUES}/{number}#versions", f"The {language} version is removed.")


@router.get(ISSUES + "/{issue_id}/versions/{language}/preview.html")
def preview_version(request: Request, issue_id: str, language: str, staff: Staff = Depends(marketing)) -> Response:
    with request.app.state.db.session() as session:
        issue = _issue(session, issue_id)
        try:
            version = issue_service.get_version(session, issue, language)
        except (NotFound, InputError):
            raise HTTPException(404) from None
        html = issue_service.preview_parts(version, request.app.state.settings).html
    return HTMLResponse(html, headers={"Content-Security-Policy": PREVIEW_CSP})
