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

Each report is two set-based queries whatever the audience size: one aggregate over the deliveries
(with their events grouped per delivery first) and one over the clicks for the top links.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, exists, func, literal, select, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session

from newsletter.errors import NotFound
from newsletter.models import Attribution, Delivery, Event, Issue, Link, Sequence, SequenceStep

SENT = ("submitted", "delivered", "bounced", "dropped")
PENDING = ("queued", "claimed")
UNSUBSCRIBE = ("unsubscribe", "group_unsubscribe")
ENGAGEMENT = ("open", "click")
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
    top_links: list[LinkStats] = field(default_factory=list)

    @property
    def ctr(self) -> float | None:
        return rate(self.unique_clicks, self.delivered)

    @property
    def ctor(self) -> float | None:
        return rate(self.unique_clicks, self.unique_opens)

    def as_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in COUNTS}, "ctr": self.ctr, "ctor": self.ctor,
                "top_links": [asdict(link) for link in self.top_links]}

    def add(self, other: "EmailStats") -> None:
        """Sum counts (each delivery belongs to one email, so sums of unique counts stay unique)."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


COUNTS = tuple(name for name in EmailStats.__dataclass_fields__ if name != "top_links")


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


def _stats_rows(session: Session, scope: Scope, ids: list[int]) -> dict[int, EmailStats]:
    """The counts per email of ``ids``: deliveries outer-joined to their events grouped per delivery."""
    key = scope.delivery
    ev = (
        select(
            Event.delivery_id.label("delivery_id"),
            flag(Event.type.in_(("delivered", *ENGAGEMENT))).label("delivered"),
            flag(Event.type == "bounce").label("bounced"),
            flag(Event.type == "dropped").label("dropped"),
            flag(Event.type.in_(ENGAGEMENT) & HUMAN).label("human_open"),
            flag((Event.type == "open") & MACHINE).label("machine_open"),
            flag((Event.type == "click") & HUMAN).label("human_click"),
            flag((Event.type == "click") & MACHINE).label("machine_click"),
            flag(Event.type.in_(UNSUBSCRIBE)).label("unsubscribed"),
            flag(Event.type == "spamreport").label("complained"),
        )
        .join(Delivery, Delivery.id == Event.delivery_id)
        .where(key.in_(ids))
        .group_by(Event.delivery_id)
        .subquery("ev")
    )
    status = Delivery.status
    seen = ev.c.delivery_id.is_not(None)  # the provider (or a reader) reported something about it

    def anonymous(kind: str) -> ColumnElement[int]:
        # Correlated to the grouped email: few rows, read by the event's issue/step index.
        return (select(func.count()).select_from(Event)
                .where(Event.delivery_id.is_(None), scope.event == key, Event.type == kind, HUMAN)
                .scalar_subquery())

    bookings = (select(func.count()).select_from(Attribution).where(scope.attribution == key).scalar_subquery())
    query = (
        select(
            key.label("key"),
            count_if(status != "suppressed").label("recipients"),
            count_if(status.in_(SENT) | ((status == "unknown") & seen)).label("sent"),
            count_if((status == "delivered") | (ev.c.delivered == 1)).label("delivered"),
            count_if((status == "bounced") | (ev.c.bounced == 1)).label("bounced"),
            count_if((status == "dropped") | (ev.c.dropped == 1)).label("dropped"),
            count_if(status.in_(PENDING)).label("pending"),
            count_if(status == "failed").label("failed"),
            count_if((status == "unknown") & ~seen).label("unknown"),
            count_if(status == "suppressed").label("suppressed"),
            count_if(ev.c.human_open == 1).label("unique_opens"),
            count_if(ev.c.machine_open == 1).label("machine_opens"),
            count_if(ev.c.human_click == 1).label("unique_clicks"),
            count_if(ev.c.machine_click == 1).label("machine_clicks"),
            count_if(ev.c.unsubscribed == 1).label("unsubscribes"),
            count_if(ev.c.complained == 1).label("complaints"),
            anonymous("open").label("anonymous_opens"),
            anonymous("click").label("anonymous_clicks"),
            bookings.label("bookings"),
        )
        .select_from(Delivery)
        .outerjoin(ev, ev.c.delivery_id == Delivery.id)
        .where(key.in_(ids))
        .group_by(key)
    )
    return {row.key: EmailStats(**{name: int(getattr(row, name)) for name in COUNTS})
            for row in session.execute(query)}


def _link_rows(session: Session, scope: Scope, ids: list[int]) -> dict[int, list[LinkStats]]:
    """Human clicks per (email, link target), most unique clickers first."""
    linked = (select(scope.delivery.label("key"), Event.delivery_id, Event.link_id, Event.url)
              .join(Delivery, Delivery.id == Event.delivery_id)
              .where(scope.delivery.in_(ids), Event.type == "click", HUMAN))
    anonymous = (select(scope.event.label("key"), Event.delivery_id, Event.link_id, Event.url)
                 .where(Event.delivery_id.is_(None), scope.event.in_(ids), Event.type == "click", HUMAN))
    clicks = union_all(linked, anonymous).subquery("clicks")
    target = func.coalesce(Link.url, clicks.c.url, literal(""))
    query = (
        select(clicks.c.key, target.label("url"), func.max(func.coalesce(Link.label, "")).label("label"),
               flag(is_booking_click(clicks.c.url)).label("is_booking"),
               func.count(distinct(clicks.c.delivery_id)).label("unique_clickers"),
               func.count().label("clicks"))
        .select_from(clicks)
        .outerjoin(Link, Link.id == clicks.c.link_id)
        .group_by(clicks.c.key, target)
    )
    found: dict[int, list[LinkStats]] = {}
    for row in session.execute(query):
        found.setdefault(row.key, []).append(
            LinkStats(row.url, row.label or "", bool(row.is_booking), int(row.unique_clickers), int(row.clicks)))
    return {key: top(links) for key, links in found.items()}


def top(links: list[LinkStats], limit: int = TOP_LINKS) -> list[LinkStats]:
    return sorted(links, key=lambda s: (-s.unique_clickers, -s.clicks, s.url))[:limit]


def merge_links(groups: list[list[LinkStats]]) -> list[LinkStats]:
    """One list over several emails, adding up the same target (for a sequence's totals)."""
    merged: dict[str, LinkStats] = {}
    for links in groups:
        for link in links:
            into = merged.setdefault(link.url, LinkStats(link.url, link.label, link.is_booking, 0, 0))
            into.unique_clickers += link.unique_clickers
            into.clicks += link.clicks
            into.is_booking = into.is_booking or link.is_booking
            into.label = into.label or link.label
    return top(list(merged.values()))


def stats_for(session: Session, scope: Scope, ids: list[int]) -> dict[int, EmailStats]:
    """Stats of every email in ``ids`` (issue ids or step ids); an email never sent gets zeros."""
    if not ids:
        return {}
    rows = _stats_rows(session, scope, ids)
    links = _link_rows(session, scope, ids)
    result = {}
    for email_id in ids:
        stats = rows.get(email_id) or EmailStats()
        stats.top_links = links.get(email_id, [])
        result[email_id] = stats
    return result


# --- the two reports --------------------------------------------------------------------------------


@dataclass
class IssueReport:
    issue_id: int
    subject: str
    status: str
    stats: EmailStats

    def as_dict(self) -> dict[str, Any]:
        return {"issue_id": self.issue_id, "subject": self.subject, "status": self.status, **self.stats.as_dict()}


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
    return IssueReport(issue.id, issue.subject, issue.status, stats_for(session, ISSUE, [issue.id])[issue.id])


def sequence_report(session: Session, sequence: Sequence) -> SequenceReport:
    """Per step (removed steps too: their history stays) and totals over the sequence."""
    steps = list(session.scalars(
        select(SequenceStep).where(SequenceStep.sequence_id == sequence.id)
        .order_by(SequenceStep.position, SequenceStep.id)))
    per_step = stats_for(session, STEP, [s.id for s in steps])
    totals = EmailStats()
    for stats in per_step.values():
        totals.add(stats)
    totals.top_links = merge_links([s.top_links for s in per_step.values()])
    return SequenceReport(sequence.id, sequence.name,
                          [StepReport(s.id, s.position, s.key, s.subject, s.active, per_step[s.id]) for s in steps],
                          totals)


def has_sent_delivery(contact_id: ColumnElement[int | None]) -> ColumnElement[bool]:
    """EXISTS a delivery to this contact that counts as sent (see the definitions above)."""
    provider_saw = exists().where(Event.delivery_id == Delivery.id)
    return exists().where(
        Delivery.contact_id == contact_id,
        Delivery.status.in_(SENT) | ((Delivery.status == "unknown") & provider_saw),
    )


def has_human_engagement(contact_id: ColumnElement[int | None]) -> ColumnElement[bool]:
    """EXISTS a human open or click on a delivery to this contact."""
    return (select(literal(1)).select_from(Delivery).join(Event, Event.delivery_id == Delivery.id)
            .where(Delivery.contact_id == contact_id, Event.type.in_(ENGAGEMENT), HUMAN)
            .exists())
