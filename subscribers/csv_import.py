"""CSV import of contacts into a list: streamed, a few set-based statements per batch, each batch
its own transaction.

Why it is shaped this way:

- Constant memory in the file's size: rows are read through ``csv`` over a text stream and handled a
  batch at a time (on PostgreSQL three are held at once: one read ahead, one being decided, one
  committing). The one thing that grows is a 64-bit fingerprint per distinct address (8 bytes
  each in sorted arrays, and 2 to 8 more in a Bloom filter before them: ``Seen``), kept so that an
  address repeated in a later batch is counted once.
- Speed (profiled; see bench/import_contacts.py): per batch, one indexed look-up each of
  suppressions, existing contacts, their tags and their subscriptions (the batch's keys joined as one
  array parameter, ``_in``), then one INSERT
  per table: contacts and tags COPYed into a temporary table and inserted from it on PostgreSQL,
  SQLite's executemany; subscriptions and consent events as INSERT ... SELECT over the new contact
  ids. Batches of ``BATCH_SIZE`` rows. On PostgreSQL the batches overlap: the next batch is parsed
  in a thread (``_ReadAhead``), and decided while the one before it makes its last writes and
  commits in another (``_Writer``). In Python, each row costs only parsing and ``sendable_email``, whose
  usual case is checked once per domain (``email_syntax``; email-validator's own check took most
  of the time).
- A broken file is refused whole, before anything is stored: the file is read once first
  (``_check_file``, with ``csv_reading``), so a quote never closed, a NUL, an overlong line or a
  value under a header with no name is one error naming line and column, not a half import that
  staff must untangle. A bad value in a row only rejects that row (listed in the report).
- Nothing half imported: a batch commits whole or not at all. When anything stops the import
  (an error, Ctrl-C), the report's last row and a note on the exception say which line is the last
  one committed and that ``start_line`` of that number resumes. Running the whole file again is also
  harmless: what is already there counts as unchanged. (An address that the file repeats with
  other values in a later batch ends with the later values again, and counts as updated.)
- Spreadsheet-safe: every cell of the report goes through ``csv_cells``, and a cell that an export
  guarded with a leading ``'`` is read back without it, so an export imports again unchanged.
- Consent: the subscribe rules are ``consent.subscribe_outcome``, the same ones
  ``request_subscription`` applies one contact at a time. Suppressed addresses are skipped
  outright: no contact is made (an erased person stays erased) and nothing about them changes.
  A contact who unsubscribed from the list is skipped the same way and counted as
  ``withdrawn_skipped``. An import never sends email; a ``pending`` subscription waits for the
  double opt-in part.

The report (CSV: line, column, value, reason) holds the raw value of each rejected cell, which may be
an email address. It is a staff file kept next to the input file, which holds the same data, and is
created readable by its owner only. No address goes to logs or exception messages: messages name
lines and columns only.
"""

from __future__ import annotations

import os
import re
import threading
import time
from array import array
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from heapq import merge
from operator import itemgetter
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any, Self

import orjson
from sqlalchemy import (
    JSON,
    Engine,
    Integer,
    Text,
    cast,
    bindparam,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy import column as sqlcolumn
from sqlalchemy import table as sqltable
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from subscribers import suppression
from subscribers.consent import ConsentAction, status_after_confirm, subscribe_outcome
from subscribers.contacts import check_timezone, clean_tag, sendable_email
from subscribers.languages import check_language
from subscribers.csv_cells import SafeWriter, original_cell
from subscribers.csv_encoding import Encoding, NotInEncoding, detect_encoding, given_encoding
from subscribers.csv_reading import CsvFile, Record
from subscribers.names import clean_name
from subscribers.db import copy_rows, is_postgresql, python_defaults, utcnow
from subscribers.errors import InputError
from subscribers.lists import check_slug, ensure_list
from subscribers.models import (
    ConsentEvent,
    Contact,
    ContactTag,
    Subscription,
    Suppression,
)
from subscribers.states import ContactStatus, SubscribeOutcome, SubscriptionStatus

# Header spellings, compared after lower-casing and folding spaces, '_' and '-' to one space.
ALIASES = {
    "email": "email", "e mail": "email", "email address": "email", "e mail address": "email",
    "name": "name", "full name": "name",
    "first name": "first_name", "firstname": "first_name", "given name": "first_name",
    "last name": "last_name", "lastname": "last_name", "surname": "last_name", "family name": "last_name",
    "timezone": "timezone", "time zone": "timezone", "tz": "timezone",
    "tags": "tags", "tag": "tags",
    "language": "language", "lang": "language", "preferred language": "language", "locale": "language",
}
# Columns that ``csv_export`` writes and the system keeps itself: ignored on import, so that an
# exported file can be imported again without turning them into custom fields.
SYSTEM_COLUMNS = ("status", "created_at", "subscription_status", "confirmed_at", "suppressed")
ROLES = ("email", "name", "first_name", "last_name", "timezone", "tags", "language")  # the fields a column may fill
CUSTOM, IGNORE = "custom", "ignore"  # a custom field (named by the header, or custom:KEY); not imported
SAMPLE_ROWS = 5  # rows a preview shows
TAG_SEPARATORS = re.compile(r"[,;|]")
SINGLE_LINE = ROLES  # no line break is part of any of them
IN_CHUNK = 100  # subscription ids per UPDATE ... WHERE id IN (...): few (pending ones being confirmed)
RETRIES = 3  # a batch that met a concurrent writer's row (unique constraint) is re-read and retried
# Rows per batch (one transaction). Measured on 100,000 rows on PostgreSQL: 10,000 took 0.9x the time
# of 1,000 for a first import and 0.6x for a re-import (fewer statements, look-ups probed together).
# The cost is memory: peak RSS 113 MB on SQLite and 138 MB on PostgreSQL (a batch parsed ahead),
# against 86 and 95 MB in batches of 1,000; still flat in the file's size.
BATCH_SIZE = 10_000


@dataclass
class ImportSummary:
    """What an import did. ``rows`` (data rows read after ``start_line``, blank lines not counted)
    equals the sum of added, updated, unchanged, rejected, suppressed_skipped, withdrawn_skipped and
    duplicates. ``pending``/``confirmed`` count subscriptions this run set to that state."""

    report_path: Path
    encoding: str = ""  # the codec it was read with: utf-8, cp1252, cp932, ...
    read_as: str = ""  # the same for people, and how it was found: "read as Shift_JIS (detected)"
    start_line: int = 0
    last_line: int = 0  # physical line (header = 1) of the last row committed
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    suppressed_skipped: int = 0
    withdrawn_skipped: int = 0
    duplicates: int = 0  # rows merged into an earlier row with the same address
    pending: int = 0
    confirmed: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "report_path": str(self.report_path)}

    def counts_line(self) -> str:
        """The counts for the audit log (no contact data)."""
        return f"{self.rows} CSV rows: {self.added} added, {self.updated} updated, {self.rejected} rejected"

    def resume_note(self, path: Path) -> str:
        if self.rows == 0:  # rows count committed batches only
            line = self.start_line
            again = f"with start line {line} (--start-line {line})" if line else "again"
            return f"{path}: nothing from this run was imported; run the same import {again}."
        return (f"{path}: every row up to line {self.last_line} is imported, none after it; "
                f"to resume, run the same import with start line {self.last_line} (--start-line {self.last_line}).")


