"""Staff pages for importing contacts from a CSV file (admin and marketing): upload, check the
columns, run with progress, read and download the report.

A thin face over ``newsletter.staff.contact_imports`` (which runs ``subscribers.csv_import``, the
same import as ``newsletter contacts import``). The upload's size is checked from its Content-Length
before the form is read, so a file far too big is refused without being received (and again while
it is copied, for a request that does not say its length).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from newsletter.errors import InputError
from newsletter.staff import contact_imports as jobs
from newsletter.staff.contact_imports import ImportJob, JobState, RunOptions
from newsletter.staff.roles import Area
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.body_limit import FORM_SLACK
from newsletter.web.staff.render import page, redirect
from subscribers.csv_import import CUSTOM, IGNORE, ROLES, CsvPreview
from subscribers.lists import all_lists

router = APIRouter()
IMPORT = "/staff/contacts/import"
FIELD_LABELS = {"email": "Email address", "name": "Name (full)", "first_name": "First name",
                "last_name": "Last name", "timezone": "Time zone", "tags": "Tags", "language": "Language (en, es)"}
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


class UploadRequire(Require):
    """``Require``, except that an upload too big to receive is answered without reading its body
    (the CSRF token is in that body: nothing is changed, the page only says the file is too big)."""

    async def __call__(self, request: Request) -> Staff:
        length = request.headers.get("content-length", "")
        if request.method == "POST" and length.isdigit() and int(length) > jobs.MAX_UPLOAD_BYTES + FORM_SLACK:
            request.state.upload_too_big = True  # scope["state"]: shared with the copy below
            # The same checks of who is asking, as for a GET: no CSRF check, as nothing is read or done.
            return await super().__call__(Request({**request.scope, "method": "GET"}, request.receive))
        return await super().__call__(request)


contacts = Require(Area.CONTACTS)
uploader = UploadRequire(Area.CONTACTS)


def _job(request: Request, job_id: str, staff: Staff) -> ImportJob:
    job = jobs.find_job(request.app.state.settings, job_id, staff.user)
    if job is None:
        raise HTTPException(404)
    return job


def _upload_page(request: Request, staff: Staff, status: int = 200, error: str | None = None,
                 encoding: str = "") -> Response:
    return page(request, staff, "staff/contacts_import/upload.html", status, error=error, encoding=encoding,
                max_size=f"{jobs.MAX_UPLOAD_BYTES // (1024 * 1024)} MB")


@router.get(IMPORT)
def upload_form(request: Request, staff: Staff = Depends(contacts)) -> Response:
    return _upload_page(request, staff)


@router.post(IMPORT)
async def upload(request: Request, staff: Staff = Depends(uploader)) -> Response:
    if getattr(request.state, "upload_too_big", False):
        return _upload_page(request, staff, 413, jobs.too_big_message().capitalize() + ".")
    form = await request.form()
    encoding = str(form.get("encoding") or "").strip()
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return _upload_page(request, staff, 400, "Choose a CSV file to upload.", encoding)
    settings = request.app.state.settings
    try:
        job, _ = await _in_thread(jobs.save_upload, settings, staff.user, file.file, encoding or None)
    except InputError as exc:
        return _upload_page(request, staff, 400, _sentence(str(exc)), encoding)
    return redirect(request, f"{IMPORT}/{job.id}", "The file was read: check how its columns will be imported.")


async def _in_thread(function: Any, *args: Any) -> Any:
    return await run_in_threadpool(function, *args)


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


# The mapping step, then the progress and the report: one address for the job ----------------------


def _field_options(header: str) -> list[tuple[str, str]]:
    return [*((role, FIELD_LABELS[role]) for role in ROLES), (CUSTOM, f"Custom field “{header}”"),
            (IGNORE, "Do not import")]


def _mapping_page(request: Request, staff: Staff, job: ImportJob, status: int = 200, shown: CsvPreview | None = None,
                  values: dict[str, Any] | None = None, errors: dict[str, str] | None = None) -> Response:
    settings = request.app.state.settings
    errors = dict(errors or {})
    if shown is None:
        try:
            shown = jobs.preview(settings, job)
        except InputError as exc:  # the mapping given no longer fits (or the file went): say so
            errors.setdefault("mapping", _sentence(str(exc)))
            shown = jobs.preview(settings, job, {})
    with request.app.state.db.session() as session:
        lists = [mailing_list.slug for mailing_list in all_lists(session)]
    fields = (values or {}).get("fields") or shown.fields
    columns = [{"index": i, "header": header, "field": fields[i] if i < len(fields) else "",
                "options": _field_options(header)} for i, header in enumerate(shown.headers)]
    given = values or {"list": lists[0] if lists else "newsletter", "consent": "double_opt_in",
                       "consent_note": "", "tags": ""}
    return page(request, staff, "staff/contacts_import/map.html", status, job=job, preview=shown, columns=columns,
                delimiter=DELIMITERS.get(shown.delimiter, repr(shown.delimiter)), lists=lists, values=given,
                errors=errors)


@router.get(IMPORT + "/{job_id}")
def job_page(request: Request, job_id: str, staff: Staff = Depends(contacts)) -> Response:
    job = _job(request, job_id, staff)
    if job.state == JobState.MAPPING:
        return _mapping_page(request, staff, job)
    report = jobs.read_report(request.app.state.settings, job) if job.done else None
    return page(request, staff, "staff/contacts_import/job.html", job=job, report=report,
                progress=_progress(job))


@router.post(IMPORT + "/{job_id}")
async def run(request: Request, job_id: str, staff: Staff = Depends(contacts)) -> Response:
    job = _job(request, job_id, staff)
    if job.state != JobState.MAPPING:
        return redirect(request, f"{IMPORT}/{job.id}", "This import has already started.", error=True)
    form = await request.form()
    settings = request.app.state.settings
    shown = await _in_thread(jobs.preview, settings, job, {})
    fields = [str(form.get(f"column-{i}") or "") for i in range(len(shown.headers))]
    consent = str(form.get("consent") or "")
    values = {"fields": fields, "list": str(form.get("list") or "").strip(), "consent": consent,
              "consent_note": str(form.get("consent_note") or "").strip(), "tags": str(form.get("tags") or "")}
    errors: dict[str, str] = {}
    if consent not in ("double_opt_in", "confirmed"):
        errors["consent"] = "Choose how these people agreed to get email."
    if not values["list"]:
        errors["list"] = "Name the list to add them to."
    mapping = {header: fields[i] for i, header in enumerate(shown.headers) if header and fields[i]}
    if not errors:
        options = RunOptions(list_slug=values["list"], confirmed=consent == "confirmed",
                             consent_note=values["consent_note"], mapping=mapping,
                             tags=[t.strip() for t in values["tags"].split(",") if t.strip()])
        try:
            await _in_thread(lambda: jobs.start(request.app.state.db, settings, job, staff.user, options))
        except InputError as exc:
            errors[_error_field(str(exc))] = _sentence(str(exc))
    if errors:
        return _mapping_page(request, staff, job, 400, shown, values, errors)
    return redirect(request, f"{IMPORT}/{job.id}", "The import has started; it goes on if you leave this page.")


def _error_field(message: str) -> str:
    """Which field an importer's message is about, to show it beside that field."""
    if message.startswith("list name"):
        return "list"
    if "consent note" in message:
        return "consent_note"
    if message.startswith("tag") or "tag " in message[:20]:
        return "tags"
    return "mapping"


