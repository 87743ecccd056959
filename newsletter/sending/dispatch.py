"""The dispatcher: claim a batch, build one provider request, send it, record what happened.

Policy lives here, whatever the transport: 429 waits for the reset time; 5xx and connection errors
are retried with exponential backoff and jitter, then the batch fails with the error recorded and
the send goes on; 400 fails only the recipients the provider blamed (splitting the batch to find
them when it did not say); 413 splits; 401/403 stops all sending (nothing is marked failed that was
never tried); a request whose outcome is unknown is held as "unknown", never resent blindly; and
a run of failed batches pauses the issue (circuit breaker) with the reason. A transport that answers
per message (SMTP) answers per recipient too: a refused address fails that recipient alone (and is
suppressed), one refused for now (4xx) is queued again with a backoff, one whose answer was lost is
held as unknown alone, and those it never sent go again like a batch after a temporary failure.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal, NamedTuple, NoReturn

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.urls import DeliveryLinks
from newsletter.models import Issue, SendBatch, SequenceStep
from newsletter.compose.personalize import field_values, placeholders_of
from newsletter.compose.render import CompiledEmail
from newsletter.sending import ledger, stops
from newsletter.sending.custom_values import custom_fields_of
from newsletter.i18n import gettext_for, spoken
from newsletter.sending.confirmations import ConfirmationSender
from newsletter.sending.consultation_emails import ConsultationEmailSender
from newsletter.sending.one_off import Claimed as OneOffClaimed
from newsletter.sending.one_off import OneOffSender
from newsletter.sending.test_emails import TestEmailSender
from newsletter.stored_settings import LiveSettings
from newsletter.versions import group_by_version, sendable_versions
from newsletter.sending.ledger import Claim, Claimed
from newsletter.sending.pacing import Pacer
from newsletter.transports import Batch, BatchResult, Recipient, Transport
from newsletter.transports.base import (
    AuthenticationFailed,
    BadRequest,
    BatchTooLarge,
    OutcomeUnknown,
    RateLimited,
    TemporaryFailure,
    TransportError,
    issue_categories,
    refusal,
    sequence_categories,
)
from subscribers.contacts import ascii_address
from subscribers.db import utcnow
from subscribers.states import BatchStatus, IssueStatus

log = logging.getLogger("newsletter.dispatch")
MAX_RATE_LIMIT_WAIT = 120.0  # seconds; a reset further away than this is waited for in steps
RECORD_FIRST_WAIT, RECORD_MAX_WAIT = 0.5, 30.0  # backoff while the database cannot take an answer


class RecordingFailed(RuntimeError):
    """The provider answered, but the database could not record it for a whole lease."""


class SendingStopped(RuntimeError):
    """All sending is paused (e.g. the provider refused the API key); staff must act."""


@dataclass
class RoundResult:
    issue_id: int | None = None
    submitted: int = 0
    failed: int = 0
    unknown: int = 0
    suppressed: int = 0
    one_offs: int = 0  # confirmation, test and consultation emails handled (sent, failed, queued again for later)
    deferred: int = 0  # recipients a mail server refused for now, queued again for later

    @property
    def handled(self) -> int:
        return self.submitted + self.failed + self.unknown + self.suppressed + self.one_offs + self.deferred

    def add(self, other: RoundResult) -> None:
        self.submitted += other.submitted
        self.failed += other.failed
        self.unknown += other.unknown
        self.suppressed += other.suppressed
        self.one_offs += other.one_offs
        self.deferred += other.deferred


class EmailRef(NamedTuple):
    """The email a batch carries: an issue, or a step of a sequence (the circuit breaker's key)."""

    kind: Literal["issue", "step"]
    id: int

    @classmethod
    def of(cls, claim: Claim) -> EmailRef:
        if claim.issue_id is not None:
            return cls("issue", claim.issue_id)
        assert claim.step_id is not None
        return cls("step", claim.step_id)


@dataclass
class _Breaker:
    """Counts failed batches in a row per email; shared by a process's dispatcher threads."""

    threshold: int
    failures: dict[EmailRef, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ref: EmailRef, ok: bool) -> bool:
        """Returns True when the email has now failed ``threshold`` batches in a row."""
        with self.lock:
            self.failures[ref] = 0 if ok else self.failures.get(ref, 0) + 1
            return self.failures[ref] >= self.threshold


@dataclass
class _Job:
    """One batch on its way: the email, the rows and recipients it carries, the round it counts in."""

    ref: EmailRef
    email: CompiledEmail
    batch_id: int
    claimed: list[Claimed]
    recipients: list[Recipient]  # claimed[i] is recipients[i]
    categories: list[str]
    result: RoundResult
    attempts: int = 0  # temporary failures so far
    language: str | None = None  # the language version it carries (None: the email's own)

    @cached_property
    def ids(self) -> list[int]:
        return [c.delivery_id for c in self.claimed]


GC_FIRST_GENERATION = 20_000  # allocations between young-generation collections (Python's default: 700)


def _collect_less_often() -> None:
    """A send allocates some thirty short-lived containers per recipient (values, personalizations,
    rows), none of them in reference cycles; at the default threshold the cyclic collector runs every
    couple of dozen recipients, and its older generations walk the whole heap. Measured: 15-20% of a
    sending process's CPU (bench/send_issue.py). Raising the first threshold leaves reference
    counting to free all of it; cyclic garbage is still collected, only in larger rounds."""
    first, *older = gc.get_threshold()
    if 0 < first < GC_FIRST_GENERATION:
        gc.set_threshold(GC_FIRST_GENERATION, *older)


def default_worker_id() -> str:
    # Unique per dispatcher, not just per process: claims are found again by their worker id.
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        transport: Transport,
        *,
        worker: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = utcnow,
        only_issue: int | None = None,
        pacer: Pacer | None = None,
        breaker: _Breaker | None = None,
        stop: threading.Event | None = None,
        live: LiveSettings | None = None,
    ) -> None:
        self.only_issue = only_issue
        # What staff saved on the settings page (send limits, sender, ...) applies from the next round.
        self.live = live or LiveSettings(settings, db)
        self.settings = settings
        self.db = db
        self.transport = transport
        self.worker = worker or default_worker_id()
        self.sleep = sleep
        self.clock = clock
        self.pacer = pacer or Pacer(settings.rate_per_second, settings.rate_per_day)
        self.breaker = breaker or _Breaker(settings.breaker_threshold)
        self.stop = stop or threading.Event()  # set: finish the request in hand, start no other
        self.batch_size = min(settings.batch_size, transport.max_batch)
        self.links = DeliveryLinks(settings)
        # One-off emails come first: a person is waiting for a confirmation, staff for a test
        # (``issues send ID`` sends only its issue).
        self.one_offs: list[OneOffSender] = [
            kind(settings, db, transport, worker=self.worker, clock=clock, sleep=self.sleep, pacer=self.pacer)
            for kind in (ConfirmationSender, TestEmailSender, ConsultationEmailSender)
        ]
        # Seconds spent per phase, for benchmarks: claim, build (recipient values), send (transport:
        # request building and HTTP), record (ledger updates).
        self.timings: dict[str, float] = {"claim": 0.0, "build": 0.0, "send": 0.0, "record": 0.0}

    @classmethod
    def pool(cls, settings: Settings, db: Database, transport: Transport, *, count: int | None = None,
             worker: str | None = None, stop: threading.Event | None = None,
             sleep: Callable[[float], None] | None = None, **options: Any) -> list[Dispatcher]:
        """``count`` dispatchers (default: the send_concurrency setting), one per thread, sharing the
        pacing budget and the circuit breaker: each keeps one provider request in flight, so the next
        batches are claimed and built while earlier requests wait for their answers."""
        count = count or settings.send_concurrency
        _collect_less_often()
        prefix = worker or default_worker_id()
        stop = stop or threading.Event()
        sleep = sleep or stop.wait  # a stop cuts every wait short
        pacer = Pacer(settings.rate_per_second, settings.rate_per_day)
        breaker = _Breaker(settings.breaker_threshold)
        live = options.pop("live", None) or LiveSettings(settings, db)
        return [cls(settings, db, transport, worker=f"{prefix}/{n}", sleep=sleep, pacer=pacer, breaker=breaker,
                    stop=stop, live=live, **options) for n in range(count)]

    # One round ----------------------------------------------------------------------------------

    def run_once(self) -> RoundResult:
        """Send one due confirmation email, or else claim one batch and see it through. Returns what
        happened (nothing claimed: handled 0)."""
        now = self.clock()
        started = time.perf_counter()
        with self.db.session() as session:
            self._use(self.live.current(session))
            self._check_not_stopped(session)
            one_off = self._claim_one_off(session, now) if self.only_issue is None else None
            if one_off is None:
                limit = self.batch_size
                room = self.pacer.room_today(session, now)
                if room is not None:
                    limit = min(limit, room)
                    if limit == 0:
                        return RoundResult()
                got = ledger.claim(
                    session, worker=self.worker, limit=limit, now=now,
                    lease=timedelta(seconds=self.settings.lease_seconds), transport=self.transport.name,
                    only_issue=self.only_issue,
                )
                if not got.found:
                    return RoundResult()
                issue_id, claimed = got.issue_id, got.rows
                if issue_id is not None:
                    issue = session.get(Issue, issue_id)
                    assert issue is not None
                    # The compiled parts only: the post (and its images, a preflight matter) is not loaded per batch.
                    email = CompiledEmail(issue.subject, issue.preheader, issue.html, issue.text)
                    categories = issue_categories(issue_id)
                else:
                    step = session.get(SequenceStep, got.step_id)
                    assert step is not None
                    email = CompiledEmail(step.subject, step.preheader, step.html, step.text)
                    categories = sequence_categories(step.sequence_id)
                parts = self._by_version(session, got, email)
        if one_off is not None:
            sender, claimed_one = one_off
            try:
                sender.deliver(claimed_one)
            except AuthenticationFailed as exc:
                self._stop_all_sending(exc)
            return RoundResult(one_offs=1)
        result = RoundResult(issue_id=issue_id, suppressed=got.suppressed)
        self.timings["claim"] += time.perf_counter() - started
        for batch_id, part_email, rows, language in parts:
            self._deliver(EmailRef.of(got), part_email, batch_id, rows, categories, result, language)
        if issue_id is not None and len(claimed) + got.suppressed < limit:  # the queue may be drained now
            with self.db.session() as session:
                issue = session.get(Issue, issue_id)
                assert issue is not None
                ledger.finish_if_done(session, issue, self.clock())
        return result

    def _by_version(self, session: Session, got: Claim,
                    email: CompiledEmail) -> list[tuple[int, CompiledEmail, list[Claimed], str | None]]:
        """The claim as batches of one language version each (newsletter.versions): each contact gets
        the version in their language, or the email's own. An email without versions stays one batch."""
        if got.batch_id is None:
            return []
        versions = sendable_versions(session, self.settings, issue_id=got.issue_id, step_id=got.step_id)
        if versions is None:
            return [(got.batch_id, email, got.rows, None)]
        groups = group_by_version(versions, got.rows, lambda row: row.language)
        batches = ledger.split_by_language(session, got.batch_id, groups, transport=self.transport.name,
                                           worker=self.worker)
        return [(batch_id, email if language is None else versions.by_language[language], rows, language)
                for batch_id, language, rows in batches]

    def _use(self, settings: Settings) -> None:
        """Apply settings staff changed (``LiveSettings`` rebuilds them only on a change): the pacing
        budget shared by the pool, the links' unsubscribe address, the senders' and the transport's."""
        if settings is self.settings:
            return
        self.settings = settings
        self.pacer.per_second, self.pacer.per_day = settings.rate_per_second, settings.rate_per_day
        self.links = DeliveryLinks(settings)
        for sender in self.one_offs:
            sender.settings = settings
        if hasattr(self.transport, "settings"):
            self.transport.settings = settings

    def _claim_one_off(self, session: Session, now: datetime) -> tuple[OneOffSender, OneOffClaimed] | None:
        if not OneOffSender.any_due(session, self.one_offs, now):
            return None
        for sender in self.one_offs:
            claimed = sender.claim(session, now)
            if claimed is not None:
                return sender, claimed
        return None

    @staticmethod
    def _check_not_stopped(session: Session) -> None:
        stop = stops.active_stop(session)
        if stop is not None:
            raise SendingStopped(stop.reason)

    def _stop_all_sending(self, exc: AuthenticationFailed, *, batch_id: int | None = None,
                          ids: list[int] | None = None) -> NoReturn:
        """The provider refused the API key: give the rows back untried, stop every sender."""
        with self.db.session() as session:
            if ids:
                ledger.release(session, ids)
            if batch_id is not None:  # counted once, by the stop, as the provider's refusal (reports.operations)
                ledger.close_batch(session, batch_id, BatchStatus.FAILED,
                                   f"stopped before sending: {exc}; rows queued again", self.clock())
            stops.stop_all_sending(session, f"Sending stopped: {exc}. Fix {exc.fix}, then run "
                                            "'newsletter sending resume'.")
        raise SendingStopped(str(exc)) from None

    def run_until_idle(self, *, on_progress: Callable[[RoundResult], None] | None = None) -> RoundResult:
        """Send everything that is due now (``newsletter issues send`` in the foreground)."""
        total = RoundResult()
        while not self.stop.is_set():
            round_ = self.run_once()
            if round_.handled == 0:
                self._close_finished()
                return total
            total.add(round_)
            if on_progress:
                on_progress(round_)
        return total

    def _close_finished(self) -> None:
        """Mark issues whose last batch just went out as sent (the scheduler does this too)."""
        with self.db.session() as session:
            for issue in session.scalars(select(Issue).where(Issue.status == IssueStatus.SENDING)):
                ledger.finish_if_done(session, issue, self.clock())

    # Delivering one claimed batch ---------------------------------------------------------------

    def _deliver(self, ref: EmailRef, email: CompiledEmail, batch_id: int, claimed: list[Claimed],
                 categories: list[str], result: RoundResult, language: str | None = None) -> None:
        started = time.perf_counter()
        recipients = []
        sendable: list[Claimed] = []
        unsendable: dict[str, list[int]] = {}  # reason -> delivery ids
        # The greeting's word for a contact without a name, in the language of the version this batch carries.
        nameless = gettext_for(spoken(language, self.settings.language))("there")
        placeholders = placeholders_of(email)  # the custom fields it personalises with, if any
        if placeholders:
            with self.db.session() as session:
                fields = custom_fields_of(session, (c.contact_id for c in claimed))
        for c in claimed:
            try:
                address = ascii_address(c.email)
            except ValueError as exc:  # one recipient's bad data (stored before today's rules) fails it alone
                unsendable.setdefault(refusal(exc), []).append(c.delivery_id)
                continue
            values, mailto = self.links.values(c.delivery_id, c.name, nameless)
            if placeholders:
                values = values._replace(fields=field_values(placeholders, fields.get(c.contact_id)))
            recipients.append(Recipient(address, c.name, values, mailto, str(c.delivery_id)))
            sendable.append(c)
        self.timings["build"] += time.perf_counter() - started
        if unsendable:
            with self.db.session() as session:
                for reason, ids in unsendable.items():
                    ledger.mark_failed(session, ids, reason)
            result.failed += len(claimed) - len(sendable)
            if not sendable:
                self._close(batch_id, BatchStatus.FAILED, "no recipient of this batch could be sent")
                return
        self._send(_Job(ref, email, batch_id, sendable, recipients, categories, result, language=language))

    def _send(self, job: _Job, failure: TemporaryFailure | None = None, delay: float = 0.0) -> None:
        """See one batch through: wait for its pace slot (and ``delay`` seconds: the provider asked to
        slow down), send it and record the answer. A refusal's handler says whether to send it again
        (after how many seconds) or that it is done with. ``failure``: its rows were already tried and
        not sent (retried like any temporary failure)."""
        wait: float | None = (delay + self.pacer.reserve(len(job.recipients)) if failure is None
                              else self._on_temporary_failure(job, failure))
        while wait is not None:
            if wait > 0 and not self._wait_holding(job.batch_id, job.ids, wait):
                return  # stopped while waiting: the untried rows went back to the queue
            try:
                outcome = self._request(job)
            except TransportError as exc:
                wait = self._on_refusal(job, exc)
            else:
                self._on_answer(job, outcome)
                return

    def _request(self, job: _Job) -> BatchResult:
        """One provider request for the batch, marked durably as possibly gone before it leaves."""
        with self.db.session() as session:  # committed before the request may leave
            marker = ledger.begin_request(session, job.batch_id, self.clock())
        started = time.perf_counter()
        try:
            return self.transport.send(Batch(job.email, job.recipients, job.categories, marker))
        finally:
            self.timings["send"] += time.perf_counter() - started

    def _on_refusal(self, job: _Job, exc: TransportError) -> float | None:
        """The policy for each way a provider can refuse (this module's docstring): seconds to wait
        before the batch is sent again, or None when it is done with."""
        match exc:
            case RateLimited():
                return self._on_rate_limited(job, exc)
            case TemporaryFailure():
                return self._on_temporary_failure(job, exc)
            case OutcomeUnknown():
                return self._on_outcome_unknown(job, exc)
            case AuthenticationFailed():
                self._stop_all_sending(exc, batch_id=job.batch_id, ids=job.ids)
            case BatchTooLarge():
                return self._split(job, "too large")
            case BadRequest():
                return self._on_bad_request(job, exc)
        raise exc  # a transport error this policy does not know: not ours to guess

    def _on_rate_limited(self, job: _Job, exc: RateLimited) -> float:
        """429: the same batch again once the provider's limit resets."""
        self._not_in_flight(job.batch_id)
        wait = (MAX_RATE_LIMIT_WAIT if exc.reset_at is None
                else min(max(exc.reset_at - time.time(), 0.5), MAX_RATE_LIMIT_WAIT))
        log.warning("rate limited by the provider; waiting %.1f s", wait)
        return wait

    def _on_temporary_failure(self, job: _Job, exc: TemporaryFailure) -> float | None:
        """5xx or no connection: retried with backoff, then the batch fails with the error."""
        self._not_in_flight(job.batch_id)
        job.attempts += 1
        if job.attempts > self.settings.send_retries:
            self._failed(job, f"gave up after {job.attempts} attempts: {exc}")
            return None
        wait = min(2 ** job.attempts, 60) * (0.5 + random.random())  # exponential backoff, full jitter
        log.warning("batch %s: %s; retry %d in %.1f s", job.batch_id, exc, job.attempts, wait)
        return wait + self.pacer.reserve(len(job.recipients))  # the retry is paced like any request

    def _on_outcome_unknown(self, job: _Job, exc: OutcomeUnknown) -> None:
        """The request left and no answer came: held as unknown, never resent blindly."""
        def held(session: Session) -> None:
            ledger.mark_unknown(session, session.get(SendBatch, job.batch_id), str(exc), self.clock())
        self._record(job.batch_id, held)
        job.result.unknown += len(job.claimed)
        log.error("batch %s: outcome unknown (%s); held for resolution, not resent", job.batch_id, exc)

    def _on_bad_request(self, job: _Job, exc: BadRequest) -> None:
        """400: fail the recipients the provider blamed; when it named none, split the batch to find them."""
        if exc.recipients:
            self._drop_blamed(job, exc)
        elif len(job.claimed) == 1:
            self._failed(job, f"refused by the provider: {exc}", count_breaker=False)
        else:
            self._split(job, str(exc))

    def _drop_blamed(self, job: _Job, exc: BadRequest) -> None:
        """Fail the recipients the provider named (their refused addresses go on the suppression list)
        and send the others as a batch of their own."""
        claimed = job.claimed
        bad = sorted(i for i in exc.recipients if i < len(claimed))
        keep = [i for i in range(len(claimed)) if i not in exc.recipients]
        with self.db.session() as session:
            ledger.mark_failed(session, [claimed[i].delivery_id for i in bad], f"refused by the provider: {exc}")
            ledger.suppress_refused(session, [claimed[i].email for i in sorted(exc.invalid_addresses)], str(exc))
        job.result.failed += len(bad)
        if keep:
            self._resend(job, [claimed[i] for i in keep], [job.recipients[i] for i in keep])
        self._close(job.batch_id, BatchStatus.SPLIT if keep else BatchStatus.FAILED, str(exc))

    def _on_answer(self, job: _Job, outcome: BatchResult) -> None:
        """The provider took the request: record who it accepted and who it refused. A transport that
        answers per message (SMTP) may also have deferred some (queued again after a backoff), lost
        the answer to some (each held as unknown, in a batch of its own) or not sent some (sent again
        as a batch of their own, like a retry after a temporary failure). One transaction records it
        all, so no row is left claimed in a batch that is over."""
        started = time.perf_counter()
        claimed = job.claimed
        accepted = [claimed[i].delivery_id for i in sorted(outcome.accepted)]
        message_ids = set(outcome.accepted.values())
        each = {claimed[i].delivery_id: m for i, m in outcome.accepted.items()} if len(message_ids) > 1 else None
        message_id = None if each else next(iter(message_ids), None)
        unsent = [claimed[i] for i in sorted(outcome.unsent)]
        deferred = {claimed[i].delivery_id: reason for i, reason in outcome.deferred.items()}
        retry_batch: list[int] = []  # the batch the unsent rows move to
        given_up: list[int] = [0]

        def answered(session: Session) -> None:
            now = self.clock()
            if outcome.unknown:
                ledger.hold_unknown_each(session, {claimed[i].delivery_id: why for i, why in outcome.unknown.items()},
                                         transport=self.transport.name, worker=self.worker, now=now,
                                         language=job.language)
            given_up[0] = sum(ledger.defer(session, [row], why, now, self.settings.send_retries)[1]
                              for row, why in deferred.items())
            retry_batch[:] = [ledger.open_batch(session, [c.delivery_id for c in unsent], transport=self.transport.name,
                                                worker=self.worker, language=job.language).id] if unsent else []
            # Every row still in the request accepted (the usual answer): found by their batch.
            ledger.mark_submitted(session, job.batch_id, accepted, message_id, now, each=each,
                                  whole=len(accepted) == len(claimed))
            for index, reason in outcome.refused.items():
                ledger.mark_failed(session, [claimed[index].delivery_id], reason)
                if index in outcome.invalid_addresses:
                    ledger.suppress_refused(session, [claimed[index].email], reason)
            if not accepted:
                ledger.close_batch(session, job.batch_id, BatchStatus.FAILED, _none_accepted(outcome), now)
        self._record(job.batch_id, answered)
        self.timings["record"] += time.perf_counter() - started
        job.result.submitted += len(outcome.accepted)
        job.result.failed += len(outcome.refused) + given_up[0]
        job.result.deferred += len(deferred) - given_up[0]
        job.result.unknown += len(outcome.unknown)
        if outcome.unknown:
            log.error("batch %s: %d message(s) sent without an answer; each held as unknown, not resent",
                      job.batch_id, len(outcome.unknown))
        self.breaker.record(job.ref, ok=True)
        if unsent:
            keep = sorted(outcome.unsent)
            again = _Job(job.ref, job.email, retry_batch[0], unsent, [job.recipients[i] for i in keep],
                         job.categories, job.result, attempts=job.attempts, language=job.language)
            if outcome.unsent_after is not None:  # rate-limited part-way (SES): wait, not a failed attempt
                delay = min(max(outcome.unsent_after - time.time(), 0.0), MAX_RATE_LIMIT_WAIT)
                log.warning("batch %s: the provider sent %d of %d; the other %d go again in %.1f s", job.batch_id,
                            len(accepted), len(claimed), len(unsent), delay)
                self._send(again, delay=delay)
            else:
                self._send(again, TemporaryFailure(next(iter(outcome.unsent.values()))))

    def _record(self, batch_id: int, write: Callable[[Session], None]) -> None:
        """Write what the provider answered. A database that cannot take the write (SQLite locked past
        its busy timeout, a full disk, PostgreSQL restarting) is waited for with backoff for up to a
        lease, never given up at once: mail the provider accepted must not sit in "claimed" until its
        lease lapses and then be held as unknown. Past that, ``RecordingFailed`` says so in one line."""
        delay, waited = RECORD_FIRST_WAIT, 0.0
        while True:
            try:
                with self.db.session() as session:
                    write(session)
                return
            except (OperationalError, InterfaceError) as exc:  # the database, not our statement
                if waited >= self.settings.lease_seconds:
                    raise RecordingFailed(
                        f"batch {batch_id}: the provider answered but the database could not record it for "
                        f"{waited:.0f} s ({type(exc.orig).__name__}: {str(exc.orig).splitlines()[0][:200]}); "
                        "its rows will be held as unknown: settle them with 'newsletter issues status ID' and "
                        "'newsletter issues resolve BATCH --sent' once the database is back") from None
                log.warning("batch %s: the database did not take the provider's answer (%s); retrying in %.1f s",
                            batch_id, str(exc.orig).splitlines()[0][:200], delay)
                if self.sleep is self.stop.wait:
                    time.sleep(delay)  # a stop must not cut this wait short: the answer is still to record
                else:
                    self.sleep(delay)
                waited += delay
                delay = min(delay * 2, RECORD_MAX_WAIT)

    def _not_in_flight(self, batch_id: int) -> None:
        """The provider answered without taking the batch: until the next attempt begins, a crash
        must queue its rows again, not hold them as unknown."""
        with self.db.session() as session:
            ledger.request_refused(session, batch_id)

    def _wait_holding(self, batch_id: int, ids: list[int], seconds: float) -> bool:
        """Wait before a request (its pace slot, a rate limit's reset, a retry's backoff) without
        letting the claim lapse: a long wait first extends the rows' lease past it, or recovery
        would hold the batch as unknown while it is still to be sent. Returns False, with the rows
        given back untried, when the dispatcher was stopped meanwhile."""
        lease = self.settings.lease_seconds
        if seconds > lease / 10:
            with self.db.session() as session:
                ledger.extend_lease(session, batch_id, self.clock() + timedelta(seconds=seconds + lease))
        self.sleep(seconds)
        if not self.stop.is_set():
            return True
        with self.db.session() as session:
            ledger.release(session, ids)
            ledger.close_batch(session, batch_id, BatchStatus.FAILED, "stopped before sending; rows queued again",
                               self.clock())
        log.info("batch %s: stopped before sending; its rows are queued again", batch_id)
        return False

    def _split(self, job: _Job, why: str) -> None:
        """Send each half as its own request (each its own batch row) to find what was refused."""
        half = len(job.claimed) // 2
        self._close(job.batch_id, BatchStatus.SPLIT, why)
        for part in (slice(0, half), slice(half, None)):
            self._resend(job, job.claimed[part], job.recipients[part])

    def _resend(self, job: _Job, claimed: list[Claimed], recipients: list[Recipient]) -> None:
        """Part of ``job``'s batch as a batch of its own, sent like any other."""
        with self.db.session() as session:
            batch = ledger.open_batch(session, [c.delivery_id for c in claimed], transport=self.transport.name,
                                      worker=self.worker, language=job.language)
            batch_id = batch.id
        self._send(_Job(job.ref, job.email, batch_id, claimed, recipients, job.categories, job.result,
                        language=job.language))

    def _close(self, batch_id: int, status: BatchStatus, error: str) -> None:
        with self.db.session() as session:
            ledger.close_batch(session, batch_id, status, error, self.clock())

    def _failed(self, job: _Job, reason: str, *, count_breaker: bool = True) -> None:
        """The batch failed as a whole; a run of such batches pauses its issue (the circuit breaker)."""
        with self.db.session() as session:
            ledger.mark_failed(session, job.ids, reason)
            ledger.close_batch(session, job.batch_id, BatchStatus.FAILED, reason, self.clock())
            if count_breaker and self.breaker.record(job.ref, ok=False) and job.ref.kind == "issue":
                issue = session.get(Issue, job.ref.id)
                issue.status = IssueStatus.PAUSED
                issue.paused_reason = (
                    f"Paused after {self.breaker.threshold} failed batches in a row; last error: {reason}. "
                    f"Run 'newsletter issues resume {job.ref.id}' when the cause is fixed."
                )
                log.error("issue %s paused by the circuit breaker: %s", job.ref.id, reason)
        job.result.failed += len(job.claimed)