@dataclass(frozen=True)
class ImportProgress:
    """Told to the ``progress`` callback after each committed batch."""

    line: int  # last physical line committed
    bytes_read: int  # approximate (the reader reads ahead)
    total_bytes: int
    rows: int


def default_report_path(path: Path) -> Path:
    """``contacts.csv`` -> ``contacts.report.csv`` next to it."""
    return path.with_name(f"{path.stem}.report.csv")


def import_csv(
    engine: Engine,
    path: Path,
    *,
    list_slug: str,
    default_timezone: str,
    confirmed: bool = False,
    consent_note: str | None = None,
    tags: Sequence[str] = (),
    report_path: Path | None = None,
    batch_size: int = BATCH_SIZE,
    start_line: int = 0,
    progress: Callable[[ImportProgress], None] | None = None,
    encoding: str | None = None,
    mapping: Mapping[str, str] | None = None,
) -> ImportSummary:
    """Import contacts from the CSV file at ``path`` and subscribe them to ``list_slug`` (made on
    first use). Takes the engine, not a session: every batch commits in a session of its own.

    ``confirmed``: the caller holds proof of opt-in; ``consent_note`` (required then) is kept as the
    proof in each consent event. ``tags`` are added to every contact. ``start_line``: rows that start
    on or before that physical line are skipped (resuming). ``encoding``: the file's encoding, when
    the person importing knows it; otherwise it is detected (``csv_encoding``), and a file whose
    encoding cannot be told is refused. Bad input in the file's shape (no email column, an empty
    file, no row, a broken quote, binary data, an encoding that cannot be told) raises
    ``InputError`` naming the file, line and column, before anything is stored. ``mapping``: header
    -> field (``FIELDS``: a role, ``custom``, ``custom:KEY`` or ``ignore``) for the columns whose
    guess (``ALIASES``, else a custom field named by the header) is not wanted.
    """
    began = time.perf_counter()
    job = _Job.checked(default_timezone, confirmed, consent_note, tags, batch_size, start_line)
    given = given_encoding(encoding) if encoding is not None else None
    report_path = report_path or default_report_path(path)
    if report_path.resolve() == path.resolve():
        raise InputError(f"{path}: the report would overwrite the file being imported; choose another report path")
    read_as, columns = _check_file(path, given, mapping)  # a file broken anywhere is refused before anything is stored
    total_bytes = path.stat().st_size
    with CsvFile(path, read_as) as source:
        with Session(engine) as session, session.begin():
            mailing_list = ensure_list(session, list_slug)
            job.list_id, job.double_opt_in = mailing_list.id, mailing_list.double_opt_in
            job.salt = suppression.installation_salt(session)
        summary = ImportSummary(report_path=report_path, start_line=start_line, encoding=read_as.name,
                                read_as=read_as.describe(), ignored_columns=list(columns.ignored),
                                last_line=max(start_line, source.header.last_line))
        seen = Seen()  # fingerprints of the addresses in batches already committed

        def count(done: _Written, *, tell: bool = True) -> None:
            """A committed batch, in file order: report, summary, seen addresses, progress."""
            batch = done.batch
            report.rejects(batch.rejects)  # before the summary moves on: a repeated line beats a lost one
            summary.rows += batch.size
            summary.last_line = batch.last_line
            for key, value in done.counts.items():
                setattr(summary, key, getattr(summary, key) + value)
            seen.add_new(value for digest, value in done.fingerprints.items() if digest not in done.repeated)
            if tell and progress is not None:
                progress(ImportProgress(summary.last_line, batch.bytes_read, total_bytes, summary.rows))

        pipelined = engine.dialect.name == "postgresql"
        with _Report(summary.report_path, append=start_line > 0) as report, \
                _ReadAhead(_batches(source, columns, job), thread=pipelined) as batches, \
                _Writer(engine, job, pipelined=pipelined) as writer:
            try:
                for batch in batches:
                    fingerprints = {digest: _fingerprint(digest) for digest in batch.rows}
                    committing = writer.in_flight()
                    repeated = {digest for digest, value in fingerprints.items()
                                if value in seen or digest in committing}
                    writer.prepare(batch, fingerprints, repeated)
                    writer.finish()
                    for done in writer.committed():
                        count(done)
                    writer.launch()
                writer.finish()
                for done in writer.committed():
                    count(done)
            except BaseException as exc:  # Ctrl-C included: record where to resume, then let it go on
                writer.abandon()
                for done in writer.committed():  # e.g. a batch whose commit was under way when this came
                    count(done, tell=False)
                note = summary.resume_note(path)
                report.status(f"stopped ({type(exc).__name__}): {note}")
                exc.add_note(note)
                raise
            summary.duration_seconds = round(time.perf_counter() - began, 3)
            report.status(_finished_line(summary))
    return summary


def check_options(*, list_slug: str, default_timezone: str, confirmed: bool = False,
                  consent_note: str | None = None, tags: Sequence[str] = ()) -> None:
    """The checks ``import_csv`` makes of its settings before it reads the file, for a caller that
    runs it later (in the background) and wants the error now."""
    check_slug(list_slug)
    _Job.checked(default_timezone, confirmed, consent_note, tags, 1, 0)


@dataclass
class _Job:
    """The import's settings, checked before anything is read or stored."""

    default_timezone: str
    confirmed: bool
    consent_note: str | None
    tags: frozenset[str]
    batch_size: int
    start_line: int
    list_id: int = 0
    double_opt_in: bool = True
    salt: str = ""
    zones: dict[str, str | None] = field(default_factory=dict)  # zone -> error (None: valid); few distinct

    @classmethod
    def checked(cls, default_timezone: str, confirmed: bool, consent_note: str | None, tags: Sequence[str],
                batch_size: int, start_line: int) -> _Job:
        note = (consent_note or "").strip() or None
        if confirmed and note is None:
            raise InputError("a confirmed import needs a consent note: say where and how these people agreed "
                             "(e.g. 'paper sign-up forms, open day 2026-03-14')")
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, not {batch_size}")
        if start_line < 0:
            raise InputError(f"start line must be 0 or more, not {start_line}")
        return cls(check_timezone(default_timezone), confirmed, note, frozenset(clean_tag(t) for t in tags),
                   batch_size, start_line)

    def zone_error(self, zone: str) -> str | None:
        if zone not in self.zones:
            try:
                check_timezone(zone)
                self.zones[zone] = None
            except InputError as exc:
                self.zones[zone] = str(exc)
        return self.zones[zone]


