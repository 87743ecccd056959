"""newsletter api-tokens ...: bearer tokens of the REST API (/api/v1), for the terminal. A thin face over
``newsletter.api_tokens``: each change is audited there, with "cli" as the actor."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter import api_tokens
from newsletter.cli.common import friendly_errors, out, print_json, print_rows, unit_of_work
from newsletter.staff.audit import CLI

api_tokens_app = typer.Typer(help="Bearer tokens of the REST API (/api/v1): create, list, revoke.",
                             no_args_is_help=True)
SCOPES = ", ".join(api_tokens.Scope)


@api_tokens_app.command("create")
@friendly_errors
def create(
    name: Annotated[str, typer.Argument(help="What will use it, e.g. 'booking system'.")],
    scope: Annotated[list[str], typer.Option("--scope", help=f"What it may do (repeat for several): {SCOPES}.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print id, name, scopes and secret as JSON.")] = False,
) -> None:
    """Make a token. Its secret is printed this once: only its hash is kept."""
    with unit_of_work() as (_settings, session):
        token, secret = api_tokens.create(session, name, scope, actor=CLI)
        token_id, scopes, label = token.id, token.scopes, token.name
    if as_json:
        print_json({"id": token_id, "name": label, "scopes": scopes.split(), "secret": secret})
        return
    out.print(f"Made API token {token_id} ({scopes}). Its secret, shown this once (only its hash is kept):",
              highlight=False)
    out.print(secret, highlight=False, markup=False)


@api_tokens_app.command("list")
@friendly_errors
def list_tokens(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every token: its name, scopes, who made it and when, when it was last used, whether revoked."""
    with unit_of_work() as (_settings, session):
        rows = [{"id": t.id, "name": t.name, "hint": t.hint + "…", "scopes": t.scopes, "created_by": t.created_by,
                 "created_at": t.created_at, "last_used_at": t.last_used_at, "revoked_at": t.revoked_at}
                for t in api_tokens.all_tokens(session)]
    print_rows(rows, as_json, {"id": "id", "name": "name", "starts": "hint", "scopes": "scopes",
                               "created": "created_at", "last used": "last_used_at", "revoked": "revoked_at"})


@api_tokens_app.command("revoke")
@friendly_errors
def revoke(token_id: Annotated[int, typer.Argument(help="The token's id (see 'api-tokens list').")]) -> None:
    """Revoke a token: its next call is refused (401)."""
    with unit_of_work() as (_settings, session):
        changed = api_tokens.revoke(session, api_tokens.by_id(session, token_id), actor=CLI)
    out.print(f"Revoked API token {token_id}." if changed else f"API token {token_id} was revoked already.",
              highlight=False)
