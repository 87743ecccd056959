"""CSV files in the encodings staff actually get: each file is written here, in its encoding, and
imported through the real import (and the real CLI). Whatever the encoding, an import either
stores every name exactly as written, saying which encoding it read, or refuses the file in one
line naming the likely encodings, with nothing stored: never garbled names ("mojibake") in silence.
Also: no error message echoes an address."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from subscribers import csv_encoding
from subscribers.csv_encoding import detect_encoding
from subscribers.csv_import import ImportSummary, import_csv
from subscribers.errors import InputError
from subscribers.models import Contact, MailingList

JAPANESE = ["山田 太郎", "佐藤 花子", "鈴木 一郎", "高橋 美咲", "田中 健太", "渡辺 さくら", "伊藤 直樹", "中村 陽子",
            "小林 翔太", "加藤 由美", "吉田 大輔", "山本 あゆみ"]
WESTERN = ["José Núñez", "Zoë “Zo” Brontë", "François Lefèvre", "Iñigo Peña", "Renée O’Neil", "Chloë Noël",
           "Mañana Çelik", "Ann Lee"]
LATIN_1 = ["Jürgen Groß", "Søren Ørsted", "Ana Conceição", "José Núñez", "Björn Ågren", "Chloë Noël"]
GREEK = ["Γιώργος Παπαδόπουλος", "Μαρία Κωνσταντίνου", "Δημήτρης Νικολάου", "Ελένη Γεωργίου", "Άννα Δημητρίου",
         "Σοφία Αλεξίου"]
CYRILLIC = ["Иван Петров", "Мария Иванова", "Сергей Смирнов", "Ольга Кузнецова", "Дмитрий Попов", "Анна Соколова"]
NOTHING = {"contacts": 0, "lists": 0}

# encoding written, names, how the report names what it read
ACCEPTED = {
    "shift_jis": ("shift_jis", JAPANESE, "read as Shift_JIS (detected)"),
    "cp1252": ("cp1252", WESTERN, "read as Windows-1252 (detected)"),
    "latin-1": ("latin-1", LATIN_1, "read as Windows-1252 (detected)"),  # the same characters at the same bytes
    "iso-8859-7": ("iso8859_7", GREEK, "read as ISO-8859-7 (detected)"),
    "windows-1253": ("cp1253", GREEK, "read as Windows-1253 (detected)"),
    "windows-1251": ("cp1251", CYRILLIC, "read as Windows-1251 (detected)"),
    "utf-16-le-bom": ("utf-16-le", WESTERN + JAPANESE, "read as UTF-16 (byte-order mark)"),
    "utf-16-be-bom": ("utf-16-be", GREEK + CYRILLIC, "read as UTF-16 (byte-order mark)"),
    "utf-8": ("utf-8", WESTERN + GREEK + JAPANESE, "read as UTF-8"),
    "utf-8-bom": ("utf-8-sig", CYRILLIC + JAPANESE, "read as UTF-8 (byte-order mark)"),
}
BOMS = {"utf-16-le": "\ufeff", "utf-16-be": "\ufeff"}  # utf-8-sig writes its own


def people(names: list[str]) -> list[tuple[str, str]]:
    return [(f"person{i}@example.org", name) for i, name in enumerate(names)]


def write_csv(path: Path, rows: list[tuple[str, str]], encoding: str, header: str = "email,name,clinic") -> Path:
    text = BOMS.get(encoding, "") + header + "\n" + "".join(f"{email},{name},LA\n" for email, name in rows)
    path.write_bytes(text.encode(encoding))
    return path


def run(db: Database, path: Path, **options: object) -> ImportSummary:
    return import_csv(db.engine, path, list_slug="newsletter", default_timezone="America/Los_Angeles",
                      **options)  # type: ignore[arg-type]


def stored_names(db: Database) -> dict[str, str | None]:
    with db.session() as s:
        return dict(s.execute(select(Contact.email, Contact.name)).all())


def sizes(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {"contacts": s.scalar(select(func.count()).select_from(Contact)),
                "lists": s.scalar(select(func.count()).select_from(MailingList))}


def refused(db: Database, path: Path, **options: object) -> str:
    """Refused whole: one line, naming the file, nothing stored, no report written."""
    with pytest.raises(InputError) as caught:
        run(db, path, **options)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)) and message.endswith("; nothing was imported")
    assert sizes(db) == NOTHING and not path.with_name(f"{path.stem}.report.csv").exists()
    return message.removeprefix(str(path))


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_each_encoding_is_read_and_every_name_is_stored_exactly(db: Database, tmp_path: Path, case: str) -> None:
    encoding, names, read_as = ACCEPTED[case]
    rows = people(names)
    path = write_csv(tmp_path / f"{case}.csv", rows, encoding)
    if not encoding.startswith("utf"):
        with pytest.raises(UnicodeDecodeError):
            path.read_bytes().decode("utf-8")  # really not UTF-8: the fast path cannot take it
    summary = run(db, path)
    assert summary.added == len(rows) and summary.rejected == 0
    assert stored_names(db) == dict(rows)  # exactly the names written: no mojibake
    assert summary.read_as.startswith(read_as)
    with summary.report_path.open(encoding="utf-8-sig", newline="") as report:
        assert list(csv.reader(report))[-1][3].endswith(f"; {summary.read_as}")  # the report's status row says it too


def test_a_western_file_names_the_encodings_that_scored_as_well(db: Database, tmp_path: Path) -> None:
    """Spanish names in Windows-1252 score the same as Windows-1250 ("Ińigo"); Windows-1252, the
    encoding of Excel's "CSV" here, wins the tie, and the report says the other one was as likely."""
    path = write_csv(tmp_path / "western.csv", people(WESTERN), "cp1252")
    summary = run(db, path)
    assert summary.encoding == "cp1252" and stored_names(db) == dict(people(WESTERN))
    assert summary.read_as.startswith("read as Windows-1252 (detected); Windows-12")
    assert summary.read_as.endswith("scored as well: if names look wrong, import again with --encoding")


