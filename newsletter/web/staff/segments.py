"""Staff pages for segments (admin and marketing): the saved segments with their counts, and a
builder that writes the definition language of ``newsletter segments save`` as rows of conditions
(or as YAML/JSON text), shows the count and a sample as you build, and saves, edits and deletes.

A thin face over ``subscribers.segments`` (validate, count, contacts, save, delete; ``count_many``
for the list) and ``newsletter.staff.segment_builder`` (the form's rows <-> a definition). Counting
is a POST: the definition may hold values (a custom field's) that do not belong in a URL; it changes
nothing. Saves and deletes are audited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from newsletter.errors import InputError, NotFound
from newsletter.staff import audit
from newsletter.staff import segment_builder as builder
from newsletter.staff import segment_counts
from newsletter.staff.audit import AuditAction
from newsletter.staff.roles import Area
from newsletter.urls import url_id
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from subscribers import segments as segment_service
from subscribers.models import Segment

router = APIRouter()
SEGMENTS = "/staff/segments"
SAMPLE = 10
contacts = Require(Area.CONTACTS)


@dataclass
class Builder:
    """The form as posted (or as loaded from a saved segment) and what checking it found."""

    name: str = ""
    description: str = ""
    match: str = "all"
    mode: str = "rows"  # or "text": the advanced definition
    rows: list[builder.Row] = field(default_factory=lambda: [builder.Row()])
    text: str = ""
    row_errors: dict[int, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    definition: dict[str, Any] | None = None  # valid, once checked


def _from_form(form: FormData) -> Builder:
    def get(key: str) -> str:
        value = form.get(key)
        return value if isinstance(value, str) else ""

    count = int(get("rows")) if get("rows").isdigit() else 0
    rows = [builder.Row(get(f"kind-{i}"), get(f"op-{i}"), get(f"key-{i}"), get(f"value-{i}"))
            for i in range(min(count, builder.MAX_ROWS))]
    return Builder(name=get("name").strip(), description=get("description").strip(), match=get("match") or "all",
                   mode="text" if get("mode") == "text" else "rows", rows=rows, text=get("definition"))


def _check(form: Builder) -> None:
    """Turn the form into a valid definition, or set the errors beside the rows or the text."""
    try:
        if form.mode == "text":
            if not form.text.strip():
                raise InputError("write the definition, e.g. {all: [{list: newsletter}, {tag: vip}]}")
            data = builder.parse_text(form.text)
        else:
            data = builder.definition_of(form.match, form.rows)
        form.definition = segment_service.validate(data)
    except builder.RowError as exc:
        form.row_errors[exc.index] = str(exc)
    except (InputError, ValueError) as exc:
        _place_error(form, str(exc))
    if form.definition is not None and form.mode == "rows":
        form.text = builder.as_text(form.definition)  # to go on in the advanced text


def _place_error(form: Builder, message: str) -> None:
    """Beside the row the message's path names, else beside the definition text."""
    found = builder.row_of(message) if form.mode == "rows" else None
    if found is not None and found[0] < len(form.rows):
        form.row_errors[found[0]] = _sentence(found[1])
    else:
        form.errors["definition"] = _sentence(message)


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _counted(request: Request, definition: dict[str, Any], total: int | None = None) -> dict[str, Any]:
    with request.app.state.db.session() as session:
        if total is None:
            total = segment_service.count(session, definition)
        sample = [{"id": c.id, "email": c.email, "name": c.name or ""}
                  for c in segment_service.contacts(session, definition, limit=SAMPLE)]
    return {"count": total, "text": f"{total:,} mailable contact{'' if total == 1 else 's'}", "sample": sample}


def _builder_page(request: Request, staff: Staff, form: Builder, segment: Segment | None = None, status: int = 200,
                  counted: dict[str, Any] | None = None) -> Response:
    if not form.rows:
        form.rows = [builder.Row()]
    return page(request, staff, "staff/segments/edit.html", status, form=form, segment=segment, counted=counted,
                kinds=builder.KINDS, ops=builder.OPS,
                hints_json=json.dumps({kind: hint for kind, (_, _, hint) in builder.KINDS.items()}),
                action=f"{SEGMENTS}/{segment.id}" if segment else f"{SEGMENTS}/new")


# The list ------------------------------------------------------------------------------------------


@router.get(SEGMENTS)
def segments_list(request: Request, counts: str = Query(""), staff: Staff = Depends(contacts)) -> Response:
    with request.app.state.db.session() as session:
        saved = segment_service.list_segments(session)
        numbers = segment_counts.count_all(session, saved) if counts == "now" else segment_counts.known(saved)
        rows = [{"id": s.id, "name": s.name, "description": s.description, "count": numbers.get(s.id),
                 "updated_at": s.updated_at} for s in saved]
    return page(request, staff, "staff/segments/list.html", rows=rows,
                counting=any(row["count"] is None for row in rows))


