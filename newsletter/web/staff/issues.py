"""Issues (marketing and admins): the list, a new issue from a post, and an issue's Overview tab:
edit while unsent, the preview (its own sandboxed route), the preflight checklist and test emails.
Sending, scheduling and results are other tabs (``issue_sending``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from newsletter import archive, health_policy
from newsletter import issues as issue_service
from newsletter.compose.compile import TRACKING_MODES
from newsletter.compose.layouts import FULL, LAYOUT_LABELS, LAYOUTS
from newsletter.errors import InputError, NotFound
from newsletter.issue_layout import FIRST_IMAGE, layout_choices
from newsletter.models import Issue
from newsletter.posts.service import get_post, list_posts, translations_of
from newsletter.sending import test_emails
from newsletter.sending.progress import issue_state, issue_states
from newsletter.urls import archive_path
from newsletter.staff import audit
from newsletter.staff.audit import AuditAction
from newsletter.staff.roles import Area
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from newsletter.versions import issue_language, language_choices
from subscribers.db import utcnow

router = APIRouter()
ISSUES = "/staff/issues"
marketing = Require(Area.ISSUES)
RECENT_POSTS = 50
# The preview is the email itself: it may style itself and show images from this app or data: URLs,
# and nothing else (no script, no form, no other host, so no other site learns who is reading it),
# inside the issue page only.
PREVIEW_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'none'; "
               "frame-ancestors 'self'; base-uri 'none'")


def _id(value: str) -> int:
    """A number from a path or form; anything else is a page that does not exist."""
    number = _number(value)
    if number is None:
        raise HTTPException(404)
    return number


def _number(value: str) -> int | None:
    """A post or issue number as typed or linked; None for anything else (too long for the database too)."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 12 else None


def _issue(session: Session, issue_id: str) -> Issue:
    try:
        return issue_service.get_issue(session, _id(issue_id))
    except NotFound:
        raise HTTPException(404) from None


def target(issue: Issue) -> str:
    return f"issue {issue.id}"


# The list ------------------------------------------------------------------------------------------


@router.get(ISSUES)
def issues_page(request: Request, staff: Staff = Depends(marketing)) -> Response:
    with request.app.state.db.session() as session:
        issues = issue_service.list_issues(session)
        states = issue_states(session, issues)
    return page(request, staff, "staff/issues/list.html", issues=issues, states=states)


# A new issue ---------------------------------------------------------------------------------------


def _post_options(session: Session) -> list[tuple[str, str]]:
    return [("", "Choose a post")] + [(str(p.id), f"{p.title} (post {p.id})") for p in list_posts(session, RECENT_POSTS)]


def _new_page(request: Request, staff: Staff, values: dict[str, str], errors: dict[str, str]) -> Response:
    settings = request.app.state.settings
    with request.app.state.db.session() as session:
        options = _post_options(session)
        chosen, number = None, _number(values["post"])
        if number is not None and "post" not in errors:
            try:
                chosen = get_post(session, number)
            except NotFound:
                errors["post"] = f"There is no post {values['post']}; choose one from the list."
        if chosen is not None and str(chosen.id) not in {value for value, _ in options}:
            options.append((str(chosen.id), f"{chosen.title} (post {chosen.id})"))  # an older post, linked to
    return page(request, staff, "staff/issues/new.html", 400 if errors else 200,
                values=values, errors=errors, post_options=options,
                tracking_options=[(m, issue_service.TRACKING_LABELS[m]) for m in TRACKING_MODES],
                layout_options=[(name, LAYOUT_LABELS[name]) for name in LAYOUTS],
                default_tracking=settings.tracking)


@router.get(ISSUES + "/new")
def new_issue_page(request: Request, post: str = "", staff: Staff = Depends(marketing)) -> Response:
    post = post.strip()
    values = {"post": post, "subject": "", "preheader": "", "intro": "", "tracking": request.app.state.settings.tracking,
              "layout": FULL}
    errors: dict[str, str] = {}
    number = _number(post)
    if post and number is None:
        errors["post"] = f"{post!r} is not a post number; choose one from the list."
    elif number is not None:
        with request.app.state.db.session() as session:
            try:
                chosen = get_post(session, number)
                suggested = issue_service.suggest(chosen, request.app.state.settings)
                values["subject"], values["preheader"] = suggested.subject, suggested.preheader
            except NotFound:
                errors["post"] = f"There is no post {post}; choose one from the list."
    return _new_page(request, staff, values, errors)


