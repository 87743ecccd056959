"""SendGrid's Event Webhook events: stored once each, matched to the ledger, and acted on.

Idempotence: a batch goes into ``events`` in one ``INSERT … ON CONFLICT (provider_event_id) DO
NOTHING RETURNING provider_event_id``, and effects are applied only to the events that statement
returned. SendGrid retries a post until it gets a 2xx, and a replayed post is the same bytes again:
either way the second copy inserts nothing, so it changes nothing.

Matching: every personalization we send carries ``custom_args {"delivery_id": "<id>"}``, which
SendGrid copies as a top-level key into each event. Without it (mail sent some other way, or an old
event), the event's ``sg_message_id`` is tried: it starts with the ``X-Message-Id`` of the request,
followed by ``.filter…``. That id belongs to the whole request (up to 1000 recipients), so it names a
batch, not a delivery: the fallback also requires the event's ``email`` to be the address of the
delivery's contact (compared by the salted address hash, as everywhere else).

What each event does (on the delivery, then on the address):
- any event matched to a row proves its request was accepted: a row held as unknown (or still
  claimed) becomes submitted, and a batch held as unknown is settled once none of its rows is unknown
  (``ledger.resolve_accepted``). "processed" does nothing more; "deferred" keeps the state.
- delivered: submitted → delivered (a bounced or dropped row is never downgraded).
- bounce with ``type`` "bounce" (hard): → bounced; the address is suppressed (hard_bounce) and the
  contact marked bounced. ``type`` "blocked" (or none) is a soft bounce: stored as type "blocked",
  nothing else, because SendGrid retries or reports it again as a hard bounce or a drop.
- dropped: → dropped; when the reason says the address bounced, is invalid, unsubscribed or
  reported spam, the address gets the same treatment as that event would have given it.
- spamreport: suppression spam_complaint, unsubscribed from every list (consent method "provider"),
  contact complained.
- unsubscribe / group_unsubscribe: unsubscribed from every list (method "provider"). We use no
  SendGrid groups, so leaving a group means leaving everything; group_resubscribe is only stored
  (consent must be given again through our own forms).
- open: ``machine`` is ``sg_machine_open`` (Apple Mail Privacy Protection and the like); click keeps
  its URL. Under an issue's or sequence's anonymous (or off) tracking they keep only which email
  they were about, as first-party opens and clicks do.

Privacy: the payload's ``email`` is used to match and to suppress, never stored in ``events``;
reasons and URLs are scrubbed of anything shaped like an address (and of control characters); IP and
user agent are dropped. An address that is not one of our contacts is suppressed by its salted hash
only, as erasure leaves one: a later import or sign-up of it is still caught, and no stranger's
address is kept in plain text.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, cast, column, func, literal, select, table, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, selectinload

from newsletter.models import Delivery, Event, Issue, Sequence, SequenceStep
from newsletter.sending import ledger
from newsletter.transports.sendgrid import scrub
from subscribers.consent import Proof, unsubscribe
from subscribers.contacts import normalise_email
from subscribers.db import insert_ignoring_conflicts, is_postgresql
from subscribers.errors import InputError
from subscribers.models import Contact, Suppression
from subscribers.states import ENGAGEMENT, IN_REQUEST, ContactStatus, DeliveryStatus, EventType
from subscribers.suppression import SuppressionReason, address_hash



@dataclass(frozen=True)
class Provider:
    """Whose events these are: ``source`` as stored on each event, ``label`` in suppression notes."""

    source: str
    label: str


SENDGRID = Provider("sendgrid", "SendGrid")
SES = Provider("ses", "Amazon SES")  # newsletter.tracking.ses_events: SES's events, in SendGrid's shape
SOURCE = SENDGRID.source
SOURCES = (SENDGRID.source, SES.source)  # the provider event sources (reports count them together)
# SendGrid's delivery and engagement events; anything else is rejected by name. (Blocked is what a
# bounce that is not hard is stored as, never a name SendGrid posts.)
EVENT_TYPES = frozenset(EventType) - {EventType.BLOCKED}
MAX_EVENT_ID = 100  # events.provider_event_id
MAX_REASON = 500
MAX_URL = 2000
MAX_DELIVERY_DIGITS = 18  # fits a BIGINT
LATEST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z

# Address effects, strongest first: when one address gets several in a batch, the first one wins
# the suppression's reason (as ``suppression.suppress`` keeps the first reason it is given).
HARD_BOUNCE, COMPLAINT, UNSUBSCRIBED = (SuppressionReason.HARD_BOUNCE, SuppressionReason.SPAM_COMPLAINT,
                                       SuppressionReason.UNSUBSCRIBED)
_STRENGTH = {COMPLAINT: 0, HARD_BOUNCE: 1, UNSUBSCRIBED: 2}
_CONTACT_STATUS = {COMPLAINT: ContactStatus.COMPLAINED, HARD_BOUNCE: ContactStatus.BOUNCED}
_EVENT_EFFECT = {EventType.SPAMREPORT: COMPLAINT, EventType.UNSUBSCRIBE: UNSUBSCRIBED,
                 EventType.GROUP_UNSUBSCRIBE: UNSUBSCRIBED}
# SendGrid's drop reasons that say something about the address ("Bounced Address", "Invalid",
# "Unsubscribed Address", "Spam Reporting Address"); others ("Recipient List over Package Quota",
# "Invalid SMTPAPI header", "Spam Content") are about the message or the account.
_DROP_EFFECTS = (
    (re.compile(r"spam\s*report", re.IGNORECASE), COMPLAINT),
    (re.compile(r"unsubscribe", re.IGNORECASE), UNSUBSCRIBED),
    (re.compile(r"bounce", re.IGNORECASE), HARD_BOUNCE),
    (re.compile(r"^\s*invalid(\s+(email|address|recipient))?\s*$", re.IGNORECASE), HARD_BOUNCE),
)
# An address inside a URL, plain or percent-encoded ("a%40b.org"); the rest of the URL is kept.
_URL_ADDRESS = re.compile(r"[^\s/?#&=:;]+(?:@|%40)[^\s/?#&=:;]+", re.IGNORECASE)
_EVENT_NAME = re.compile(r"^[a-z_]{1,40}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # PostgreSQL cannot store NUL; none belongs in a reason or URL
_EVENT_ID = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


@dataclass
class StoreReport:
    stored: int = 0
    duplicates: int = 0
    unmatched: int = 0  # stored, but no delivery of ours was found for them
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index in the batch, why)


@dataclass(slots=True)
class _Item:
    """One valid event, as parsed; the delivery's columns are filled in by matching."""

    index: int
    event_id: str
    type: str  # as stored: SendGrid's name, except "blocked" for a soft bounce
    epoch: float  # SendGrid's timestamp: seconds since 1970, UTC
    delivery_ref: int | None
    message_prefix: str | None
    email: str | None  # used to match and to suppress; never stored
    machine: bool = False
    url: str | None = None
    reason: str | None = None
    effect: str | None = None  # HARD_BOUNCE | COMPLAINT | UNSUBSCRIBED
    delivery_id: int | None = None
    contact_id: int | None = None
    issue_id: int | None = None
    step_id: int | None = None
    status: str | None = None  # the delivery's status when matched


