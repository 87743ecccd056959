"""newsletter segments ...: saved filters over contacts.

A thin face over ``subscribers.segments``: the definition format, its validation and the SQL live
there. Counts are of mailable contacts (suppressed addresses left out), what a send would reach.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from newsletter.cli.common import (
    audited,
    friendly_errors,
    out,
    print_json,
    print_rows,
    unit_of_work,
)
from newsletter.staff.segment_builder import parse_text
from newsletter.errors import InputError
from newsletter.staff.audit import AuditAction
from subscribers import segments as segment_service

segments_app = typer.Typer(help="Segments: saved filters over contacts, counted in SQL.", no_args_is_help=True)

PREVIEW = 10


def load_definition(file: Path | None, text: str | None) -> Any:
    """A definition from --file (YAML or JSON; '-' reads stdin) or from --json text."""
    if (file is None) == (text is None):
        raise InputError("give the definition with --file FILE or with --json TEXT (one of them)")
    if text is not None:
        return _parse("--json", text, as_json=True)
    assert file is not None
    where = "stdin" if str(file) == "-" else str(file)
    try:
        raw = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {where}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text") from None
    return _parse(where, raw, as_json=file.suffix.lower() == ".json")


def _parse(where: str, raw: str, *, as_json: bool) -> Any:
    """JSON, or YAML read as plain data (YAML is a superset of JSON, so stdin may be either)."""
    try:
        return json.loads(raw) if as_json else parse_text(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # the JSON decoder recurses once per bracket
        raise InputError(f"{where}: nested too deeply to be a segment definition") from None
    except ValueError as exc:  # parse_text's one-line reason
        raise InputError(f"{where}: {exc}") from None


@segments_app.command("save")
@friendly_errors
def segments_save(
    name: str,
    file: Annotated[Path | None, typer.Option("--file", help="Definition as YAML or JSON ('-': stdin).")] = None,
    definition: Annotated[str | None, typer.Option("--json", help="Definition as JSON text.")] = None,
    description: Annotated[str | None, typer.Option(help="What the segment is for; kept if not given.")] = None,
) -> None:
    """Create a segment, or replace the definition of one with that name."""
    data = load_definition(file, definition)
    with unit_of_work() as (_settings, session):
        existed = segment_service.find_segment(session, name) is not None
        segment = segment_service.save_segment(session, name, data, description)
        audited(session, AuditAction.SEGMENT_SAVED, f"segment {segment.id}", "changed" if existed else "created")
        total = segment_service.count(session, segment.definition)
    word = "Replaced" if existed else "Saved"
    out.print(f"{word} segment {name!r}: {total} mailable contact{'s' * (total != 1)}.", highlight=False)


@segments_app.command("list")
@friendly_errors
def segments_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every segment with its count of mailable contacts."""
    with unit_of_work() as (_settings, session):
        rows = [
            {"name": s.name, "description": s.description, "count": segment_service.count(session, s.definition),
             "definition": s.definition, "updated_at": s.updated_at.isoformat()}
            for s in segment_service.list_segments(session)
        ]
    print_rows(rows, as_json, {"name": "name", "contacts": "count", "description": "description",
                               "updated": "updated_at"})


@segments_app.command("show")
@friendly_errors
def segments_show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The definition, the count and the first contacts (a preview)."""
    with unit_of_work() as (_settings, session):
        segment = segment_service.get_segment(session, name)
        data: dict[str, Any] = {
            "name": segment.name,
            "description": segment.description,
            "definition": segment.definition,
            "count": segment_service.count(session, segment.definition),
            "preview": [{"id": c.id, "email": c.email}
                        for c in segment_service.contacts(session, segment.definition, limit=PREVIEW)],
            "updated_at": segment.updated_at.isoformat(),
        }
    if as_json:
        print_json(data)
        return
    out.print(f"Segment {data['name']}" + (f": {data['description']}" if data["description"] else ""),
              highlight=False)
    out.print(yaml.safe_dump(data["definition"], sort_keys=False, allow_unicode=True).rstrip(), highlight=False)
    out.print(f"{data['count']} mailable contact{'s' * (data['count'] != 1)}; the first {len(data['preview'])}:",
              highlight=False)
    print_rows(data["preview"], False, {"id": "id", "email": "email"})


@segments_app.command("count")
@friendly_errors
def segments_count(
    name: str,
    include_suppressed: Annotated[bool, typer.Option(help="Count suppressed addresses too.")] = False,
) -> None:
    """Print how many contacts the segment holds (mailable ones unless --include-suppressed)."""
    with unit_of_work() as (_settings, session):
        total = segment_service.count(session, name, mailable_only=not include_suppressed)
    out.print(str(total), highlight=False)


@segments_app.command("delete")
@friendly_errors
def segments_delete(name: str) -> None:
    """Delete a segment (contacts are not touched)."""
    with unit_of_work() as (_settings, session):
        segment_id = segment_service.get_segment(session, name).id
        segment_service.delete_segment(session, name)
        audited(session, AuditAction.SEGMENT_DELETED, f"segment {segment_id}")
    out.print(f"Deleted segment {name!r}.", highlight=False)
