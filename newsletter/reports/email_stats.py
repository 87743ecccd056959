"""How one email did: an issue, or each step of a sequence.

Definitions (one delivery = one email to one contact; every count below counts deliveries, so a
person who opens an email five times counts once):

- **recipients**: deliveries of the email that were not suppressed (queued, claimed, submitted,
  delivered, bounced, dropped, failed and unknown all count: we meant to send them).
- **sent**: the provider accepted it: status submitted, delivered, bounced or dropped; plus an
  ``unknown`` delivery (the request left, no answer came) once the provider reports any event about
  it, since that proves the request arrived. Unknown rows without any event are shown apart
  (``unknown``), as are ``pending`` (queued or claimed), ``failed`` and ``suppressed``.
- **delivered**: status delivered, or a ``delivered`` event, or any open or click (an email cannot
  be opened before it arrives; this keeps delivered right when the transport reports no deliveries,
  e.g. the outbox, and keeps clicks <= opens <= delivered).
- **bounced** / **dropped**: that status, or a ``bounce`` / ``dropped`` event. A late (asynchronous)
  bounce of a delivered email counts in both delivered and bounced.
- **unique opens**: deliveries with a human open (an ``open`` event whose ``machine`` is false) or a
  human click: a click implies an open, even when the image was blocked and no open was seen.
- **machine opens**: deliveries with an open labelled machine (Apple Mail Privacy Protection,
  proxies), counted apart and never in unique opens or rates. **machine clicks** likewise (link
  scanners).
- **unique clicks**: deliveries with a human click.
- **CTR** (click-through rate) = unique clicks / delivered; **CTOR** (click-to-open rate) = unique
  clicks / unique opens. None when the denominator is 0.
- **unsubscribes**: deliveries with an ``unsubscribe`` or ``group_unsubscribe`` event, whichever
  recorded it (SendGrid, or our own one-click endpoint, which records type ``unsubscribe`` with
  source ``first_party``). **complaints**: deliveries with a ``spamreport`` event.
- **anonymous opens / clicks**: human events recorded under anonymous tracking, which keep the email
  but no delivery: they are plain event counts (no person can be counted once), so they are shown
  apart and left out of unique counts and rates.
- **top links**: human clicks per link target (the link's URL, or the event's URL when the link row
  is gone), with label, unique clickers (deliveries) and total clicks (anonymous ones included);
  the 10 with most unique clickers, then most clicks, then by URL.
- **bookings**: bookings attributed to the email (``attributions``, written at booking time).

Each report is two set-based queries whatever the audience size: one aggregate over the deliveries,
outer-joined to their events folded into one bit mask per delivery (and the anonymous events), and
one over the clicks for the top links; no Python loop ever walks deliveries or events. Events are
found by their own ``issue_id`` / ``step_id`` (and ``contact_id``), which the SendGrid webhook and
the first-party endpoints copy from the delivery: indexed, so a report reads one email's events and
never scans the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, exists, func, literal, select, text, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session

from newsletter.errors import NotFound
from newsletter.models import Attribution, Delivery, Event, Issue, Link, Sequence, SequenceStep
from newsletter.sending.progress import IssueState, describe
from subscribers.states import COUNTS_AS_SENT, ENGAGEMENT, ON_ITS_WAY, DeliveryStatus, EventType
from subscribers.db import is_postgresql

TOP_LINKS = 10

HUMAN = Event.machine.is_(False)
MACHINE = Event.machine.is_(True)


@dataclass(frozen=True)
class Scope:
    """Which kind of email: the columns that name it on each table."""

    delivery: InstrumentedAttribute[int | None]
    event: InstrumentedAttribute[int | None]
    attribution: InstrumentedAttribute[int | None]


ISSUE = Scope(Delivery.issue_id, Event.issue_id, Attribution.issue_id)
STEP = Scope(Delivery.step_id, Event.step_id, Attribution.step_id)


@dataclass
class LinkStats:
    url: str
    label: str
    is_booking: bool
    unique_clickers: int
    clicks: int


@dataclass
class EmailStats:
    recipients: int = 0
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    dropped: int = 0
    pending: int = 0
    failed: int = 0
    unknown: int = 0
    suppressed: int = 0
    unique_opens: int = 0
    machine_opens: int = 0
    unique_clicks: int = 0
    machine_clicks: int = 0
    unsubscribes: int = 0
    complaints: int = 0
    anonymous_opens: int = 0
    anonymous_clicks: int = 0
    bookings: int = 0
    links: list[LinkStats] = field(default_factory=list)  # every clicked target, most clicked first

    @property
    def top_links(self) -> list[LinkStats]:
        return self.links[:TOP_LINKS]

    @property
    def ctr(self) -> float | None:
        return rate(self.unique_clicks, self.delivered)

    @property
    def ctor(self) -> float | None:
        return rate(self.unique_clicks, self.unique_opens)

    def as_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in COUNTS}, "ctr": self.ctr, "ctor": self.ctor,
                "top_links": [asdict(link) for link in self.top_links]}

    def add(self, other: EmailStats) -> None:
        """Sum counts (each delivery belongs to one email, so sums of unique counts stay unique)."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