def store_events(session: Session, events: list[Any], *, now: datetime, provider: Provider = SENDGRID) -> StoreReport:
    """Store a webhook batch and apply the effects of the events not seen before (see the module)."""
    report = StoreReport()
    items: list[_Item] = []
    seen: set[str] = set()
    for index, raw in enumerate(events):
        parsed = parse_event(index, raw)
        if isinstance(parsed, str):
            report.rejected.append((index, parsed))
        elif parsed.event_id in seen:
            report.duplicates += 1  # the same event twice in one post
        else:
            seen.add(parsed.event_id)
            items.append(parsed)
    if not items:
        return report
    _match(session, items)
    _minimise(session, items)
    inserted = _insert(session, items, now, provider.source)
    new = [item for item in items if item.event_id in inserted]
    report.stored = len(new)
    report.duplicates += len(items) - len(new)
    report.unmatched = sum(1 for item in new if item.status is None)
    _apply_ledger(session, new, now)
    _apply_addresses(session, new, provider.label)
    return report


# Parsing ----------------------------------------------------------------------------------------


def parse_event(index: int, raw: Any) -> _Item | str:
    """One element of the posted array, or why it is refused (never echoing payload values)."""
    if not isinstance(raw, dict):
        return "not a JSON object"
    kind = raw.get("event")
    if not isinstance(kind, str) or not kind:
        return "'event' is missing"
    if kind not in EVENT_TYPES:
        return f"unknown event type {kind!r}" if _EVENT_NAME.match(kind) else "unknown event type"
    event_id = raw.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id:
        return "'sg_event_id' is missing"
    if len(event_id) > MAX_EVENT_ID or not _EVENT_ID.match(event_id):
        return f"'sg_event_id' must be at most {MAX_EVENT_ID} printable characters without spaces"
    epoch = raw.get("timestamp")
    if type(epoch) not in (int, float) or not 0 <= epoch <= LATEST_TIMESTAMP:  # NaN fails the comparison
        return "'timestamp' must be a number of seconds since 1970 (UTC)"

    email = raw.get("email") if isinstance(raw.get("email"), str) else None
    message_id = raw.get("sg_message_id")
    prefix = message_id.split(".", 1)[0] if isinstance(message_id, str) and message_id else None
    item = _Item(index, event_id, kind, epoch, _delivery_ref(raw.get("delivery_id")), prefix or None, email)
    addresses = [email] if email else []
    if kind == EventType.BOUNCE:
        if raw.get("type") == "bounce":  # SendGrid's bounce type, hard (or "blocked")
            item.effect = HARD_BOUNCE
        else:
            item.type = EventType.BLOCKED
        item.reason = _reason(" ".join(str(raw[k]) for k in ("status", "reason") if raw.get(k)), addresses)
    elif kind == EventType.DROPPED:
        item.reason = _reason(raw.get("reason"), addresses)
        item.effect = drop_effect(item.reason)
    elif kind == EventType.DEFERRED:
        item.reason = _reason(raw.get("response"), addresses)
    elif kind == EventType.OPEN:
        item.machine = raw.get("sg_machine_open") in (True, "true", 1)
        item.reason = "sg_machine_open" if item.machine else None
    elif kind == EventType.CLICK:
        item.url = _url(raw.get("url"))
    else:
        item.effect = _EVENT_EFFECT.get(kind)
    return item


