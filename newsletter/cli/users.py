"""newsletter users ...: staff accounts of the staff app, for the terminal (the first admin of a new
install is made here). A thin face over ``newsletter.staff.users``: each change is audited there,
with "cli" as the actor."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from newsletter.cli.common import friendly_errors, out, print_rows, unit_of_work
from newsletter.staff import users as staff_users
from newsletter.staff.audit import CLI
from newsletter.staff.roles import Role

users_app = typer.Typer(help="Staff users of the staff app (/staff/): add, list, disable, reset a password.",
                        no_args_is_help=True)
ROLES = ", ".join(Role)


def _password_from_stdin() -> str:
    """One line of standard input (a password manager's or a script's pipe), the newline taken off."""
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _hand_over(email: str, password: str, generated: bool) -> None:
    if generated:
        out.print(f"Password for {email} (shown this once; only its hash is kept):", highlight=False)
        out.print(password, highlight=False, markup=False)


@users_app.command("add")
@friendly_errors
def users_add(
    email: str,
    role: Annotated[str, typer.Option("--role", help=f"What they may do: {ROLES}.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard "
                                                 "input instead of generating one.")] = False,
) -> None:
    """Add a staff user. A strong password is generated and printed once, unless --password-stdin."""
    password = _password_from_stdin() if password_stdin else None
    with unit_of_work() as (_settings, session):
        user, password = staff_users.add_user(session, email, role, password, actor=CLI)
        email, role_name = user.email, user.role
    out.print(f"Added {email} with the {role_name} role. Sign in at /staff/sign-in.", highlight=False)
    _hand_over(email, password, not password_stdin)


@users_app.command("list")
@friendly_errors
def users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every staff user with their role, two-factor sign-in and whether they are active."""
    with unit_of_work() as (_settings, session):
        rows = [{"id": u.id, "email": u.email, "role": u.role, "two_factor": "on" if u.has_totp else "off",
                 "status": "active" if u.active else "disabled", "last_sign_in_at": u.last_sign_in_at}
                for u in staff_users.list_users(session)]
    print_rows(rows, as_json, {"id": "id", "email": "email", "role": "role", "two-factor": "two_factor",
                               "status": "status", "last sign-in": "last_sign_in_at"})


@users_app.command("disable")
@friendly_errors
def users_disable(email: str) -> None:
    """Disable a staff user: every session of theirs ends at once, and they cannot sign in."""
    with unit_of_work() as (_settings, session):
        user = staff_users.get(session, email)
        changed = staff_users.disable_user(session, user, actor=CLI)
        address = user.email
    out.print(f"Disabled {address}; every session of theirs has ended." if changed
              else f"{address} was disabled already.", highlight=False)


@users_app.command("reset-password")
@friendly_errors
def users_reset_password(
    email: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the new password from standard "
                                                 "input instead of generating one.")] = False,
) -> None:
    """Give a staff user a new password (generated and printed once, unless --password-stdin); every
    session of theirs ends."""
    password = _password_from_stdin() if password_stdin else None
    with unit_of_work() as (_settings, session):
        user = staff_users.get(session, email)
        password = staff_users.reset_password(session, user, password, actor=CLI)
        address = user.email
    out.print(f"New password set for {address}; every session of theirs has ended.", highlight=False)
    _hand_over(address, password, not password_stdin)
