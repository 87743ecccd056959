"""Fuzzing the CSV import: arbitrary bytes, and CSV that is well formed in places and hostile in
others (stray and doubled quotes, other delimiters and line ends, four encodings, very long
values, odd Unicode in names and addresses, formula cells, repeated and unnamed columns).

Whatever the file, the import either refuses it in one line that names the file, with nothing
stored, or imports it and its summary adds up: the database changed by exactly what the summary
reports (contacts added, consent events written), the report lists each rejected row, and a second
import of the same file changes nothing at all. The CLI answers every file with an exit code and
one line, never a traceback.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from subscribers.consent import Proof, unsubscribe
from subscribers.csv_cells import FORMULA_START, safe_cell
from subscribers.csv_import import ImportSummary, header_key, import_csv
from subscribers.errors import InputError
from subscribers.lists import ensure_list
from subscribers.models import ConsentEvent, Contact, ContactTag, MailingList, Subscription, Suppression
from subscribers.suppression import suppress
from tests.audience import subscriber
from tests.fuzzing import FUZZ_EXAMPLES, fuzz_settings

OUTCOMES = ("added", "updated", "unchanged", "rejected", "suppressed_skipped", "withdrawn_skipped", "duplicates")
HANG = 60  # seconds for one import of one example: far above any real one, only a hang guard
_slugs = itertools.count()


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table an import writes, every column."""
    with db.session() as s:
        return {model.__tablename__: sorted((tuple(map(repr, row)) for row in s.execute(
                    select(*model.__table__.columns)).all()))
                for model in (Contact, ContactTag, Subscription, ConsentEvent, MailingList, Suppression)}


def import_file(db: Database, path: Path, slug: str, confirmed: bool) -> ImportSummary:
    began = time.monotonic()
    try:
        return import_csv(db.engine, path, list_slug=slug, default_timezone="America/Los_Angeles",
                          confirmed=confirmed, consent_note="paper forms" if confirmed else None)
    finally:
        assert time.monotonic() - began < HANG, f"one import of {path.stat().st_size} bytes hung"


def check_import(db: Database, path: Path, *, slug: str | None = None, confirmed: bool = False) -> ImportSummary | None:
    """Import ``path`` twice and check everything the module docstring promises. Without ``slug``, a
    list of its own: then a refused file must not even have made the list."""
    slug = slug or f"fuzz-{next(_slugs)}"
    before = snapshot(db)
    try:
        summary = import_file(db, path, slug, confirmed)
    except InputError as exc:
        message = str(exc)
        event("refused: " + re.sub(r"line \d+|'[^']*'|\d+", "…", message.removeprefix(str(path)))[:60])
        assert "\n" not in message and "\r" not in message and message.startswith(str(path)), message
        assert len(message) < 1000 + len(str(path)), message
        assert message.endswith("; nothing was imported"), message
        assert snapshot(db) == before  # not even the list
        with pytest.raises(InputError) as again:
            import_file(db, path, slug, confirmed)
        assert str(again.value) == message
        return None
    after = snapshot(db)
    event(f"imported: {'some' if summary.added + summary.updated else 'no'} contacts added or updated, "
          f"{'some' if summary.rejected else 'no'} rows rejected")
    assert summary.rows == sum(getattr(summary, key) for key in OUTCOMES)
    assert len(after["contacts"]) - len(before["contacts"]) == summary.added
    assert len(after["consent_events"]) - len(before["consent_events"]) == summary.pending + 2 * summary.confirmed
    assert len(after["subscriptions"]) - len(before["subscriptions"]) <= summary.pending + summary.confirmed
    # The report repeats a rejected row as it came, however long (a one-line value may pass csv's
    # default 131,072-character field limit, which only the reader here has).
    limit = csv.field_size_limit(2**31 - 1)
    try:
        with summary.report_path.open(encoding="utf-8-sig", newline="") as file:
            *rejects, status = list(csv.DictReader(file))
    finally:
        csv.field_size_limit(limit)
    assert len(rejects) == summary.rejected and status["reason"].startswith("finished: ")
    for cell in itertools.chain.from_iterable(row.values() for row in rejects):
        assert not cell.startswith(FORMULA_START) or safe_cell(cell) == cell  # spreadsheet-safe (a number)
    again = import_file(db, path, slug, confirmed)
    assert snapshot(db) == after, "a second import of the same file changed the database"
    assert (again.rows, again.rejected) == (summary.rows, summary.rejected)
    assert again.added == again.updated == again.pending == again.confirmed == 0
    return summary