def test_a_short_ambiguous_file_is_read_honestly(db: Database, tmp_path: Path) -> None:
    """A few ASCII rows and one byte above 127: either a reading that gives back the original
    name, or a refusal. Never a guess that garbles it."""
    rows = [("ann@example.org", "Ann"), ("bob@example.org", "Bob"), ("renee@example.org", "Renée")]
    path = write_csv(tmp_path / "short.csv", rows, "cp1252")
    assert path.read_bytes().count(b"\xe9") == 1 and sum(b > 127 for b in path.read_bytes()) == 1
    try:
        summary = run(db, path)
    except InputError as exc:
        assert "could not tell the file's encoding" in str(exc) and sizes(db) == NOTHING
    else:
        assert stored_names(db) == dict(rows) and "(detected)" in summary.read_as


HEBREW = ["דוד כהן", "שרה לוי", "משה מזרחי"]
CANNOT_TELL = ("could not tell the file's encoding (it looks like Windows-1251, Windows-1253 or Windows-1255); save "
               "it as UTF-8 and import again, or name its encoding with --encoding; nothing was imported")


def test_a_file_that_cannot_be_told_is_refused_naming_the_likely_encodings(db: Database, tmp_path: Path) -> None:
    """Three Hebrew names read as cleanly in Cyrillic and Greek: too few letters for a language to
    be recognised in any reading, so nothing tells them apart."""
    rows = people(HEBREW)
    path = write_csv(tmp_path / "three.csv", rows, "cp1255")
    assert refused(db, path) == f": {CANNOT_TELL}"
    # Staff who know the encoding say so, and the names are stored as written.
    summary = run(db, path, encoding="windows-1255")
    assert stored_names(db) == dict(rows) and summary.read_as == "read as Windows-1255 (given)"


