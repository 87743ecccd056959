"""CSV import, the way batches are written: on PostgreSQL through COPY into a temporary table
(values that COPY's text format must escape arrive unchanged), addresses repeated across batch
boundaries on both backends, and the next batch read ahead in a thread (errors and early stops)."""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.database import Database
from subscribers.contacts import find_contact
from subscribers.csv_import import ImportSummary, _copied, _ReadAhead, import_csv
from subscribers.models import ConsentEvent, Contact, ContactTag, Subscription

COUNTS = ("rows", "added", "updated", "unchanged", "rejected", "duplicates", "pending")

# Each is a name and a custom value that COPY's text format escapes or could misread: a backslash,
# a tab, a line break (custom values may hold one), the text of COPY's NULL marker, quotes, and
# characters beyond ASCII.
AWKWARD = [
    ("Back\\slash", "C:\\temp\\new"),
    ("Tab\there", "a\tb"),
    ("Quote \"Q\" O'Neil", "multi\nline\r\nvalue"),
    ("\\N", "\\N"),
    ("NULL", "null"),
    ("Zoë Ærø 山田", "émoji 🎉 ✓"),
    ("\\.", "\\."),
]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue("db" if request.param == "sqlite" else "postgres_db")


def run(database: Database, path: Path, **options) -> ImportSummary:
    return import_csv(database.engine, path, list_slug="newsletter", default_timezone="UTC", **options)


def counts(summary: ImportSummary) -> dict[str, int]:
    return {key: getattr(summary, key) for key in COUNTS if getattr(summary, key)}


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_awkward_values_arrive_unchanged(database: Database, tmp_path: Path) -> None:
    rows = [[f"odd{i}@example.com", name, value, f"t\\{i};x\ty"] for i, (name, value) in enumerate(AWKWARD)]
    path = write_rows(tmp_path / "odd.csv", ["email", "name", "note", "tags"], rows)
    summary = run(database, path, batch_size=3)
    assert counts(summary) == {"rows": len(AWKWARD), "added": len(AWKWARD), "pending": len(AWKWARD)}
    with database.session() as s:
        for i, (name, value) in enumerate(AWKWARD):
            contact = find_contact(s, f"odd{i}@example.com")
            assert contact.name == " ".join(name.split())  # names are folded to one line (clean_name)
            assert contact.custom_fields == {"note": value}
            assert contact.tag_names == sorted([f"t\\{i}", "x y"])
    assert counts(run(database, path, batch_size=3)) == {"rows": len(AWKWARD), "unchanged": len(AWKWARD)}


def test_repeats_across_batch_boundaries(database: Database, tmp_path: Path) -> None:
    """An address in batch 1 comes back in batch 2 (other values) and in batch 3 (more tags), and
    a second address repeats on both sides of a boundary: each is one contact, one subscription and
    one "requested" event, later values win, tags add up, and every repeat counts as a duplicate."""
    rows = [
        ["ann@example.com", "Ann", "a", "1"],
        ["bob@example.com", "Bob", "", ""],
        ["cat@example.com", "Cat", "", ""],   # last row of batch 1
        ["BOB@example.com", "", "b", ""],     # first row of batch 2
        ["ANN@example.com", "Ann Lee", "", "2"],
        ["dan@example.com", "Dan", "", ""],
        ["eve@example.com", "Eve", "", ""],
        ["ann@EXAMPLE.com", "", "c", ""],     # batch 3
    ]
    path = write_rows(tmp_path / "repeats.csv", ["email", "name", "tags", "visits"], rows)
    summary = run(database, path, batch_size=3)
    assert counts(summary) == {"rows": 8, "added": 5, "duplicates": 3, "pending": 5}
    with database.session() as s:
        ann = find_contact(s, "ann@example.com")
        assert (ann.name, ann.custom_fields, ann.tag_names) == ("Ann Lee", {"visits": "2"}, ["a", "c"])
        assert find_contact(s, "bob@example.com").tag_names == ["b"]
        assert s.scalar(select(func.count()).select_from(Subscription)) == 5
        assert s.scalar(select(func.count()).select_from(ConsentEvent)) == 5
        assert s.scalar(select(func.count()).select_from(ContactTag)) == 3
    again = run(database, path, batch_size=3)
    assert (again.added, again.duplicates, again.rows) == (0, 3, 8)
    with database.session() as s:
        ann = find_contact(s, "ann@example.com")
        assert (ann.name, ann.custom_fields, ann.tag_names) == ("Ann Lee", {"visits": "2"}, ["a", "c"])
        assert s.scalar(select(func.count()).select_from(ConsentEvent)) == 5  # no second request


def test_read_ahead_hands_on_batches_and_errors() -> None:
    def batches() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("line 7: unreadable")

    with _ReadAhead(batches()) as ahead:  # type: ignore[arg-type]
        seen = []
        with pytest.raises(ValueError, match="line 7"):
            for batch in ahead:
                seen.append(batch)
    assert seen == [1, 2]


def test_read_ahead_stops_its_thread_when_the_import_stops_early() -> None:
    read: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            n += 1
            read.append(n)
            yield n

    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        with _ReadAhead(endless()) as ahead:  # type: ignore[arg-type]
            for batch in ahead:
                if batch == 3:
                    raise KeyboardInterrupt
    assert threading.active_count() == before
    assert len(read) <= 5  # at most one batch waiting and one being read when it stopped


@pytest.mark.postgres
def test_a_value_copy_refuses_is_not_quoted_in_the_error(postgres_db: Database) -> None:
    # The import checks lengths before it writes, so only a bug gets here; PostgreSQL's own message
    # would quote the value (an address) and the error may be logged.
    address = "x" * 400 + "@example.com"
    with postgres_db.session() as s, pytest.raises(RuntimeError) as raised:
        _copied(s, Contact.__table__, ("email",), [(address,)])
    assert "import_contacts" in str(raised.value) and "x" * 20 not in str(raised.value)