@router.post(ISSUES + "/new")
def create_issue(request: Request, post: str = Form(""), subject: str = Form(""), preheader: str = Form(""),
                 intro: str = Form(""), tracking: str = Form(""), layout: str = Form(FULL),
                 staff: Staff = Depends(marketing)) -> Response:
    settings = request.app.state.settings
    values = {"post": post.strip(), "subject": subject, "preheader": preheader, "intro": intro, "tracking": tracking,
              "layout": layout}
    # Left empty, the subject and preheader are the suggested ones (free of health words).
    subject_given, preheader_given = subject if subject.strip() else None, preheader if preheader.strip() else None
    errors = issue_service.field_errors(subject=subject_given, preheader=preheader_given, intro=intro,
                                        tracking=tracking, layout=layout)
    if not values["post"]:
        errors["post"] = "Choose the post the issue is made from."
    elif _number(values["post"]) is None:
        errors["post"] = f"{values['post']!r} is not a post number; choose one from the list."
    if errors:
        return _new_page(request, staff, values, errors)
    try:
        with request.app.state.db.session() as session:
            issue = issue_service.create_issue(session, settings, int(values["post"]), subject_given,
                                               preheader_given, tracking, intro, layout=layout)
            audit.record(session, staff.user, AuditAction.ISSUE_CREATED, target(issue), f"from post {issue.post_id}")
            issue_id = issue.id
    except NotFound:
        return _new_page(request, staff, values, {"post": f"There is no post {values['post']}; choose one from the list."})
    except InputError as exc:  # what field_errors did not foresee: shown above the form, values kept
        return _new_page(request, staff, values, {"form": str(exc)})
    return redirect(request, f"{ISSUES}/{issue_id}", f"Issue {issue_id} is made, as a draft. Preview it and send a test.")


# One issue: Overview -----------------------------------------------------------------------------------


def _version_languages(issue: Issue, settings: Any) -> list[tuple[str, str]]:
    choices = language_choices(exclude=[issue_language(issue, settings)])
    return [("", "Choose a language")] + [(code, f"{name} ({code})") for code, name in choices.items()]


def _version_posts(session: Session, issue: Issue) -> list[tuple[str, str]]:
    """The posts that say they translate the issue's post first, then the recent ones."""
    translations = translations_of(session, issue.post_id)
    listed = {p.id for p in translations}
    rest = [p for p in list_posts(session, RECENT_POSTS) if p.id not in listed and p.id != issue.post_id]

    def label(post: Any) -> str:
        facts = [f"post {post.id}", post.language or "language not given"]
        if post.id in listed:
            facts.append("translates this issue's post")
        return f"{post.title} ({', '.join(facts)})"

    return [("", "Choose the translated post")] + [(str(p.id), label(p)) for p in translations + rest]