COUNTS = tuple(name for name in EmailStats.__dataclass_fields__ if name != "links")


def without_jit(session: Session) -> None:
    """PostgreSQL only: no JIT compilation for the rest of this transaction (SET LOCAL). The reports
    are index probes whose estimated cost (an EXISTS per lead) passes ``jit_above_cost``; compiling
    them took longer than running them (half a second on the funnel, see bench/reports.py)."""
    if is_postgresql(session):
        session.execute(text("SET LOCAL jit = off"))


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.max(case((condition, 1), else_=0))


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def is_booking_click(url: ColumnElement[str | None]) -> ColumnElement[bool]:
    """A click (joined to its ``Link``) on a booking button: the link says so, or, since provider
    clicks carry only a URL and a recompiled email gets new link rows, its URL is one a booking
    button points at."""
    booking_urls = select(Link.url).where(Link.is_booking.is_(True))
    return Link.is_booking.is_(True) | url.in_(booking_urls)


# Each kind of event a delivery can have, as one bit. A delivery's events fold into one integer, the
# SUM of its distinct bits (an OR, since each bit is counted once): one cheap pass over the events,
# read in index order, instead of one aggregate per figure. ``&`` works on SQLite and PostgreSQL.
# Opens and clicks get a bit each for human and machine; the other kinds counted (``_PLAIN``) one bit.
BITS = {name: 1 << n for n, name in enumerate((
    EventType.DELIVERED, EventType.BOUNCE, EventType.DROPPED, "human_open", "machine_open", "human_click",
    "machine_click", EventType.UNSUBSCRIBE, EventType.GROUP_UNSUBSCRIBE, EventType.SPAMREPORT))}
_PLAIN = (EventType.DELIVERED, EventType.BOUNCE, EventType.DROPPED, EventType.UNSUBSCRIBE, EventType.GROUP_UNSUBSCRIBE,
          EventType.SPAMREPORT)


def _event_bit() -> ColumnElement[int]:
    return case(
        ((Event.type == EventType.OPEN) & HUMAN, BITS["human_open"]),
        (Event.type == EventType.OPEN, BITS["machine_open"]),
        ((Event.type == EventType.CLICK) & HUMAN, BITS["human_click"]),
        (Event.type == EventType.CLICK, BITS["machine_click"]),
        *((Event.type == name, BITS[name]) for name in _PLAIN),
        else_=0,  # processed, deferred, blocked...: the row still says the provider saw the email
    )


