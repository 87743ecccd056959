"""One-off emails: a queue of single emails that the dispatchers send before the ledger's batches.

Three kinds use it: confirmation emails (``confirmations``), staff test emails (``test_emails``)
and the emails about a consultation request (``consultation_emails``).
A row is written by a form or a command in its own transaction; no provider is called inside a web
request. A dispatcher (``serve``, ``worker``, ``tick``; see ``Dispatcher.run_once``) claims one due
row under a lease, commits the claim, composes the email, sends it and records what happened:

- accepted: sent;
- refused for this recipient (an address that cannot travel), or a 400/413: failed, with the reason;
- 5xx, no connection, or a mail server's 4xx for the recipient: queued again with exponential
  backoff and jitter; failed after ``NEWSLETTER_SEND_RETRIES`` retries;
- 429: queued again for the provider's reset time;
- the request left and no answer came: unknown, never sent again blindly. A dispatcher that dies
  while a row is claimed leaves it "sending"; once the lease has run out it is held as unknown the
  same way (a new row can always be asked for);
- 401/403: the row goes back to the queue untried and the error goes up, so all sending stops as it
  does for the ledger.

The rows share their states (``ConfirmationStatus``) and their columns: status, due_at, attempts,
claimed_by, lease_expires_at, provider_message_id, error, sent_at.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from newsletter.compose.render import CompiledEmail
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.sending.pacing import Pacer
from newsletter.transports import Batch, Recipient, Transport
from newsletter.transports.base import (
    AuthenticationFailed,
    BadRequest,
    BatchTooLarge,
    OutcomeUnknown,
    RateLimited,
    TemporaryFailure,
)
from subscribers.db import is_postgresql, utcnow
from subscribers.states import ConfirmationStatus, sql_literal

log = logging.getLogger("newsletter.one_off")
MAX_BACKOFF = timedelta(hours=1)
RATE_LIMIT_WAIT = timedelta(minutes=1)  # when a 429 names no reset time


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int
    to: Any  # what ``compose`` needs, read when the row was claimed


def _due(model: Any, now: datetime) -> ColumnElement[bool]:
    """A queued row whose time has come. Literals, not bound parameters, so either database can use
    the queue's partial index."""
    return and_(model.status == sql_literal(ConfirmationStatus.QUEUED), model.due_at <= now)


def _lease_ran_out(model: Any, now: datetime) -> ColumnElement[bool]:
    """A row claimed by a dispatcher that stopped before recording the answer."""
    return and_(model.status == sql_literal(ConfirmationStatus.SENDING), model.lease_expires_at < now)


