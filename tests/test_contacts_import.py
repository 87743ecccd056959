"""CSV import of contacts: header mapping, rejected rows with their line numbers, duplicates,
encodings, consent rules (suppressed, withdrawn, confirmed with proof, pending), idempotency,
resuming after an interruption, 100,000 rows, the CLI, and PostgreSQL."""

from __future__ import annotations

import csv
import json
import random
import re
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select, text
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database, upgrade
from subscribers import csv_import
from subscribers.consent import Proof, request_subscription, unsubscribe
from subscribers.contacts import find_contact
from subscribers.csv_import import ImportProgress, ImportSummary, import_csv
from subscribers.errors import InputError
from subscribers.lists import ensure_list
from subscribers.models import (
    ConsentEvent,
    Contact,
    ContactTag,
    MailingList,
    Subscription,
)
from subscribers.suppression import suppress
from tests.audience import subscriber

COUNTS = ("rows", "added", "updated", "unchanged", "rejected", "suppressed_skipped", "withdrawn_skipped",
          "duplicates", "pending", "confirmed")


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def run(db: Database, path: Path, **options) -> ImportSummary:
    options.setdefault("list_slug", "newsletter")
    options.setdefault("default_timezone", "America/Los_Angeles")
    return import_csv(db.engine, path, **options)


def counts(summary: ImportSummary) -> dict[str, int]:
    return {key: getattr(summary, key) for key in COUNTS if getattr(summary, key)}


def report(summary: ImportSummary) -> list[dict[str, str]]:
    with summary.report_path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def table_sizes(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (Contact, ContactTag, Subscription, ConsentEvent)}


def test_columns_are_mapped_and_the_rest_become_custom_fields(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv",
                 " E-Mail ,First Name,last_name,Time Zone,Tags,Clinic,Referred by\n"
                 "Ann.Lee@Example.COM,Ann,Lee,Europe/Paris,Blog; VIP|blog,LA,\n"
                 "bob@example.org,,,,,SF,Dr Who\n")
    summary = run(db, path, tags=["Spring Event"])
    assert counts(summary) == {"rows": 2, "added": 2, "pending": 2}
    assert summary.report_path == tmp_path / "people.report.csv" and summary.encoding == "utf-8"
    with db.session() as s:
        ann, bob = find_contact(s, "ann.lee@example.com"), find_contact(s, "BOB@example.org")
        assert (ann.email, ann.name, ann.timezone) == ("Ann.Lee@example.com", "Ann Lee", "Europe/Paris")
        assert ann.source == "import"
        assert ann.tag_names == ["blog", "spring event", "vip"] and bob.tag_names == ["spring event"]
        assert ann.custom_fields == {"Clinic": "LA"}  # an empty cell is no value
        assert bob.custom_fields == {"Clinic": "SF", "Referred by": "Dr Who"}
        assert (bob.name, bob.timezone) == (None, "America/Los_Angeles")  # the default zone
        sub = s.scalar(select(Subscription).where(Subscription.contact_id == ann.id))
        assert (sub.status, sub.confirmed_at, sub.mailing_list.slug) == ("pending", None, "newsletter")
        events = s.execute(select(ConsentEvent.action, ConsentEvent.method, ConsentEvent.note)
                           .where(ConsentEvent.contact_id == ann.id)).all()
        assert events == [("requested", "import", None)]  # double opt-in: the confirmation is the web's part
    assert [row["reason"] for row in report(summary)] == [
        ("finished: 2 rows up to line 3: added 2, updated 0, unchanged 0, rejected 0, suppressed (skipped) 0, "
         "withdrawn (skipped) 0, duplicates merged 0; subscriptions pending 2, confirmed 0; read as UTF-8")]


def test_bad_rows_are_rejected_with_their_physical_line_and_reason(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.csv",
                 "email,name,timezone,notes\n"                       # line 1
                 'ok1@example.com,One,,"two\nlines"\n'               # lines 2-3: one record
                 "not-an-address,Two,,\n"                            # line 4
                 "\n"                                                 # line 5: blank, skipped
                 "ok2@example.com,Three,Mars/Olympus_Mons,\n"         # line 6
                 ",Four,,\n"                                          # line 7
                 "ok3@example.com,Five,Asia/Tokyo,,surplus\n"         # line 8: a cell too many
                 "ok4@example.com,Six,Asia/Tokyo,\n")                 # line 9
    summary = run(db, path)
    assert counts(summary) == {"rows": 6, "added": 2, "rejected": 4, "pending": 2}
    rejected = [(r["line"], r["column"], r["value"]) for r in report(summary)[:-1]]
    assert rejected == [("4", "email", "not-an-address"), ("6", "timezone", "Mars/Olympus_Mons"),
                        ("7", "email", ""), ("8", "", "")]
    reasons = [r["reason"] for r in report(summary)]
    assert "is not a valid email address" in reasons[0] and "IANA time zone" in reasons[1]
    assert "empty" in reasons[2] and "5 cells, the header 4" in reasons[3]
    with db.session() as s:
        assert sorted(s.scalars(select(Contact.email))) == ["ok1@example.com", "ok4@example.com"]
        assert find_contact(s, "ok1@example.com").custom_fields == {"notes": "two\nlines"}


def test_repeated_addresses_are_merged_and_counted_once(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "dupes.csv",
                 "email,name,timezone,tags,plan\n"
                 "sam@example.com,Sam,,a,basic\n"
                 "SAM@EXAMPLE.COM,,Europe/Berlin,b,\n"   # same batch: fills in the zone, adds a tag
                 "kim@example.com,Kim,,,\n"
                 "other@example.com,,,,\n"
                 "Sam@example.com,Samuel,,c,premium\n")   # a later batch (batch_size=2)
    summary = run(db, path, batch_size=2)
    assert counts(summary) == {"rows": 5, "added": 3, "duplicates": 2, "pending": 3}
    with db.session() as s:
        sam = find_contact(s, "sam@example.com")
        assert (sam.email, sam.name, sam.timezone) == ("sam@example.com", "Samuel", "Europe/Berlin")
        assert sam.tag_names == ["a", "b", "c"] and sam.custom_fields == {"plan": "premium"}
        assert s.scalar(select(func.count()).select_from(Subscription)) == 3
    # Again: batch 1 writes Sam's earlier values, batch 3 the later ones; the end state is the same,
    # and the address counts as updated (a streamed import cannot see the later row in advance).
    assert counts(run(db, path, batch_size=2)) == {"rows": 5, "updated": 1, "unchanged": 2, "duplicates": 2}
    with db.session() as s:
        sam = find_contact(s, "sam@example.com")
        assert (sam.name, sam.timezone, sam.custom_fields) == ("Samuel", "Europe/Berlin", {"plan": "premium"})