def _stats_rows(session: Session, scope: Scope, ids: list[int]) -> dict[int, EmailStats]:
    """The counts per email of ``ids``, in one statement that reads the emails' events once:

    - ``kinds``: one row per (email, delivery, kind of event) with its bit and how many there were;
    - per email, its deliveries outer-joined to their events folded into one mask each;
    - UNION ALL, per email, the anonymous events (no delivery) of ``kinds``.
    """
    key = scope.delivery
    # Events are found by their own issue/step column (indexed, copied from the delivery by every
    # writer), so only these emails' events are read, never the whole table.
    kinds = (select(scope.event.label("key"), Event.delivery_id.label("delivery_id"), _event_bit().label("bit"),
                    func.count().label("n"))
             .where(scope.event.in_(ids))
             .group_by(scope.event, Event.delivery_id, Event.type, Event.machine)
             .cte("kinds"))
    ev = (select(kinds.c.delivery_id, func.sum(kinds.c.bit).label("mask"))
          .where(kinds.c.delivery_id.is_not(None)).group_by(kinds.c.delivery_id).subquery("ev"))

    def had(*names: str) -> ColumnElement[bool]:
        return ev.c.mask.op("&")(sum(BITS[n] for n in names)) != 0

    status = Delivery.status
    seen = ev.c.delivery_id.is_not(None)  # the provider (or a reader) reported something about it
    opened = ("human_open", "machine_open", "human_click", "machine_click")
    bookings = select(func.count()).select_from(Attribution).where(scope.attribution == key).scalar_subquery()
    figures = {
        "recipients": count_if(status != DeliveryStatus.SUPPRESSED),
        "sent": count_if(status.in_(COUNTS_AS_SENT) | ((status == DeliveryStatus.UNKNOWN) & seen)),
        "delivered": count_if((status == DeliveryStatus.DELIVERED) | had(EventType.DELIVERED, *opened)),
        "bounced": count_if((status == DeliveryStatus.BOUNCED) | had(EventType.BOUNCE)),
        "dropped": count_if((status == DeliveryStatus.DROPPED) | had(EventType.DROPPED)),
        "pending": count_if(status.in_(ON_ITS_WAY)),
        "failed": count_if(status == DeliveryStatus.FAILED),
        "unknown": count_if((status == DeliveryStatus.UNKNOWN) & ~seen),
        "suppressed": count_if(status == DeliveryStatus.SUPPRESSED),
        "unique_opens": count_if(had("human_open", "human_click")),
        "machine_opens": count_if(had("machine_open")),
        "unique_clicks": count_if(had("human_click")),
        "machine_clicks": count_if(had("machine_click")),
        "unsubscribes": count_if(had(EventType.UNSUBSCRIBE, EventType.GROUP_UNSUBSCRIBE)),
        "complaints": count_if(had(EventType.SPAMREPORT)),
        "anonymous_opens": literal(0),
        "anonymous_clicks": literal(0),
        "bookings": bookings,
    }
    per_delivery = (select(key.label("key"), *(value.label(name) for name, value in figures.items()))
                    .select_from(Delivery).outerjoin(ev, ev.c.delivery_id == Delivery.id)
                    .where(key.in_(ids)).group_by(key))

    def events_of(bit: str) -> ColumnElement[int]:
        return func.sum(case((kinds.c.bit == BITS[bit], kinds.c.n), else_=0))

    anonymous_figures = {name: literal(0) for name in figures} | {
        "anonymous_opens": events_of("human_open"), "anonymous_clicks": events_of("human_click")}
    anonymous = (select(kinds.c.key, *(value.label(name) for name, value in anonymous_figures.items()))
                 .where(kinds.c.delivery_id.is_(None)).group_by(kinds.c.key))
    found: dict[int, EmailStats] = {}
    for row in session.execute(union_all(per_delivery, anonymous)):  # at most two rows per email
        found.setdefault(row.key, EmailStats()).add(EmailStats(**{name: int(getattr(row, name)) for name in COUNTS}))
    return found


def _link_rows(session: Session, scope: Scope, ids: list[int]) -> dict[int, list[LinkStats]]:
    """Human clicks per (email, link target). Anonymous clicks (no delivery) add to the clicks and,
    since COUNT(DISTINCT) skips NULL, not to the unique clickers."""
    key = scope.event
    target = func.coalesce(Link.url, Event.url, literal(""))
    query = (
        select(key.label("key"), target.label("url"), func.max(func.coalesce(Link.label, "")).label("label"),
               flag(is_booking_click(Event.url)).label("is_booking"),
               func.count(distinct(Event.delivery_id)).label("unique_clickers"),
               func.count().label("clicks"))
        .select_from(Event)
        .outerjoin(Link, Link.id == Event.link_id)
        .where(key.in_(ids), Event.type == EventType.CLICK, HUMAN)
        .group_by(key, target)
    )
    found: dict[int, list[LinkStats]] = {}
    for row in session.execute(query):
        found.setdefault(row.key, []).append(
            LinkStats(row.url, row.label or "", bool(row.is_booking), int(row.unique_clickers), int(row.clicks)))
    return {key: ranked(links) for key, links in found.items()}


def ranked(links: list[LinkStats]) -> list[LinkStats]:
    return sorted(links, key=lambda s: (-s.unique_clickers, -s.clicks, s.url))


