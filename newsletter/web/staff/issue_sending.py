"""An issue's Send and Results tabs: choose the audience (with its live count), schedule or send now,
approve, cancel, pause, resume, watch the send's progress, read the results and settle batches held as
unknown. Routes only: the rules and the audit entries are in ``newsletter.sending.staff_actions``,
the figures in ``newsletter.sending.progress`` and ``newsletter.reports.issue_results``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from newsletter import health_policy
from newsletter.issues import get_issue, policy_findings
from newsletter.models import Issue
from newsletter.reports.issue_results import issue_results
from newsletter.versions import issue_language
from newsletter.sending import staff_actions as actions
from newsletter.sending.progress import issue_state, send_progress
from newsletter.staff.roles import Area
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from subscribers.db import utcnow
from subscribers.errors import InputError, NotFound
from subscribers.states import SCHEDULABLE, DeliveryStatus, IssueStatus

router = APIRouter()
issues_area = Require(Area.ISSUES)
BASE = "/staff/issues/{issue_id}"
POLL_SECONDS = 3


def _issue_id(value: str) -> int:
    if not value.isdigit() or len(value) > 12:
        raise HTTPException(404)
    return int(value)


def _issue(session: Session, issue_id: str) -> Issue:
    try:
        return get_issue(session, _issue_id(issue_id))
    except NotFound:
        raise HTTPException(404) from None


def send_path(issue_id: int | str) -> str:
    return f"/staff/issues/{issue_id}/send"


def _send_page(request: Request, staff: Staff, issue_id: str, status: int = 200, *,
               list_id: str | None = None, segment_id: str | None = None, values: dict[str, Any] | None = None,
               errors: dict[str, str] | None = None, template: str = "staff/issue_sending/send.html") -> Response:
    settings = request.app.state.settings
    errors = dict(errors or {})
    with request.app.state.db.session() as session:
        issue = _issue(session, issue_id)
        try:
            audience = actions.choose_audience(session, settings, issue, list_id, segment_id)
        except actions.FieldError as exc:
            errors.setdefault(exc.field, str(exc))
            audience = actions.choose_audience(session, settings, issue)
            status = max(status, 400)
        lists, segments = actions.audience_options(session)
        return page(
            request, staff, template, status,
            issue=issue,
            state=issue_state(session, issue),
            progress=send_progress(session, issue),
            statuses=list(DeliveryStatus),
            actions=actions.actions_for(issue, settings, staff.user),
            when=actions.schedule_text(issue, settings),
            audience=audience,
            list_options=[(str(m.id), m.name) for m in lists],
            segment_options=[("", "Everyone on the list")] + [(str(g.id), g.name) for g in segments],
            zone_options=[(z, z.replace("_", " ")) for z in actions.time_zones()],
            values=values or actions.schedule_defaults(issue, settings, utcnow()),
            errors=errors,
            poll_seconds=POLL_SECONDS,
            policy=health_policy.summary(settings),
            # What the policy refuses, while the issue can still be scheduled or sent (it is asked again then).
            policy_refusals=(policy_findings(session, settings, issue)
                             if issue.status in (*SCHEDULABLE, IssueStatus.PAUSED) else []),
        )


@router.get(BASE + "/send")
def send_tab(request: Request, issue_id: str, list: str | None = None, segment: str | None = None,  # noqa: A002
             staff: Staff = Depends(issues_area)) -> Response:
    return _send_page(request, staff, issue_id, list_id=list, segment_id=segment)


@router.get(BASE + "/send/audience")
def audience_count(request: Request, issue_id: str, list: str | None = None, segment: str | None = None,  # noqa: A002
                   staff: Staff = Depends(issues_area)) -> Response:
    """The live count of a choice, as JSON (the Send page's script asks on every change)."""
    with request.app.state.db.session() as session:
        issue = _issue(session, issue_id)
        try:
            chosen = actions.choose_audience(session, request.app.state.settings, issue, list or "", segment or "")
        except actions.FieldError as exc:
            return JSONResponse({"error": str(exc), "field": exc.field}, status_code=400)
        return JSONResponse(chosen.as_dict())


@router.get(BASE + "/progress")
def progress(request: Request, issue_id: str, staff: Staff = Depends(issues_area)) -> Response:
    """Where the send stands, as JSON (the Send page's script asks every few seconds while it changes)."""
    settings = request.app.state.settings
    with request.app.state.db.snapshot() as session:  # read only: never waits for the dispatchers' writes
        issue = _issue(session, issue_id)
        figures = send_progress(session, issue).as_dict()
        live = actions.actions_for(issue, settings, staff.user).live
    return JSONResponse({**figures, "live": live})


@router.post(BASE + "/schedule")
def schedule_issue(request: Request, issue_id: str, date: str = Form(""), time: str = Form(""),
                   zone: str = Form(""), local_time: str = Form(""), list_id: str = Form(""),
                   segment_id: str = Form(""), staff: Staff = Depends(issues_area)) -> Response:
    values = {"date": date, "time": time, "zone": zone, "local_time": bool(local_time)}
    settings = request.app.state.settings
    try:
        with request.app.state.db.session() as session:
            issue = _issue(session, issue_id)
            actions.schedule_by_staff(session, settings, issue, staff.user, day=date, clock=time, zone=zone,
                                      local_time=bool(local_time), list_id=list_id, segment_id=segment_id,
                                      now=utcnow())
            label = issue_state(session, issue).label
    except actions.FieldError as exc:
        return _send_page(request, staff, issue_id, 400, list_id=list_id, segment_id=segment_id, values=values,
                          errors={exc.field: str(exc)})
    except InputError as exc:
        return _send_page(request, staff, issue_id, 400, list_id=list_id, segment_id=segment_id, values=values,
                          errors={"form": str(exc)})
    return redirect(request, send_path(issue_id), f"Issue {issue_id} is {label.replace('_', ' ')}.")


@router.get(BASE + "/send/confirm")
def confirm_send_now(request: Request, issue_id: str, list: str | None = None, segment: str | None = None,  # noqa: A002
                     staff: Staff = Depends(issues_area)) -> Response:
    """The second step of "Send now": what will happen, to how many, and the button that does it."""
    return _send_page(request, staff, issue_id, list_id=list or "", segment_id=segment or "",
                      template="staff/issue_sending/confirm.html")


@router.post(BASE + "/send-now")
def send_now(request: Request, issue_id: str, list_id: str = Form(""), segment_id: str = Form(""),
             staff: Staff = Depends(issues_area)) -> Response:
    try:
        with request.app.state.db.session() as session:
            issue = _issue(session, issue_id)
            added = actions.send_now_by_staff(session, request.app.state.settings, issue, staff.user,
                                              list_id=list_id, segment_id=segment_id, now=utcnow())
    except InputError as exc:
        return _send_page(request, staff, issue_id, 400, list_id=list_id, segment_id=segment_id,
                          errors={exc.field if isinstance(exc, actions.FieldError) else "form": str(exc)},
                          template="staff/issue_sending/confirm.html")
    if added is None:
        return redirect(request, send_path(issue_id), f"Issue {issue_id} waits for an admin's approval; "
                        "it goes out once approved.")
    return redirect(request, send_path(issue_id), f"Issue {issue_id} is sending to {added} "
                    f"{'person' if added == 1 else 'people'}.")


def _act(request: Request, staff: Staff, issue_id: str, act: Callable[[Session, Issue], object],
         done: str) -> Response:
    try:
        with request.app.state.db.session() as session:
            act(session, _issue(session, issue_id))
    except InputError as exc:
        return redirect(request, send_path(issue_id), f"Nothing changed: {exc}.", error=True)
    return redirect(request, send_path(issue_id), done)


@router.post(BASE + "/approve")
def approve(request: Request, issue_id: str, staff: Staff = Depends(issues_area)) -> Response:
    return _act(request, staff, issue_id, lambda s, i: actions.approve_by_staff(s, i, staff.user, utcnow()),
                f"Issue {issue_id} is approved: it goes out as scheduled.")


@router.post(BASE + "/cancel")
def cancel(request: Request, issue_id: str, staff: Staff = Depends(issues_area)) -> Response:
    return _act(request, staff, issue_id, lambda s, i: actions.cancel_by_staff(s, i, staff.user),
                f"Issue {issue_id}'s schedule is cancelled: it is a draft again.")


@router.post(BASE + "/pause")
def pause(request: Request, issue_id: str, staff: Staff = Depends(issues_area)) -> Response:
    return _act(request, staff, issue_id, lambda s, i: actions.pause_by_staff(s, i, staff.user),
                f"Issue {issue_id} is paused: batches already with the provider finish, nothing else goes out.")


@router.post(BASE + "/resume")
def resume(request: Request, issue_id: str, staff: Staff = Depends(issues_area)) -> Response:
    return _act(request, staff, issue_id, lambda s, i: actions.resume_by_staff(s, i, staff.user, utcnow()),
                f"Issue {issue_id} is resumed: only what has not gone out yet is sent.")


@router.get(BASE + "/results")
def results(request: Request, issue_id: str, staff: Staff = Depends(issues_area)) -> Response:
    with request.app.state.db.snapshot() as session:
        issue = _issue(session, issue_id)
        return page(request, staff, "staff/issue_sending/results.html", issue=issue,
                    results=issue_results(session, issue, default_language=issue_language(issue, request.app.state.settings)))


@router.post(BASE + "/batches/{batch_id}/settle")
def settle(request: Request, issue_id: str, batch_id: str, outcome: str = Form(""),
           staff: Staff = Depends(issues_area)) -> Response:
    back = f"/staff/issues/{issue_id}/results"
    sent = outcome == "sent"
    try:
        with request.app.state.db.session() as session:
            issue = _issue(session, issue_id)
            if outcome not in ("sent", "resend") or not batch_id.isdigit() or len(batch_id) > 12:
                raise InputError("choose one of the two ways to settle the batch")
            count = actions.settle_batch_by_staff(session, issue, int(batch_id), staff.user, sent=sent, now=utcnow())
    except InputError as exc:
        return redirect(request, back, f"Nothing changed: {exc}.", error=True)
    what = "marked sent" if sent else "queued again: the dispatchers send them"
    return redirect(request, back, f"Batch {batch_id}: {count} {'delivery' if count == 1 else 'deliveries'} {what}.")
