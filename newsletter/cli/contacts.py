"""newsletter contacts ...: the people on the lists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from newsletter import contact_records, optin
from newsletter.cli.common import friendly_errors, open_database, out, print_json, print_rows, unit_of_work
from newsletter.staff import audit as audit_log
from newsletter.config import get_settings
from newsletter.errors import InputError, NotFound
from newsletter.sending.confirmations import ConfirmationSender
from newsletter.sending.dispatch import default_worker_id
from newsletter.transports import get_transport
from newsletter.transports.base import AuthenticationFailed
from subscribers import suppression
from subscribers.consent import history
from subscribers.contacts import contact_summary, get_contact, list_contacts, normalise_email
from subscribers.lists import ensure_list, get_list
from subscribers.states import ConfirmationStatus, SubscribeOutcome, SubscriptionStatus
from subscribers.suppression import SuppressionReason

contacts_app = typer.Typer(help="Contacts: add, list, show, import, export, erase.", no_args_is_help=True)


@contacts_app.command("add")
@friendly_errors
def add(
    email: str,
    name: Annotated[Optional[str], typer.Option(help="Full or first name.")] = None,
    list_slug: Annotated[Optional[str], typer.Option("--list", help="List to subscribe to (default: the newsletter).")] = None,
    confirmed: Annotated[bool, typer.Option("--confirmed", help="You hold proof of opt-in: skip the confirmation email.")] = False,
    consent_note: Annotated[Optional[str], typer.Option(help="The proof of consent, kept in the history.")] = None,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", help="Tag to add (repeatable).")] = None,
    language: Annotated[Optional[str], typer.Option(help="The language to write to them in (en, es); "
                                                         "default: the newsletter's.")] = None,
) -> None:
    """Add a contact and subscribe it. Without --confirmed a double opt-in list gets a confirmation
    email, sent right away by this command (through the queue the dispatchers also send from)."""
    if confirmed and not (consent_note or "").strip():
        raise InputError("--confirmed needs --consent-note saying how this person agreed (it is kept as proof)")
    settings = get_settings()
    db = open_database(settings)
    with db.session() as session:
        mailing_list = ensure_list(session, list_slug) if list_slug else optin.newsletter_list(session, settings)
        [(_, result)] = optin.add_by_staff(session, settings, email, lists=[mailing_list], added_by=audit_log.CLI,
                                           name=name, confirmed=confirmed, consent_note=consent_note, tags=tag,
                                           language=language)
    email_note = "waiting for confirmation"
    if result.confirmation_id is not None:
        sender = ConfirmationSender(settings, db, get_transport(settings), worker=default_worker_id())
        try:
            status, error = sender.send_queued([result.confirmation_id])[result.confirmation_id]
        except AuthenticationFailed as exc:
            email_note = f"the confirmation email is queued, not sent: {exc}"
        else:
            email_note = {
                ConfirmationStatus.SENT: "a confirmation email was sent",
                ConfirmationStatus.QUEUED: f"the confirmation email is queued ({error}); a dispatcher (serve, worker) will retry it",
            }.get(status, f"the confirmation email was not sent ({status}: {error})")
    messages = {
        SubscribeOutcome.PENDING: f"added; {email_note}",
        SubscribeOutcome.CONFIRMED: "added and subscribed",
        SubscribeOutcome.ALREADY: "already subscribed",
        SubscribeOutcome.WITHDRAWN: "not subscribed: this person unsubscribed earlier",
        SubscribeOutcome.SUPPRESSED: "not added: the address is on the suppression list",
    }
    out.print(f"{messages[result.state]} ({mailing_list.slug})", highlight=False)
    if result.state == SubscribeOutcome.SUPPRESSED:
        raise typer.Exit(1)


@contacts_app.command("list")
@friendly_errors
def list_(
    list_slug: Annotated[Optional[str], typer.Option("--list", help="Only subscribers of this list.")] = None,
    status: Annotated[Optional[str], typer.Option(help=f"With --list: {' | '.join(SubscriptionStatus)}.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List contacts, newest first."""
    with unit_of_work() as (_, session):
        list_id = get_list(session, list_slug).id if list_slug else None
        rows = [contact_summary(c) for c in list_contacts(session, list_id=list_id, status=status, limit=limit)]
    print_rows(rows, as_json, {"id": "id", "email": "email", "name": "name", "status": "status",
                               "tags": "tags", "added": "created_at"})


@contacts_app.command("show")
@friendly_errors
def show(email: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one contact: subscriptions and consent history."""
    with unit_of_work() as (_, session):
        contact = get_contact(session, email)
        data = contact_summary(contact)
        data["subscriptions"] = [
            {"list": s.mailing_list.slug, "status": s.status, "frequency": s.frequency,
             "confirmed_at": s.confirmed_at.isoformat() if s.confirmed_at else None}
            for s in contact.subscriptions
        ]
        data["consent_history"] = [
            {"at": e.at.isoformat(), "action": e.action, "method": e.method, "list_id": e.list_id, "note": e.note}
            for e in history(session, contact)
        ]
        data["suppressed"] = suppression.reason_for(session, contact.email)
    if as_json:
        print_json(data)
        return
    for key in ("email", "name", "timezone", "language", "status", "source", "tags", "custom_fields", "suppressed", "created_at"):
        out.print(f"[bold]{key}:[/bold] {data[key]}", highlight=False)
    print_rows(data["subscriptions"], False, {"list": "list", "status": "status", "frequency": "frequency",
                                               "confirmed": "confirmed_at"})
    print_rows(data["consent_history"], False, {"when": "at", "action": "action", "how": "method", "note": "note"})


@contacts_app.command("suppress")
@friendly_errors
def suppress_(
    email: str,
    reason: Annotated[str, typer.Option(help="manual | hard_bounce | spam_complaint | unsubscribed")] = SuppressionReason.MANUAL,
) -> None:
    """Put an address on the suppression list: no path will mail it."""
    with unit_of_work() as (_, session):
        suppression.suppress(session, normalise_email(email), reason)
    out.print("suppressed")


@contacts_app.command("unsuppress")
@friendly_errors
def unsuppress(email: str) -> None:
    """Lift a suppression (never one left by an erasure). The contact still has to subscribe again."""
    with unit_of_work() as (_, session):
        if not suppression.lift(session, normalise_email(email)):
            raise NotFound("that address is not suppressed")
    out.print("suppression lifted")


@contacts_app.command("export-one")
@friendly_errors
def export_one(
    email: str, out_file: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Everything stored about one person, as JSON (a subject access request)."""
    with unit_of_work() as (_, session):
        data = contact_records.export_one(session, email, audit_log.CLI)
    if data is None:
        raise NotFound("nothing is stored about that address")
    if out_file:
        import json

        out_file.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        out.print(f"written to {out_file}", highlight=False)
    else:
        print_json(data)


@contacts_app.command("erase")
@friendly_errors
def erase(
    email: str, yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False
) -> None:
    """Erase a person: delete their data, keep only a hash so they are never mailed again."""
    if not yes:
        typer.confirm("Erase this contact and all their data? This cannot be undone", abort=True)
    with unit_of_work() as (settings, session):
        result = contact_records.erase(session, settings, email, audit_log.CLI)
    out.print("erased" if result.erased else "no contact held that address; it is now suppressed by hash")
    if not result.wal_truncated:
        out.print("note: another process was reading the database, so its write-ahead log (-wal file) still "
                  "holds old pages until the next checkpoint; run this command again when it is idle")