def test_utf8_bom_and_windows_1252_files(db: Database, tmp_path: Path) -> None:
    bom = write(tmp_path / "bom.csv", "\ufeffEmail,Name\nzoe@example.com,Zoë Ångström\n")
    assert run(db, bom).added == 1
    legacy = write(tmp_path / "legacy.csv", "email;name;note\nchloe@example.com;Chloë Noël;costs 5€\n", "cp1252")
    assert b"\xeb" in legacy.read_bytes()  # not UTF-8
    summary = run(db, legacy)
    assert summary.added == 1 and summary.encoding == "cp1252"
    with db.session() as s:
        assert find_contact(s, "zoe@example.com").name == "Zoë Ångström"  # the BOM did not reach the header
        chloe = find_contact(s, "chloe@example.com")
        assert chloe.name == "Chloë Noël" and chloe.custom_fields == {"note": "costs 5€"}  # ';' found too


def test_a_file_without_an_email_column_is_refused_and_nothing_is_stored(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "names.csv", "Name,Phone\nAnn,555\n")
    with pytest.raises(InputError) as caught:
        run(db, path, list_slug="from-names")
    message = str(caught.value)
    assert str(path) in message and "no email column" in message and "'Name', 'Phone'" in message
    with db.session() as s:
        assert s.scalar(select(MailingList).where(MailingList.slug == "from-names")) is None
    assert not (tmp_path / "names.report.csv").exists()


def test_an_empty_file_and_a_header_alone_are_refused(db: Database, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"empty\.csv: the file is empty"):
        run(db, write(tmp_path / "empty.csv", "\n\n"))
    with pytest.raises(InputError) as caught:
        run(db, write(tmp_path / "header.csv", "\nemail,name\n\n"))
    assert str(caught.value) == (f"{tmp_path / 'header.csv'} line 2: there is no row after the header line; "
                                 "nothing was imported")
    assert table_sizes(db) == {"contacts": 0, "contact_tags": 0, "subscriptions": 0, "consent_events": 0}
    assert not (tmp_path / "header.report.csv").exists()


def test_the_report_never_overwrites_the_input(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv", "email\nann@example.com\n")
    with pytest.raises(InputError, match="would overwrite the file being imported"):
        run(db, path, report_path=tmp_path / "." / "people.csv")
    assert path.read_text() == "email\nann@example.com\n" and table_sizes(db)["contacts"] == 0


NOTHING = {"contacts": 0, "contact_tags": 0, "subscriptions": 0, "consent_events": 0}


def refused(db: Database, path: Path, **options) -> str:
    """The import of ``path`` is refused whole: the one-line message, with nothing stored (not even the
    list) and no report written."""
    with pytest.raises(InputError) as caught:
        run(db, path, list_slug="refused", batch_size=1, **options)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)) and message.endswith("; nothing was imported")
    assert table_sizes(db) == NOTHING
    with db.session() as s:
        assert s.scalar(select(MailingList).where(MailingList.slug == "refused")) is None
    assert not csv_import.default_report_path(path).exists()
    return message.removeprefix(str(path))


def test_binary_files_are_refused_with_where(db: Database, tmp_path: Path) -> None:
    workbook = tmp_path / "people.xlsx"
    workbook.write_bytes(b"PK\x03\x04\x14\x00\x00\x00binary")
    assert refused(db, workbook).startswith(" line 1: this is not a CSV text file: it holds a NUL character")
    # Binary data without a NUL byte (read as Windows-1252, it is control characters).
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(range(1, 256)) * 4)
    assert refused(db, noise).startswith(" line 1: the header line holds control characters: this is not a CSV")


def test_a_nul_anywhere_refuses_the_file_naming_its_line(db: Database, tmp_path: Path) -> None:
    small = write(tmp_path / "small.csv", "email,name\na@example.com,A\nb@example.com,B\x00\nc@example.com,C\n")
    assert refused(db, small).startswith(" line 3: this is not a CSV text file: it holds a NUL character")
    # Past the first megabyte, which the encoding check reads: found while reading, still before storing.
    rows = "".join(f"person{i}@example.com,Person {i}\n" for i in range(40_000))
    late = write(tmp_path / "late.csv", "email,name\n" + rows + "last@example.com,L\x00st\n")
    assert late.stat().st_size > (1 << 20)
    assert refused(db, late).startswith(" line 40002: this is not a CSV text file: it holds a NUL character")


def test_an_unclosed_quote_refuses_the_file_naming_its_line_and_column(db: Database, tmp_path: Path) -> None:
    """A stray quote opens a value that swallows every later line: once it made the rest of the file
    one row (one rejected row, or a name holding five addresses); the rows after it were lost."""
    path = write(tmp_path / "quote.csv",
                 "email,name,clinic\n"
                 "a@example.com,A,LA\n"
                 "b@example.com,B,SF\n"
                 'c@example.com,"Cy,LA\n'  # line 4: the quote opens and is never closed
                 "d@example.com,D,SF\n"
                 "e@example.com,E,LA\n")
    assert refused(db, path) == (
        " line 4, column 'name': a quote opens this value and is never closed, so every line from 4 to the end "
        "of the file (line 6) would be read as this one value; close the quote or remove it, then import again; "
        "nothing was imported")
    # In a custom column too, with ';' between the columns and Windows line ends.
    custom = write(tmp_path / "custom.csv", 'email;clinic\r\na@example.com;"LA\r\nb@example.com;SF\r\n')
    assert refused(db, custom).startswith(" line 2, column 'clinic': a quote opens this value and is never closed")


