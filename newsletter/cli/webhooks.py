"""newsletter webhooks ...: the clinic CRM's endpoints for outgoing webhook events. A thin face over
``newsletter.outgoing_webhooks.endpoints``: each change is audited there, with "cli" as the actor."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli.common import friendly_errors, out, print_rows, unit_of_work
from newsletter.outgoing_webhooks import endpoints as service
from newsletter.outgoing_webhooks.events import SUBSCRIBABLE
from newsletter.staff.audit import CLI

webhooks_app = typer.Typer(help="Outgoing webhooks: endpoints of the clinic's CRM that get signed events.",
                           no_args_is_help=True)
EVENTS = ", ".join(SUBSCRIBABLE)
ENDPOINT_COLUMNS = {"ID": "id", "URL": "url", "Events": "events", "State": "state",
                    "Last success": "last_success_at", "Last failure": "last_failure_at", "Why disabled": "disabled_reason"}
LOG_COLUMNS = {"ID": "id", "Event": "event_type", "Event id": "event_id", "Status": "status", "Attempts": "attempts",
               "Code": "last_status_code", "Last error": "last_error", "Next try": "next_attempt_at",
               "Delivered": "delivered_at"}


@webhooks_app.command("add")
@friendly_errors
def webhooks_add(
    url: str,
    event: Annotated[list[str], typer.Option("--event", help=f"An event type to send (repeat): {EVENTS}.")],
) -> None:
    """Register an endpoint; its signing secret is printed once."""
    with unit_of_work() as (settings, session):
        endpoint, secret = service.register(session, settings, url, event, actor=CLI)
        number, types = endpoint.id, ", ".join(endpoint.event_types)
    out.print(f"Added webhook endpoint {number} for {types}.", highlight=False)
    out.print("Signing secret (shown this once; the receiver checks X-Newsletter-Signature with it):", highlight=False)
    out.print(secret, highlight=False, markup=False)


@webhooks_app.command("list")
@friendly_errors
def webhooks_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The endpoints, their events and state."""
    with unit_of_work() as (_settings, session):
        rows = [service.summary(e) for e in service.list_endpoints(session)]
    print_rows(rows, as_json, ENDPOINT_COLUMNS)


@webhooks_app.command("disable")
@friendly_errors
def webhooks_disable(endpoint_id: int) -> None:
    """Stop sending to an endpoint (what waits for it is not sent)."""
    with unit_of_work() as (_settings, session):
        changed = service.disable(session, service.by_id(session, endpoint_id), actor=CLI)
    out.print(f"webhook endpoint {endpoint_id} " + ("disabled" if changed else "was disabled already"))


@webhooks_app.command("enable")
@friendly_errors
def webhooks_enable(endpoint_id: int) -> None:
    """Send to an endpoint again, from now on."""
    with unit_of_work() as (_settings, session):
        changed = service.enable(session, service.by_id(session, endpoint_id), actor=CLI)
    out.print(f"webhook endpoint {endpoint_id} " + ("enabled" if changed else "was enabled already"))


@webhooks_app.command("remove")
@friendly_errors
def webhooks_remove(endpoint_id: int) -> None:
    """Delete an endpoint and its delivery log."""
    with unit_of_work() as (_settings, session):
        service.remove(session, service.by_id(session, endpoint_id), actor=CLI)
    out.print(f"webhook endpoint {endpoint_id} removed")


@webhooks_app.command("test")
@friendly_errors
def webhooks_test(endpoint_id: int) -> None:
    """Queue a webhook.test event for one endpoint (a dispatcher delivers it: serve, worker or tick)."""
    with unit_of_work() as (settings, session):
        event = service.queue_test(session, settings, service.by_id(session, endpoint_id), actor=CLI)
        event_id = event.event_id
    out.print(f"test event {event_id} queued for webhook endpoint {endpoint_id}", highlight=False)


@webhooks_app.command("log")
@friendly_errors
def webhooks_log(
    endpoint_id: int,
    before: Annotated[int | None, typer.Option(help="Show deliveries older than this delivery id.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """An endpoint's deliveries, newest first (50 at a time)."""
    with unit_of_work() as (_settings, session):
        page = service.delivery_log(session, service.by_id(session, endpoint_id), before=before)
        rows = [service.log_row(d) for d in page.rows]
    print_rows(rows, as_json, LOG_COLUMNS)
    if page.older is not None and not as_json:
        out.print(f"older: newsletter webhooks log {endpoint_id} --before {page.older}", highlight=False)