def _progress(job: ImportJob) -> dict[str, Any]:
    total = max(job.rows_total, job.rows_done)
    return {"state": job.state, "rows_done": job.rows_done, "rows_total": total, "last_line": job.last_line,
            "percent": round(100 * job.rows_done / total) if total else 100, "done": job.done}


@router.get(IMPORT + "/{job_id}/progress.json")
def progress_json(request: Request, job_id: str, staff: Staff = Depends(contacts)) -> Response:
    return JSONResponse(_progress(_job(request, job_id, staff)))


@router.get(IMPORT + "/{job_id}/report.csv")
def report_csv(request: Request, job_id: str, staff: Staff = Depends(contacts)) -> Response:
    job = _job(request, job_id, staff)
    path = jobs.report_path(request.app.state.settings, job)
    if not job.done or not path.exists():
        raise HTTPException(404)
    return FileResponse(path, media_type="text/csv; charset=utf-8", filename="import-report.csv",
                        headers={"Cache-Control": "no-store"})


@router.post(IMPORT + "/{job_id}/resume")
def resume(request: Request, job_id: str, staff: Staff = Depends(contacts)) -> Response:
    job = _job(request, job_id, staff)
    try:
        jobs.start(request.app.state.db, request.app.state.settings, job, staff.user)
    except InputError as exc:
        return redirect(request, f"{IMPORT}/{job.id}", _sentence(str(exc)), error=True)
    return redirect(request, f"{IMPORT}/{job.id}", f"The import goes on after line {job.start_line}.")


@router.post(IMPORT + "/{job_id}/discard")
def discard(request: Request, job_id: str, staff: Staff = Depends(contacts)) -> Response:
    job = _job(request, job_id, staff)
    try:
        jobs.discard(request.app.state.settings, job)
    except InputError as exc:
        return redirect(request, f"{IMPORT}/{job.id}", _sentence(str(exc)), error=True)
    return redirect(request, IMPORT, "The file and its report were removed.")
