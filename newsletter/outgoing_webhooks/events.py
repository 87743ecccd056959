"""Which events the CRM gets, and capturing each exactly once, whichever face caused it.

Events are not raised by the faces: they are read from the tables that already record what happened
(a lead's stage history, bookings, the consent history, the events table of bounces and clicks), so
the CLI, the staff app, public forms, the API and provider webhooks all produce them by the same
rule, and no route holds one. A scan reads each source past a cursor (its highest id seen) and
writes one ``webhook_events`` row per source row, unique per (source, source row): a second scan,
a second worker or a restart inserts nothing twice. It also reads the last ``LOOKBACK`` ids below
the cursor again, so a row whose transaction committed after a higher id was read is still found.

An endpoint gets the events of the types it chose that occurred since it was registered (or last
enabled): one
``webhook_deliveries`` row per (event, endpoint), unique too.

Payloads hold ids, stages and times only: never an address, a name, a phone number, a clicked URL or
a subject line (any of them can say something about a person's health).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from newsletter.models import Event
from newsletter.outgoing_webhooks.models import WebhookCursor, WebhookDelivery, WebhookEndpoint, WebhookEvent
from newsletter.tracking.machines import ALL_AT_ONCE
from subscribers.db import insert_ignoring_conflicts, serialized
from subscribers.models import Booking, ConsentEvent, Lead, LeadStageChange
from subscribers.states import EventType, WebhookDeliveryStatus, WebhookEndpointState

LOOKBACK = 100  # ids below the cursor read again each scan (late commits)
BATCH = 500  # source rows read per source per scan
CAPTURE_LOCK = 0x57E8_400C  # PostgreSQL advisory lock: one capture at a time (SQLite writes one at a time anyway)
# A click is sent once it is old enough that a scanner's burst would have relabelled it as a machine's:
# the burst's last click is in the events table once its web process's tracking log is drained (within
# a second or so; ten more cover a backlog after a burst, or another process's log drained later).
CLICK_SETTLE = ALL_AT_ONCE + timedelta(seconds=11)


class WebhookEventType(StrEnum):
    LEAD_CREATED = "lead.created"
    LEAD_STAGE_CHANGED = "lead.stage_changed"
    BOOKING_CREATED = "booking.created"
    CONTACT_UNSUBSCRIBED = "contact.unsubscribed"
    CONTACT_BOUNCED = "contact.bounced"
    EMAIL_CLICKED = "email.clicked"
    TEST = "webhook.test"  # queued by an admin for one endpoint; never chosen


SUBSCRIBABLE = tuple(t for t in WebhookEventType if t is not WebhookEventType.TEST)


def parse_event_types(values: Iterable[str]) -> list[str]:
    """The event types typed or ticked, checked; ValueError names the unknown one and those there are."""
    chosen: list[str] = []
    for value in values:
        value = value.strip()
        if value not in SUBSCRIBABLE:
            raise ValueError(f"event type {value!r} does not exist: use {', '.join(SUBSCRIBABLE)}")
        if value not in chosen:
            chosen.append(value)
    if not chosen:
        raise ValueError("choose at least one event type")
    return [t for t in SUBSCRIBABLE if t in chosen]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def payload(event: WebhookEvent) -> dict[str, Any]:
    """What is POSTed: the event's id (the receiver's key to deduplicate), type, time and data."""
    return {"id": event.event_id, "type": event.type, "created_at": _iso(event.occurred_at), "data": event.data}


@dataclass(frozen=True)
class Found:
    source_id: int
    type: str
    occurred_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class Source:
    """A table events are read from: its id column, the rows past an id (with what the event needs),
    and how a row becomes an event (None: not one the CRM gets)."""

    name: str
    types: tuple[WebhookEventType, ...]
    id_column: Any
    rows: Callable[[int, datetime], Select[Any]]
    event: Callable[[Any], Found | None]


def _stage_change(row: Any) -> Found:
    kind = WebhookEventType.LEAD_CREATED if row.from_stage is None else WebhookEventType.LEAD_STAGE_CHANGED
    return Found(row.id, kind, row.at, {"lead_id": row.lead_id, "contact_id": row.contact_id,
                                        "stage": row.to_stage, "from_stage": row.from_stage, "changed_by": row.by})


def _booking(row: Any) -> Found:
    return Found(row.id, WebhookEventType.BOOKING_CREATED, row.recorded_at, {
        "booking_id": row.id, "lead_id": row.lead_id, "contact_id": row.contact_id,
        "booked_for": _iso(row.booked_for), "external_id": row.external_id, "origin": row.origin})


def _unsubscribe(row: Any) -> Found:
    return Found(row.id, WebhookEventType.CONTACT_UNSUBSCRIBED, row.at, {
        "contact_id": row.contact_id, "lead_id": row.lead_id, "list_id": row.list_id, "method": row.method})


def _email_event(kind: WebhookEventType) -> Callable[[Any], Found | None]:
    def event(row: Any) -> Found | None:
        if row.contact_id is None or (kind is WebhookEventType.EMAIL_CLICKED and row.lead_id is None):
            return None
        data = {"contact_id": row.contact_id, "lead_id": row.lead_id, "delivery_id": row.delivery_id,
                "issue_id": row.issue_id, "step_id": row.step_id}
        if kind is WebhookEventType.EMAIL_CLICKED:
            data["link_id"] = row.link_id
        return Found(row.id, kind, row.occurred_at, data)
    return event


def _events_of(event_type: EventType, *, settled: bool) -> Callable[[int, datetime], Select[Any]]:
    def rows(after: int, now: datetime) -> Select[Any]:
        query = (select(Event.id, Event.contact_id, Event.delivery_id, Event.issue_id, Event.step_id, Event.link_id,
                        Event.occurred_at, Lead.id.label("lead_id"))
                 .outerjoin(Lead, Lead.contact_id == Event.contact_id)
                 .where(Event.id > after, Event.type == event_type))
        if settled:  # human clicks only, once a burst could no longer relabel them
            query = query.where(Event.machine.is_(False), Event.recorded_at <= now - CLICK_SETTLE)
        return query
    return rows


SOURCES = (
    Source("stage_change", (WebhookEventType.LEAD_CREATED, WebhookEventType.LEAD_STAGE_CHANGED), LeadStageChange.id,
           lambda after, now: select(LeadStageChange.id, LeadStageChange.lead_id, Lead.contact_id,
                                     LeadStageChange.from_stage, LeadStageChange.to_stage, LeadStageChange.by,
                                     LeadStageChange.at)
           .join(Lead, Lead.id == LeadStageChange.lead_id).where(LeadStageChange.id > after),
           _stage_change),
    Source("booking", (WebhookEventType.BOOKING_CREATED,), Booking.id,
           lambda after, now: select(Booking.id, Booking.lead_id, Lead.contact_id, Booking.booked_for,
                                     Booking.recorded_at, Booking.external_id, Booking.origin)
           .outerjoin(Lead, Lead.id == Booking.lead_id).where(Booking.id > after),
           _booking),
    Source("consent", (WebhookEventType.CONTACT_UNSUBSCRIBED,), ConsentEvent.id,
           lambda after, now: select(ConsentEvent.id, ConsentEvent.contact_id, ConsentEvent.list_id,
                                     ConsentEvent.method, ConsentEvent.at, Lead.id.label("lead_id"))
           .outerjoin(Lead, Lead.contact_id == ConsentEvent.contact_id)
           .where(ConsentEvent.id > after, ConsentEvent.action == "withdrawn"),
           _unsubscribe),
    Source("bounce", (WebhookEventType.CONTACT_BOUNCED,), Event.id, _events_of(EventType.BOUNCE, settled=False),
           _email_event(WebhookEventType.CONTACT_BOUNCED)),
    Source("click", (WebhookEventType.EMAIL_CLICKED,), Event.id, _events_of(EventType.CLICK, settled=True),
           _email_event(WebhookEventType.EMAIL_CLICKED)),
)


def _highest_id(session: Session, source: Source) -> int:
    return session.scalar(select(func.max(source.id_column))) or 0


def start_cursors(session: Session) -> None:
    """Move every cursor to the newest row (before the first endpoint is enabled): history is not sent."""
    for source in SOURCES:
        cursor = session.get(WebhookCursor, source.name)
        if cursor is None:
            session.add(WebhookCursor(source=source.name, last_id=_highest_id(session, source)))
        else:
            cursor.last_id = max(cursor.last_id, _highest_id(session, source))
    session.flush()


def _wanted(session: Session) -> set[str]:
    chosen: set[str] = set()
    for types in session.scalars(select(WebhookEndpoint.event_types)
                                 .where(WebhookEndpoint.state == WebhookEndpointState.ENABLED)):
        chosen.update(types)
    return chosen


def capture(session: Session, now: datetime, *, retry_window: timedelta) -> int:
    """Read every source past its cursor; store the new events and their deliveries. Returns how
    many events were stored."""
    wanted = _wanted(session)
    if not wanted:
        return 0
    serialized(session, CAPTURE_LOCK)
    stored = 0
    for source in SOURCES:
        cursor = session.get(WebhookCursor, source.name)
        if cursor is None:  # a source added by a later release: from now on
            cursor = WebhookCursor(source=source.name, last_id=_highest_id(session, source))
            session.add(cursor)
            session.flush()
            continue
        if not wanted.intersection(source.types):
            cursor.last_id = max(cursor.last_id, _highest_id(session, source))  # nobody wants these now
            continue
        rows = list(session.execute(source.rows(max(cursor.last_id - LOOKBACK, 0), now)
                                    .order_by(source.id_column).limit(BATCH + LOOKBACK)))
        if not rows:
            continue
        found = [f for f in map(source.event, rows) if f is not None and f.type in wanted]
        stored += _store(session, source.name, found, now, retry_window)
        top = rows[-1].id
        if top > cursor.last_id:
            session.execute(update(WebhookCursor).where(WebhookCursor.source == source.name,
                                                        WebhookCursor.last_id < top).values(last_id=top))
    session.flush()
    return stored


def _store(session: Session, source: str, found: list[Found], now: datetime, retry_window: timedelta) -> int:
    if not found:
        return 0
    seen = set(session.scalars(select(WebhookEvent.source_id).where(
        WebhookEvent.source == source, WebhookEvent.source_id.in_([f.source_id for f in found]))))
    new = [f for f in found if f.source_id not in seen]
    if not new:
        return 0
    insert = insert_ignoring_conflicts(session, WebhookEvent)
    inserted = session.execute(
        insert.values([{"event_id": new_event_id(), "type": f.type, "source": source, "source_id": f.source_id,
                        "occurred_at": f.occurred_at, "data": f.data, "created_at": now} for f in new])
        .on_conflict_do_nothing()
        .returning(WebhookEvent.id, WebhookEvent.type, WebhookEvent.occurred_at)
    ).all()
    fan_out(session, [(row.id, row.type, row.occurred_at) for row in inserted], now, retry_window)
    return len(inserted)


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def fan_out(session: Session, events: list[tuple[int, str, datetime]], now: datetime, retry_window: timedelta,
            *, only_endpoint: int | None = None) -> int:
    """One delivery per (event, enabled endpoint that chose its type and was enabled when it occurred)."""
    query = select(WebhookEndpoint.id, WebhookEndpoint.event_types, WebhookEndpoint.enabled_at).where(
        WebhookEndpoint.state == WebhookEndpointState.ENABLED)
    if only_endpoint is not None:
        query = query.where(WebhookEndpoint.id == only_endpoint)
    endpoints = list(session.execute(query))
    rows = [{"event_id": event_id, "endpoint_id": endpoint.id, "status": WebhookDeliveryStatus.PENDING.value,
             "attempts": 0, "next_attempt_at": now, "give_up_at": now + retry_window, "created_at": now}
            for event_id, kind, occurred_at in events
            for endpoint in endpoints
            if only_endpoint is not None or (kind in endpoint.event_types and occurred_at >= endpoint.enabled_at)]
    if rows:
        session.execute(insert_ignoring_conflicts(session, WebhookDelivery).values(rows).on_conflict_do_nothing())
    return len(rows)
