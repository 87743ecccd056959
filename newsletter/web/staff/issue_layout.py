"""An issue's layout on its Overview tab (marketing and admins): the layout, the hero image and its
alt text, and a digest's posts (add, remove, move up or down). Each change compiles the issue again
and is written to the audit log; the page then previews the new layout."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from newsletter import issues as issue_service
from newsletter.errors import InputError, NotFound
from newsletter.issue_layout import layout_field_errors
from newsletter.staff import audit
from newsletter.staff.audit import AuditAction
from newsletter.web.staff.auth import Staff
from newsletter.web.staff.issues import ISSUES, _issue, _number, _overview, marketing, target
from newsletter.web.staff.render import redirect

router = APIRouter()
DIGEST_ACTIONS = {"add": "added", "remove": "removed", "up": "moved up", "down": "moved down"}


@router.post(ISSUES + "/{issue_id}/layout")
def edit_layout(request: Request, issue_id: str, layout: str = Form(""), hero: str = Form(""),
                hero_alt: str = Form(""), staff: Staff = Depends(marketing)) -> Response:
    values = {"layout": layout, "hero": hero, "hero_alt": hero_alt}
    try:
        with request.app.state.db.session() as session:
            issue = _issue(session, issue_id)
            errors = layout_field_errors(issue, layout=layout, hero=hero, hero_alt=hero_alt)
            if not errors:
                issue_service.edit_layout(session, request.app.state.settings, issue, layout=layout, hero=hero,
                                          hero_alt=hero_alt)
                audit.record(session, staff.user, AuditAction.ISSUE_EDITED, target(issue), f"layout {layout}")
                number = issue.id
    except InputError as exc:  # sent (or sending) since the page was opened: nothing was changed
        return _overview(request, staff, issue_id, 409, flash=f"Not saved: {exc}.")
    if errors:
        return _overview(request, staff, issue_id, 400, values=values, errors=errors)
    return redirect(request, f"{ISSUES}/{number}#layout", "Layout saved. The preview and the checks below show it.")


@router.post(ISSUES + "/{issue_id}/digest")
def edit_digest(request: Request, issue_id: str, action: str = Form(""), digest_post: str = Form(""),
                staff: Staff = Depends(marketing)) -> Response:
    post = digest_post
    number = _number(post.strip())
    if action not in DIGEST_ACTIONS or number is None:
        told = "Choose the post to add." if action == "add" else "Not changed: the form did not name a post."
        return _overview(request, staff, issue_id, 400, values={"digest_post": post}, errors={"digest_post": told})
    try:
        with request.app.state.db.session() as session:
            issue = _issue(session, issue_id)
            issue_service.edit_digest(session, request.app.state.settings, issue, action, number)
            audit.record(session, staff.user, AuditAction.ISSUE_EDITED, target(issue),
                         f"digest: post {number} {DIGEST_ACTIONS[action]}")
            issue_number = issue.id
    except NotFound:
        return _overview(request, staff, issue_id, 400, values={"digest_post": post},
                         errors={"digest_post": f"There is no post {number}; choose one from the list."})
    except InputError as exc:
        return _overview(request, staff, issue_id, 400, values={"digest_post": post},
                         errors={"digest_post": issue_service.sentence(str(exc))})
    return redirect(request, f"{ISSUES}/{issue_number}#digest", f"Post {number} {DIGEST_ACTIONS[action]}.")