def _none_accepted(outcome: BatchResult) -> str:
    """Why a batch ended with no recipient accepted, in counts (no addresses)."""
    parts = {"refused": len(outcome.refused), "deferred": len(outcome.deferred),
             "held as unknown": len(outcome.unknown), "not sent (sent again)": len(outcome.unsent)}
    if parts["refused"] and not any(v for k, v in parts.items() if k != "refused"):
        return "every recipient of this batch was refused"
    return "no recipient of this batch was accepted: " + ", ".join(f"{n} {k}" for k, n in parts.items() if n)


def send_all(dispatchers: list[Dispatcher], *, on_progress: Callable[[RoundResult], None] | None = None) -> RoundResult:
    """Run each dispatcher until nothing is due, in threads of their own; the totals of all. The first
    error (e.g. ``SendingStopped``) is raised once every thread has ended."""
    totals: list[RoundResult] = []
    errors: list[BaseException] = []

    def run(dispatcher: Dispatcher) -> None:
        try:
            totals.append(dispatcher.run_until_idle(on_progress=on_progress))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,), name=f"dispatcher-{n}") for n, d in enumerate(dispatchers)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:  # Ctrl-C: finish the requests in hand, start no other
        for dispatcher in dispatchers:
            dispatcher.stop.set()
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]
    total = RoundResult()
    for part in totals:
        total.add(part)
    return total