@pytest.mark.parametrize("name", ["klingon", "rot13", "base64", ""])
def test_an_unknown_encoding_name_is_one_clear_line(db: Database, tmp_path: Path, name: str) -> None:
    path = write_csv(tmp_path / "people.csv", people(WESTERN), "cp1252")
    with pytest.raises(InputError) as caught:
        run(db, path, encoding=name)
    assert str(caught.value) == (f"unknown encoding {name!r}: give a name such as utf-8, cp1252 (Windows-1252), "
                                 "shift_jis or iso-8859-7")
    assert sizes(db) == NOTHING


def test_a_given_encoding_that_does_not_fit_the_file_is_refused_with_the_line(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "people.csv", people(["Ann Lee", "Bob Smith", "Iñigo Peña"]), "cp1252")
    message = refused(db, path, encoding="utf-8")
    assert message.startswith(" line 4: these bytes are not UTF-8 text")
    # A UTF-8 file given as UTF-8, BOM and all: the BOM is not part of the first header.
    bom = write_csv(tmp_path / "bom.csv", people(JAPANESE), "utf-8-sig")
    assert run(db, bom, encoding="UTF8").read_as == "read as UTF-8 (given)"
    assert stored_names(db) == dict(people(JAPANESE))


def test_utf8_lines_next_to_lines_in_another_encoding_are_refused(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "pasted.csv"
    path.write_bytes("email,name\nann@example.org,Renée\n".encode() + "bob@example.org,Zoë\n".encode("cp1252"))
    assert refused(db, path) == (": some lines are UTF-8 and others are not, so no one encoding reads the whole "
                                 "file (rows pasted together from two sources?); save it as UTF-8 and import again; "
                                 "nothing was imported")


LATE_NAME = "last@example.org,Renée,LA\n".encode("cp1252")


def ascii_rows(count: int) -> str:
    return "".join(f"person{i}@example.org,Person {i},LA\n" for i in range(count))


def test_detection_reads_a_bounded_sample(tmp_path: Path) -> None:
    """2 MB of ASCII and one Windows-1252 name at the end, past the head and the windows: the sample
    shows nothing but ASCII, so the file is not read twice to judge it."""
    path = tmp_path / "big.csv"
    path.write_bytes(("email,name,clinic\n" + ascii_rows(60_000)).encode() + LATE_NAME)
    size, head = path.stat().st_size, csv_encoding.HEAD_BYTES
    last_window = head + (size - head) * (csv_encoding.WINDOWS - 1) // csv_encoding.WINDOWS
    assert size > 2_000_000 and size - 100 > last_window + csv_encoding.WINDOW_BYTES  # the name is outside
    encoding = detect_encoding(path)
    assert (encoding.codec, encoding.ascii_sample) == ("utf-8-sig", True)


def test_a_byte_past_the_sample_is_caught_and_judged_before_anything_is_stored(db: Database, tmp_path: Path) -> None:
    """The check pass reads the whole file strictly: the byte the sample missed sends its
    neighbourhood to detection, and the file is read in what that finds."""
    path = tmp_path / "late.csv"
    path.write_bytes(("email,name,clinic\n" + ascii_rows(50_000)).encode() + LATE_NAME)
    summary = run(db, path)
    assert summary.added == 50_001 and summary.read_as.startswith("read as Windows-1252 (detected)")
    with db.session() as s:
        assert s.scalar(select(Contact.name).where(Contact.email == "last@example.org")) == "Renée"


def test_a_utf8_file_with_a_later_line_in_another_encoding_is_refused(db: Database, tmp_path: Path) -> None:
    """UTF-8 names first, then (past the sample) a line in Windows-1252: no one encoding reads it."""
    path = tmp_path / "late.csv"
    path.write_bytes(("email,name,clinic\nfirst@example.org,Zoë,LA\n" + ascii_rows(50_000)).encode()
                     + "last@example.org,Renée,LA\n".encode("cp1252"))
    assert refused(db, path).startswith(" line 50003: these bytes are not UTF-8 text, which the rest of the file is "
                                        "read as")


def test_a_refused_encoding_never_echoes_the_file(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "three.csv", people(HEBREW), "cp1255")
    assert "@" not in refused(db, path) and "example" not in refused(db, path)


# --- no address in a message ------------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    "ann@example.org,Ann\nbob@example.org,Bob\n",  # no header row at all
    "Ann,ann@example.org,LA\nBob,bob@example.org,SF\n",  # ... with the address further along
    "ann@example.org,ann@example.org\nbob@example.org,bob@example.org\n",  # once two columns "of the same name"
    "name,ann@example.org\nBob,bob@example.org\n",
])
def test_a_file_without_a_header_row_is_refused_without_echoing_an_address(db: Database, tmp_path: Path,
                                                                            content: str) -> None:
    path = tmp_path / "people.csv"
    path.write_text(content, encoding="utf-8")
    message = refused(db, path)
    assert "@" not in message and "example.org" not in message
    assert message == (" line 1: the first row looks like data, not a header (it holds an email address); add a "
                       "header row naming the columns, with an email column (e.g. email,name), then import again; "
                       "nothing was imported")