class OneOffSender(ABC):
    """Sends one kind of one-off email through a transport; one per kind per dispatcher thread.
    A kind says which table (``model``), what to send (``prepare``: skip it, or what to compose)
    and how (``compose``)."""

    model: ClassVar[Any]
    kind: ClassVar[str]  # for log lines: "confirmation email"
    categories: ClassVar[list[str]]

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

    # What a kind decides ---------------------------------------------------------------------------

    @abstractmethod
    def prepare(self, session: Session, row: Any) -> tuple[str | None, Any]:
        """``(reason, None)`` to skip this row (it is not sent), else ``(None, what compose needs)``."""

    @abstractmethod
    def compose(self, to: Any) -> tuple[CompiledEmail, Recipient]:
        """The email and its one recipient, from what ``prepare`` returned."""

    # The queue ---------------------------------------------------------------------------------------

    def claim(self, session: Session, now: datetime, only: Iterable[int] | None = None) -> Claimed | None:
        """Claim the next due row (of ``only``, if given); the caller's transaction commits the claim
        before the email is sent. Rows whose dispatcher died while sending are held as unknown first.
        A row with nothing left to send is skipped."""
        model = self.model
        self.recover_expired(session, now)
        pick = select(model.id).where(_due(model, now)).order_by(model.due_at, model.id)
        if only is not None:
            pick = pick.where(model.id.in_(list(only)))
        if is_postgresql(session):
            pick = pick.with_for_update(skip_locked=True)  # concurrent dispatchers take different rows
        while (row_id := session.scalar(pick.limit(1))) is not None:
            row = session.get(model, row_id)
            assert row is not None
            skip, to = self.prepare(session, row)
            if skip is not None:
                row.status, row.error = ConfirmationStatus.SKIPPED, skip
            else:
                row.status, row.claimed_by, row.attempts = ConfirmationStatus.SENDING, self.worker, row.attempts + 1
                row.lease_expires_at = now + timedelta(seconds=self.settings.lease_seconds)
                session.flush()
                return Claimed(row.id, row.attempts, to)
            session.flush()
        return None

    @staticmethod
    def any_due(session: Session, senders: Iterable[OneOffSender], now: datetime) -> bool:
        """Whether any of these kinds has a row to claim or to recover: one statement (probes of the
        queues' partial indexes) before every batch, instead of two for each kind."""
        probes = []
        for model in {sender.model for sender in senders}:
            probes += [exists().where(_due(model, now)), exists().where(_lease_ran_out(model, now))]
        return bool(probes) and bool(session.connection().scalar(select(or_(*probes))))

    def recover_expired(self, session: Session, now: datetime) -> int:
        """Rows claimed by a dispatcher that stopped before recording the answer: the request may
        have left, so they are held as unknown, never sent again. Returns how many."""
        model = self.model
        return session.execute(
            update(model)
            .where(_lease_ran_out(model, now))
            .values(status=ConfirmationStatus.UNKNOWN, lease_expires_at=None,
                    error="the dispatcher stopped while this email's request may have been in flight; not sent again")
            .execution_options(synchronize_session=False)
        ).rowcount or 0

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
            rows = session.execute(select(self.model.id, self.model.status, self.model.error)
                                   .where(self.model.id.in_(ids)))
            return {row_id: (status, error) for row_id, status, error in rows}

    def deliver(self, claimed: Claimed) -> str:
        """Compose, send and record one claimed email; returns its new status. Raises
        ``AuthenticationFailed`` (after giving the row back untried) so the caller stops sending."""
        try:
            email, recipient = self.compose(claimed.to)
        except Exception as exc:  # noqa: BLE001 - a broken template must not leave the row claimed
            log.exception("%s %s could not be rendered", self.kind, claimed.id)
            return self._finish(claimed, ConfirmationStatus.FAILED,
                                error=f"the email could not be rendered ({type(exc).__name__})")
        wait = self.pacer.reserve(1) if self.pacer else 0.0
        if wait > 0:
            self.sleep(wait)
        try:
            outcome = self.transport.send(Batch(email, [recipient], list(self.categories)))
        except RateLimited as exc:
            reset = (datetime.fromtimestamp(exc.reset_at, self.clock().tzinfo) if exc.reset_at is not None
                     else self.clock() + RATE_LIMIT_WAIT)
            return self._requeue(claimed, max(reset, self.clock()), str(exc), count_attempt=False)
        except TemporaryFailure as exc:
            return self._retry_later(claimed, str(exc))
        except OutcomeUnknown as exc:
            return self._unknown(claimed, str(exc))
        except AuthenticationFailed:
            self._requeue(claimed, self.clock(), None, count_attempt=False)
            raise
        except (BadRequest, BatchTooLarge) as exc:
            return self._finish(claimed, ConfirmationStatus.FAILED, error=f"refused by the provider: {exc}")
        if 0 in outcome.accepted:
            return self._finish(claimed, ConfirmationStatus.SENT, message_id=outcome.accepted[0] or None)
        if 0 in outcome.unknown:  # a transport that answers per message (SMTP) says these per recipient
            return self._unknown(claimed, outcome.unknown[0])
        if 0 in outcome.deferred or 0 in outcome.unsent:
            return self._retry_later(claimed, outcome.deferred.get(0) or outcome.unsent[0])
        return self._finish(claimed, ConfirmationStatus.FAILED,
                            error=outcome.refused.get(0, "refused by the transport"))

    def _retry_later(self, claimed: Claimed, reason: str) -> str:
        """Refused for now or not sent: queued again with backoff, failed after the retries."""
        if claimed.attempts > self.settings.send_retries:
            return self._finish(claimed, ConfirmationStatus.FAILED, error=f"gave up after {claimed.attempts} attempts: {reason}")
        backoff = min(timedelta(seconds=30 * 2 ** (claimed.attempts - 1)), MAX_BACKOFF)
        return self._requeue(claimed, self.clock() + backoff * (0.5 + random.random()), reason)

    def _unknown(self, claimed: Claimed, reason: str) -> str:
        log.error("%s %s: outcome unknown (%s); not sent again", self.kind, claimed.id, reason)
        return self._finish(claimed, ConfirmationStatus.UNKNOWN, error=reason)

    def _finish(self, claimed: Claimed, status: ConfirmationStatus, *, error: str | None = None,
                message_id: str | None = None) -> str:
        # Unknown too: the lease ran out and the row was held as unknown, but the answer came after all.
        sending, unknown = ConfirmationStatus.SENDING, ConfirmationStatus.UNKNOWN
        held = (sending, unknown) if status == ConfirmationStatus.SENT else (sending,)
        model = self.model
        with self.db.session() as session:
            session.execute(
                update(model)
                .where(model.id == claimed.id, model.status.in_(held))
                .values(status=status, error=error[:2000] if error else None, lease_expires_at=None,
                        provider_message_id=message_id,
                        sent_at=self.clock() if status == ConfirmationStatus.SENT else None)
            )
        return status

    def _requeue(self, claimed: Claimed, due: datetime, error: str | None, *, count_attempt: bool = True) -> str:
        """Back to the queue: the request did not leave (or was refused for now)."""
        model = self.model
        with self.db.session() as session:
            session.execute(
                update(model)
                .where(model.id == claimed.id, model.status == ConfirmationStatus.SENDING)
                .values(status=ConfirmationStatus.QUEUED, due_at=due, claimed_by=None, lease_expires_at=None,
                        error=error[:2000] if error else None,
                        attempts=model.attempts - (0 if count_attempt else 1))
            )
        if error:
            log.warning("%s %s: %s; retry at %s", self.kind, claimed.id, error, due.isoformat(timespec="seconds"))
        return ConfirmationStatus.QUEUED