def _overview(request: Request, staff: Staff, issue_id: str, status: int = 200, *, flash: str | None = None,
              values: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> Response:
    settings = request.app.state.settings
    with request.app.state.db.session() as session:
        issue = _issue(session, issue_id)
        preview = issue_service.preview_parts(issue, settings)
        context: dict[str, Any] = {
            "issue": issue,
            "post_title": issue.post.title,
            "state": issue_state(session, issue),
            "editable": issue_service.editable(issue),
            "checks": issue_service.checklist(issue, settings),
            "policy": health_policy.summary(settings),
            "plain_text": preview.text,
            "tests": [(row, test_emails.status_text(row)) for row in test_emails.test_emails_of(session, issue.id, 10)],
            "tracking_label": issue_service.TRACKING_LABELS.get(issue.tracking, issue.tracking),
            "publishable": archive.publishable(issue),
            "archive_path": archive_path(issue.id, issue.subject) if issue.archive_published_at else None,
            "choices": layout_choices(issue, list_posts(session, RECENT_POSTS)),
            "versions": issue_service.version_rows(session, settings, issue),
            "version_languages": _version_languages(issue, settings),
            "version_posts": _version_posts(session, issue),
        }
        context["test_versions"] = [(("" if v["default"] else v["language"]),
                                     f"The issue's own ({v['language']})" if v["default"] else f"The {v['language']} version")
                                    for v in context["versions"]]
        context["values"] = {"version_language": "", "version_post": "", "version_subject": "",
                             "version_preheader": "", "test_language": "",
                             "subject": issue.subject, "preheader": issue.preheader, "intro": issue.intro,
                             "to": staff.user.email, "layout": issue.layout, "hero": issue.hero or FIRST_IMAGE,
                             "hero_alt": issue.hero_alt or "", "digest_post": "", **(values or {})}
    context["errors"] = errors or {}
    return page(request, staff, "staff/issues/overview.html", status, flash=flash, flash_error=bool(flash),
                test_limit=settings.test_send_limit, **context)


@router.get(ISSUES + "/{issue_id}")
def issue_page(request: Request, issue_id: str, staff: Staff = Depends(marketing)) -> Response:
    return _overview(request, staff, issue_id)


@router.post(ISSUES + "/{issue_id}/edit")
def edit_issue(request: Request, issue_id: str, subject: str = Form(""), preheader: str = Form(""),
               intro: str = Form(""), staff: Staff = Depends(marketing)) -> Response:
    settings = request.app.state.settings
    values = {"subject": subject, "preheader": preheader, "intro": intro}
    errors = issue_service.field_errors(subject=subject, preheader=preheader, intro=intro)
    if errors:
        return _overview(request, staff, issue_id, 400, values=values, errors=errors)
    try:
        with request.app.state.db.session() as session:
            issue = _issue(session, issue_id)
            issue_service.edit_issue(session, settings, issue, subject=subject, preheader=preheader, intro=intro)
            audit.record(session, staff.user, AuditAction.ISSUE_EDITED, target(issue))
    except InputError as exc:  # sent (or sending) since the page was opened: nothing was changed
        return _overview(request, staff, issue_id, 409, flash=f"Not saved: {exc}.")
    return redirect(request, f"{ISSUES}/{issue.id}", "Saved. The preview and the checks below are of the new version.")


@router.get(ISSUES + "/{issue_id}/preview.html")
def preview_html(request: Request, issue_id: str, staff: Staff = Depends(marketing)) -> Response:
    with request.app.state.db.session() as session:
        html = issue_service.preview_parts(_issue(session, issue_id), request.app.state.settings).html
    return HTMLResponse(html, headers={"Content-Security-Policy": PREVIEW_CSP})


@router.post(ISSUES + "/{issue_id}/test")
def send_test(request: Request, issue_id: str, to: str = Form(""), test_language: str = Form(""),
              staff: Staff = Depends(marketing)) -> Response:
    settings = request.app.state.settings
    try:
        with request.app.state.db.session() as session:
            issue = _issue(session, issue_id)
            rows = test_emails.queue_test_emails(session, settings, issue, to, requested_by=f"user {staff.user.id}",
                                                 now=utcnow(), language=test_language or None)
            audit.record(session, staff.user, AuditAction.SEND_TEST, target(issue), f"{len(rows)} address(es)")
    except NotFound as exc:  # the version was removed since the page was shown
        return _overview(request, staff, issue_id, 400, values={"to": to, "test_language": test_language},
                         errors={"test_language": issue_service.sentence(str(exc))})
    except InputError as exc:
        return _overview(request, staff, issue_id, 400, values={"to": to, "test_language": test_language},
                         errors={"to": issue_service.sentence(str(exc))})
    count = len(rows)
    return redirect(request, f"{ISSUES}/{issue.id}#tests",
                    f"Test queued for {count} address{'es' if count != 1 else ''}.")


# The public archive ---------------------------------------------------------------------------------


@router.post(ISSUES + "/{issue_id}/archive")
def set_archived(request: Request, issue_id: str, publish: str = Form(""), staff: Staff = Depends(marketing)) -> Response:
    """Publish a sent issue in the public archive ("yes") or take it out ("no"); repeating either is harmless."""
    if publish not in ("yes", "no"):
        return _overview(request, staff, issue_id, 400, flash="Not changed: the form did not say whether to publish.")
    try:
        with request.app.state.db.session() as session:
            issue = _issue(session, issue_id)
            if publish == "yes" and archive.publish(issue):
                audit.record(session, staff.user, AuditAction.ARCHIVE_PUBLISHED, target(issue))
            elif publish == "no" and archive.unpublish(issue):
                audit.record(session, staff.user, AuditAction.ARCHIVE_UNPUBLISHED, target(issue))
            number = issue.id
    except InputError as exc:  # not sent (a draft, a cancelled issue): nothing changed
        return _overview(request, staff, issue_id, 409, flash=f"Not published: {exc}.")
    told = ("It is in the public archive now; anyone with the link can read it." if publish == "yes"
            else "It is no longer in the public archive.")
    return redirect(request, f"{ISSUES}/{number}#archive", told)