def test_a_header_without_an_email_column_still_lists_its_columns(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("Name,Phone\nAnn,555\n", encoding="utf-8")
    assert "no email column" in refused(db, path) and "the header line has: 'Name', 'Phone'" in refused(db, path)


# --- the CLI ---------------------------------------------------------------------------------------

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["contacts", "import", *args, "--list", "newsletter"])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_cli_says_which_encoding_it_read(settings: Settings, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "japan.csv", people(JAPANESE), "shift_jis")
    code, output = cli(str(path))
    assert code == 0 and "File read as Shift_JIS (detected)." in output
    with Database.from_settings(settings).session() as s:
        assert sorted(s.scalars(select(Contact.name))) == sorted(JAPANESE)
    code, output = cli(str(path), "--json")
    assert code == 0 and json.loads(output)["read_as"] == "read as Shift_JIS (detected)"
    assert json.loads(output)["encoding"] == "cp932" and json.loads(output)["unchanged"] == len(JAPANESE)


def test_cli_refuses_a_file_it_cannot_tell_in_one_line_and_takes_encoding(settings: Settings, tmp_path: Path) -> None:
    rows = people(HEBREW)
    path = write_csv(tmp_path / "three.csv", rows, "cp1255")
    code, output = cli(str(path))
    assert code == 2 and output.strip().splitlines() == [f"error: {path}: {CANNOT_TELL}"]
    with Database.from_settings(settings).session() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 0
    code, output = cli(str(path), "--encoding", "klingon")
    assert code == 2 and output.strip().splitlines() == [
        "error: unknown encoding 'klingon': give a name such as utf-8, cp1252 (Windows-1252), shift_jis or iso-8859-7"]
    code, output = cli(str(path), "--encoding", "cp1255")
    assert code == 0 and "File read as Windows-1255 (given)." in output
    with Database.from_settings(settings).session() as s:
        assert dict(s.execute(select(Contact.email, Contact.name)).all()) == dict(rows)


def test_cli_never_prints_an_address_for_a_file_without_a_header(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("ann@example.org,Ann\nbob@example.org,Bob\n", encoding="utf-8")
    code, output = cli(str(path))
    assert code == 2 and "looks like data, not a header" in output and "@" not in output


@pytest.mark.postgres
def test_names_in_legacy_encodings_are_stored_exactly_on_postgresql(postgres_db: Database, tmp_path: Path) -> None:
    rows = people(JAPANESE) + [(f"greek{i}@example.org", name) for i, name in enumerate(GREEK)]
    japan = write_csv(tmp_path / "japan.csv", people(JAPANESE), "shift_jis")
    greece = write_csv(tmp_path / "greece.csv", rows[len(JAPANESE):], "iso8859_7")
    assert run(postgres_db, japan).read_as == "read as Shift_JIS (detected)"
    assert run(postgres_db, greece).read_as == "read as ISO-8859-7 (detected)"
    assert stored_names(postgres_db) == dict(rows)
