"""Cells that a spreadsheet opens as text (OWASP "CSV injection"), for every CSV the product writes,
and the way back for the CSV it reads.

Addresses, names and custom fields come from public forms (``=1+2@example.com`` is a valid
address), and staff open exports, reports and import reports in Excel, LibreOffice or Sheets, which
run a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula. OWASP's
remedy: such a cell gets a leading single quote, which spreadsheets read as "this is text".

Two choices, and why:

- A cell that is only a signed number or phone number (``-12.50``, ``+1 (555) 010-0100``) is left as
  it is: with no letters there is no function, reference or link to run, and a prefix would turn
  staff's figures into text.
- The prefix is undone on import (``original_cell``), so an export imported again gives back the
  same addresses. To make that exact, a value that itself starts with quotes before a formula
  character gets one quote more: ``original_cell(safe_cell(x)) == x`` for every ``x``. A quote that
  a person typed in a spreadsheet to keep ``+44 20 …`` as text is removed the same way, which is
  what they meant by it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from numbers import Number
from typing import IO, Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-][\d ().-]*")  # digits, spaces, brackets, dots and signs: nothing to run


def safe_cell(value: str) -> str:
    """``value`` with a leading ``'`` when a spreadsheet would run it as a formula."""
    if value.lstrip("'").startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return f"'{value}"
    return value


def original_cell(value: str) -> str:
    """The value ``safe_cell`` was given: one leading ``'`` before a formula character is dropped."""
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_START):
        return value[1:]
    return value


class SafeWriter:
    """``csv.writer`` whose every cell goes through ``safe_cell``: no column can be forgotten.
    Numbers stay numbers and None an empty cell, as ``csv`` writes them; anything else is text."""

    def __init__(self, file: IO[str], **fmtparams: Any) -> None:
        self._writer = csv.writer(file, **fmtparams)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([cell if cell is None or isinstance(cell, Number) else safe_cell(str(cell))
                               for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
