"""Sequences (marketing and admins): the list with figures, a sequence's steps with theirs, editing,
adding and removing a step (loaded as `newsletter sequences load` loads a file), a step's preview
(its own sandboxed route, as an issue's), pause, resume, and enrolling a contact by address. Every
change is audited in the transaction that makes it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from newsletter import issues as issue_service
from newsletter.errors import InputError, NotFound
from newsletter.models import Sequence
from newsletter.sequences import editing, service
from newsletter.sequences.definition import DefinitionError, SequenceDefinition
from newsletter.sequences.engine import steps_of
from newsletter.sequences.install import InstallReport
from newsletter.staff import audit
from newsletter.staff.audit import AuditAction
from newsletter.staff.roles import Area
from newsletter.urls import url_id
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.issues import PREVIEW_CSP
from newsletter.web.staff.render import page, redirect
from subscribers.db import utcnow
from subscribers.states import SequenceStatus

router = APIRouter()
SEQUENCES = "/staff/sequences"
marketing = Require(Area.SEQUENCES)
AT_END, AT_START = "", "start"  # the "where" choices of a new step besides "after <key>"


def _sequence(session: Session, sequence_id: str, *, for_update: bool = False) -> Sequence:
    """The sequence a path names, else the 404 page (``for_update``: locked for a change)."""
    number = url_id(sequence_id)
    try:
        if number is None:
            raise NotFound(sequence_id)
        return service.sequence_by_id(session, number, for_update=for_update)
    except NotFound:
        raise HTTPException(404) from None


def target(sequence: Sequence) -> str:
    return f"sequence {sequence.id}"


def _url(sequence: Sequence, *parts: str) -> str:
    return "/".join((SEQUENCES, str(sequence.id), *parts))


def _outcome(report: InstallReport) -> str:
    """What the load did, in the words of `sequences load`."""
    parts = []
    if report.added:
        parts.append(f"step {', '.join(report.added)} added")
    if report.changed:
        parts.append(f"changed {', '.join(report.changed)}")
    if report.removed:
        parts.append(f"removed {', '.join(report.removed)} (never sent again)")
    if report.reopened:
        parts.append(f"{report.reopened} contacts who had finished will get the new step")
    return "; ".join(parts) or "nothing changed"


def _with_warnings(message: str, warnings: list[str]) -> str:
    return message + "".join(f" Warning: {w}." for w in warnings)


# The list ------------------------------------------------------------------------------------------


@router.get(SEQUENCES)
def sequences_page(request: Request, staff: Staff = Depends(marketing)) -> Response:
    with request.app.state.db.session() as session:
        rows = service.overview(session, utcnow())
    return page(request, staff, "staff/sequences/list.html", rows=rows, active=SequenceStatus.ACTIVE)


# One sequence --------------------------------------------------------------------------------------


def _sequence_page(request: Request, staff: Staff, sequence_id: str, status: int = 200, *,
                   values: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> Response:
    with request.app.state.db.session() as session:
        sequence = _sequence(session, sequence_id)
        data = service.view(session, sequence, utcnow())
    return page(request, staff, "staff/sequences/sequence.html", status, view=data, sequence=data.sequence,
                definition=sequence.definition, delay_of=editing.delay_of, active=SequenceStatus.ACTIVE,
                values=values or {"email": ""}, errors=errors or {})


@router.get(SEQUENCES + "/{sequence_id}")
def sequence_page(request: Request, sequence_id: str, staff: Staff = Depends(marketing)) -> Response:
    return _sequence_page(request, staff, sequence_id)


def _set_status(request: Request, staff: Staff, sequence_id: str, status: SequenceStatus) -> Response:
    action, done = ((AuditAction.PAUSE, "paused: everyone is held where they are")
                    if status == SequenceStatus.PAUSED else
                    (AuditAction.RESUME, "resumed: steps that came due meanwhile go out inside the send window"))
    try:
        with request.app.state.db.session() as session:
            sequence = _sequence(session, sequence_id, for_update=True)
            service.set_status(sequence, status)
            audit.record(session, staff.user, action, target(sequence))
            name = sequence.name
    except InputError as exc:  # already so (a second click, another tab): nothing changed
        return _sequence_page(request, staff, sequence_id, 409, errors={"status": issue_service.sentence(str(exc))})
    return redirect(request, f"{SEQUENCES}/{sequence_id}", f"Sequence {name!r} {done}.")


@router.post(SEQUENCES + "/{sequence_id}/pause")
def pause(request: Request, sequence_id: str, staff: Staff = Depends(marketing)) -> Response:
    return _set_status(request, staff, sequence_id, SequenceStatus.PAUSED)


@router.post(SEQUENCES + "/{sequence_id}/resume")
def resume(request: Request, sequence_id: str, staff: Staff = Depends(marketing)) -> Response:
    return _set_status(request, staff, sequence_id, SequenceStatus.ACTIVE)


@router.post(SEQUENCES + "/{sequence_id}/enrol")
def enrol(request: Request, sequence_id: str, email: str = Form(""), staff: Staff = Depends(marketing)) -> Response:
    values = {"email": email}
    if not email.strip():
        return _sequence_page(request, staff, sequence_id, 400, values=values,
                              errors={"email": "Type the address of the contact to enrol."})
    try:
        with request.app.state.db.session() as session:
            sequence = _sequence(session, sequence_id)
            enrollment = service.enroll_contact(session, sequence, email, utcnow())
            audit.record(session, staff.user, AuditAction.ENROLLED, target(sequence),
                         f"contact {enrollment.contact_id}, by hand")
            due = enrollment.next_due_at
    except (NotFound, InputError) as exc:
        return _sequence_page(request, staff, sequence_id, 400, values=values,
                              errors={"email": issue_service.sentence(str(exc))})
    when = f"{due:%Y-%m-%d %H:%M} UTC" if due else "now"
    return redirect(request, f"{SEQUENCES}/{sequence_id}#enrol", f"Enrolled. The first step is due {when}.")


# A step ----------------------------------------------------------------------------------------------


def _step_context(session: Session, sequence: Sequence, key: str) -> dict[str, Any]:
    try:
        definition = editing.definition_of(sequence)
        step = definition.steps[editing.step_index(definition, key)]
    except NotFound:
        raise HTTPException(404) from None
    row = next((s for s in steps_of(session, sequence) if s.key == key), None)
    if row is None:
        raise HTTPException(404)
    return {"definition": definition, "step": step, "row": row,
            "waiting": service.waiting_per_step(session, sequence).get(row.id, 0),
            "warnings": editing.step_warnings(sequence, key)}


def _step_page(request: Request, staff: Staff, sequence_id: str, key: str, status: int = 200, *,
               form: editing.StepForm | None = None, errors: dict[str, str] | None = None) -> Response:
    with request.app.state.db.session() as session:
        sequence = _sequence(session, sequence_id)
        context = _step_context(session, sequence, key)
        preview = issue_service.preview_parts(context["row"], request.app.state.settings)
    return page(request, staff, "staff/sequences/step.html", status, sequence=sequence, plain_text=preview.text,
                form=form or editing.StepForm.of(context["step"]), errors=errors or {},
                conditions=_condition_options(), first=context["definition"].steps[0].key == key, **context)


def _condition_options() -> list[tuple[str, str]]:
    labels = {"opened_previous": "Only if they opened the previous step",
              "clicked_previous": "Only if they clicked in the previous step",
              "has_tag": "Only if they have a tag"}
    return [("", "Always")] + [(kind, labels.get(kind, kind)) for kind in editing.CONDITION_KINDS]


def _typed(delay: str, subject: str, preheader: str, body: str | None, condition: str, condition_tag: str,
           key: str = "") -> editing.StepForm:
    return editing.StepForm(delay=delay, subject=subject, preheader=preheader, body=body, condition=condition,
                            condition_tag=condition_tag, key=key)


@router.get(SEQUENCES + "/{sequence_id}/steps/{key}")
def step_page(request: Request, sequence_id: str, key: str, staff: Staff = Depends(marketing)) -> Response:
    return _step_page(request, staff, sequence_id, key)


@router.post(SEQUENCES + "/{sequence_id}/steps/{key}")
def save_step(request: Request, sequence_id: str, key: str, delay: str = Form(""), subject: str = Form(""),
              preheader: str = Form(""), body: str | None = Form(None), condition: str = Form(""),
              condition_tag: str = Form(""), staff: Staff = Depends(marketing)) -> Response:
    form = _typed(delay, subject, preheader, body, condition, condition_tag, key)
    settings = request.app.state.settings
    index = 0
    try:
        with request.app.state.db.session() as session:
            sequence = _sequence(session, sequence_id, for_update=True)
            context = _step_context(session, sequence, key)
            index = editing.step_index(context["definition"], key)
            edit = editing.edit_step(session, settings, sequence, key, form, utcnow(), context["waiting"])
            audit.record(session, staff.user, AuditAction.SEQUENCE_EDITED, target(sequence),
                         f"step {key}: {_outcome(edit.report)}")
    except DefinitionError as exc:
        return _step_page(request, staff, sequence_id, key, 400, form=form, errors=editing.field_errors(exc, index))
    except InputError as exc:  # found while installing (a post gone): nothing was changed
        return _step_page(request, staff, sequence_id, key, 400, form=form, errors={"form": str(exc)})
    waiting = (f" {edit.waiting} contact{'s' if edit.waiting != 1 else ''} waiting for this step will get this "
               "version when it comes due." if edit.waiting else "")
    return redirect(request, _url(sequence, "steps", key),
                    _with_warnings(f"Saved: {_outcome(edit.report)}.{waiting}", edit.warnings))


@router.get(SEQUENCES + "/{sequence_id}/steps/{key}/preview.html")
def step_preview(request: Request, sequence_id: str, key: str, staff: Staff = Depends(marketing)) -> Response:
    with request.app.state.db.session() as session:
        sequence = _sequence(session, sequence_id)
        row = next((s for s in steps_of(session, sequence) if s.key == key), None)
        if row is None:
            raise HTTPException(404)
        html = issue_service.preview_parts(row, request.app.state.settings).html
    return HTMLResponse(html, headers={"Content-Security-Policy": PREVIEW_CSP})


@router.post(SEQUENCES + "/{sequence_id}/steps/{key}/remove")
def remove_step(request: Request, sequence_id: str, key: str, staff: Staff = Depends(marketing)) -> Response:
    settings = request.app.state.settings
    try:
        with request.app.state.db.session() as session:
            sequence = _sequence(session, sequence_id, for_update=True)
            context = _step_context(session, sequence, key)
            edit = editing.remove_step(session, settings, sequence, key, utcnow(), context["waiting"])
            audit.record(session, staff.user, AuditAction.SEQUENCE_EDITED, target(sequence),
                         f"step {key}: {_outcome(edit.report)}")
    except InputError as exc:  # refused as `sequences load` refuses it, with its message
        return _step_page(request, staff, sequence_id, key, 400, errors={"remove": str(exc)})
    moved = (f" The {edit.waiting} contact{'s' if edit.waiting != 1 else ''} waiting for it move on to the next "
             "step." if edit.waiting else "")
    return redirect(request, _url(sequence), f"Step {key} removed: it is never sent again; its figures stay below.{moved}")


# A new step ------------------------------------------------------------------------------------------


def _where_options(definition: SequenceDefinition) -> list[tuple[str, str]]:
    return ([(AT_END, "At the end")] + [(AT_START, "At the start")]
            + [(f"after:{s.key}", f"After step {n} ({s.subject})") for n, s in enumerate(definition.steps[:-1], 1)])


def _new_page(request: Request, staff: Staff, sequence_id: str, status: int = 200, *,
              form: editing.StepForm | None = None, where: str = AT_END, reach_completed: bool = False,
              errors: dict[str, str] | None = None) -> Response:
    with request.app.state.db.session() as session:
        sequence = _sequence(session, sequence_id)
        definition = editing.definition_of(sequence)
    return page(request, staff, "staff/sequences/new_step.html", status, sequence=sequence,
                form=form or editing.StepForm(delay="2d", subject="", body=""), errors=errors or {},
                conditions=_condition_options(), where_options=_where_options(definition), where=where,
                reach_completed=reach_completed)


@router.get(SEQUENCES + "/{sequence_id}/new-step")
def new_step_page(request: Request, sequence_id: str, staff: Staff = Depends(marketing)) -> Response:
    return _new_page(request, staff, sequence_id)


@router.post(SEQUENCES + "/{sequence_id}/new-step")
def add_step(request: Request, sequence_id: str, key: str = Form(""), where: str = Form(AT_END),
             delay: str = Form(""), subject: str = Form(""), preheader: str = Form(""), body: str = Form(""),
             condition: str = Form(""), condition_tag: str = Form(""), reach_completed: str = Form(""),
             staff: Staff = Depends(marketing)) -> Response:
    form = _typed(delay, subject, preheader, body, condition, condition_tag, key)
    reach = bool(reach_completed)
    again = {"form": form, "where": where, "reach_completed": reach}
    settings = request.app.state.settings
    try:
        with request.app.state.db.session() as session:
            sequence = _sequence(session, sequence_id, for_update=True)
            after = where.removeprefix("after:") if where.startswith("after:") else None
            if where not in (AT_END, AT_START) and after is None:
                raise NotFound(where)
            index = editing.insert_at(editing.definition_of(sequence), after=after, at_start=where == AT_START)
            edit = editing.add_step(session, settings, sequence, form, utcnow(), index=index, reach_completed=reach)
            audit.record(session, staff.user, AuditAction.SEQUENCE_EDITED, target(sequence),
                         f"step {form.key.strip()}: {_outcome(edit.report)}")
    except NotFound:
        return _new_page(request, staff, sequence_id, 400, errors={"where": "Choose where the step goes from the list."},
                         **again)
    except DefinitionError as exc:
        return _new_page(request, staff, sequence_id, 400, errors=editing.field_errors(exc, index), **again)
    except InputError as exc:
        return _new_page(request, staff, sequence_id, 400, errors={"form": str(exc)}, **again)
    return redirect(request, _url(sequence, "steps", form.key.strip()),
                    _with_warnings(f"Saved: {_outcome(edit.report)}. Contacts reach it when they get to it in the "
                                   "sequence.", edit.warnings))