def test_a_stray_quote_closed_lines_later_refuses_the_file(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "two.csv",
                 "email,name,clinic\n"
                 'a@example.com,"Ann,LA\n'   # line 2: a stray quote...
                 "b@example.com,Bob,SF\n"
                 'c@example.com,Cy",LA\n'    # ...and another one, which closes it
                 "d@example.com,Di,SF\n")
    assert refused(db, path).startswith(
        " line 2, column 'name': a quote opens this value and closes only on line 4, so lines 2 to 4 would be one "
        "name, which holds no line break; remove the stray quote (or close it on line 2), then import again")


def test_a_quoted_value_past_the_field_size_limit_is_refused(db: Database, tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.csv",
                   "email,name\na@example.com,A\n" + 'b@example.com,"B\n' + ("x" * 1000 + "\n") * 140)
    assert refused(db, broken) == (
        " line 3, column 'name': a quote opens this value and is not closed by line 134, where the value passes "
        "131,072 characters; close the quote or remove it, then import again; nothing was imported")


def test_a_line_longer_than_the_limit_is_refused_before_it_is_held(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "long.csv",
                 "email,name,notes\na@example.com,A,ok\nb@example.com,B," + "x" * 200_000 + "\nc@example.com,C,ok\n")
    assert refused(db, path).startswith(" line 3: the line is longer than 131,072 characters")


def test_mixed_line_ends_are_lines_all_the_same(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.csv",
                 "email,notes\r\na@example.com,A\nb@example.com,B\rc@example.com,\"C\r\nD\"\r\nbad,E\n")
    summary = run(db, path)
    assert counts(summary) == {"rows": 4, "added": 3, "rejected": 1, "pending": 3} and summary.last_line == 6
    assert [(r["line"], r["value"]) for r in report(summary)[:-1]] == [("6", "bad")]
    with db.session() as s:
        assert find_contact(s, "c@example.com").custom_fields == {"notes": "C\r\nD"}  # kept as written


def test_a_header_with_repeated_or_unnamed_columns(db: Database, tmp_path: Path) -> None:
    repeated = write(tmp_path / "repeated.csv", "\nemail,clinic,,Clinic,clinic\na@example.com,LA,,la,LA\n")
    assert refused(db, repeated) == (" line 2: columns 2 and 5 are both named 'clinic'; rename one; "
                                     "nothing was imported")
    two = write(tmp_path / "two.csv", "Email,name,E-mail\na@example.com,A,b@example.com\n")
    assert refused(db, two).startswith(" line 1: columns 1 ('Email') and 3 ('E-mail') both hold the email; keep one")
    # A column with no name is ignored while it is empty (a trailing delimiter); a value in it is refused.
    unnamed = write(tmp_path / "unnamed.csv", "email,,name,\na@example.com,,A,\nb@example.com,private,B,\n")
    assert refused(db, unnamed) == (" line 3, column 2: a value in a column with no name in the header line; "
                                    "name the column (or delete it), then import again; nothing was imported")
    trailing = write(tmp_path / "trailing.csv", "email,name,\na@example.com,A,\n")
    assert counts(run(db, trailing)) == {"rows": 1, "added": 1, "pending": 1}


def test_suppressed_addresses_are_skipped_and_never_added(db: Database, settings: Settings, tmp_path: Path) -> None:
    with db.session() as s:
        suppress(s, "erased@example.com", "erased", keep_address=False)
        bounced = subscriber(s, settings, "bounced@example.com", list_slug="events")
        suppress(s, bounced.email, "hard_bounce")
    path = write(tmp_path / "old-crm.csv",
                 "email,name\nErased@Example.com,Old Name\nbounced@example.com,New Name\nnew@example.com,New\n")
    summary = run(db, path, confirmed=True, consent_note="old CRM export")
    assert counts(summary) == {"rows": 3, "added": 1, "suppressed_skipped": 2, "confirmed": 1}
    with db.session() as s:
        assert find_contact(s, "erased@example.com") is None  # an erased person stays erased
        bounced = find_contact(s, "bounced@example.com")
        assert bounced.name is None  # nothing about a suppressed contact changes
        assert [(sub.mailing_list.slug, sub.status) for sub in bounced.subscriptions] == [("events", "confirmed")]


def test_a_contact_who_left_the_list_is_not_subscribed_again(db: Database, settings: Settings, tmp_path: Path) -> None:
    with db.session() as s:
        left = subscriber(s, settings, "left@example.com")
        unsubscribe(s, left, ensure_list(s, "newsletter"), Proof("email_link"))
    before = table_sizes(db)
    path = write(tmp_path / "again.csv", "email,name,tags\nleft@example.com,Left,vip\n")
    for confirmed in (False, True):
        summary = run(db, path, confirmed=confirmed, consent_note="old list" if confirmed else None)
        assert counts(summary) == {"rows": 1, "withdrawn_skipped": 1}
    assert table_sizes(db) == before  # no subscription, event, tag or name written
    with db.session() as s:
        assert [sub.status for sub in find_contact(s, "left@example.com").subscriptions] == ["unsubscribed"]


def test_confirmed_import_keeps_the_proof_in_the_consent_history(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "event.csv", "email\nann@example.com\nbob@example.com\n")
    summary = run(db, path, confirmed=True, consent_note="  Paper sign-up forms, open day 2026-03-14 ")
    assert counts(summary) == {"rows": 2, "added": 2, "confirmed": 2}
    with db.session() as s:
        ann = find_contact(s, "ann@example.com")
        sub = s.scalar(select(Subscription).where(Subscription.contact_id == ann.id))
        assert sub.status == "confirmed" and sub.confirmed_at is not None
        events = s.execute(select(ConsentEvent.action, ConsentEvent.method, ConsentEvent.note, ConsentEvent.list_id)
                           .where(ConsentEvent.contact_id == ann.id).order_by(ConsentEvent.id)).all()
        note = "Paper sign-up forms, open day 2026-03-14"
        assert events == [("requested", "import", note, sub.list_id), ("confirmed", "import", note, sub.list_id)]