def _fingerprint(digest: str) -> int:
    return int(digest[:16], 16)  # 64 bits: a collision among a file's addresses is vanishingly unlikely


def _probes(value: int, mask: int) -> tuple[int, int, int]:
    """The three bits of ``Seen``'s filter that a fingerprint sets, and that its question tests."""
    return value & mask, (value >> 21) & mask, (value >> 42 ^ value >> 20) & mask


class Seen:
    """A set of 64-bit fingerprints in 10 to 16 bytes each: sorted arrays, looked up by bisection
    behind a Bloom filter.

    A Python set of ints costs about 70 bytes an entry: at 1,000,000 addresses the import's peak RSS
    was 157 MB against 89 MB at 100,000 (measured with bench/import_contacts.py). Here each batch's
    fingerprints become a sorted array; whenever the newest array is at least as long as the one
    before it, the two are merged (streamed, never a list of Python ints), so there are about
    log2(n / batch) arrays and each fingerprint is merged that many times.

    Nearly every question is about an address not seen before, and bisecting each array for it cost
    about a microsecond an array (7 s of a 1,000,000-row import). The filter (16 to 64 bits a
    fingerprint, as it grows fourfold; three bits set for each: fingerprints are already uniform
    hashes, so its probes are slices of the fingerprint: from bit 0, from bit 21, and bits 42 up
    mixed with bits 20 up so that a large filter's third probe reaches all of it) answers those in
    three bit tests; only the few it lets through (the repeats, and at most about one in 200 others)
    are bisected, so every answer is still exact."""

    BITS_EACH = 16  # filter bits per fingerprint held, at least: at most about 0.5% of absent ones pass
    FIRST_BITS = 2**18  # grown fourfold, from the arrays, whenever it holds more than its share

    def __init__(self) -> None:
        self.runs: list[array[int]] = []  # longest first
        self.count = 0
        self._filter(self.FIRST_BITS)

    def _filter(self, bits: int) -> None:
        self.bits, self.mask = bytearray(bits // 8), bits - 1
        for run in self.runs:
            self._mark(run)

    def _mark(self, values: Iterable[int]) -> None:
        bits, mask = self.bits, self.mask
        for value in values:
            for probe in _probes(value, mask):
                bits[probe >> 3] |= 1 << (probe & 7)

    def __contains__(self, value: int) -> bool:
        bits = self.bits
        first, second, third = _probes(value, self.mask)
        if not (bits[first >> 3] >> (first & 7) & bits[second >> 3] >> (second & 7)
                & bits[third >> 3] >> (third & 7) & 1):
            return False
        for run in self.runs:
            at = bisect_left(run, value)
            if at < len(run) and run[at] == value:
                return True
        return False

    def __len__(self) -> int:
        return self.count

    def update(self, values: Iterable[int]) -> None:
        self.add_new({value for value in values if value not in self})

    def add_new(self, values: Iterable[int]) -> None:
        """Add distinct values known not to be here yet: the import has just asked about each one
        (asking again cost as much as the first time: 0.2 s per 100,000 rows, profiled)."""
        run = array("Q", sorted(values))
        if not run:
            return
        self.count += len(run)
        bits = len(self.bits) * 8
        while self.count * self.BITS_EACH > bits:
            bits *= 4
        if bits > len(self.bits) * 8:
            self._filter(bits)  # rebuilt from the arrays held so far
        self._mark(run)
        while self.runs and len(self.runs[-1]) <= len(run):
            run = array("Q", merge(self.runs.pop(), run))
        self.runs.append(run)


def _finished_line(summary: ImportSummary) -> str:
    return (f"finished: {summary.rows} rows up to line {summary.last_line}: added {summary.added}, "
            f"updated {summary.updated}, unchanged {summary.unchanged}, rejected {summary.rejected}, "
            f"suppressed (skipped) {summary.suppressed_skipped}, withdrawn (skipped) {summary.withdrawn_skipped}, "
            f"duplicates merged {summary.duplicates}; subscriptions pending {summary.pending}, "
            f"confirmed {summary.confirmed}; {summary.read_as}")


@dataclass(frozen=True)
class CsvPreview:
    """What a file looks like to the importer, before anything is stored: for staff to check the
    columns' fields (``fields``, one per header: the mapping given, else the importer's guess)."""

    encoding: str
    read_as: str
    delimiter: str
    headers: list[str]
    fields: list[str]
    sample: list[list[str]]  # the first ``SAMPLE_ROWS`` rows that are not blank
    rows: int


def preview_csv(path: Path, *, encoding: str | None = None, mapping: Mapping[str, str] | None = None,
                need_email: bool = True) -> CsvPreview:
    """Read the file as ``import_csv`` would (the same checks, so a file it would refuse is refused
    here with the same message) and describe it. Stores nothing. ``need_email`` False: a file with
    no column taken for the email yet is described all the same (its mapping is still to be chosen)."""
    given = given_encoding(encoding) if encoding is not None else None
    sample: list[list[str]] = []
    read_as, columns = _check_file(path, given, mapping, sample, need_email)
    with CsvFile(path, read_as) as source:
        headers = [original_cell(cell.strip()).strip() for cell in source.header.cells]
    return CsvPreview(read_as.name, read_as.describe(), columns.delimiter, headers, list(columns.fields),
                      sample, columns.rows)


# --- reading the file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    """Where each known field is in a row (by role: email, name, first_name, last_name, timezone,
    tags), the headers as given, the custom-field columns (index, key as given), the columns the
    system keeps itself, and the columns with no name."""

    width: int
    index: dict[str, int]
    header: dict[str, str]
    custom: tuple[tuple[int, str], ...] = ()
    ignored: tuple[str, ...] = ()
    unnamed: tuple[int, ...] = ()
    fields: tuple[str, ...] = ()  # each column's field, as ``FIELDS`` names it ("" for a column with no name)
    rows: int = 0  # data rows (blank lines not counted), known after the check pass
    delimiter: str = ","


def header_key(header: str) -> str:
    """How headers are compared: case, spaces, '_' and '-' do not matter."""
    return " ".join(re.sub(r"[_\-]", " ", header.strip().lower()).split())


def _check_file(path: Path, given: Encoding | None, mapping: Mapping[str, str] | None = None,
                sample: list[list[str]] | None = None, need_email: bool = True) -> tuple[Encoding, _Columns]:
    """Read the whole file once before anything is stored, so that a file broken anywhere (a quote
    never closed, a NUL, a line of megabytes, a value in a column with no name, a byte its encoding
    cannot read) is refused whole with the line and column of the break: staff then fix the file
    and import it again, rather than work out which half of it went in. Reading costs little next
    to storing (measured: 0.5 s for 100,000 rows, which take 10 s or more to store). Returns the
    file's encoding and its columns."""
    try:
        encoding = given or detect_encoding(path)
        try:
            return encoding, _check_rows(path, encoding, mapping, sample, need_email)
        except NotInEncoding as exc:
            if not encoding.ascii_sample:
                raise
            if sample is not None:
                sample.clear()
            # The sample was plain ASCII, which proves no encoding: judge again with the bytes found.
            encoding = detect_encoding(path, also_at=exc.offset)
            if encoding.how == "utf-8":
                raise exc from None
            return encoding, _check_rows(path, encoding, mapping, sample, need_email)
    except InputError as exc:
        raise InputError(f"{exc}; nothing was imported") from None


