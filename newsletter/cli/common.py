"""What every command shares: the error handling, the unit of work and the output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from newsletter.bootstrap import open_database
from newsletter.config import Settings, get_settings
from newsletter.errors import InputError, NotFound
from newsletter.reports.output import print_whole
from newsletter.sending.dispatch import RecordingFailed, SendingStopped
from newsletter.staff import audit as audit_log
from newsletter.staff.audit import AuditAction

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])
# Exit code of a command that sent but left deliveries held as unknown (1: not found, 2: bad input):
# the work is done, yet nobody knows whether some recipients got it, so a script must not read success.
EXIT_UNSETTLED = 3


def friendly_errors(func: F) -> F:
    """Turn the errors a user can act on into one clear line and a non-zero exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NotFound as exc:  # escape: a message may quote a value such as a header "[/b]"
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None
        except (InputError, ValueError, SendingStopped, RecordingFailed) as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def unit_of_work() -> Iterator[tuple[Settings, Session]]:
    settings = get_settings()
    db = open_database(settings)
    with db.session() as session:
        yield settings, session


def audited(session: Session, action: AuditAction, target: str | None = None, detail: str | None = None) -> None:
    """The audit entry of a sensitive command, in the command's own transaction (actor "cli")."""
    audit_log.record(session, audit_log.CLI, action, target, detail)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def print_rows(rows: list[dict[str, Any]], as_json: bool, columns: dict[str, str]) -> None:
    """A listing as JSON, or as a table of ``columns`` (header -> key); timestamps cut to minutes."""
    if as_json:
        print_json(rows)
        return
    table = Table(*columns)
    for row in rows:
        cells = [row[key] for key in columns.values()]
        table.add_row(*(Text("" if c is None else str(c)[:16] if key.endswith("_at") else str(c))
                        for c, key in zip(cells, columns.values())))
    print_whole(table, out)  # a status ("sent, 3 unknown") or a header is never cut or wrapped