@pytest.fixture
def audience(db: Database, settings: Settings) -> Database:
    """Addresses the strategies use that must never come back: one suppressed, one who left the list."""
    with db.session() as s:
        suppress(s, "gone@example.com", "hard_bounce")
        left = subscriber(s, settings, "left@example.com")
        unsubscribe(s, left, ensure_list(s, "newsletter"), Proof("email_link"))
    return db


# --- arbitrary bytes ----------------------------------------------------------------------------------


@pytest.mark.fuzz
@fuzz_settings
@given(data=st.one_of(
    st.binary(max_size=3000),
    # Bytes after a plausible header, so that the rows are read too, not only the header refused.
    st.tuples(st.sampled_from([b"email\n", b"email,name\r\n", b"\xef\xbb\xbfE-mail;Name;x\n", b"email\tname\n"]),
              st.binary(max_size=3000)).map(b"".join),
))
def test_arbitrary_bytes_never_half_import(db: Database, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    check_import(db, path)


# --- hostile but structured CSV ----------------------------------------------------------------------

ADDRESSES = st.one_of(
    st.sampled_from([
        "ann@example.com", "ANN@EXAMPLE.COM", " ann@example.com ", "bob@example.org", "=1+2@example.com",
        "+vip@example.com", "-x@example.com", "'=1+2@example.com", "zoë@example.com", "a@bücher.example",
        "gone@example.com", "left@example.com", "o'brien@example.com", "\"quoted\"@example.com",
        "not-an-address", "", "@example.com", "a@b", "x" * 300 + "@example.com", "ann@example.com\u200b",
        "ｆｕｌｌ@example.com", "a@example.com,b@example.com",
    ]),
    st.from_regex(r"[a-z0-9.+=-]{1,12}@[a-z]{1,8}\.(com|org|example)", fullmatch=True),
)
_PRINTABLE = st.characters(exclude_categories=("Cc", "Cs"))  # any Unicode but controls and surrogates
TEXT = st.one_of(
    st.text(_PRINTABLE, max_size=30),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30),  # controls, line breaks
    st.sampled_from(["=HYPERLINK(\"http://x.example\")", "@SUM(1+1)", "+1 555 0100", "-12.50", "\t=1", "\r@x",
                     "'=quoted", "Zoë Ångström", "李小龍", "مرحبا", "👩‍⚕️", "a\u0301", "\u202eevil", "[/b]", "\ufeff",
                     "Ann, Lee", "Ann; Lee", 'Ann "the" Lee', "Ann\nLee", "Europe/Paris", "Mars/Olympus",
                     "vip; blog|news", "=x, +y", "x" * 250]),
    st.text(_PRINTABLE, min_size=180, max_size=260),  # about the name limit
)
LONG = st.sampled_from([10_000, 131_000, 131_072, 140_000]).map(lambda n: "y" * n)  # the line limit
HEADERS = st.one_of(
    st.sampled_from(["name", "First Name", "last_name", "timezone", "tags", "status", "created_at", "clinic",
                     "Clinic", "=cmd", "'=score", "[red]", "Zoë", "", "E-Mail", "Email Address"]),
    st.text(st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=",;\t|\"'"), max_size=12),
)
EMAIL_HEADERS = ("email", "e mail", "email address")


