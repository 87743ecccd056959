"""newsletter contacts ...: the people on the lists."""

from __future__ import annotations

import typer

contacts_app = typer.Typer(help="Contacts: add, list, show, import, export, erase.", no_args_is_help=True)