def drop_effect(reason: str | None) -> str | None:
    """What a "dropped" event's reason says about the address, if anything."""
    for pattern, effect in _DROP_EFFECTS:
        if reason and pattern.search(reason):
            return effect
    return None


def _delivery_ref(value: Any) -> int | None:
    """The ``delivery_id`` custom arg: digits only (we send it as a string), else ignored."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= MAX_DELIVERY_DIGITS:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**MAX_DELIVERY_DIGITS:
        return value
    return None


def _reason(value: Any, addresses: list[str]) -> str | None:
    """SendGrid's reason or SMTP response, without addresses (a bounce often quotes the recipient)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = scrub(" ".join(_CONTROL.sub(" ", value).split()), addresses=addresses)
    return text[:MAX_REASON] or None


def _url(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return _URL_ADDRESS.sub("<address>", _CONTROL.sub("", value))[:MAX_URL] or None


# Matching ---------------------------------------------------------------------------------------


def _match(session: Session, items: list[_Item]) -> None:
    """Fill each item's delivery: by the delivery_id custom arg (one query), else by the request's
    message id together with the recipient's address (one query for the addresses, one for rows)."""
    refs = {item.delivery_ref for item in items if item.delivery_ref is not None}
    columns = (Delivery.id, Delivery.contact_id, Delivery.issue_id, Delivery.step_id, Delivery.status)
    by_id: dict[int, Any] = {}
    if refs:
        by_id = {row[0]: row for row in session.execute(select(*columns).where(_among(session, Delivery.id, refs)))}
    for item in items:
        if item.delivery_ref in by_id:
            _fill(item, by_id[item.delivery_ref])

    # Who is left: the fallback needs the contact behind the address; so do unmatched address effects.
    left = [item for item in items if item.status is None and item.email and (item.message_prefix or item.effect)]
    if not left:
        return
    hashes = {item.index: address_hash(session, item.email.strip()) for item in left if item.email}
    contacts = dict(session.execute(
        select(Contact.email_hash, Contact.id).where(Contact.email_hash.in_(set(hashes.values())))
    ).all())
    prefixes = {item.message_prefix for item in left if item.message_prefix}
    by_message: dict[tuple[int, str], Any] = {}
    if prefixes and contacts:
        rows = session.execute(
            select(*columns, Delivery.provider_message_id)
            .where(Delivery.contact_id.in_(set(contacts.values())), Delivery.provider_message_id.in_(prefixes))
        )
        by_message = {(row[1], row[5]): row for row in rows}
    for item in left:
        contact_id = contacts.get(hashes[item.index])
        row = by_message.get((contact_id, item.message_prefix)) if contact_id is not None else None
        if row is not None:
            _fill(item, row)
        elif item.effect is not None:
            item.contact_id = contact_id  # no delivery, but the address is a contact of ours


def _among(session: Session, column: ColumnElement[int], ids: Iterable[int]) -> ColumnElement[bool]:
    """``column IN ids`` with the ids as one bound value (a JSON array read by json_each on SQLite,
    an array on PostgreSQL): an IN list binds, and SQLAlchemy processes, each of 1000 ids separately."""
    if is_postgresql(session):
        return column == any_(literal(sorted(ids), ARRAY(BigInteger)))
    values = func.json_each(json.dumps(sorted(ids))).table_valued("value")
    return column.in_(select(values.c.value))


def _fill(item: _Item, row: Any) -> None:
    item.delivery_id, item.contact_id, item.issue_id, item.step_id, item.status = row[:5]


def _minimise(session: Session, items: list[_Item]) -> None:
    """Opens and clicks of an email tracked anonymously (or not at all) keep only which email they
    were about, as the first-party pixel and redirect do."""
    engagement = [item for item in items if item.type in ENGAGEMENT and item.delivery_id is not None]
    issue_ids = {item.issue_id for item in engagement if item.issue_id is not None}
    step_ids = {item.step_id for item in engagement if item.issue_id is None and item.step_id is not None}
    if not issue_ids and not step_ids:
        return
    untracked_issues = set(session.scalars(
        select(Issue.id).where(Issue.id.in_(issue_ids), Issue.tracking != "full"))) if issue_ids else set()
    untracked_steps = set(session.scalars(
        select(SequenceStep.id).join(Sequence, Sequence.id == SequenceStep.sequence_id)
        .where(SequenceStep.id.in_(step_ids), Sequence.tracking != "full"))) if step_ids else set()
    for item in engagement:
        if item.issue_id in untracked_issues or (item.issue_id is None and item.step_id in untracked_steps):
            item.delivery_id = item.contact_id = None


# Storing ----------------------------------------------------------------------------------------


# The columns a provider event fills, and the events table with just those (untyped: PostgreSQL's
# arrays carry the types; SQLite gets values already processed, each distinct timestamp once through
# the column's own type, so a 1000-row insert runs no type processor per value).
_WRITTEN = ("provider_event_id", "delivery_id", "contact_id", "issue_id", "step_id", "link_id", "type", "machine",
            "source", "url", "reason", "occurred_at", "recorded_at")
_EVENT_ROWS = table(Event.__tablename__, *(column(name) for name in _WRITTEN))
# SQLite's limit on bound values in one statement (999 before 3.32).
_SQLITE_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def _insert(session: Session, items: list[_Item], now: datetime, source: str) -> set[str]:
    """Insert the batch (one statement; on SQLite one per 2520 rows); returns the provider ids that were new."""
    dialect = session.get_bind().dialect
    postgres = is_postgresql(session)
    to_db = (lambda value: value) if postgres else _stamp_processor(dialect)
    stamps = {epoch: to_db(datetime.fromtimestamp(epoch, tz=timezone.utc)) for epoch in {i.epoch for i in items}}
    recorded = to_db(now)
    rows = [
        (i.event_id, i.delivery_id, i.contact_id, i.issue_id, i.step_id, None, i.type, i.machine, source, i.url,
         i.reason, stamps[i.epoch], recorded)
        for i in items
    ]
    if not postgres:
        return _insert_sqlite(session, rows)
    # One array per column, unnest()ed back into rows: 13 parameters rather than 13,000, whose
    # placeholders psycopg would parse in Python (about 0.2 s per 1000 rows).
    types = Event.__table__.c
    arrays = [cast(list(values), ARRAY(types[name].type)) for name, values in zip(_WRITTEN, zip(*rows))]
    source = func.unnest(*arrays).table_valued(*_WRITTEN).render_derived()
    statement = (
        insert_ignoring_conflicts(session, _EVENT_ROWS)
        .from_select(list(_WRITTEN), select(*source.c))
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(_EVENT_ROWS.c.provider_event_id)
    )
    return set(session.execute(statement).scalars())


def _insert_sqlite(session: Session, rows: list[tuple[Any, ...]]) -> set[str]:
    """The same statement on SQLite, written out: one multi-row VALUES per page of rows, bound
    positionally. SQLAlchemy's own executemany form costs a dict and a parameter pass per row, a
    quarter of the whole insert at 1000 rows."""
    inserted: set[str] = set()
    one = "(" + ", ".join("?" * len(_WRITTEN)) + ")"
    page = _SQLITE_MAX_VARIABLES // len(_WRITTEN)
    connection = session.connection()
    for start in range(0, len(rows), page):
        chunk = rows[start:start + page]
        sql = (f"INSERT INTO {Event.__tablename__} ({', '.join(_WRITTEN)}) VALUES {', '.join([one] * len(chunk))} "
               "ON CONFLICT (provider_event_id) DO NOTHING RETURNING provider_event_id")
        inserted.update(row[0] for row in connection.exec_driver_sql(sql, tuple(v for r in chunk for v in r)))
    return inserted


def _stamp_processor(dialect: Any) -> Any:
    """How the events table's timestamp columns bind a datetime on this dialect."""
    stamp_type = Event.__table__.c.occurred_at.type
    return stamp_type.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)