def _check_rows(path: Path, encoding: Encoding, mapping: Mapping[str, str] | None = None,
                sample: list[list[str]] | None = None, need_email: bool = True) -> _Columns:
    with CsvFile(path, encoding) as source:
        columns = _map_columns(source, mapping, need_email)
        rows = 0
        for record in source.records():
            if any(cell.strip() for cell in record.cells):
                rows += 1
                _check_record(source, columns, record)
                if sample is not None and len(sample) < SAMPLE_ROWS:
                    sample.append(record.cells)
    if not rows:
        raise InputError(f"{path} line {source.header.last_line}: there is no row after the header line")
    return replace(columns, rows=rows, delimiter=source.delimiter)


def _check_record(source: CsvFile, columns: _Columns, record: Record) -> None:
    cells, first, last = record.cells, record.first_line, record.last_line
    for index in columns.unnamed:
        if index < len(cells) and cells[index].strip():
            raise InputError(f"{source.path} line {first}, column {index + 1}: a value in a column with no name "
                             "in the header line; name the column (or delete it), then import again")
    if first == last:
        return
    for role in SINGLE_LINE:
        index = columns.index.get(role)
        if index is not None and index < len(cells) and ("\n" in cells[index] or "\r" in cells[index]):
            raise InputError(
                f"{source.path} line {first}, {source.column(index)}: a quote opens this value and closes only on "
                f"line {last}, so lines {first} to {last} would be one {role.replace('_', ' ')}, which holds no line "
                f"break; remove the stray quote (or close it on line {first}), then import again")


def _guess(given: str) -> str:
    """The field a header names by itself: a known spelling, a column the system keeps, else a custom field."""
    key = header_key(given)
    if (role := ALIASES.get(key)) is not None:
        return role
    return IGNORE if key.replace(" ", "_") in SYSTEM_COLUMNS else CUSTOM


def check_field(header: str, field_name: str) -> str:
    """One mapping target, checked: a role, ``custom``, ``custom:KEY`` or ``ignore``."""
    value = field_name.strip()
    if value in ROLES or value in (CUSTOM, IGNORE):
        return value
    if value.startswith(CUSTOM + ":") and value[len(CUSTOM) + 1:].strip():
        return f"{CUSTOM}:{value[len(CUSTOM) + 1:].strip()}"
    raise InputError(f"column {_shown(header)}: {_shown(field_name)} is not a field; use one of "
                     f"{', '.join((*ROLES, CUSTOM, CUSTOM + ':NAME', IGNORE))}")


def _map_columns(source: CsvFile, mapping: Mapping[str, str] | None = None, need_email: bool = True) -> _Columns:
    path, line, headers = source.path, source.header.first_line, source.header.cells
    if any(_looks_like_address(header) for header in headers):  # before any message names a header
        raise InputError(f"{path} line {line}: the first row looks like data, not a header (it holds an email "
                         "address); add a header row naming the columns, with an email column (e.g. email,name), "
                         "then import again")
    givens = [original_cell(header.strip()).strip() for header in headers]  # an exported header may carry a formula guard
    chosen = {header.strip(): check_field(header, value) for header, value in (mapping or {}).items()}
    if missing := [h for h in chosen if h not in givens]:
        raise InputError(f"{path} line {line}: the header line has no column {_shown(missing[0])} to map")
    known: dict[str, tuple[int, str]] = {}
    custom: list[tuple[int, str]] = []
    ignored: list[str] = []
    unnamed: list[int] = []
    fields: list[str] = []
    for index, given in enumerate(givens):
        if not given:
            unnamed.append(index)  # often a trailing delimiter; refused if a row puts a value in it
            fields.append("")
            continue
        role = chosen.get(given) or _guess(given)
        fields.append(role)
        if role in ROLES:
            if role in known:
                other, name = known[role]
                raise InputError(f"{path} line {line}: columns {other + 1} ({_shown(name)}) and {index + 1} "
                                 f"({_shown(given)}) both hold the {role.replace('_', ' ')}; keep one")
            known[role] = (index, given)
        elif role == IGNORE:
            ignored.append(given)
        else:
            key = role[len(CUSTOM) + 1:] if role.startswith(CUSTOM + ":") else given
            if (twin := next((i for i, name in custom if name == key), None)) is not None:
                what = f"are both named {_shown(key)}" if key == given else f"would both be the field {_shown(key)}"
                raise InputError(f"{path} line {line}: columns {twin + 1} and {index + 1} {what}; rename one")
            custom.append((index, key))
    if "email" not in known and need_email:
        found = ", ".join(_shown(h) for h in headers[:10]) + (", …" if len(headers) > 10 else "")
        raise InputError(f"{path} line {line}: no email column (looked for 'email', 'e-mail' or 'email address'); "
                         f"the header line has: {found or 'none'}")

    return _Columns(width=len(headers), index={role: i for role, (i, _) in known.items()},
                    header={role: given for role, (_, given) in known.items()},
                    custom=tuple(custom), ignored=tuple(ignored), unnamed=tuple(unnamed), fields=tuple(fields))


def _looks_like_address(cell: str) -> bool:
    """Something@something: never echoed in a message (a header line that holds one is a row of data).
    Plain string tests: a header may be 128 KiB long, and a regular expression could backtrack on it."""
    return "@" in cell and any("@" in word[1:-1] for word in cell.split())


def _shown(header: str) -> str:
    """A header in a message: quoted, on one line, and short."""
    return repr(header if len(header) <= 40 else header[:40] + "…")


# --- rows and batches -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    """One address's values; rows repeating the address are merged into the first one."""

    line: int
    email: str
    digest: str
    name: str | None
    timezone: str | None
    custom: dict[str, str]
    tags: set[str]
    language: str | None = None  # subscribers.languages: "es-MX" is read as "es"

    def merge(self, later: _Row) -> None:
        # Later non-empty values fill in; tags add up (the same rule as contacts.upsert_contact).
        self.name = later.name or self.name
        self.timezone = later.timezone or self.timezone
        self.language = later.language or self.language
        self.custom.update(later.custom)
        self.tags |= later.tags


@dataclass
class _Batch:
    rows: dict[str, _Row] = field(default_factory=dict)  # by address hash, in file order
    rejects: list[tuple[int, str, str, str]] = field(default_factory=list)  # line, column, value, reason
    duplicates: int = 0  # rows merged into an earlier row of this batch
    size: int = 0  # data rows read
    last_line: int = 0
    bytes_read: int = 0  # of the file when the batch was complete (approximate: the reader reads ahead)


