"""The rows a benchmark hands to ``bench/run_all.py``: one per figure, each beside the floor measured
in the same run, with the target it is held to.

A benchmark script takes ``--summary-json PATH`` (``add_summary_argument``) and, when given it, writes
its rows there (``write_summary``) as well as printing its own detailed table. ``run_all.py`` runs each
script with a small and a large size, reads the files and prints one table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    benchmark: str  # the script, e.g. "send_issue"
    what: str  # the figure, e.g. "send 100,000, PostgreSQL, 2 dispatchers"
    figure: float
    unit: str  # e.g. "recipients/s", "ms", "MB"
    floor: float | None = None  # what the same work costs bare, measured in the same run
    floor_what: str = ""  # e.g. "sqlite3 + JSON + sendgrid client, same batches"
    target: str = ""  # e.g. ">= 60% of floor", ">= 30,000/s", "p99 < 50 ms"
    met: bool | None = None  # None: no target for this row

    @property
    def ratio(self) -> float | None:
        """figure / floor (for a rate, the share of the floor reached; for a time, how many floors)."""
        return self.figure / self.floor if self.floor else None


def slowest(benchmark: str, kind: str, medians: dict[str, float], context: str, *, floor: float,
            floor_what: str, target_ms: float | None = None, each: str = "one") -> Row:
    """The headline of a benchmark that times many things (pages, queries, reports): the slowest
    median (ms) of ``medians`` (label -> ms), named, beside the floor; with ``target_ms``, the target
    is that every one (``each``: "page") stays under it."""
    label = max(medians, key=medians.__getitem__)
    figure = medians[label]
    target = f"every {each} < {target_ms:g} ms" if target_ms is not None else ""
    return Row(benchmark, f"slowest of {len(medians)} {kind} ({label}), {context}", round(figure, 1), "ms",
               floor=round(floor, 2), floor_what=floor_what, target=target,
               met=figure < target_ms if target_ms is not None else None)


def add_summary_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summary-json", type=Path, metavar="PATH",
                        help="also write this run's figures, floors and targets to PATH (for bench/run_all.py)")


def write_summary(path: Path | None, rows: list[Row]) -> None:
    if path is not None:
        path.write_text(json.dumps([asdict(row) for row in rows], indent=1), encoding="utf-8")


def read_summary(path: Path) -> list[Row]:
    return [Row(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
