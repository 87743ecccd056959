"""newsletter sensitive ...: mark custom fields, tags and segments as revealing health information.

A thin face over ``newsletter.sensitive``; what a mark does is the health-information policy's
(``newsletter.health_policy``): under the minimal policy nothing marked is sent to the provider.
"""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter import health_policy
from newsletter import sensitive as sensitive_service
from newsletter.cli.common import friendly_errors, out, print_rows, unit_of_work
from newsletter.staff.audit import CLI

sensitive_app = typer.Typer(help="Custom fields, tags and segments marked as revealing health information.",
                            no_args_is_help=True)

KIND_HELP = "field (a custom field), tag or segment."


@sensitive_app.command("list")
@friendly_errors
def sensitive_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every mark, and the policy they serve."""
    with unit_of_work() as (settings, session):
        rows = [{"kind": m.kind, "name": m.name, "marked_by": m.marked_by, "marked_at": m.marked_at.isoformat()}
                for m in sensitive_service.listing(session)]
    if not as_json:
        out.print(health_policy.marks_effect(settings), highlight=False)
    print_rows(rows, as_json, {"kind": "kind", "name": "name", "marked by": "marked_by", "marked": "marked_at"})


@sensitive_app.command("mark")
@friendly_errors
def sensitive_mark(kind: Annotated[str, typer.Argument(help=KIND_HELP)], name: str) -> None:
    """Mark a custom field, tag or segment as sensitive (a segment by its name)."""
    with unit_of_work() as (settings, session):
        marked, new = sensitive_service.mark(session, kind, name, CLI)
    state = "Marked" if new else "Already marked"
    out.print(f"{state}: {marked.kind_label} {marked.name!r} is sensitive. {health_policy.marks_effect(settings)}", highlight=False)


@sensitive_app.command("unmark")
@friendly_errors
def sensitive_unmark(kind: Annotated[str, typer.Argument(help=KIND_HELP)], name: str) -> None:
    """Take a mark away: the field, tag or segment is no longer treated as sensitive."""
    with unit_of_work() as (_settings, session):
        kind = sensitive_service.check_kind(kind)
        name = sensitive_service.unmark(session, kind, name, CLI)
    out.print(f"Unmarked: {sensitive_service.KINDS[kind]} {name!r} is no longer marked sensitive.", highlight=False)
