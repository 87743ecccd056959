"""First-party opens and clicks: the pixel and the click redirect record events on our own domain.

Under anonymous tracking an event keeps only which email (and link) it was about; under full
tracking it also keeps the delivery, hence the contact. Machine activity is labelled (see
``machines``), never dropped and never counted as human.

A token only works for its own email: a delivery token for the links and pixel of the issue or step
that delivery carried, "anon" for those of an email that went out under anonymous tracking. Any
other pairing (one email's token with another issue's link, a draft's link, a forged token) is
answered like an unknown link and records nothing, so holding one email cannot open the links of
another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.urls import ANONYMOUS_TOKEN, TEST_TOKEN, delivery_from_token, pixel_email, url_id
from newsletter.models import Delivery, Event, Issue, Link, Sequence, SequenceStep
from newsletter.sending import ledger
from newsletter.tracking.machines import machine_reason
from subscribers.states import IN_REQUEST, EventType

ALL_AT_ONCE = timedelta(seconds=5)  # a person does not click three links of one email in five seconds
ALL_AT_ONCE_LINKS = 3


@dataclass(frozen=True)
class Request:
    method: str
    user_agent: str | None
    ip: str | None


def _mode(session: Session, issue_id: int | None, step_id: int | None) -> str:
    if issue_id is not None:
        return session.scalar(select(Issue.tracking).where(Issue.id == issue_id)) or "off"
    return session.scalar(
        select(Sequence.tracking).join(SequenceStep, SequenceStep.sequence_id == Sequence.id).where(SequenceStep.id == step_id)
    ) or "off"


@dataclass(frozen=True)
class _Bound:
    """A token found to belong to an email: the delivery it names (None for "anon")."""

    delivery: Delivery | None


def _bind(session: Session, settings: Settings, token: str, issue_id: int | None, step_id: int | None,
          mode: str) -> _Bound | None:
    """Whether ``token`` came with this very email (see the module's docstring); None: it did not."""
    if token == ANONYMOUS_TOKEN:
        return _Bound(None) if mode == "anonymous" and _went_out(session, issue_id, step_id) else None
    delivery_id = delivery_from_token(settings, token)
    delivery = session.get(Delivery, delivery_id) if delivery_id is not None else None
    if delivery is None or (delivery.issue_id, delivery.step_id) != (issue_id, step_id):
        return None
    return _Bound(delivery)


def _went_out(session: Session, issue_id: int | None, step_id: int | None) -> bool:
    """The email was sent (to anyone): a draft's links are nobody's to follow."""
    about = Delivery.issue_id == issue_id if issue_id is not None else Delivery.step_id == step_id
    return session.scalar(select(exists().where(about))) or False


def record_open(session: Session, settings: Settings, token: str, key: str, request: Request, now: datetime) -> bool:
    """The pixel was fetched. ``key`` names the email ("i12" an issue, "s7" a step). Records an open
    only for a token of that email under tracking; returns whether it did."""
    email = pixel_email(key)
    if email is None or token == TEST_TOKEN:  # a test email or a preview: never counted
        return False
    issue_id, step_id = email
    mode = _mode(session, issue_id, step_id)
    bound = _bind(session, settings, token, issue_id, step_id, mode) if mode != "off" else None
    if bound is None:
        return False  # a forged or foreign token, or no tracking: nothing to count
    delivery = bound.delivery if mode == "full" else None
    reason = machine_reason(method=request.method, user_agent=request.user_agent, ip=request.ip, kind=EventType.OPEN)
    session.add(Event(delivery_id=delivery.id if delivery else None, contact_id=delivery.contact_id if delivery else None,
                      issue_id=issue_id, step_id=step_id, type=EventType.OPEN, machine=reason is not None, reason=reason,
                      source="first_party", occurred_at=now))
    _settle(session, delivery, now)
    return True


def record_click(session: Session, settings: Settings, token: str, link_id: str, request: Request,
                 now: datetime) -> str | None:
    """A tracked link was followed. Returns the stored target, or None (and records nothing) when
    ``link_id`` names no link or a link of another email than the token's."""
    number = url_id(link_id)
    link = session.get(Link, number) if number is not None else None
    if link is None:
        return None
    if token == TEST_TOKEN:
        return link.url  # a test email or a preview: the link works, nothing is counted
    mode = _mode(session, link.issue_id, link.step_id)
    bound = _bind(session, settings, token, link.issue_id, link.step_id, mode)
    if bound is None:
        return None
    if mode == "off":
        return link.url  # tracking was turned off since: still take the reader where the email pointed
    delivery = bound.delivery if mode == "full" else None
    reason = machine_reason(method=request.method, user_agent=request.user_agent, ip=request.ip, kind=EventType.CLICK,
                            submitted_at=delivery.submitted_at if delivery else None, now=now)
    session.add(Event(delivery_id=delivery.id if delivery else None, contact_id=delivery.contact_id if delivery else None,
                      issue_id=link.issue_id, step_id=link.step_id, link_id=link.id, url=link.url, type=EventType.CLICK,
                      machine=reason is not None, reason=reason, source="first_party", occurred_at=now))
    session.flush()
    if delivery is not None and reason is None:
        _label_all_at_once(session, delivery.id, now)
    _settle(session, delivery, now)
    return link.url


def _settle(session: Session, delivery: Delivery | None, now: datetime) -> None:
    """A genuine token came back from the email itself (a person, their mail client or a scanner
    fetched it): so the provider accepted the request. A row held as unknown is settled as submitted,
    as a provider event would settle it, and staff are not asked to resolve (or resend) it."""
    if delivery is not None and delivery.status in IN_REQUEST:
        ledger.resolve_accepted(session, [delivery.id], now)


def _label_all_at_once(session: Session, delivery_id: int, now: datetime) -> None:
    """A scanner opens every link of an email in a burst: relabel such a burst as machine clicks."""
    recent = (Event.delivery_id == delivery_id, Event.type == EventType.CLICK, Event.occurred_at >= now - ALL_AT_ONCE)
    links = session.scalar(select(func.count(func.distinct(Event.link_id))).where(*recent)) or 0
    if links >= ALL_AT_ONCE_LINKS:
        session.execute(update(Event).where(*recent).values(machine=True, reason="clicked every link at once")
                        .execution_options(synchronize_session=False))
