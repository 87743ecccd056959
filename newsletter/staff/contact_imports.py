"""CSV imports started from the staff app: the uploaded file, its column mapping, the import run in a
background thread of the web process, its progress and its report.

Why it is shaped this way:

- The work is ``subscribers.csv_import.import_csv``, the same call as ``newsletter contacts import``
  (same checks, batches, report and audit entry); this module only keeps an upload between the
  page's steps and runs the import where the page can follow it.
- A thread in the web process, not the scheduler: the person who uploaded is waiting for it, and
  the import commits batch by batch, so a process that dies loses at most the batch in flight. The
  job's state is a small JSON file next to the upload (``<var_dir>/imports/<random id>/``), written
  after every batch, so progress survives a reload, and another worker process reads it the same.
  A job that says "running" while no thread of this process runs it, and whose process is gone or
  silent, *stopped*: the page says so and how far the stored rows go (the importer's ``last_line``),
  and offers to resume from there (``start_line``), as the CLI's note does.
- The folder's name is random (``secrets``); the person's file name is never part of a path. The
  folder and its files are readable by the app's user only; the upload is removed once the import
  finished (the report stays for download until the job is discarded or ``KEEP`` has passed).
- Only the person who uploaded sees the job: the report holds rejected cells, which may be addresses.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.errors import InputError
from newsletter.staff import audit
from newsletter.staff.audit import AuditAction
from newsletter.staff.models import StaffUser
from subscribers.csv_import import CsvPreview, ImportProgress, check_options, import_csv, preview_csv
from subscribers.db import utcnow

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # about 500,000 rows of a typical contacts export
KEEP = timedelta(days=7)  # a job's folder (its report) is removed this long after it was made
SILENT = timedelta(minutes=10)  # a running job of another process with no word for this long stopped
REPORT_ROWS_SHOWN = 500
# The mapping page draws a choice per column and its form posts a field per column: a file of 20,000
# columns drew a 20 MB page in 9 s, and past Starlette's 1,000 form fields the mapping could not even
# be posted. An export has a few dozen columns; more than this is not a contacts file (the CLI,
# which maps by flags, takes any).
MAX_COLUMNS = 200
# Uploads a person may have waiting to be mapped or running at once: each may be MAX_UPLOAD_BYTES on
# disk for KEEP, and each running one is a thread of the web process.
MAX_OPEN_JOBS = 5
CHUNK = 64 * 1024
ID = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
UPLOAD, REPORT, STATE = "upload.csv", "report.csv", "job.json"

_threads: dict[str, threading.Thread] = {}  # jobs this process runs
_lock = threading.Lock()


class JobState(StrEnum):
    MAPPING = "mapping"  # uploaded; the columns are being checked
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"  # the importer refused the file or raised; ``error`` says why
    STOPPED = "stopped"  # the process running it ended mid-way (known when read back, never written)


@dataclass
class ImportJob:
    id: str
    user_id: int
    created_at: str
    size: int
    state: str = JobState.MAPPING
    encoding: str | None = None  # as staff gave it; None: detected
    list_slug: str = ""
    confirmed: bool = False
    consent_note: str = ""
    tags: list[str] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    rows_total: int = 0
    rows_done: int = 0
    last_line: int = 0  # the last physical line committed (resume after it)
    start_line: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    pid: int = 0
    heartbeat: float = 0.0  # time.time() of the last word from the running thread

    @property
    def done(self) -> bool:
        return self.state in (JobState.FINISHED, JobState.FAILED, JobState.STOPPED)


def imports_dir(settings: Settings) -> Path:
    return settings.var_dir / "imports"


def _folder(settings: Settings, job_id: str) -> Path:
    return imports_dir(settings) / job_id


def upload_path(settings: Settings, job: ImportJob) -> Path:
    return _folder(settings, job.id) / UPLOAD


def report_path(settings: Settings, job: ImportJob) -> Path:
    return _folder(settings, job.id) / REPORT


def _write_state(settings: Settings, job: ImportJob) -> None:
    # Written whole and renamed into place: a reader never sees half a file.
    folder = _folder(settings, job.id)
    temporary = folder / f".{STATE}.{threading.get_ident()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(job), out)
    os.replace(temporary, folder / STATE)


def _read_state(settings: Settings, job_id: str) -> ImportJob | None:
    try:
        data = json.loads((_folder(settings, job_id) / STATE).read_text(encoding="utf-8"))
        return ImportJob(**data)
    except (OSError, ValueError, TypeError):
        return None


# --- the steps -----------------------------------------------------------------------------------


def save_upload(settings: Settings, user: StaffUser, source: IO[bytes], encoding: str | None = None) -> tuple[
        ImportJob, CsvPreview]:
    """Store an uploaded file under a random name and read it as the importer would. A file over
    ``MAX_UPLOAD_BYTES``, an empty one or one the importer refuses is removed again and raises
    ``InputError``."""
    _sweep(settings)
    if len(open_jobs(settings, user)) >= MAX_OPEN_JOBS:
        raise InputError(f"you have {MAX_OPEN_JOBS} imports waiting to be mapped or running, the most one person "
                         "may have: run or discard one of them first")
    job = ImportJob(id=secrets.token_urlsafe(24), user_id=user.id, created_at=utcnow().isoformat(), size=0,
                    encoding=encoding or None)
    folder = _folder(settings, job.id)
    folder.mkdir(mode=0o700, parents=True)
    try:
        job.size = _copy_capped(source, folder / UPLOAD)
        if job.size == 0:
            raise InputError("the file is empty; choose a CSV file with a header line and rows of contacts")
        shown = _preview(settings, job)
        if len(shown.headers) > MAX_COLUMNS:
            raise InputError(f"the file has {len(shown.headers):,} columns, more than the {MAX_COLUMNS} this page can "
                             "map; remove the columns you do not need, or import it with `newsletter contacts import`")
        job.rows_total = shown.rows
        _write_state(settings, job)
        return job, shown
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _copy_capped(source: IO[bytes], target: Path) -> int:
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise InputError(too_big_message())
            out.write(chunk)
    return size


def too_big_message() -> str:
    return (f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB, the most one upload may be; "
            "split it, or import it with `newsletter contacts import`")


def _preview(settings: Settings, job: ImportJob, mapping: Mapping[str, str] | None = None, *,
             need_email: bool = False) -> CsvPreview:
    # The importer's messages start with the file's path: staff know the file by what they uploaded.
    path = upload_path(settings, job)
    try:
        return preview_csv(path, encoding=job.encoding, mapping=mapping, need_email=need_email)
    except InputError as exc:
        raise InputError(str(exc).replace(str(path), "the file").removeprefix("the file: ")) from None


def preview(settings: Settings, job: ImportJob, mapping: Mapping[str, str] | None = None) -> CsvPreview:
    """The uploaded file as the importer reads it, with ``mapping`` (else the job's) applied."""
    return _preview(settings, job, job.mapping if mapping is None else mapping)


def find_job(settings: Settings, job_id: str, user: StaffUser) -> ImportJob | None:
    """The job, as it stands now, if ``user`` started it; else None (a 404: no hint that it exists)."""
    if not ID.fullmatch(job_id):
        return None
    job = _read_state(settings, job_id)
    if job is None or job.user_id != user.id:
        return None
    return _as_seen_now(job)


def open_jobs(settings: Settings, user: StaffUser) -> list[ImportJob]:
    """``user``'s jobs waiting to be mapped or running (the folder holds at most ``KEEP`` of jobs)."""
    root = imports_dir(settings)
    if not root.is_dir():
        return []
    found = (_read_state(settings, folder.name) for folder in root.iterdir() if ID.fullmatch(folder.name))
    return [job for job in found if job is not None and job.user_id == user.id
            and _as_seen_now(job).state in (JobState.MAPPING, JobState.RUNNING)]


def _as_seen_now(job: ImportJob) -> ImportJob:
    if job.state != JobState.RUNNING:
        return job
    with _lock:
        thread = _threads.get(job.id)
    if thread is not None and thread.is_alive():
        return job
    if job.pid != os.getpid() and _alive(job.pid) and time.time() - job.heartbeat < SILENT.total_seconds():
        return job  # another worker process runs it
    job.state = JobState.STOPPED
    return job


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunOptions:
    list_slug: str
    confirmed: bool
    consent_note: str
    tags: list[str]
    mapping: dict[str, str]


def start(db: Database, settings: Settings, job: ImportJob, user: StaffUser, options: RunOptions | None = None,
          *, on_done: Callable[[ImportJob], None] | None = None) -> ImportJob:
    """Check the options (the errors the importer would raise at once, raised here) and run the
    import in a background thread. ``options`` None: resume a stopped or failed job after the last
    line it committed."""
    if options is not None:
        if job.state != JobState.MAPPING:
            raise InputError("this import has already run")
        check_options(list_slug=options.list_slug, default_timezone=settings.default_timezone,
                      confirmed=options.confirmed, consent_note=options.consent_note, tags=options.tags)
        _preview(settings, job, options.mapping, need_email=True)  # a mapping the importer refuses is refused now
        job.list_slug, job.confirmed, job.consent_note = options.list_slug, options.confirmed, options.consent_note
        job.tags, job.mapping = list(options.tags), dict(options.mapping)
    elif job.state not in (JobState.STOPPED, JobState.FAILED) or not upload_path(settings, job).exists():
        raise InputError("only a stopped import whose file is still here can be resumed")
    else:
        job.start_line, job.error = job.last_line, ""
    _claim(settings, job)
    job.state, job.pid, job.heartbeat = JobState.RUNNING, os.getpid(), time.time()
    _write_state(settings, job)
    thread = threading.Thread(target=_run, args=(db, settings, job, user.id, on_done), daemon=True,
                              name=f"contact-import-{job.id[:8]}")
    with _lock:
        _threads[job.id] = thread
    thread.start()
    return job


def _claim(settings: Settings, job: ImportJob) -> None:
    """Only the first of several requests to start (or resume) the job as it stands runs it, in
    whatever process: a double click or a replayed form started two threads importing the same file.
    The claim is a file made with O_EXCL, named for the state the requests read (the line it starts
    after and the job's last word), so a later resume, of a job that stopped again, claims afresh."""
    claim = _folder(settings, job.id) / f".claim-{job.last_line if job.start_line else 0}-{job.heartbeat!r}"
    try:
        os.close(os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise InputError("this import has already started") from None


def _run(db: Database, settings: Settings, job: ImportJob, user_id: int,
         on_done: Callable[[ImportJob], None] | None) -> None:
    done_before = job.rows_done if job.start_line else 0

    def progress(step: ImportProgress) -> None:
        job.rows_done, job.last_line, job.heartbeat = done_before + step.rows, step.line, time.time()
        _write_state(settings, job)

    try:
        summary = import_csv(db.engine, upload_path(settings, job), list_slug=job.list_slug,
                             default_timezone=settings.default_timezone, confirmed=job.confirmed,
                             consent_note=job.consent_note or None, tags=job.tags,
                             report_path=report_path(settings, job), start_line=job.start_line,
                             progress=progress, encoding=job.encoding, mapping=job.mapping)
    except Exception as exc:  # noqa: BLE001 - any failure is the job's outcome, told on its page
        notes = [note.replace(str(upload_path(settings, job)), "the file") for note in getattr(exc, "__notes__", [])]
        told = str(exc) if isinstance(exc, InputError) else f"the import stopped ({type(exc).__name__})"
        job.state, job.error = JobState.FAILED, " ".join([told.replace(str(upload_path(settings, job)), "the file"),
                                                          *notes])
        _finish(db, settings, job, user_id, f"stopped: {job.rows_done} CSV rows stored up to line {job.last_line}")
    else:
        job.state = JobState.FINISHED
        job.rows_done, job.last_line = done_before + summary.rows, summary.last_line
        job.summary = {**summary.as_dict(), "report_path": REPORT}
        if job.start_line:  # the counts of this run only: say so beside them
            job.summary["resumed_from"] = job.start_line
        upload_path(settings, job).unlink(missing_ok=True)  # the contacts are stored; the file is not kept
        _finish(db, settings, job, user_id, summary.counts_line())
    finally:
        with _lock:
            _threads.pop(job.id, None)
        if on_done is not None:
            on_done(job)


def _finish(db: Database, settings: Settings, job: ImportJob, user_id: int, detail: str) -> None:
    job.heartbeat = time.time()
    _write_state(settings, job)
    with db.session() as session:  # as `contacts import` audits it: after the batches committed
        actor = session.get(StaffUser, user_id)
        audit.record(session, actor if actor is not None else f"user {user_id}", AuditAction.IMPORT,
                     f"list {job.list_slug}", detail)


def discard(settings: Settings, job: ImportJob) -> None:
    """Remove the job's folder (upload, report, state); refused while it runs."""
    if job.state == JobState.RUNNING:
        raise InputError("the import is still running; wait until it finishes")
    shutil.rmtree(_folder(settings, job.id), ignore_errors=True)


def _sweep(settings: Settings) -> None:
    """Remove the folders of jobs made more than ``KEEP`` ago that no one runs."""
    root = imports_dir(settings)
    if not root.is_dir():
        return
    cutoff = utcnow() - KEEP
    for folder in root.iterdir():
        job = _read_state(settings, folder.name) if ID.fullmatch(folder.name) else None
        if job is None:
            if folder.is_dir() and folder.stat().st_mtime < time.time() - KEEP.total_seconds():
                shutil.rmtree(folder, ignore_errors=True)
            continue
        if datetime.fromisoformat(job.created_at) < cutoff and _as_seen_now(job).state != JobState.RUNNING:
            shutil.rmtree(folder, ignore_errors=True)


# --- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRows:
    rejects: list[dict[str, str]]  # line, column, value, reason; at most REPORT_ROWS_SHOWN
    more: int  # rejected rows not shown
    status: list[str]  # the importer's closing lines ("finished: ...", "stopped ...")


def read_report(settings: Settings, job: ImportJob) -> ReportRows:
    """The report the importer wrote (the same file the CLI writes), for the page."""
    path = report_path(settings, job)
    if not path.exists():
        return ReportRows([], 0, [])
    rejects: list[dict[str, str]] = []
    status: list[str] = []
    more = 0
    with path.open(encoding="utf-8-sig", newline="") as source:
        for row in _rows(csv.DictReader(source)):
            if not row.get("line"):
                status.append(row.get("reason") or "")
            elif len(rejects) < REPORT_ROWS_SHOWN:
                rejects.append(row)
            else:
                more += 1
    return ReportRows(rejects, more, status)


def _rows(reader: Iterable[dict[str, Any]]) -> Iterable[dict[str, str]]:
    for row in reader:
        yield {key: str(value or "") for key, value in row.items() if key is not None}