class _Reject(Exception):
    def __init__(self, column: str, value: str, reason: str) -> None:
        super().__init__(reason)
        self.column, self.value, self.reason = column, value, reason


def _batches(source: CsvFile, columns: _Columns, job: _Job) -> Iterator[_Batch]:
    batch = _Batch()
    for record in source.records():
        line = record.first_line
        if line <= job.start_line or not any(cell.strip() for cell in record.cells):
            continue  # already imported (resuming), or a blank line
        batch.size += 1
        batch.last_line = record.last_line
        try:
            row = _parse(record.cells, columns, job, line)
        except _Reject as bad:
            batch.rejects.append((line, bad.column, bad.value, bad.reason))
        else:
            if row.digest in batch.rows:
                batch.rows[row.digest].merge(row)
                batch.duplicates += 1
            else:
                batch.rows[row.digest] = row
        if batch.size >= job.batch_size:
            batch.bytes_read = source.bytes_read()
            yield batch
            batch = _Batch()
    if batch.size:
        batch.bytes_read = source.bytes_read()
        yield batch


class _ReadAhead:
    """On PostgreSQL the next batch is read and parsed in a thread while this one is written: the
    importing thread mostly waits for the server then, with the GIL released (measured: 6% faster
    under a load of 3 on two cores). Not on SQLite (measured: 30% slower with the thread;
    probably because sqlite3 releases and retakes the GIL for every row it steps, and each time a
    busy parsing thread holds it for a switch interval), so ``thread`` False reads in line. One
    batch is held ahead, so memory holds one batch more. An error while reading comes out of
    iteration here, in the importing thread, as if it had been raised there."""

    def __init__(self, batches: Iterator[_Batch], *, thread: bool = True) -> None:
        self.batches = batches
        self.queue: Queue[tuple[bool, Any]] = Queue(maxsize=1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(batches,), name="csv-import-read", daemon=True)
        self.threaded = thread

    def __enter__(self) -> Iterator[_Batch]:
        if not self.threaded:
            return self.batches
        self.thread.start()
        return self._batches()

    def __exit__(self, *_: object) -> None:
        self.stop.set()  # the thread ends at its next batch; the file closes only after it has
        while self.threaded and self.thread.is_alive():
            try:
                self.queue.get_nowait()  # a reader blocked on a full queue is let go
            except Empty:
                self.thread.join(0.05)

    def _read(self, batches: Iterator[_Batch]) -> None:
        try:
            for batch in batches:
                if not self._put((True, batch)):
                    return
            self._put((False, None))
        except BaseException as exc:  # handed to the importing thread, which raises it
            self._put((False, exc))

    def _put(self, item: tuple[bool, Any]) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def _batches(self) -> Iterator[_Batch]:
        while True:
            more, item = self.queue.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item


def _parse(cells: list[str], columns: _Columns, job: _Job, line: int) -> _Row:
    if len(cells) > columns.width and any(c.strip() for c in cells[columns.width:]):
        raise _Reject("", "", f"the row has {len(cells)} cells, the header {columns.width}; "
                               "a value probably holds an unquoted delimiter")

    def cell(index: int | None) -> str:
        if index is None or index >= len(cells):
            return ""
        value = cells[index].strip()
        # original_cell: an exported file imports back to the same values (csv_cells.safe_cell);
        # it only ever changes a value that starts with "'", so the rest skip it (most of the cost).
        return original_cell(value).strip() if value.startswith("'") else value

    at, header = columns.index.get, columns.header.get
    raw = cell(at("email"))
    try:
        email = sendable_email(raw)
    except InputError as exc:
        raise _Reject(header("email", ""), raw, str(exc)) from None
    given = cell(at("name")) or " ".join(p for p in (cell(at("first_name")), cell(at("last_name"))) if p)
    try:
        name = clean_name(given)  # the one rule for names, as for every other way in
    except InputError as exc:
        raise _Reject(header("name", "name"), given, str(exc)) from None
    zone = cell(at("timezone"))
    if zone and (error := job.zone_error(zone)):
        raise _Reject(header("timezone", ""), zone, error)
    spoken = cell(at("language"))
    try:
        language = check_language(spoken) if spoken else None
    except InputError as exc:
        raise _Reject(header("language", ""), spoken, str(exc)) from None
    tags = set(job.tags)
    for tag in TAG_SEPARATORS.split(cell(at("tags"))):
        if tag.strip():
            try:
                tags.add(clean_tag(tag))
            except InputError as exc:
                raise _Reject(header("tags", ""), tag.strip(), str(exc)) from None
    custom = {key: value for index, key in columns.custom if (value := cell(index))}
    digest = suppression.hash_with_salt(job.salt, email)
    return _Row(line, email, digest, name or None, zone or None, custom, tags, language)


# --- writing a batch --------------------------------------------------------------------------------


@dataclass
class _Written:
    """A batch on its way to the database: prepared, committing, or committed with ``counts``."""

    batch: _Batch
    fingerprints: dict[str, int]  # by address hash
    repeated: set[str]  # its addresses that an earlier batch held
    counts: dict[str, int] = field(default_factory=dict)
    session: Session | None = None  # its open transaction, once prepared (pipelined)
    writes: _Writes = field(default_factory=lambda: _Writes())  # its writes left (``_flush``)
    now: datetime = field(default_factory=utcnow)
    held: dict[str, _Row] = field(default_factory=dict)  # its rows decided once the batch before commits
    tail: Future[None] | None = None  # its last writes and commit, in the writer thread