# Effects ----------------------------------------------------------------------------------------


def _apply_ledger(session: Session, new: list[_Item], now: datetime) -> None:
    """Delivery states, one UPDATE per kind; the WHERE clauses make each a forward-only move."""
    in_flight = [i.delivery_id for i in new if i.status in IN_REQUEST and i.delivery_id is not None]
    ledger.resolve_accepted(session, sorted(set(in_flight)), now)
    # (event type, new status, the statuses it may move from): a delivered event never undoes a
    # bounce or a drop; a late (asynchronous) bounce does override "delivered".
    moves = ((EventType.DELIVERED, DeliveryStatus.DELIVERED, (DeliveryStatus.SUBMITTED,)),
             (EventType.BOUNCE, DeliveryStatus.BOUNCED, (DeliveryStatus.SUBMITTED, DeliveryStatus.DELIVERED)),
             (EventType.DROPPED, DeliveryStatus.DROPPED, (DeliveryStatus.SUBMITTED,)))
    # Rows an event may still move on: not settled as bounced or dropped (nor failed, queued or suppressed).
    open_states = (DeliveryStatus.UNKNOWN, DeliveryStatus.CLAIMED, DeliveryStatus.SUBMITTED, DeliveryStatus.DELIVERED)
    for kind, target, sources in moves:
        ids = {i.delivery_id for i in new if i.type == kind and i.status in open_states}
        if ids:
            session.execute(
                update(Delivery)
                .where(_among(session, Delivery.id, ids), Delivery.status.in_(sources))
                .values(status=target)
                .execution_options(synchronize_session=False)
            )


