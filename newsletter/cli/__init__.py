"""The ``newsletter`` command: a thin face over the service modules (no business rule lives here).

Each group of commands has its own module; this one puts them together.
"""

from __future__ import annotations

import typer

from newsletter.cli import system
from newsletter.cli.feeds import feeds_app
from newsletter.cli.issues import issues_app
from newsletter.cli.posts import posts_app

app = typer.Typer(help="Email newsletter and lead-nurture pipeline for clinics.", no_args_is_help=True)
app.registered_commands += system.app.registered_commands
app.add_typer(posts_app, name="posts")
app.add_typer(feeds_app, name="feeds")
app.add_typer(issues_app, name="issues")

if __name__ == "__main__":
    app()
