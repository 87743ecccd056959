"""newsletter segments ...: saved filters over contacts."""

from __future__ import annotations

import typer

segments_app = typer.Typer(help="Segments: saved filters over contacts, counted in SQL.", no_args_is_help=True)