class _Writer:
    """Writes the batches in file order, each in one transaction. On PostgreSQL they overlap: while
    one batch's last writes (tags, subscriptions, consent events: about half of the server's time,
    and little of Python's) and its commit run in a thread on a connection of their own, the next
    batch is looked up, decided and its new contacts inserted on another (``prepare``), so that
    the server works while Python does. A batch's last writes begin only once the batch before it
    has committed, so batches commit, are counted and are told about in file order. Its rows whose
    address is in the batch still committing are decided after that commit, in the same
    transaction (``finish``): they must find that batch's contact. Elsewhere (SQLite has one
    writer at a time) each batch is written whole, in line (``_commit``).

    A batch that meets a concurrent writer's row (a unique constraint: while it was prepared, or in
    its last writes) is rolled back and written again in line, read afresh, as ``_commit`` does."""

    def __init__(self, engine: Engine, job: _Job, *, pipelined: bool) -> None:
        self.engine, self.job, self.pipelined = engine, job, pipelined
        self.prepared: _Written | None = None  # the batch being prepared, not yet launched
        self.flying: _Written | None = None  # the batch whose last writes and commit are under way
        self.done: list[_Written] = []  # committed, not yet counted (in file order)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-import-write") if pipelined else None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.abandon()
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def in_flight(self) -> Container[str]:
        """The addresses (by hash) of the batch whose commit is under way: not yet counted as seen."""
        return self.flying.fingerprints if self.flying is not None else ()

    def prepare(self, batch: _Batch, fingerprints: dict[str, int], repeated: set[str]) -> None:
        done = self.prepared = _Written(batch, fingerprints, repeated, _counts_of(batch))
        if not self.pipelined:
            return  # finish() writes it whole
        rows, committing = batch.rows, self.in_flight()
        if not fingerprints.keys().isdisjoint(committing):
            done.held = {digest: row for digest, row in rows.items() if digest in committing}
            rows = {digest: row for digest, row in rows.items() if digest not in done.held}
        done.session = Session(self.engine)
        self._decide_rows(done, rows)

    def _decide_rows(self, done: _Written, rows: Mapping[str, _Row]) -> None:
        assert done.session is not None
        try:
            if not done.session.in_transaction():
                done.session.begin()
            _decide(done.session, self.job, rows, done.repeated, done.counts, done.writes, done.now)
        except IntegrityError:  # a concurrent writer's row: finish() writes the batch again, in line
            done.session.close()
            done.session = None
        except BaseException:
            done.session.close()
            self.prepared = None
            raise

    def committed(self) -> Iterator[_Written]:
        """The batches committed and not yet counted, in file order, each taken as it is given:
        one that the caller fails to count is not given again, the rest stay."""
        while self.done:
            yield self.done.pop(0)

    def finish(self) -> None:
        """Wait for the batch in flight to commit, then decide the prepared batch's held rows (or
        write it whole in line, when it is not to fly). What commits goes to ``committed()``."""
        if (done := self.flying) is not None:
            assert done.tail is not None
            try:
                done.tail.result()
            except IntegrityError:
                done.counts = _commit(self.engine, self.job, done.batch, done.repeated)
            except BaseException:
                if done.tail.done():  # it failed; otherwise (Ctrl-C while waiting) abandon() waits again
                    self.flying = None
                raise
            self.flying = None
            self.done.append(done)
        if (done := self.prepared) is not None:
            if done.session is not None and done.held:
                self._decide_rows(done, done.held)
            if done.session is None:
                self.prepared = None
                done.counts = _commit(self.engine, self.job, done.batch, done.repeated)
                self.done.append(done)

    def launch(self) -> None:
        """The prepared batch's last writes and commit go to the thread (the one before has committed)."""
        done, self.prepared = self.prepared, None
        if done is None:
            return
        assert self.pool is not None and self.flying is None and done.session is not None
        done.tail = self.pool.submit(_last_writes, done.session, self.job, done.writes, done.now)
        self.flying = done

    def abandon(self) -> None:
        """The import stops: the prepared batch is rolled back, the one in flight waited for (if it
        commits, ``committed()`` gives it)."""
        if (done := self.prepared) is not None:
            self.prepared = None
            if done.session is not None:
                done.session.close()
        if (done := self.flying) is not None:
            self.flying = None
            assert done.tail is not None
            try:
                done.tail.result()
            except BaseException:  # noqa: BLE001 - the import is already stopping for another reason
                return
            self.done.append(done)


def _last_writes(session: Session, job: _Job, writes: _Writes, now: datetime) -> None:
    """A prepared batch's last writes and its commit (in the writer thread, which owns the session now)."""
    try:
        _flush(session, job, writes, now)
        session.commit()
    finally:
        session.close()


def _commit(engine: Engine, job: _Job, batch: _Batch, repeated: set[str]) -> dict[str, int]:
    """Write one batch in one transaction. A unique-constraint clash means another writer added one
    of these addresses between our read and our write: read again and retry."""
    for attempt in range(1, RETRIES + 1):
        try:
            with Session(engine) as session, session.begin():
                return dict(_write(session, job, batch, repeated))
        except IntegrityError:
            if attempt == RETRIES:
                raise
    raise AssertionError("unreachable")


def _custom_plans(session: Session, on: bool) -> None:
    """PostgreSQL: plan each statement for its own parameters (``on``) or as usual. On for the
    batch's look-ups: contacts grows from empty during an import, and a plan cached while it was
    tiny (a full scan per look-up) would be kept for every later batch (measured: 5x slower). Off
    again before the writes: the foreign-key checks are cached plans too, run once per row, and
    planned afresh each time they took three times as long (EXPLAIN ANALYZE: 9 µs a check, not
    2.6; half of PostgreSQL's time in a first import).

    With ``on``, the look-ups also join their keys by index only (no hash or merge join): given
    10,000 keys, PostgreSQL read and hashed the whole contacts table for each batch (at 69,000
    contacts 107 ms, spilling to disk, against 64 ms for 10,000 index probes), a cost that grows
    with the table, so an import of a million rows read it a hundred times. Those two settings
    last until the batch commits; its writes join nothing."""
    if is_postgresql(session):
        if on:
            session.execute(text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
                                 "set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"))
        else:
            session.execute(text("SET LOCAL plan_cache_mode = auto"))


def _in(session: Session, stmt: Any, column: Any, values: Sequence[Any]) -> Iterator[Any]:
    """The rows of ``stmt`` whose ``column`` is one of ``values``: a batch's keys joined as a table
    (``_id_rows``), one statement. The database probes the column's index once per key (PostgreSQL:
    told to, by ``_custom_plans``, or it hashed the whole table once the batch was large); the keys
    travel as one parameter (measured at 20,000 contacts on PostgreSQL: ten IN lists of 100 keys took
    6 ms each, the join 3 ms for all 1,000; on SQLite the statements' own cost was most of the time)."""
    if values:
        keys, key = _id_rows(session, values, column.type)
        yield from session.execute(stmt.join_from(column.table, keys, column == key))


@dataclass
class _Writes:
    """Everything one batch will write, gathered first so that each table gets one or two
    statements. Subscriptions and consent events share every value but the contact, so they are
    INSERT ... SELECT over contact ids, not one parameter set per row."""

    contact_updates: list[dict[str, Any]] = field(default_factory=list)
    tags: list[tuple[int, str]] = field(default_factory=list)  # (contact id, tag)
    new_subscriptions: dict[str, list[int]] = field(
        default_factory=lambda: {SubscriptionStatus.PENDING: [], SubscriptionStatus.CONFIRMED: []})
    subscriptions_to_confirm: list[int] = field(default_factory=list)  # pending ones, by subscription id
    requested: list[int] = field(default_factory=list)  # contact ids getting a "requested" event
    confirmed: list[int] = field(default_factory=list)  # ... and a "confirmed" one


def _write(session: Session, job: _Job, batch: _Batch, repeated: set[str]) -> dict[str, int]:
    """``repeated``: the batch's addresses that an earlier batch of this import held (counted as duplicates)."""
    counts, writes, now = _counts_of(batch), _Writes(), utcnow()
    _decide(session, job, batch.rows, repeated, counts, writes, now)
    _flush(session, job, writes, now)
    return counts


def _counts_of(batch: _Batch) -> dict[str, int]:
    """A batch's counts before its rows are decided: what reading it found."""
    counts: dict[str, int] = defaultdict(int)
    counts["rejected"], counts["duplicates"] = len(batch.rejects), batch.duplicates
    return counts


