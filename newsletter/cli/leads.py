"""newsletter leads ...: consultation requests, their stages and bookings."""

from __future__ import annotations

import typer

leads_app = typer.Typer(help="Leads: consultation requests, stages and bookings.", no_args_is_help=True)