def _cell(value: str, delimiter: str, hostile: bool) -> str:
    """Quoted when it needs it (as a spreadsheet writes it), else as it is; a hostile file also has
    values that need quotes and lack them."""
    if any(c in value for c in (delimiter, '"', "\n", "\r")) and not hostile:
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def hostile_csv(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A CSV file as spreadsheets write them, with a few things wrong: a stray quote, unquoted
    delimiters, a NUL, a very long value, rows too short or too long, blank lines, mixed line ends."""
    delimiter = draw(st.sampled_from([",", ",", ",", ",", ";", ";", "\t", "|"]))  # "|": not a delimiter we read
    hostile = draw(st.integers(0, 4)) == 3  # repeated and unnamed columns, values that lack their quotes
    headers = draw(st.lists(HEADERS, max_size=5, unique_by=None if hostile else lambda h: header_key(h) or h))
    if not hostile:  # a second address column or a value under no name is the hostile files' business
        headers = [h for h in headers if h.strip() and header_key(h) not in EMAIL_HEADERS]
    if draw(st.integers(0, 14)) != 7:  # mostly with an email column (not 0: Hypothesis favours it)
        headers.insert(draw(st.integers(0, len(headers))), draw(st.sampled_from(["email", "Email", "E-mail"])))
    headers = headers or ["x"]
    ends = st.sampled_from(["\n", "\n", "\r\n", "\r"])
    rows = [[_cell(h, delimiter, hostile) for h in headers]]
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 9)) == 5:
            rows.append([])  # a blank line
            continue
        width = max(0, len(headers) + draw(st.sampled_from([0, 0, 0, 0, -1, 1])))
        rows.append([_cell(draw(ADDRESSES if header_key(headers[i % len(headers)]) in EMAIL_HEADERS else TEXT),
                           delimiter, hostile) for i in range(width)])
    cells = [(r, c) for r, row in enumerate(rows) for c in range(len(row))]
    damages = draw(st.lists(st.sampled_from(["open", "close", "long", "nul"]), min_size=1, max_size=2))
    for damage in damages if draw(st.integers(0, 2)) == 1 else ():  # a third of the files
        if cells:
            r, c = draw(st.sampled_from(cells))
            rows[r][c] = {"open": '"' + rows[r][c], "close": rows[r][c] + '"', "long": draw(LONG),
                          "nul": rows[r][c] + "\x00"}[damage]
    text = "".join(delimiter.join(row) + draw(ends) for row in rows)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # no line end after the last row
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    return text.encode(encoding, errors="replace"), draw(st.booleans())


@pytest.mark.fuzz
@fuzz_settings
@given(case=hostile_csv())
def test_hostile_csv_never_half_imports(audience: Database, tmp_path: Path, case: tuple[bytes, bool]) -> None:
    content, confirmed = case
    path = tmp_path / "hostile.csv"
    path.write_bytes(content)
    check_import(audience, path, slug="newsletter", confirmed=confirmed)
    with audience.session() as s:  # the suppressed and the departed are never (re)subscribed
        assert s.scalar(select(Contact).where(Contact.email == "gone@example.com")) is None
        left = s.scalar(select(Subscription.status).join(Contact).where(Contact.email == "left@example.com"))
        assert left == "unsubscribed"


@pytest.mark.fuzz
@pytest.mark.postgres
@hypothesis_settings(fuzz_settings, max_examples=max(1, FUZZ_EXAMPLES // 3))  # a third: PostgreSQL is slower
@given(case=hostile_csv())
def test_hostile_csv_never_half_imports_on_postgresql(postgres_db: Database, tmp_path: Path,
                                                      case: tuple[bytes, bool]) -> None:
    """PostgreSQL is stricter than SQLite (no NUL in text or JSON, lengths enforced): the same promises."""
    content, confirmed = case
    path = tmp_path / "hostile.csv"
    path.write_bytes(content)
    check_import(postgres_db, path, confirmed=confirmed)


# --- the command line ---------------------------------------------------------------------------------


@pytest.mark.fuzz
@hypothesis_settings(fuzz_settings, max_examples=max(1, FUZZ_EXAMPLES // 3))  # a CLI run costs ~5 imports: a third of the budget
@given(case=st.one_of(hostile_csv().map(lambda c: c[0]), st.binary(max_size=2000)))
def test_the_cli_answers_every_file_without_a_traceback(settings: Settings, db: Database, tmp_path: Path,
                                                        case: bytes) -> None:
    path = tmp_path / "cli.csv"
    path.write_bytes(case)
    result = CliRunner().invoke(app, ["contacts", "import", str(path), "--list", "cli", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1, 2), result.output
    event(f"exit code {result.exit_code}")
    if result.exit_code == 2:  # refused: one line, nothing stored
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    else:
        summary = json.loads(result.stdout)
        assert (result.exit_code == 1) == (summary["rows"] > 0 and summary["rejected"] == summary["rows"])