def _apply_addresses(session: Session, new: list[_Item], label: str) -> None:
    """Suppress addresses, unsubscribe and mark contacts: at once, in the same transaction."""
    affected = [i for i in new if i.effect is not None]
    if not affected:
        return
    contact_ids = {i.contact_id for i in affected if i.contact_id is not None}
    contacts = {c.id: c for c in session.scalars(
        select(Contact).where(Contact.id.in_(contact_ids)).options(selectinload(Contact.subscriptions))
    )} if contact_ids else {}
    # The strongest effect per address; a known contact's own address and hash are authoritative.
    strongest: dict[str, tuple[str, str | None, Contact | None]] = {}  # hash -> (effect, address, contact)
    for item in sorted(affected, key=lambda i: _STRENGTH[i.effect or UNSUBSCRIBED]):
        contact = contacts.get(item.contact_id) if item.contact_id is not None else None
        target = _address(session, item, contact)
        if target is not None and target[0] not in strongest:
            strongest[target[0]] = (item.effect or UNSUBSCRIBED, target[1], contact)
    _suppress_all(session, [(digest, address, effect) for digest, (effect, address, _) in strongest.items()], label)
    for effect, _address_, contact in strongest.values():
        if contact is None:
            continue
        before = contact.status
        if effect in (COMPLAINT, UNSUBSCRIBED):
            unsubscribe(session, contact, None, Proof("provider", note=f"{label} {effect.replace('_', ' ')}"))
        contact.status = _contact_status(before, effect)
    session.flush()


