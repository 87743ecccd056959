"""The ``newsletter`` command: a thin face over the service modules (no business rule lives here).

Each group of commands has its own module; this one puts them together.
"""

from __future__ import annotations

import typer

from newsletter import stored_settings
from newsletter.bootstrap import wire
from newsletter.cli import automations, contacts_io, sending, system  # noqa: F401 - these register commands on groups
from newsletter.cli.api_tokens import api_tokens_app
from newsletter.cli.contacts import contacts_app
from newsletter.cli.feeds import feeds_app
from newsletter.cli.issues import issues_app
from newsletter.cli.leads import leads_app
from newsletter.cli.posts import posts_app
from newsletter.cli.reports import report_app
from newsletter.cli.segments import segments_app
from newsletter.cli.sensitive import sensitive_app
from newsletter.cli.sequences import sequences_app
from newsletter.cli.users import users_app
from newsletter.cli.webhooks import webhooks_app
from newsletter.config import get_settings

app = typer.Typer(help="Email newsletter and lead-nurture pipeline for clinics.", no_args_is_help=True)


@app.callback()
def _start() -> None:
    # Where the CLI's process starts, before any command: the listeners (a booking is attributed
    # and ends nurture, whichever command records it). Settings that do not load are left for the
    # command to report in its own words (and --help still works); a command never runs without them.
    # From here ``get_settings`` returns them with the values staff saved on the settings page applied.
    try:
        settings = get_settings()
    except ValueError:
        return
    wire(stored_settings.at_start(settings))  # what staff saved in the app, for every command


app.registered_commands += system.app.registered_commands
app.command("worker")(sending.friendly_errors(sending.worker))
app.command("tick")(sending.friendly_errors(sending.tick))
app.add_typer(posts_app, name="posts")
app.add_typer(feeds_app, name="feeds")
app.add_typer(automations.digests_app, name="digests")
app.add_typer(issues_app, name="issues")
app.add_typer(contacts_app, name="contacts")
app.add_typer(segments_app, name="segments")
app.add_typer(sensitive_app, name="sensitive")
app.add_typer(leads_app, name="leads")
app.add_typer(sequences_app, name="sequences")
app.add_typer(sending.sending_app, name="sending")
app.add_typer(report_app, name="report")
app.add_typer(users_app, name="users")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(api_tokens_app, name="api-tokens")

if __name__ == "__main__":
    app()
