"""First-party opens and clicks: the pixel and the click redirect record events on our own domain.

The web app answers from caches and a durable log (``answers``, ``event_log``, ``drain``,
``recorder``); ``record_open`` and ``record_click`` here are the same rules in one call, in the
caller's session (the direct path: tests, and the web process when its log cannot take a record).

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

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.tracking.answers import Answer, Answers, Seen
from newsletter.tracking.drain import apply
from newsletter.tracking.machines import machine_reason
from subscribers.states import EventType


@dataclass(frozen=True)
class Request:
    method: str
    user_agent: str | None
    ip: str | None


def record_open(session: Session, settings: Settings, token: str, key: str, request: Request, now: datetime) -> bool:
    """The pixel was fetched. ``key`` names the email ("i12" an issue, "s7" a step). Records an open
    only for a token of that email under tracking; returns whether it did."""
    answer = _answers(session, settings).open(token, key)
    if answer.record:
        _record(session, answer, EventType.OPEN, request, now)
    return answer.record


def record_click(session: Session, settings: Settings, token: str, link_id: str, request: Request,
                 now: datetime) -> str | None:
    """A tracked link was followed. Returns the stored target, or None (and records nothing) when
    ``link_id`` names no link or a link of another email than the token's."""
    answer = _answers(session, settings).click(token, link_id)
    if answer.record:
        _record(session, answer, EventType.CLICK, request, now)
    return answer.link.url if answer.ok and answer.link is not None else None


def _answers(session: Session, settings: Settings) -> Answers:
    """The web process's rules, read through this session (nothing cached beyond this call)."""
    return Answers(settings, lambda: nullcontext(session))


def _record(session: Session, answer: Answer, kind: str, request: Request, now: datetime) -> None:
    reason = machine_reason(method=request.method, user_agent=request.user_agent, ip=request.ip, kind=kind)
    apply(session, [Seen(kind, answer.mode, answer.delivery_id, answer.issue_id, answer.step_id,
                         answer.link.id if answer.link is not None else None, reason, now)])
    session.flush()