def _decide(session: Session, job: _Job, rows: Mapping[str, _Row], repeated: set[str], counts: dict[str, int],
            writes: _Writes, now: datetime) -> None:
    """Look up ``rows``' addresses (by hash), decide each and insert the new contacts (the rest of
    the writes need their ids): counted in ``counts``; what is left to write goes to ``writes``
    (``_flush``). A batch's rows may be decided in two parts (``_Writer``), in one transaction."""
    _custom_plans(session, True)
    digests = list(rows)
    suppressed = {d for (d,) in _in(session, select(Suppression.email_hash), Suppression.email_hash, digests)}
    existing = {r.email_hash: r for r in _in(
        session, select(Contact.id, Contact.email_hash, Contact.name, Contact.timezone, Contact.custom_fields,
                        Contact.status, Contact.language), Contact.email_hash, digests)}
    ids = [r.id for r in existing.values()]
    have_tags: dict[int, set[str]] = defaultdict(set)
    for contact_id, tag in _in(session, select(ContactTag.contact_id, ContactTag.tag), ContactTag.contact_id, ids):
        have_tags[contact_id].add(tag)
    # The list is picked here, not in SQL: given "list_id = ?", SQLite would walk the list's every
    # subscription once per key (its index on list_id looks better to it than the keys' join).
    subscriptions = {r.contact_id: r for r in _in(
        session, select(Subscription.contact_id, Subscription.id, Subscription.status, Subscription.list_id),
        Subscription.contact_id, ids) if r.list_id == job.list_id}

    _custom_plans(session, False)
    new_rows = []
    for digest, row in rows.items():
        found = existing.get(digest)
        sub = subscriptions.get(found.id) if found is not None else None
        state = subscribe_outcome(suppressed=digest in suppressed, current=sub.status if sub else None,
                                  method="import", confirmed=job.confirmed, double_opt_in=job.double_opt_in)
        if state in (SubscribeOutcome.SUPPRESSED, SubscribeOutcome.WITHDRAWN):
            kind = f"{state}_skipped"  # nothing about them is written
        elif found is None:
            kind = "added"
            new_rows.append((row, state))
        else:
            kind = "updated" if _update_existing(job, writes, found, row, sub, state, have_tags[found.id], now) \
                else "unchanged"
        counts["duplicates" if digest in repeated else kind] += 1
    if new_rows:
        _insert_contacts(session, job, writes, new_rows, now)
    counts["pending"] = len(writes.new_subscriptions[SubscriptionStatus.PENDING])  # the batch's, so far
    counts["confirmed"] = len(writes.confirmed)


def _update_existing(job: _Job, writes: _Writes, found: Any, row: _Row, sub: Any, state: SubscribeOutcome,
                     have_tags: set[str], now: datetime) -> bool:
    """Gather the changes to a known contact; True when anything changes."""
    values: dict[str, Any] = {}
    if row.name and row.name != found.name:  # values given replace stored ones (contacts.upsert_contact)
        values["name"] = row.name
    if row.timezone and row.timezone != found.timezone:
        values["timezone"] = row.timezone
    if row.language and row.language != found.language:
        values["language"] = row.language
    if row.custom and (merged := {**(found.custom_fields or {}), **row.custom}) != found.custom_fields:
        values["custom_fields"] = merged
    if state == SubscribeOutcome.CONFIRMED and (status := status_after_confirm(found.status)) != found.status:
        values["status"] = status
    if values:
        writes.contact_updates.append({"id": found.id, "updated_at": now, **values})
    new_tags = row.tags - have_tags
    writes.tags.extend((found.id, tag) for tag in sorted(new_tags))
    # Import idempotency: a subscription already pending stays as it is, with no second request.
    changes_subscription = state == SubscribeOutcome.CONFIRMED or (state == SubscribeOutcome.PENDING and sub is None)
    if changes_subscription:
        _subscribe(writes, found.id, sub.id if sub else None, state)
    return bool(values or new_tags or changes_subscription)


def _insert_contacts(session: Session, job: _Job, writes: _Writes, new_rows: list[tuple[_Row, SubscribeOutcome]],
                     now: datetime) -> None:
    contacts = Contact.__table__
    constant = {"status": ContactStatus.ACTIVE, "source": "import", "created_at": now, "updated_at": now}
    values = [(row.email, row.digest, row.name, row.timezone or job.default_timezone, row.custom, row.language)
              for row, _ in new_rows]
    columns = ("email", "email_hash", "name", "timezone", "custom_fields", "language")
    ids = _write_rows(session, contacts, constant, columns, values, returning=("email_hash", "id"))
    if ids is None:  # the backend could not return them: one indexed look-up
        ids = list(_in(session, select(contacts.c.email_hash, contacts.c.id), contacts.c.email_hash,
                       [row.digest for row, _ in new_rows]))
    id_of = {digest: contact_id for digest, contact_id in ids}
    for row, state in new_rows:
        contact_id = id_of[row.digest]
        writes.tags.extend((contact_id, tag) for tag in sorted(row.tags))
        _subscribe(writes, contact_id, None, state)


def _write_rows(session: Session, table: Any, constant: dict[str, Any], columns: Sequence[str],
                 rows: Sequence[Sequence[Any]], returning: Sequence[str] = ()) -> list[Any] | None:
    """INSERT many rows in the way each backend does fastest (profiled). Constant columns and
    Python-side column defaults are sent once.

    PostgreSQL: the rows are COPYed into a temporary table, then one INSERT ... SELECT from it,
    which can also return rows. (Sent as one array parameter per column instead, psycopg's
    Python-level array dumping took a third of the import's CPU; COPY's rows are written by its C
    code.) SQLite: the driver's executemany (SQLite runs in-process: there are no round trips to
    save, only SQLAlchemy's per-row bookkeeping); returns None, as executemany returns no rows.
    """
    constant = {**python_defaults(table, {*columns, *constant}), **constant}
    if not is_postgresql(session):
        _executemany(session, table, constant, columns, rows)
        return None
    source = _copied(session, table, columns, rows)
    stmt = insert(table).from_select(
        [*columns, *constant],
        select(*(source.c[name] for name in columns),
               *(literal(value, table.c[name].type) for name, value in constant.items())))
    if returning:
        return list(session.execute(stmt.returning(*(table.c[name] for name in returning))))
    session.execute(stmt)
    return None