def test_confirmed_without_a_consent_note_is_refused_before_anything_is_stored(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "event.csv", "email\nann@example.com\n")
    for note in (None, "   "):
        with pytest.raises(InputError, match="needs a consent note"):
            run(db, path, confirmed=True, consent_note=note)
    assert table_sizes(db)["contacts"] == 0


def test_pending_contacts_are_confirmed_by_a_later_confirmed_import(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", "email\nann@example.com\n")
    assert counts(run(db, path)) == {"rows": 1, "added": 1, "pending": 1}
    assert counts(run(db, path)) == {"rows": 1, "unchanged": 1}  # no second "requested" event
    confirming = run(db, path, confirmed=True, consent_note="they replied yes")
    assert counts(confirming) == {"rows": 1, "updated": 1, "confirmed": 1}
    with db.session() as s:
        ann = find_contact(s, "ann@example.com")
        assert [e.action for e in s.scalars(select(ConsentEvent).order_by(ConsentEvent.id))] == [
            "requested", "requested", "confirmed"]
        assert ann.subscriptions[0].status == "confirmed" and ann.subscriptions[0].confirmed_at is not None
    assert counts(run(db, path, confirmed=True, consent_note="again")) == {"rows": 1, "unchanged": 1}


def test_importing_the_same_file_again_changes_nothing(db: Database, tmp_path: Path) -> None:
    lines = [f"person{i}@example.com,Person {i},Europe/Rome,t{i % 3},{i}" for i in range(25)]
    path = write(tmp_path / "list.csv", "email,name,timezone,tags,member no\n" + "\n".join(lines) + "\n")
    assert counts(run(db, path, batch_size=10, tags=["spring"])) == {"rows": 25, "added": 25, "pending": 25}
    before = table_sizes(db)
    assert counts(run(db, path, batch_size=7, tags=["spring"])) == {"rows": 25, "unchanged": 25}
    assert table_sizes(db) == before == {"contacts": 25, "contact_tags": 50, "subscriptions": 25, "consent_events": 25}
    changed = write(tmp_path / "changed.csv", "email,name,member no\nperson3@example.com,Per Three,3\n")
    assert counts(run(db, changed)) == {"rows": 1, "updated": 1}
    with db.session() as s:
        assert find_contact(s, "person3@example.com").name == "Per Three"


def rows_file(tmp_path: Path, n: int) -> Path:
    return write(tmp_path / "batch.csv", "email,name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(1, n + 1)))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def either_db(request: pytest.FixtureRequest) -> Database:
    """SQLite, then PostgreSQL (where the next batch is parsed in a thread while one is written)."""
    return request.getfixturevalue("db" if request.param == "sqlite" else "postgres_db")


def test_an_interrupted_import_keeps_whole_batches_and_resumes(either_db: Database, tmp_path: Path) -> None:
    db = either_db
    path = rows_file(tmp_path, 9)  # data on lines 2-10; batches of 3: lines 2-4, 5-7, 8-10
    seen: list[ImportProgress] = []

    def stop_after_two(step: ImportProgress) -> None:
        seen.append(step)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        run(db, path, batch_size=3, progress=stop_after_two)
    assert [step.line for step in seen] == [4, 7] and seen[-1].rows == 6
    note = ("every row up to line 7 is imported, none after it; "
            "to resume, run the same import with start line 7 (--start-line 7).")
    assert caught.value.__notes__ == [f"{path}: {note}"]
    assert report(ImportSummary(report_path=tmp_path / "batch.report.csv"))[-1]["reason"] == \
        f"stopped (KeyboardInterrupt): {path}: {note}"
    with db.session() as s:
        assert sorted(s.scalars(select(Contact.name))) == [f"P{i}" for i in range(1, 7)]  # nothing of batch 3

    summary = run(db, path, batch_size=3, start_line=7)
    assert counts(summary) == {"rows": 3, "added": 3, "pending": 3} and summary.last_line == 10
    assert table_sizes(db) == {"contacts": 9, "contact_tags": 0, "subscriptions": 9, "consent_events": 9}
    statuses = [row["reason"].split(":")[0] for row in report(summary)]
    assert statuses == ["stopped (KeyboardInterrupt)", "finished"]  # the resumed run added to the report


def test_a_failure_inside_a_batch_rolls_back_that_whole_batch(either_db: Database, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    db = either_db  # on PostgreSQL the batch's temporary tables go with it
    path = rows_file(tmp_path, 6)
    real_flush, calls = csv_import._flush, []

    def failing_flush(*args, **kwargs) -> None:  # contacts of the batch are inserted by then
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        real_flush(*args, **kwargs)

    monkeypatch.setattr(csv_import, "_flush", failing_flush)
    with pytest.raises(RuntimeError, match="disk full"):
        run(db, path, batch_size=3)
    assert table_sizes(db) == {"contacts": 3, "contact_tags": 0, "subscriptions": 3, "consent_events": 3}
    assert "resume, run the same import with start line 4" in report(
        ImportSummary(report_path=tmp_path / "batch.report.csv"))[-1]["reason"]


def test_an_exported_file_imports_again_unchanged(db: Database, settings: Settings, tmp_path: Path) -> None:
    from subscribers.csv_export import export_csv

    path = write(tmp_path / "in.csv", "email,name,timezone,tags,clinic\nann@example.com,Ann,Asia/Tokyo,a;b,LA\n")
    run(db, path, confirmed=True, consent_note="form")
    with db.session() as s:
        export_csv(s, tmp_path / "out.csv", list_slug="newsletter")
    summary = run(db, tmp_path / "out.csv")
    assert counts(summary) == {"rows": 1, "unchanged": 1}
    assert summary.ignored_columns == ["status", "created_at", "subscription_status", "confirmed_at"]
    with db.session() as s:
        assert find_contact(s, "ann@example.com").custom_fields == {"clinic": "LA"}


def test_formula_cells_come_back_from_an_export_as_they_went_in(db: Database, tmp_path: Path) -> None:
    """The export guards a formula cell with a leading quote; the import takes it off. Without that,
    '=1+2@example.com (a valid address too) would come back as a second contact."""
    from subscribers.csv_export import export_csv

    source = write(tmp_path / "in.csv",
                   "email,name,tags,=score,phone\n"
                   '=1+2@example.com,"=HYPERLINK(""http://x.example"")",+vip,@SUM(1),+1 555 0100\n'
                   "-dash@example.com,-Dee,,-12.50,\n"
                   "+plus@example.com,Pat,,'=quoted,\n")  # a quote typed to keep text: it is not kept
    run(db, source)
    with db.session() as s:
        export_csv(s, tmp_path / "out.csv")
    exported = (tmp_path / "out.csv").read_text(encoding="utf-8-sig")
    assert "'=1+2@example.com" in exported and "'=score" in exported
    assert counts(run(db, tmp_path / "out.csv")) == {"rows": 3, "unchanged": 3}

    other = Database(f"sqlite:///{tmp_path / 'other.db'}")  # a second installation, from the export alone
    upgrade(other.engine)
    assert counts(run(other, tmp_path / "out.csv")) == {"rows": 3, "added": 3, "pending": 3}
    for database in (db, other):
        with database.session() as s:
            contacts = s.scalars(select(Contact).order_by(Contact.email)).all()
            assert [(c.email, c.name, c.custom_fields, c.tag_names) for c in contacts] == [
                ("+plus@example.com", "Pat", {"=score": "=quoted"}, []),
                ("-dash@example.com", "-Dee", {"=score": "-12.50"}, []),
                ("=1+2@example.com", '=HYPERLINK("http://x.example")', {"=score": "@SUM(1)", "phone": "+1 555 0100"},
                 ["+vip"])]
    with other.session() as s:
        export_csv(s, tmp_path / "again.csv")
    assert _without_times(tmp_path / "again.csv") == _without_times(tmp_path / "out.csv")


def _without_times(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return [{k: v for k, v in row.items() if k != "created_at"} for row in csv.DictReader(file)]


def test_one_hundred_thousand_rows(db: Database, tmp_path: Path) -> None:
    """Exact counts at scale (timing belongs to bench/import_contacts.py; this only bounds it)."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write("email,name,timezone\n")
        for i in range(100_000):
            if i % 1000 == 999:
                file.write(f"broken-{i},Broken,\n")  # 100 rejected
            elif i % 2000 == 1:
                file.write(f"PERSON{i - 1}@EXAMPLE.ORG,,Europe/Oslo\n")  # 50 repeats of an earlier row
            else:
                file.write(f"person{i}@example.org,Person {i},\n")
    began = time.perf_counter()
    summary = run(db, path)
    elapsed = time.perf_counter() - began
    assert counts(summary) == {"rows": 100_000, "added": 99_850, "rejected": 100, "duplicates": 50, "pending": 99_850}
    assert summary.last_line == 100_001 and len(report(summary)) == 101
    assert table_sizes(db) == {"contacts": 99_850, "contact_tags": 0, "subscriptions": 99_850, "consent_events": 99_850}
    with db.session() as s:
        assert find_contact(s, "person2000@example.org").timezone == "Europe/Oslo"  # the repeat filled it in
    assert elapsed < 60, f"100k rows took {elapsed:.1f} s"  # a loose guard against a quadratic slip


runner = CliRunner()


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["contacts", *args])
    assert result.exit_code == code, result.output
    return result.output


def test_cli_imports_with_a_summary_and_json(settings: Settings, tmp_path: Path) -> None:
    path = write(tmp_path / "crm.csv", "email,name,status\nann@example.com,Ann,active\nbad,,\n")
    output = invoke("import", str(path), "--list", "patients-news", "--tag", "crm", "--tag", "2026")
    assert "crm.csv: 2 rows," in output and "File read as UTF-8." in output
    assert re.search(r"│ added\s+│\s+1 │", output) and re.search(r"│ rejected \(see the report\)\s+│\s+1 │", output)
    assert "1 now wait for confirmation, 0 confirmed" in output
    assert "Ignored columns: status." in output
    assert f"Report: {tmp_path / 'crm.report.csv'}" in output
    data = json.loads(invoke("import", str(path), "--list", "patients-news", "--json",
                             "--report", str(tmp_path / "again.csv")))
    assert {k: data[k] for k in ("added", "unchanged", "rejected")} == {"added": 0, "unchanged": 1, "rejected": 1}
    assert data["report_path"] == str(tmp_path / "again.csv")
    with Database.from_settings(settings).session() as s:
        assert find_contact(s, "ann@example.com").tag_names == ["2026", "crm"]


def test_cli_refuses_a_file_without_email_and_confirmed_without_proof(settings: Settings, tmp_path: Path) -> None:
    names = write(tmp_path / "names.csv", "Name,Phone\nAnn,555\n")
    output = invoke("import", str(names), "--list", "newsletter", code=2)
    assert "no email column" in output and "'Name', 'Phone'" in output
    people = write(tmp_path / "people.csv", "email\nann@example.com\n")
    output = invoke("import", str(people), "--list", "newsletter", "--confirmed", code=2)
    assert "a confirmed import needs a consent note" in output
    output = invoke("import", str(tmp_path / "missing.csv"), "--list", "newsletter", code=2)
    assert "does not exist" in output


BROKEN_FILES = {  # file content -> what the one line says
    "unclosed-quote": ('email,name\na@example.com,"Ann\nb@example.com,Bob\n', "line 2, column 'name': a quote opens"),
    "nul": ("email,name\na@example.com,A\x00n\n", "line 2: this is not a CSV text file"),
    "long-line": ("email,name\na@example.com," + "A" * 140_000 + "\n", "line 2: the line is longer than"),
    "repeated-column": ("email,tag,Tag\na@example.com,x,y\n", "columns 2 ('tag') and 3 ('Tag') both hold the tags"),
    "unnamed-column": ("email,,name\na@example.com,x,A\n", "line 2, column 2: a value in a column with no name"),
    "markup-header": ("name,[/b],[red]\nAnn,x,y\n", "no email column"),
    "empty": ("", "the file is empty"),
    "header-only": ("email,name\n", "line 1: there is no row after the header line"),
    "binary": (bytes(range(1, 256)).decode("latin-1") * 3, "line 1: the header line holds control characters"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_FILES))
def test_cli_refuses_a_broken_file_in_one_line_and_stores_nothing(settings: Settings, tmp_path: Path,
                                                                   case: str) -> None:
    content, says = BROKEN_FILES[case]
    path = tmp_path / f"{case}.csv"
    path.write_bytes(content.encode("latin-1" if case == "binary" else "utf-8"))
    result = runner.invoke(app, ["contacts", "import", str(path), "--list", "newsletter"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output  # no traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and says in lines[0], result.output
    assert lines[0].endswith("; nothing was imported")
    with Database.from_settings(settings).session() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 0
        assert s.scalar(select(MailingList).where(MailingList.slug == "newsletter")) is None


def test_cli_exits_non_zero_when_every_row_is_rejected(settings: Settings, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", "email,name\nnot-an-address,A\n,B\n")
    output = invoke("import", str(path), "--list", "newsletter", code=1)
    assert f"error: {path}: every row was rejected, so nothing was imported; the report says why: " \
           f"{tmp_path / 'bad.report.csv'}" in output
    assert len(report(ImportSummary(report_path=tmp_path / "bad.report.csv"))) == 3  # two rows and the status


def test_cli_ctrl_c_says_where_to_resume(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter.cli import contacts_io

    def small_batches(*args, **kwargs) -> ImportSummary:
        progress = kwargs.pop("progress")

        def interrupt(step: ImportProgress) -> None:
            progress(step)
            raise KeyboardInterrupt

        return import_csv(*args, **kwargs, batch_size=2, progress=interrupt)

    monkeypatch.setattr(contacts_io, "import_csv", small_batches)
    output = invoke("import", str(rows_file(tmp_path, 5)), "--list", "newsletter", code=130)
    assert "every row up to line 3 is imported" in output and "--start-line 3" in output


@pytest.mark.postgres
def test_import_on_postgresql(postgres_db: Database, settings: Settings, tmp_path: Path) -> None:
    with postgres_db.session() as s:
        suppress(s, "gone@example.com", "erased", keep_address=False)
        left = subscriber(s, settings, "left@example.com")
        unsubscribe(s, left, ensure_list(s, "newsletter"), Proof("email_link"))
    rows = "".join(f"p{i}@example.com,P {i},Europe/Paris,a|b,{i}\n" for i in range(250))
    path = write(tmp_path / "pg.csv", "email,name,timezone,tags,no\n" + rows +
                 "gone@example.com,G,,,\nleft@example.com,L,,,\nbad,,,,\nP7@EXAMPLE.COM,,,c,\n")
    summary = run(postgres_db, path, batch_size=100, confirmed=True, consent_note="clinic forms")
    assert counts(summary) == {"rows": 254, "added": 250, "rejected": 1, "suppressed_skipped": 1,
                               "withdrawn_skipped": 1, "duplicates": 1, "confirmed": 250}
    with postgres_db.session() as s:
        p7 = find_contact(s, "p7@example.com")
        assert (p7.name, p7.timezone, p7.custom_fields) == ("P 7", "Europe/Paris", {"no": "7"})
        assert p7.tag_names == ["a", "b", "c"] and p7.subscriptions[0].status == "confirmed"
        proofs = select(func.count()).select_from(ConsentEvent).where(ConsentEvent.note == "clinic forms")
        assert s.scalar(proofs) == 500
    assert counts(run(postgres_db, path, batch_size=100, confirmed=True, consent_note="again")) == {
        "rows": 254, "unchanged": 250, "rejected": 1, "suppressed_skipped": 1, "withdrawn_skipped": 1, "duplicates": 1}


def _one_batch_of_every_kind(database: Database, settings: Settings, tmp_path: Path) -> None:
    """One batch (written set-based: one statement per table) that holds a new contact, a pending one
    being confirmed, a confirmed one, a suppressed address and a repeat: each contact keeps its own
    consent events, in order, with the import's proof, and the others get none."""
    with database.session() as s:
        suppress(s, "gone@example.com", "erased", keep_address=False)
        subscriber(s, settings, "pending@example.com", confirmed=False)
        subscriber(s, settings, "done@example.com", confirmed=True)
    path = write(tmp_path / "mixed.csv", "email,name\nnew@example.com,N\npending@example.com,P\n"
                 "done@example.com,D\ngone@example.com,G\nNEW@example.com,\n")
    summary = run(database, path, confirmed=True, consent_note="signed forms")
    assert counts(summary) == {"rows": 5, "added": 1, "updated": 2, "suppressed_skipped": 1, "duplicates": 1,
                               "confirmed": 2}
    with database.session() as s:
        def history(email: str) -> list[tuple[str, str, str | None]]:
            contact = find_contact(s, email)
            return [(e.action, e.method, e.note) for e in s.scalars(
                select(ConsentEvent).where(ConsentEvent.contact_id == contact.id).order_by(ConsentEvent.id))]

        proof = "signed forms"
        assert history("new@example.com") == [("requested", "import", proof), ("confirmed", "import", proof)]
        assert history("pending@example.com") == [("requested", "admin", "test"), ("requested", "import", proof),
                                                  ("confirmed", "import", proof)]
        assert history("done@example.com") == [("requested", "admin", "test"), ("confirmed", "admin", "test")]
        assert find_contact(s, "gone@example.com") is None
        assert s.scalar(select(func.count()).select_from(ConsentEvent).where(ConsentEvent.note == proof)) == 4


def test_a_batch_written_set_based_keeps_consent_evidence_per_row(db: Database, settings: Settings,
                                                                   tmp_path: Path) -> None:
    _one_batch_of_every_kind(db, settings, tmp_path)


@pytest.mark.postgres
def test_a_batch_written_set_based_keeps_consent_evidence_per_row_on_postgresql(
        postgres_db: Database, settings: Settings, tmp_path: Path) -> None:
    _one_batch_of_every_kind(postgres_db, settings, tmp_path)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(st.integers(min_value=0, max_value=2**64 - 1) | st.integers(0, 50), max_size=40),
                        max_size=30))
def test_the_fingerprints_of_earlier_batches_answer_as_a_set_would(batches: list[list[int]]) -> None:
    # csv_import.Seen keeps them in 8 bytes each (sorted arrays) so that memory stays flat in the
    # file's size; every question must get the answer a plain set gives.
    seen, plain = csv_import.Seen(), set()
    for batch in batches:
        assert [value in seen for value in batch] == [value in plain for value in batch]
        seen.update(batch)
        plain.update(batch)
        assert len(seen) == len(plain)


def test_the_fingerprints_answer_as_a_set_would_after_the_filter_in_front_of_them_grows() -> None:
    # The Bloom filter before the arrays starts at 16,384 fingerprints' worth and is rebuilt fourfold
    # from the arrays when it fills: every fingerprint added before and after must still be found,
    # and absent ones, filtered or bisected, never are.
    rnd = random.Random(19)
    seen, plain = csv_import.Seen(), set()
    first = len(seen.bits)
    for size in (10_000, 10_000, 30_000, 300_000):
        batch = {rnd.getrandbits(64) for _ in range(size)}
        seen.update(batch)
        plain.update(batch)
    assert len(seen.bits) >= first * 16  # it grew, more than once
    assert len(seen) == len(plain)
    assert all(value in seen for value in plain)
    absent = [rnd.getrandbits(64) for _ in range(50_000)]
    assert [value in seen for value in absent] == [value in plain for value in absent]


@pytest.mark.postgres
def test_a_batch_looks_up_its_addresses_by_index_however_large_the_table_on_postgresql(
        postgres_db: Database) -> None:
    # Given a batch of 10,000 addresses, PostgreSQL's own choice was to read and hash the whole
    # contacts table, once per batch: a cost that grows with the table (an import of a million rows
    # read it a hundred times). The batch's look-ups are planned to probe the index once per address.
    with postgres_db.session() as session:
        session.execute(text(
            "INSERT INTO contacts (email, email_hash, timezone, custom_fields, status, source, created_at, updated_at) "
            "SELECT 'c' || n || '@example.org', md5(n::text) || md5(n::text), 'UTC', '{}', 'active', 'import', now(), now() "
            "FROM generate_series(1, 30000) AS n"))
    with postgres_db.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE contacts")
        connection.commit()
    digests = [f"{n:064x}" for n in range(10_000)]
    lookup = select(Contact.id, Contact.email_hash)
    plans: dict[bool, str] = {}
    for planned in (False, True):
        with postgres_db.session() as session:
            if planned:
                csv_import._custom_plans(session, True)
            statements: list[tuple[str, object]] = []

            def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
                statements.append((statement, parameters))

            event.listen(postgres_db.engine, "before_cursor_execute", keep)
            try:
                assert list(csv_import._in(session, lookup, Contact.email_hash, digests)) == []
            finally:
                event.remove(postgres_db.engine, "before_cursor_execute", keep)
            statement, parameters = statements[-1]
            plans[planned] = "\n".join(row[0] for row in session.connection().exec_driver_sql(
                "EXPLAIN " + statement, parameters))
            session.rollback()
    assert "Seq Scan on contacts" in plans[False]  # what PostgreSQL does unasked: the premise holds
    assert "Seq Scan on contacts" not in plans[True] and "uq_contacts_email_hash" in plans[True], plans[True]


# --- PostgreSQL: the next batch is prepared while one commits (csv_import._Writer) -------------------

def _audience_before(database: Database, settings: Settings) -> None:
    """What a clinic's database holds before the import: a suppressed address, a contact who left
    the list, one pending, one on another list only."""
    with database.session() as s:
        suppress(s, "gone@example.com", "erased", keep_address=False)
        left = subscriber(s, settings, "left@example.com")
        unsubscribe(s, left, ensure_list(s, "newsletter"), Proof("email_link"))
        subscriber(s, settings, "pending@example.com", confirmed=False)
        subscriber(s, settings, "other@example.com", list_slug="events")


def _stored(database: Database) -> dict[str, object]:
    """Everything an import writes, without ids or times: contacts with their tags, their
    subscriptions and their consent history, in order."""
    with database.session() as s:
        contacts = {c.email: (c.name, c.timezone, c.custom_fields, c.language, c.status, c.tag_names,
                              sorted((sub.mailing_list.slug, sub.status) for sub in c.subscriptions),
                              [(e.action, e.method, e.note) for e in s.scalars(
                                  select(ConsentEvent).where(ConsentEvent.contact_id == c.id)
                                  .order_by(ConsentEvent.id))])
                    for c in s.scalars(select(Contact))}
    return {"contacts": contacts, "sizes": table_sizes(database)}


def _file_repeating_addresses(path: Path, seed: int) -> Path:
    """Rows drawn from a few addresses, so that most batches of three repeat an address of the
    batch just before (whose commit may be under way), with names, zones, tags and a custom
    field changing from row to row; the audience's own addresses among them."""
    rng = random.Random(seed)
    pool = [f"r{i}@example.com" for i in range(14)] + [
        "gone@example.com", "left@example.com", "pending@example.com", "other@example.com", "bad"]
    lines = ["email,name,timezone,tags,visit"]
    for _ in range(90):
        address = rng.choice(pool)
        lines.append(",".join([address.upper() if rng.random() < 0.2 else address,
                               rng.choice(["", "Ann", "Bo", "Cy"]), rng.choice(["", "Europe/Paris", "Asia/Tokyo"]),
                               rng.choice(["", "a", "b|c"]), rng.choice(["", "1", "2"])]))
    return write(path, "\n".join(lines) + "\n")


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_written_while_the_one_before_commits_store_what_one_at_a_time_does(
        db: Database, postgres_db: Database, settings: Settings, tmp_path: Path, seed: int) -> None:
    # SQLite writes each batch whole, in line; PostgreSQL decides a batch while the one before it
    # commits, and decides after that commit the rows whose address it holds. Both must store the
    # same, count the same, and import the file again as unchanged.
    path = _file_repeating_addresses(tmp_path / "repeats.csv", seed)
    results = []
    for database in (db, postgres_db):
        _audience_before(database, settings)
        first = run(database, path, batch_size=3, confirmed=True, consent_note="forms")
        again = run(database, path, batch_size=3, confirmed=True, consent_note="forms")
        results.append((counts(first), counts(again), _stored(database)))
    assert results[1] == results[0]
    assert results[0][0]["duplicates"] > 30  # the case in question: repeats across batches
    assert "added" not in results[0][1]  # (a repeat with other values is updated again: module docstring)


@pytest.mark.postgres
def test_the_next_batch_is_decided_while_the_one_before_commits_on_postgresql(
        postgres_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Batch 1's last writes wait (at most 20 s) until batch 2 has begun to be decided: written one
    # after the other, they would wait the whole time and the test fails.
    path = rows_file(tmp_path, 6)
    real_flush, real_decide = csv_import._flush, csv_import._decide
    second_begun, decided, flushed = threading.Event(), [], []

    def decide(*args, **kwargs) -> None:
        decided.append(1)
        if len(decided) == 2:  # batch 2's
            second_begun.set()
        real_decide(*args, **kwargs)

    def flush(*args, **kwargs) -> None:
        if not flushed:  # batch 1's
            flushed.append(second_begun.wait(timeout=20))
        real_flush(*args, **kwargs)

    monkeypatch.setattr(csv_import, "_decide", decide)
    monkeypatch.setattr(csv_import, "_flush", flush)
    summary = run(postgres_db, path, batch_size=3)
    assert flushed == [True]
    assert counts(summary) == {"rows": 6, "added": 6, "pending": 6}
    assert table_sizes(postgres_db) == {"contacts": 6, "contact_tags": 0, "subscriptions": 6, "consent_events": 6}


@pytest.mark.postgres
def test_a_concurrent_writer_met_while_a_batch_commits_or_is_decided_on_postgresql(
        postgres_db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another writer (a signup form, say) adds, between the import's look-up and its write, the
    # subscription batch 1 is about to add, and the contact batch 2 is about to add: each batch is
    # rolled back and written again, read afresh, and nothing is lost or stored twice.
    with postgres_db.session() as s:
        subscriber(s, settings, "known@example.com", list_slug="events")  # on another list only
    path = write(tmp_path / "race.csv", "email,name\nknown@example.com,K\na@example.com,A\nb@example.com,B\n"
                 "late@example.com,L\nc@example.com,C\nd@example.com,D\n")
    real_flush, real_insert = csv_import._flush, csv_import._insert_contacts
    raced: list[str] = []
    subscribed = threading.Event()

    def flush(*args, **kwargs) -> None:
        if not raced:  # batch 1's last writes: the form subscribes known@ first
            with postgres_db.session() as other:
                known = find_contact(other, "known@example.com")
                request_subscription(other, known, ensure_list(other, "newsletter"), Proof("form"), confirmed=False)
            raced.append("subscription")
            subscribed.set()
        real_flush(*args, **kwargs)

    def insert_contacts(session, job, writes, new_rows, now) -> None:  # noqa: ANN001 - as in csv_import
        if any(row.email == "late@example.com" for row, _ in new_rows) and "contact" not in raced:
            assert subscribed.wait(timeout=20)  # batch 2 is decided while batch 1 commits
            raced.append("contact")  # the form adds late@ first
            with postgres_db.session() as other:
                subscriber(other, settings, "late@example.com", confirmed=False)
        real_insert(session, job, writes, new_rows, now)

    monkeypatch.setattr(csv_import, "_flush", flush)
    monkeypatch.setattr(csv_import, "_insert_contacts", insert_contacts)
    summary = run(postgres_db, path, batch_size=3)
    assert raced == ["subscription", "contact"]
    assert counts(summary) == {"rows": 6, "added": 4, "updated": 2, "pending": 4}  # named by the file
    assert table_sizes(postgres_db) == {"contacts": 6, "contact_tags": 0, "subscriptions": 7, "consent_events": 8}
    with postgres_db.session() as s:
        assert [sub.status for sub in find_contact(s, "late@example.com").subscriptions] == ["pending"]


@pytest.mark.postgres
def test_a_batch_committed_while_the_next_one_fails_is_counted_and_resumed_after(
        postgres_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Batch 2 repeats an address of batch 1, so it decides that row after batch 1 commits; that
    # decision fails. Batch 1 is stored, and the note and report say so; nothing of batch 2 is.
    path = write(tmp_path / "dup.csv", "email,name\na@example.com,A\nb@example.com,B\ndup@example.com,D\n"
                 "dup@example.com,Dee\nc@example.com,C\nd@example.com,E\n")
    real_decide = csv_import._decide

    def decide(session, job, rows, *args, **kwargs) -> None:  # noqa: ANN001 - as in csv_import
        if list(rows) and all(row.name == "Dee" for row in rows.values()):  # batch 2's held row
            raise RuntimeError("disk full")
        real_decide(session, job, rows, *args, **kwargs)

    monkeypatch.setattr(csv_import, "_decide", decide)
    with pytest.raises(RuntimeError, match="disk full") as caught:
        run(postgres_db, path, batch_size=3)
    note = "every row up to line 4 is imported, none after it; to resume, run the same import with start line 4"
    assert note in caught.value.__notes__[0]
    assert table_sizes(postgres_db) == {"contacts": 3, "contact_tags": 0, "subscriptions": 3, "consent_events": 3}
    with postgres_db.session() as s:
        assert find_contact(s, "dup@example.com").name == "D"