@router.get(SEGMENTS + "/counts.json")
def segments_counts(request: Request, staff: Staff = Depends(contacts)) -> Response:
    """Every saved segment's count, by id (the list page's script fills its cells with them)."""
    with request.app.state.db.session() as session:
        numbers = segment_counts.count_all(session, segment_service.list_segments(session))
    return JSONResponse({str(k): {"count": v, "text": f"{v:,}"} for k, v in numbers.items()})


# Building, counting, saving ----------------------------------------------------------------------


@router.get(SEGMENTS + "/new")
def new_segment(request: Request, staff: Staff = Depends(contacts)) -> Response:
    return _builder_page(request, staff, Builder())


def _segment(request: Request, segment_id: str) -> Segment:
    number = url_id(segment_id)
    with request.app.state.db.session() as session:
        found = session.get(Segment, number) if number else None
        if found is None:
            raise HTTPException(404)
        session.expunge(found)
        return found


@router.get(SEGMENTS + "/{segment_id}")
def edit_segment(request: Request, segment_id: str, staff: Staff = Depends(contacts)) -> Response:
    segment = _segment(request, segment_id)
    as_rows = builder.rows_of(segment.definition)
    form = Builder(name=segment.name, description=segment.description, text=builder.as_text(segment.definition))
    if as_rows is None:
        form.mode = "text"
    else:
        form.match, form.rows = as_rows
    # Opening a segment shows its count kept from the last few minutes; else the page's script counts
    # it once drawn (a count reads every contact: up to a third of a second at 100,000), or Count does.
    kept = segment_counts.known([segment]).get(segment.id)
    counted = _counted(request, segment.definition, kept) if kept is not None else None
    return _builder_page(request, staff, form, segment, counted=counted)


async def _post(request: Request, staff: Staff, segment: Segment | None) -> Response:
    posted = await request.form()
    form = _from_form(posted)
    action = str(posted.get("action") or "count")
    if segment is not None:
        form.name = segment.name  # a segment keeps its name (the CLI and sends know it by it)
    if action == "add":
        form.rows.append(builder.Row())
        return _builder_page(request, staff, form, segment)
    if action.startswith("remove-") and action[7:].isdigit():
        index = int(action[7:])
        form.rows = [row for i, row in enumerate(form.rows) if i != index] or [builder.Row()]
        return _builder_page(request, staff, form, segment)
    _check(form)
    if form.definition is None:
        return _builder_page(request, staff, form, segment, 400)
    if action != "save":
        return _builder_page(request, staff, form, segment, counted=_counted(request, form.definition))
    try:
        with request.app.state.db.session() as session:
            saved = segment_service.save_segment(session, form.name, form.definition, form.description)
            audit.record(session, staff.user, AuditAction.SEGMENT_SAVED, target=f"segment {saved.id}",
                         detail="created" if segment is None else "changed")
    except InputError as exc:
        message = _sentence(str(exc))
        if "segment name" in str(exc):
            form.errors["name"] = message
        else:
            _place_error(form, str(exc))
        return _builder_page(request, staff, form, segment, 400)
    return redirect(request, SEGMENTS, f"Segment {form.name} saved." if segment else f"Segment {form.name} made.")


@router.post(SEGMENTS + "/count.json")
async def count_json(request: Request, staff: Staff = Depends(contacts)) -> Response:
    """The builder's count and sample for the form as it stands (the page's script asks, debounced)."""
    form = _from_form(await request.form())
    _check(form)
    if form.definition is None:
        return JSONResponse({"errors": {str(k): v for k, v in form.row_errors.items()},
                             "error": form.errors.get("definition", "")}, status_code=400)
    return JSONResponse({**_counted(request, form.definition), "definition": form.text})


@router.post(SEGMENTS + "/new")
async def create_segment(request: Request, staff: Staff = Depends(contacts)) -> Response:
    posted = await request.form()
    name = str(posted.get("name") or "").strip()
    if posted.get("action") == "save":
        with request.app.state.db.session() as session:
            if name and segment_service.find_segment(session, name) is not None:
                form = _from_form(posted)
                form.errors["name"] = f"There is a segment named {name} already: choose another name, or edit that one."
                return _builder_page(request, staff, form, None, 400)
    return await _post(request, staff, None)


@router.post(SEGMENTS + "/{segment_id}")
async def update_segment(request: Request, segment_id: str, staff: Staff = Depends(contacts)) -> Response:
    return await _post(request, staff, _segment(request, segment_id))


@router.post(SEGMENTS + "/{segment_id}/delete")
def delete_segment(request: Request, segment_id: str, staff: Staff = Depends(contacts)) -> Response:
    segment = _segment(request, segment_id)
    try:
        with request.app.state.db.session() as session:
            segment_service.delete_segment(session, segment.name)
            audit.record(session, staff.user, AuditAction.SEGMENT_DELETED, target=f"segment {segment.id}")
    except NotFound:  # deleted meanwhile (the form sent twice)
        raise HTTPException(404) from None
    return redirect(request, SEGMENTS, f"Segment {segment.name} deleted. No contact was changed.")