def merge_links(groups: list[list[LinkStats]]) -> list[LinkStats]:
    """One list over several emails (all their links, not only their top ones), adding up the same
    target: a sequence's totals."""
    merged: dict[str, LinkStats] = {}
    for links in groups:
        for link in links:
            into = merged.setdefault(link.url, LinkStats(link.url, link.label, link.is_booking, 0, 0))
            into.unique_clickers += link.unique_clickers
            into.clicks += link.clicks
            into.is_booking = into.is_booking or link.is_booking
            into.label = into.label or link.label
    return ranked(list(merged.values()))


def stats_for(session: Session, scope: Scope, ids: list[int]) -> dict[int, EmailStats]:
    """Stats of every email in ``ids`` (issue ids or step ids); an email never sent gets zeros."""
    if not ids:
        return {}
    rows = _stats_rows(session, scope, ids)
    links = _link_rows(session, scope, ids)
    result = {}
    for email_id in ids:
        stats = rows.get(email_id) or EmailStats()
        stats.links = links.get(email_id, [])
        result[email_id] = stats
    return result


# --- the two reports --------------------------------------------------------------------------------


@dataclass
class IssueReport:
    issue_id: int
    subject: str
    state: IssueState  # the stored status and what people are told (from this report's unknown count)
    stats: EmailStats

    @property
    def status(self) -> str:
        return self.state.status

    def as_dict(self) -> dict[str, Any]:
        # "unknown" is the figure of the stats (the same count the state is made from).
        return {"issue_id": self.issue_id, "subject": self.subject, "status": self.state.status,
                "state": self.state.state, "label": self.state.label, **self.stats.as_dict()}


@dataclass
class StepReport:
    step_id: int
    position: int
    key: str
    subject: str
    active: bool
    stats: EmailStats

    def as_dict(self) -> dict[str, Any]:
        return {"step_id": self.step_id, "position": self.position, "key": self.key, "subject": self.subject,
                "active": self.active, **self.stats.as_dict()}


@dataclass
class SequenceReport:
    sequence_id: int
    name: str
    steps: list[StepReport]
    totals: EmailStats

    def as_dict(self) -> dict[str, Any]:
        return {"sequence_id": self.sequence_id, "name": self.name,
                "steps": [s.as_dict() for s in self.steps], "totals": self.totals.as_dict()}


def issue_report(session: Session, issue_id: int) -> IssueReport:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFound(f"there is no issue {issue_id}")
    without_jit(session)
    stats = stats_for(session, ISSUE, [issue.id])[issue.id]
    return IssueReport(issue.id, issue.subject, describe(issue.status, stats.unknown), stats)


def sequence_report(session: Session, sequence: Sequence) -> SequenceReport:
    """Per step (removed steps too: their history stays) and totals over the sequence."""
    without_jit(session)
    steps = list(session.scalars(
        select(SequenceStep).where(SequenceStep.sequence_id == sequence.id)
        .order_by(SequenceStep.position, SequenceStep.id)))
    per_step = stats_for(session, STEP, [s.id for s in steps])
    totals = EmailStats()
    for stats in per_step.values():
        totals.add(stats)
    totals.links = merge_links([s.links for s in per_step.values()])
    return SequenceReport(sequence.id, sequence.name,
                          [StepReport(s.id, s.position, s.key, s.subject, s.active, per_step[s.id]) for s in steps],
                          totals)


def has_sent_delivery(contact_id: ColumnElement[int | None]) -> ColumnElement[bool]:
    """EXISTS a delivery to this contact that counts as sent (see the definitions above)."""
    provider_saw = exists().where(Event.delivery_id == Delivery.id)
    return exists().where(
        Delivery.contact_id == contact_id,
        Delivery.status.in_(COUNTS_AS_SENT) | ((Delivery.status == DeliveryStatus.UNKNOWN) & provider_saw),
    )


def has_human_engagement(contact_id: ColumnElement[int | None]) -> ColumnElement[bool]:
    """EXISTS a human open or click on a delivery to this contact. Read by the event's contact column
    (index contact, type, time): opens and clicks carry it exactly when they carry their delivery."""
    return exists().where(Event.contact_id == contact_id, Event.type.in_(ENGAGEMENT), HUMAN)
