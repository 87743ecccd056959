"""Reading a CSV file as records with their physical line numbers, where every way a file can be
broken becomes one ``InputError`` that names the line (and the column, when there is one) and says
what to do.

Why it is shaped this way:

- ``csv`` is lenient: a quote that opens a value and is never closed makes the rest of the file one
  value, with no error, and a value longer than ``csv.field_size_limit()`` stops it with a message
  that names neither line nor column. Lines are therefore fed to ``csv`` through ``_Lines``, which
  counts them, remembers the lines of the record being read, and notices when the file ended in the
  middle of a record: the one sign of a quote never closed.
- Memory stays bounded by a line's length: a line longer than ``MAX_LINE`` (the field size limit)
  is refused before ``csv`` sees it, so no 1 GB "line" is ever held.
- A NUL character never occurs in text: it means binary data (a workbook, an image) or a damaged
  file, and PostgreSQL could not store it anyway.
"""

from __future__ import annotations

import codecs
import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from subscribers.csv_encoding import Encoding, NotInEncoding, binary_error, control_error, label
from subscribers.errors import InputError

MAX_LINE = 128 * 1024  # characters; csv's own default field size limit
DELIMITERS = ",;\t"
_CONTROL = frozenset(map(chr, [*range(0, 9), 11, 12, *range(14, 32)]))  # C0 controls but tab, LF, CR


def _latin1_for_undefined(exc: UnicodeError) -> tuple[str, int]:
    # cp1252 leaves five bytes undefined; read them as Latin-1, as browsers do (WHATWG windows-1252).
    if isinstance(exc, UnicodeDecodeError):
        return exc.object[exc.start:exc.end].decode("latin-1"), exc.end
    raise exc


codecs.register_error("subscribers.cp1252", _latin1_for_undefined)


@dataclass(slots=True)
class Record:
    first_line: int  # physical lines, the file's first line is 1
    last_line: int
    cells: list[str]


class _Lines:
    """The file's physical lines for ``csv``: counted, checked, and the current record's kept."""

    def __init__(self, text: IO[str], path: Path, encoding: Encoding) -> None:
        self.text, self.path, self.encoding = text, path, encoding
        self.number = 0  # lines read so far
        self.ended = False  # the file ended while csv asked for more
        self.record: list[str] = []  # the lines of the record being read

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> str:
        try:
            line = self.text.readline(MAX_LINE + 1)
        except UnicodeDecodeError as exc:
            raise self._not_in_encoding(exc) from None
        except UnicodeError as exc:  # a codec's own refusal, such as UTF-16 bytes with no byte-order mark
            raise InputError(f"{self.path} line {self.number + 1}: cannot be read as {label(self.encoding.codec)} "
                             f"({exc}); save it again as CSV (UTF-8), or name its encoding with --encoding") from None
        if not line:
            self.ended = True
            raise StopIteration
        self.number += 1
        if len(line) > MAX_LINE:
            raise InputError(f"{self.path} line {self.number}: the line is longer than {MAX_LINE:,} characters; "
                             "no row of contacts is that long: is this the right file?")
        if "\x00" in line:
            raise binary_error(self.path, self.number)
        self.record.append(line)
        return line

    def _not_in_encoding(self, exc: UnicodeDecodeError) -> NotInEncoding:
        # The text layer decodes a chunk at a time (the one in exc.object, just read) and has
        # handed out every line before it but the one it was in: count the lines up to the bad byte.
        before = exc.object[:exc.start]
        line = self.number + 1 + before.count(b"\n")
        offset = self.text.buffer.tell() - len(exc.object) + exc.start
        return NotInEncoding(f"{self.path} line {line}: these bytes are not {label(self.encoding.codec)} text, which "
                             "the rest of the file is read as (part of the file in another encoding, or a damaged "
                             "file?); save it again as CSV (UTF-8), or name its encoding with --encoding", offset)


class CsvFile:
    """An open CSV file: ``header`` (the first line that is not blank, which also decides the
    delimiter) and ``records()``, the rows after it. Use as a context manager."""

    def __init__(self, path: Path, encoding: Encoding) -> None:
        self.path, self.encoding = path, encoding
        errors = "subscribers.cp1252" if encoding.codec == "cp1252" else "strict"
        try:  # newline="": csv sees raw line ends; "\r", "\n" and "\r\n" all end a line
            self.text = path.open("r", encoding=encoding.codec, errors=errors, newline="")
        except OSError as exc:
            raise InputError(f"{path}: cannot read the file ({exc.strerror})") from None
        try:
            self.header = self._read_header()
        except BaseException:
            self.text.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.text.close()

    def bytes_read(self) -> int:
        return self.text.buffer.tell()  # approximate: the text layer reads ahead

    def _read_header(self) -> Record:
        self.lines = _Lines(self.text, self.path, self.encoding)
        first = next(self.lines, "")
        while first and not first.strip():
            self.lines.record.clear()
            first = next(self.lines, "")
        if not first:
            raise InputError(f"{self.path}: the file is empty; it needs a header line naming the columns "
                             "(e.g. email,name)")
        if _CONTROL.intersection(first):
            raise control_error(self.path, self.lines.number)
        # Spreadsheets in many locales write ';' (or tabs): the header line tells which.
        self.delimiter = max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","
        self.reader = csv.reader(itertools.chain([first], self.lines), delimiter=self.delimiter)
        self.names: list[str] = []
        header = self._next_record(self.lines.number, keep=[first])
        if header is None:  # unreachable: the first line is not blank
            raise InputError(f"{self.path}: the file is empty")
        self.names = [name.strip() for name in header.cells]
        return header

    def records(self) -> Iterator[Record]:
        """The records after the header, blank lines included (as empty lists)."""
        while (record := self._next_record(self.lines.number + 1)) is not None:
            yield record

    def column(self, index: int) -> str:
        """How messages name a column: by its header, else by its number."""
        if index < len(self.names) and self.names[index]:
            name = self.names[index]
            return f"column {name if len(name) <= 40 else name[:40] + '…'!r}"
        return f"column {index + 1}"

    def _next_record(self, first_line: int, keep: list[str] | None = None) -> Record | None:
        self.lines.record[:] = keep or []
        try:
            cells = next(self.reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise self._unreadable(first_line, exc) from None
        if self.lines.ended:  # csv asked for more lines and the file ended: inside quotes
            raise InputError(
                f"{self.path} line {first_line}, {self.column(len(cells) - 1)}: a quote opens this value and is "
                f"never closed, so every line from {first_line} to the end of the file (line {self.lines.number}) "
                "would be read as this one value; close the quote or remove it, then import again")
        return Record(first_line, self.lines.number, cells)

    def _unreadable(self, first_line: int, exc: csv.Error) -> InputError:
        if "field larger than field limit" not in str(exc):
            return InputError(f"{self.path} line {first_line}: the CSV cannot be read ({exc})")
        # Lines are shorter than the limit, so the value grew over several lines: inside quotes. The
        # record's lines but the last hold less than the limit; read alone, they show which column.
        cells = next(csv.reader(self.lines.record[:-1], delimiter=self.delimiter), [])
        where = f", {self.column(len(cells) - 1)}" if cells else ""
        return InputError(
            f"{self.path} line {first_line}{where}: a quote opens this value and is not closed by line "
            f"{self.lines.number}, where the value passes {csv.field_size_limit():,} characters; "
            "close the quote or remove it, then import again")
