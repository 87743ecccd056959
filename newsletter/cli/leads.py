"""newsletter leads ...: consultation requests, their stages and bookings.

A thin face over ``subscribers.leads``: every rule (idempotent bookings, stage history, separate
consent, no health details) lives there, shared with the web form and the bookings webhook.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from newsletter.cli.common import friendly_errors, out, print_json, print_rows, unit_of_work
from subscribers import leads as lead_service

leads_app = typer.Typer(help="Leads: consultation requests, stages and bookings.", no_args_is_help=True)

NO_HEALTH_DETAILS = (
    "No health details are stored: the intake takes contact fields (email, name, phone, time zone), "
    "a preferred contact method, a requested time window and how the enquiry came in, nothing else."
)


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(values)


@leads_app.command("add", help=f"Record a consultation request (or update one). {NO_HEALTH_DETAILS}")
@friendly_errors
def leads_add(
    email: str,
    name: Annotated[str | None, typer.Option(help="The person's name.")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone number: digits, optional leading +.")] = None,
    source: Annotated[str, typer.Option(
        help=f"How the enquiry came in: {_choices(lead_service.SOURCES)}. "
             "Default phone: staff mostly log calls.")] = "phone",
    preferred_contact: Annotated[str | None, typer.Option(
        help=f"{_choices(lead_service.CONTACT_METHODS)}; a new lead defaults to email.")] = None,
    requested_time: Annotated[str | None, typer.Option(
        help=f"{_choices(lead_service.REQUESTED_WINDOWS)}, or an ISO date-time with offset.")] = None,
    consent_method: Annotated[str | None, typer.Option(
        help=f"How they agreed to be contacted about the consultation: {_choices(lead_service.CONSENT_METHODS)}; "
             "default phone for --source phone, else admin. Never a newsletter subscription.")] = None,
    utm_source: Annotated[str | None, typer.Option()] = None,
    utm_medium: Annotated[str | None, typer.Option()] = None,
    utm_campaign: Annotated[str | None, typer.Option()] = None,
    utm_term: Annotated[str | None, typer.Option()] = None,
    utm_content: Annotated[str | None, typer.Option()] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone; default the configured one.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    utm = {"source": utm_source, "medium": utm_medium, "campaign": utm_campaign, "term": utm_term,
           "content": utm_content}
    with unit_of_work() as (settings, session):
        result = lead_service.add_lead(
            session, email, default_timezone=settings.default_timezone, source=source,
            consent_method=consent_method or ("phone" if source == "phone" else "admin"), origin="staff",
            name=name, phone=phone, preferred_contact=preferred_contact, requested_time=requested_time,
            utm=utm, timezone=timezone,
        )
        data = lead_service.lead_summary(result.lead)
    if as_json:
        print_json({**data, "created": result.created, "reopened": result.reopened})
    elif result.created:
        out.print(f"Added lead {data['id']} (stage new).", highlight=False)
    elif result.reopened:
        out.print(f"Lead {data['id']} enquired again: lost → new.", highlight=False)
    else:
        out.print(f"Updated lead {data['id']} (stage {data['stage']}).", highlight=False)


@leads_app.command("book")
@friendly_errors
def leads_book(
    email: str,
    at: Annotated[str | None, typer.Option(
        "--at", help="When the consultation is, ISO 8601 with an offset or Z (e.g. 2025-03-04T15:30-08:00).")] = None,
    external_id: Annotated[str | None, typer.Option(
        help="The booking system's id: recording the same id again changes nothing.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Record a booked consultation for an existing lead and move it to "booked". Safe to repeat."""
    booked_for = lead_service.parse_datetime(at, "--at") if at else None
    with unit_of_work() as (_, session):
        result = lead_service.record_booking(session, email, booked_for=booked_for, origin="staff",
                                             external_id=external_id)
        data = {"booking_id": result.booking.id, "created": result.created,
                "lead_id": result.lead.id if result.lead else None,
                "stage": result.lead.stage if result.lead else None}
    if as_json:
        print_json(data)
    else:
        word = "booked" if result.created else "already recorded"
        out.print(f"{word}: booking {data['booking_id']} (lead {data['lead_id']}, stage {data['stage']})",
                  highlight=False)


@leads_app.command("stage")
@friendly_errors
def leads_stage(
    email: str,
    stage: Annotated[str, typer.Argument(help=_choices(lead_service.STAGES))],
) -> None:
    """Move a lead to a stage; the change is kept in its history. Repeating it changes nothing."""
    with unit_of_work() as (_, session):
        lead = lead_service.get_lead(session, email)
        before = lead.stage
        changed = lead_service.change_stage(session, lead, stage, by="staff")
        lead_id = lead.id
    if changed:
        out.print(f"Lead {lead_id}: {before} → {stage}.", highlight=False)
    else:
        out.print(f"Lead {lead_id} is already {stage}.", highlight=False)


@leads_app.command("list")
@friendly_errors
def leads_list(
    stage: Annotated[str | None, typer.Option(help=_choices(lead_service.STAGES))] = None,
    source: Annotated[str | None, typer.Option(help=_choices(lead_service.SOURCES))] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest enquiry first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List leads, newest enquiry first."""
    with unit_of_work() as (_, session):
        rows = [lead_service.lead_summary(lead)
                for lead in lead_service.list_leads(session, stage=stage, source=source, limit=limit)]
    for row in rows:
        row["booking_count"] = len(row["bookings"])
    print_rows(rows, as_json, {"id": "id", "email": "email", "name": "name", "stage": "stage", "source": "source",
                               "prefers": "preferred_contact", "bookings": "booking_count",
                               "requested": "requested_at"})


@leads_app.command("show")
@friendly_errors
def leads_show(email: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a lead: contact fields, consent to be contacted, bookings and stage history."""
    with unit_of_work() as (_, session):
        data: dict[str, Any] = lead_service.lead_summary(lead_service.get_lead(session, email))
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if key in ("bookings", "stage_history") or value is None:
            continue
        out.print(f"[bold]{key}:[/bold] {value}", highlight=False)
    for b in data["bookings"]:
        out.print(f"[bold]booking {b['id']}:[/bold] for {b['booked_for'] or 'a time not given'}, "
                  f"recorded {b['recorded_at']} by {b['origin']}"
                  + (f", external id {b['external_id']}" if b["external_id"] else ""), highlight=False)
    for c in data["stage_history"]:
        out.print(f"[bold]stage:[/bold] {c['from'] or '-'} → {c['to']} by {c['by']} at {c['at']}", highlight=False)