def _copied(session: Session, table: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    """PostgreSQL: ``rows`` in a temporary table of ``table``'s ``columns`` (their types, none of its
    constraints), made in this transaction and dropped at its end (a retried batch starts afresh).
    COPY escapes every value itself: tabs, newlines, backslashes and a text that reads ``\\N`` arrive
    as they were. A dict or list (a JSON column) is sent as its JSON text. Named afresh each time: a
    batch decided in two parts copies its new contacts twice in one transaction."""
    made = session.info["import_copies"] = session.info.get("import_copies", 0) + 1
    name = f"import_{table.name}_{made}"
    connection = session.connection()
    connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS "
                               f"SELECT {', '.join(columns)} FROM {table.name} WITH NO DATA")
    as_json = [i for i, column in enumerate(columns) if isinstance(table.c[column].type, JSON)]

    def values() -> Iterator[Sequence[Any]]:
        for row in rows:
            if as_json:
                row = list(row)
                for i in as_json:
                    row[i] = orjson.dumps(row[i]).decode()
            yield row

    try:
        copy_rows(session, name, columns, values())
    except DBAPIError as exc:  # the values were checked before (lengths, syntax): this is a bug
        raise RuntimeError(f"COPY into {name} failed: {exc.orig}") from None
    return sqltable(name, *(sqlcolumn(c, table.c[c].type) for c in columns))


def _executemany(session: Session, table: Any, constant: dict[str, Any], columns: Sequence[str],
                 rows: Sequence[Sequence[Any]]) -> None:
    """The driver's executemany. SQLAlchemy still writes the SQL and each column type converts its
    values (UTC datetimes, JSON); only its per-row bookkeeping is skipped."""
    dialect = session.get_bind().dialect
    names = [*columns, *constant]
    compiled = insert(table).compile(dialect=dialect, column_keys=names)

    def processor(name: str) -> Callable[[Any], Any] | None:
        return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)

    fixed = tuple(value if (p := processor(name)) is None else p(value) for name, value in constant.items())
    # Only the columns whose type converts (JSON, datetimes) are touched row by row.
    convert = [(i, p) for i, name in enumerate(columns) if (p := processor(name)) is not None]
    # The compiled statement takes its values in the table's column order (sqlite3: "?"), or by name.
    keys = list(compiled.positiontup or []) if compiled.positional else names
    pick = itemgetter(*(names.index(key) for key in keys))  # one C call per row (profiled: 20% of the write)

    def converted_row(row: Sequence[Any]) -> tuple[Any, ...]:
        values = [*row, *fixed]
        for i, p in convert:
            values[i] = p(values[i])
        return pick(values)

    params: list[Any] = [converted_row(row) for row in rows]
    if not compiled.positional:  # e.g. psycopg: %(name)s
        params = [dict(zip(keys, values, strict=True)) for values in params]
    session.connection().exec_driver_sql(str(compiled), params)


def _subscribe(writes: _Writes, contact_id: int, sub_id: int | None, state: SubscribeOutcome) -> None:
    """What ``request_subscription`` does for ``state``: a pending subscription and a "requested"
    event, then for "confirmed" the confirmation and its event."""
    if sub_id is None:
        writes.new_subscriptions[state].append(contact_id)
    elif state == SubscribeOutcome.CONFIRMED:
        writes.subscriptions_to_confirm.append(sub_id)
    writes.requested.append(contact_id)
    if state == SubscribeOutcome.CONFIRMED:
        writes.confirmed.append(contact_id)


def _flush(session: Session, job: _Job, writes: _Writes, now: datetime) -> None:
    subscriptions, events = Subscription.__table__, ConsentEvent.__table__
    if writes.contact_updates:
        session.execute(update(Contact), writes.contact_updates)  # bulk UPDATE by primary key
    if writes.tags:
        _write_rows(session, ContactTag.__table__, {}, ("contact_id", "tag"), writes.tags)
    for state, ids in writes.new_subscriptions.items():
        if ids:
            rows, contact_id = _id_rows(session, ids)
            confirmed_at = literal(now if state == SubscriptionStatus.CONFIRMED else None,
                                   subscriptions.c.confirmed_at.type)
            session.execute(insert(subscriptions).from_select(
                ["contact_id", "list_id", "status", "frequency", "confirmation_sends", "created_at", "confirmed_at"],
                select(contact_id, literal(job.list_id), literal(state, subscriptions.c.status.type), literal("every"),
                       literal(0),
                       literal(now, subscriptions.c.created_at.type), confirmed_at).select_from(rows)))
    for chunk in _chunks(writes.subscriptions_to_confirm):
        session.execute(update(subscriptions).where(subscriptions.c.id.in_(chunk))
                        .values(status=SubscriptionStatus.CONFIRMED, confirmed_at=now, unsubscribed_at=None))
    # "requested" before "confirmed", as request_subscription records them.
    for action, ids in ((ConsentAction.REQUESTED, writes.requested), (ConsentAction.CONFIRMED, writes.confirmed)):
        if ids:
            rows, contact_id = _id_rows(session, ids)
            session.execute(insert(events).from_select(
                ["contact_id", "list_id", "action", "method", "note", "at"],
                select(contact_id, literal(job.list_id), literal(action, events.c.action.type), literal("import"),
                       literal(job.consent_note, events.c.note.type), literal(now, events.c.at.type))
                .select_from(rows)))


def _id_rows(session: Session, ids: Sequence[Any], type_: Any = None) -> tuple[Any, Any]:
    """A FROM clause with one row per id (or key of ``type_``), sent as a single parameter: no look-up
    in contacts and no long IN list for a planner to misjudge. The product runs on SQLite (JSON1) and
    PostgreSQL. On PostgreSQL the parameter is the array's text (``{1,2,3}``), cast: psycopg's
    Python-level dumping of a list of 10,000 values cost more than the look-up itself (profiled)."""
    if is_postgresql(session):
        items = (str(v) if isinstance(v, int) else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                 for v in ids)
        array_text = bindparam("ids", "{" + ",".join(items) + "}", type_=Text)
        rows = func.unnest(cast(array_text, ARRAY(type_ or Integer))).table_valued("id").render_derived()
        return rows, rows.c.id
    rows = func.json_each(bindparam("ids", orjson.dumps(list(ids)).decode())).table_valued("value")
    return rows, rows.c.value


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start:start + IN_CHUNK]


# --- the report -------------------------------------------------------------------------------------


class _Report:
    """Rejected rows (line, column, value, reason) and, last, a status row with an empty line
    number. Resuming (``append``) adds to the report of the run it continues."""

    def __init__(self, path: Path, *, append: bool) -> None:
        add = append and path.exists() and path.stat().st_size > 0
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if add else os.O_TRUNC), 0o600)
        except OSError as exc:
            raise InputError(f"{path}: cannot write the report ({exc.strerror})") from None
        # A BOM only at the start of a new file, so that spreadsheets read it as UTF-8.
        self.file = open(fd, "w", encoding="utf-8" if add else "utf-8-sig", newline="")  # noqa: SIM115 - closed in __exit__
        self.writer = SafeWriter(self.file)  # values come from the file: a cell may be a formula
        if not add:
            self.writer.writerow(("line", "column", "value", "reason"))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.file.close()

    def rejects(self, rows: Iterable[tuple[int, str, str, str]]) -> None:
        self.writer.writerows(rows)
        self.file.flush()

    def status(self, text: str) -> None:
        self.writer.writerow(("", "", "", text))
        self.file.flush()
