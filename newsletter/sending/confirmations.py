"""Confirmation emails: the queue the sign-up and "send me a new link" forms write to, and the
dispatchers send from.

A sign-up writes a ``ConfirmationEmail`` row in its own transaction (``optin.queue_confirmation``);
no provider is called inside a web request, so the answer to a public form takes the same path
whether the address is new, pending or subscribed already. A dispatcher (``serve``, ``worker``,
``tick``; see ``Dispatcher.run_once``) claims one due row under a lease, commits the claim, renders
the email, sends it and records what happened:

- accepted: sent;
- refused for this recipient (an address that cannot travel), or a 400/413: failed, with the reason;
- 5xx or no connection: queued again with exponential backoff and jitter; failed after
  ``NEWSLETTER_SEND_RETRIES`` retries;
- 429: queued again for the provider's reset time;
- the request left and no answer came: unknown, never sent again blindly. A dispatcher that dies
  while a row is claimed leaves it "sending"; once the lease has run out it is held as unknown the
  same way (the person can ask for a new link, which queues a new row);
- 401/403: the row goes back to the queue untried and the error goes up, so all sending stops as it
  does for the ledger.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import ConfirmationEmail
from newsletter.optin import ConfirmationFor, confirmation_email
from newsletter.sending.pacing import Pacer
from newsletter.transports import Batch, Transport
from newsletter.transports.base import (
    AuthenticationFailed,
    BadRequest,
    BatchTooLarge,
    OutcomeUnknown,
    RateLimited,
    TemporaryFailure,
)
from subscribers.db import is_postgresql, utcnow
from subscribers.models import Subscription
from subscribers.states import ConfirmationStatus, SubscriptionStatus, sql_literal
from subscribers.suppression import is_suppressed

log = logging.getLogger("newsletter.confirmations")
MAX_BACKOFF = timedelta(hours=1)
RATE_LIMIT_WAIT = timedelta(minutes=1)  # when a 429 names no reset time
CATEGORIES = ["confirmation"]


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int
    to: ConfirmationFor


def claim(session: Session, *, worker: str, now: datetime, lease: timedelta,
          only: Iterable[int] | None = None) -> Claimed | None:
    """Claim the next due confirmation email (of ``only``, if given) for ``worker``; the caller's
    transaction commits the claim before the email is sent. Rows whose dispatcher died while
    sending are held as unknown first. A row with nothing left to confirm is skipped, not sent."""
    recover_expired(session, now)
    pick = (select(ConfirmationEmail.id)
            # A literal, not a bound parameter, so either database can use the partial index.
            .where(ConfirmationEmail.status == sql_literal(ConfirmationStatus.QUEUED), ConfirmationEmail.due_at <= now)
            .order_by(ConfirmationEmail.due_at, ConfirmationEmail.id))
    if only is not None:
        pick = pick.where(ConfirmationEmail.id.in_(list(only)))
    if is_postgresql(session):
        pick = pick.with_for_update(skip_locked=True)  # concurrent dispatchers take different rows
    while (row_id := session.scalar(pick.limit(1))) is not None:
        row = session.get(ConfirmationEmail, row_id)
        assert row is not None
        sub = session.get(Subscription, row.subscription_id)
        assert sub is not None  # the foreign key cascades: an erased contact's rows are gone
        if sub.status != SubscriptionStatus.PENDING:
            row.status, row.error = ConfirmationStatus.SKIPPED, f"not sent: the subscription is {sub.status} now"
        elif is_suppressed(session, sub.contact.email):
            row.status, row.error = ConfirmationStatus.SKIPPED, "not sent: the address is suppressed"
        else:
            row.status, row.claimed_by, row.attempts = ConfirmationStatus.SENDING, worker, row.attempts + 1
            row.lease_expires_at = now + lease
            session.flush()
            return Claimed(row.id, row.attempts, ConfirmationFor(sub.id, sub.contact.email, sub.contact.name,
                                                                 sub.mailing_list.name))
        session.flush()
    return None


def recover_expired(session: Session, now: datetime) -> int:
    """Rows claimed by a dispatcher that stopped before recording the answer: the request may have
    left, so they are held as unknown, never sent again. Returns how many."""
    return session.execute(
        update(ConfirmationEmail)
        .where(ConfirmationEmail.status == sql_literal(ConfirmationStatus.SENDING),
               ConfirmationEmail.lease_expires_at < now)
        .values(status=ConfirmationStatus.UNKNOWN, lease_expires_at=None,
                error="the dispatcher stopped while this email's request may have been in flight; not sent again")
        .execution_options(synchronize_session=False)
    ).rowcount or 0


class ConfirmationSender:
    """Sends claimed confirmation emails through a transport; one per dispatcher thread."""

    def __init__(self, settings: Settings, db: Database, transport: Transport, *, worker: str,
                 clock: Callable[[], datetime] = utcnow, sleep: Callable[[float], object] = time.sleep,
                 pacer: Pacer | None = None) -> None:
        self.settings = settings
        self.db = db
        self.transport = transport
        self.worker = worker
        self.clock = clock
        self.sleep = sleep
        self.pacer = pacer

    def claim(self, session: Session, now: datetime, only: Iterable[int] | None = None) -> Claimed | None:
        return claim(session, worker=self.worker, now=now, lease=timedelta(seconds=self.settings.lease_seconds),
                     only=only)

    def send_queued(self, ids: Iterable[int]) -> dict[int, tuple[str, str | None]]:
        """Send these queued emails now, in this process (a CLI command that made them); returns the
        status and error of each afterwards. One being sent elsewhere already is left to that
        dispatcher."""
        ids = list(ids)
        while True:
            with self.db.session() as session:
                claimed = self.claim(session, self.clock(), only=ids)
            if claimed is None:
                break
            self.deliver(claimed)
        with self.db.session() as session:
            rows = session.execute(select(ConfirmationEmail.id, ConfirmationEmail.status, ConfirmationEmail.error)
                                   .where(ConfirmationEmail.id.in_(ids)))
            return {row_id: (status, error) for row_id, status, error in rows}

    def deliver(self, claimed: Claimed) -> str:
        """Render, send and record one claimed email; returns its new status. Raises
        ``AuthenticationFailed`` (after giving the row back untried) so the caller stops sending."""
        try:
            email, recipient = confirmation_email(self.settings, claimed.to)
        except Exception as exc:  # noqa: BLE001 - a broken template must not leave the row claimed
            log.exception("confirmation email %s could not be rendered", claimed.id)
            return self._finish(claimed, ConfirmationStatus.FAILED,
                                error=f"the email could not be rendered ({type(exc).__name__})")
        wait = self.pacer.reserve(1) if self.pacer else 0.0
        if wait > 0:
            self.sleep(wait)
        try:
            outcome = self.transport.send(Batch(email, [recipient], CATEGORIES))
        except RateLimited as exc:
            reset = (datetime.fromtimestamp(exc.reset_at, self.clock().tzinfo) if exc.reset_at is not None
                     else self.clock() + RATE_LIMIT_WAIT)
            return self._requeue(claimed, max(reset, self.clock()), str(exc), count_attempt=False)
        except TemporaryFailure as exc:
            if claimed.attempts > self.settings.send_retries:
                return self._finish(claimed, ConfirmationStatus.FAILED,
                                    error=f"gave up after {claimed.attempts} attempts: {exc}")
            backoff = min(timedelta(seconds=30 * 2 ** (claimed.attempts - 1)), MAX_BACKOFF)
            return self._requeue(claimed, self.clock() + backoff * (0.5 + random.random()), str(exc))
        except OutcomeUnknown as exc:
            log.error("confirmation email %s: outcome unknown (%s); not sent again", claimed.id, exc)
            return self._finish(claimed, ConfirmationStatus.UNKNOWN, error=str(exc))
        except AuthenticationFailed:
            self._requeue(claimed, self.clock(), None, count_attempt=False)
            raise
        except (BadRequest, BatchTooLarge) as exc:
            return self._finish(claimed, ConfirmationStatus.FAILED, error=f"refused by the provider: {exc}")
        if 0 in outcome.accepted:
            return self._finish(claimed, ConfirmationStatus.SENT, message_id=outcome.accepted[0] or None)
        return self._finish(claimed, ConfirmationStatus.FAILED,
                            error=outcome.refused.get(0, "refused by the transport"))

    def _finish(self, claimed: Claimed, status: ConfirmationStatus, *, error: str | None = None,
                message_id: str | None = None) -> str:
        # Unknown too: the lease ran out and the row was held as unknown, but the answer came after all.
        sending, unknown = ConfirmationStatus.SENDING, ConfirmationStatus.UNKNOWN
        held = (sending, unknown) if status == ConfirmationStatus.SENT else (sending,)
        with self.db.session() as session:
            session.execute(
                update(ConfirmationEmail)
                .where(ConfirmationEmail.id == claimed.id, ConfirmationEmail.status.in_(held))
                .values(status=status, error=error[:2000] if error else None, lease_expires_at=None,
                        provider_message_id=message_id,
                        sent_at=self.clock() if status == ConfirmationStatus.SENT else None)
            )
        return status

    def _requeue(self, claimed: Claimed, due: datetime, error: str | None, *, count_attempt: bool = True) -> str:
        """Back to the queue: the request did not leave (or was refused for now)."""
        with self.db.session() as session:
            session.execute(
                update(ConfirmationEmail)
                .where(ConfirmationEmail.id == claimed.id, ConfirmationEmail.status == ConfirmationStatus.SENDING)
                .values(status=ConfirmationStatus.QUEUED, due_at=due, claimed_by=None, lease_expires_at=None,
                        error=error[:2000] if error else None,
                        attempts=ConfirmationEmail.attempts - (0 if count_attempt else 1))
            )
        if error:
            log.warning("confirmation email %s: %s; retry at %s", claimed.id, error, due.isoformat(timespec="seconds"))
        return ConfirmationStatus.QUEUED