def _address(session: Session, item: _Item, contact: Contact | None) -> tuple[str, str | None] | None:
    """(hash, address) to suppress: the contact's; else, if the payload's is an address at all, its
    hash alone (not a contact of ours: nothing of that person is kept but the hash)."""
    if contact is not None:
        return contact.email_hash, contact.email
    try:
        address = normalise_email(item.email or "")
    except InputError:
        return None
    return address_hash(session, address), None


def _contact_status(before: str, effect: str) -> str:
    """complained outranks bounced, which outranks unsubscribed: a weaker event never hides a stronger one."""
    rank = {ContactStatus.ACTIVE: 0, ContactStatus.UNSUBSCRIBED: 1, ContactStatus.BOUNCED: 2,
            ContactStatus.COMPLAINED: 3}
    wanted = _CONTACT_STATUS.get(effect, ContactStatus.UNSUBSCRIBED)
    return wanted if rank[wanted] >= rank.get(before, 0) else before


def _suppress_all(session: Session, rows: Iterable[tuple[str, str | None, str]], label: str) -> None:
    """``suppression.suppress`` for many addresses in one statement: an address already on the list
    keeps its first reason (an erased one stays without its address)."""
    values = [{"email_hash": h, "email": a, "reason": r, "note": f"via {label}"} for h, a, r in rows]
    if not values:
        return
    statement = insert_ignoring_conflicts(session, Suppression.__table__)
    session.execute(statement.on_conflict_do_nothing(index_elements=["email_hash"]), values)
