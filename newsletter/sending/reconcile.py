"""Reconciliation: batches held as unknown are settled on evidence, without staff wherever it exists.

A batch is held as unknown when its request may have left and no answer came (a read timeout, a
worker killed mid-request). A provider takes a request whole, so one piece of evidence settles the
whole batch. Strongest first:

1. The provider's events. Any event for one of the batch's deliveries proves the request was
   accepted: the webhook settles the batch at once (``ledger.resolve_accepted``), and each round
   here settles what it could not (``ledger.settle_reported``).
2. After ``NEWSLETTER_UNKNOWN_WAIT_SECONDS`` (time for events, and for the provider's log, to catch
   up): the provider's request log, asked by the batch's marker, when the transport has one and it
   is switched on (SendGrid's Email Activity API, ``NEWSLETTER_SENDGRID_ACTIVITY_API``). Messages
   found: submitted. None found: the request never arrived, so its rows are queued again and sent
   once. The log unreachable or refusing: no evidence (asked again later).
3. No evidence either way: ``NEWSLETTER_UNKNOWN_POLICY``. ``hold`` (the default) tells staff once
   (a log line, the CLI status, and an email to ``NEWSLETTER_OPERATOR_EMAIL`` when set) with the
   batch, the evidence and the two commands; ``resend`` queues the rows again, accepting that some
   recipients may get the email twice.

Every dispatcher process runs this when idle (``newsletter worker``, ``serve``'s background worker)
and ``newsletter tick`` runs it each round. Two processes reconciling at once settle a batch once:
each step only moves rows still held as unknown, and staff are told by the process that stamps the
batch first.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import update

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import SendBatch
from newsletter.compose.personalize import RecipientValues
from newsletter.compose.render import CompiledEmail
from newsletter.sending import ledger
from newsletter.sending.ledger import HeldBatch
from newsletter.sending.progress import settle_commands
from newsletter.transports import Batch, Recipient, Transport
from newsletter.transports.base import Evidence, RequestLog, TransportError
from subscribers.contacts import ascii_address

log = logging.getLogger("newsletter.reconcile")
RECHECK = timedelta(minutes=5)  # how often a provider log that could not tell is asked again
CATEGORIES = ["operations"]


@dataclass
class ReconcileReport:
    confirmed: int = 0  # rows found accepted (events or the provider's log): submitted
    requeued: int = 0  # rows the provider never got (its log), or queued again by the resend policy
    held: list[HeldBatch] = field(default_factory=list)  # batches that now wait for staff (told this round)

    def busy(self) -> bool:
        return bool(self.confirmed or self.requeued or self.held)

    def summary(self) -> str:
        return (f"held batches: {self.confirmed} deliveries found accepted, {self.requeued} queued again, "
                f"{len(self.held)} batch(es) now waiting for staff")


def request_log(settings: Settings, transport: Transport) -> RequestLog | None:
    """The provider log to ask about held batches: the transport's, when it has one and the setting is on."""
    if settings.sendgrid_activity_api and hasattr(transport, "find_request"):
        return transport  # type: ignore[return-value]
    return None


def reconcile(settings: Settings, db: Database, now: datetime, *, log_source: RequestLog | None = None,
              notify: Callable[[HeldBatch, str], None] | None = None) -> ReconcileReport:
    """One round over the batches held as unknown (see the module). The provider's log is asked
    outside any transaction; each decision is its own short one."""
    report = ReconcileReport()
    with db.session() as session:
        report.confirmed += ledger.settle_reported(session, now)
        waited = [b for b in ledger.unknown_batches(session)
                  if b.held_at is None or now - b.held_at >= timedelta(seconds=settings.unknown_wait_seconds)]
    for held in waited:
        evidence = None
        last = held.checked_at
        if log_source is not None and held.marker and (last is None or now - last >= RECHECK):
            evidence = log_source.find_request(held.marker)
            _settle_on(db, held, evidence, now, report)
            if evidence.accepted is not None:
                continue
        if settings.unknown_policy == "resend":
            why = (f"{evidence.detail}; " if evidence else "") + (
                "no evidence either way after the wait; NEWSLETTER_UNKNOWN_POLICY=resend queued it again")
            with db.session() as session:
                count = ledger.resolve_unknown(session, held.batch_id, sent=False, now=now, evidence=why)
            report.requeued += count
            if count:
                log.warning("batch %s: %d deliveries queued again by policy (%s); some may arrive twice",
                            held.batch_id, count, why)
            continue
        _hold_for_staff(db, held, evidence, now, report, notify)
    return report


def _settle_on(db: Database, held: HeldBatch, evidence: Evidence, now: datetime, report: ReconcileReport) -> None:
    with db.session() as session:
        session.execute(update(SendBatch).where(SendBatch.id == held.batch_id)
                        .values(checked_at=now, evidence=evidence.detail[:2000]))
        if evidence.accepted is None:
            return
        count = ledger.resolve_unknown(session, held.batch_id, sent=evidence.accepted, now=now, evidence=evidence.detail)
    if evidence.accepted:
        report.confirmed += count
        log.info("batch %s: %d deliveries settled as sent (%s)", held.batch_id, count, evidence.detail)
    else:
        report.requeued += count
        log.warning("batch %s: %d deliveries queued again (%s, %.0f min after it was held)", held.batch_id, count,
                    evidence.detail, (now - held.held_at).total_seconds() / 60 if held.held_at else 0)


def _hold_for_staff(db: Database, held: HeldBatch, evidence: Evidence | None, now: datetime,
                    report: ReconcileReport, notify: Callable[[HeldBatch, str], None] | None) -> None:
    """Tell staff once (whichever process stamps the batch first does the telling)."""
    with db.session() as session:
        stamped = session.execute(
            update(SendBatch).where(SendBatch.id == held.batch_id, SendBatch.notified_at.is_(None))
            .values(notified_at=now)
        ).rowcount
    if not stamped:
        return
    found = evidence.detail if evidence else "no provider event arrived and no provider log was asked"
    message = notice_line(held, found)
    log.warning("%s", message)
    report.held.append(held)
    if notify is not None:
        notify(held, found)


def notice_line(held: HeldBatch, found: str) -> str:
    where = f"issue {held.issue_id}" if held.issue_id is not None else f"sequence step {held.step_id}"
    return (f"batch {held.batch_id} ({where}): {held.rows} deliveries held as unknown wait for staff: the request "
            f"left and no answer came; evidence: {found}; settle with {settle_commands(held.batch_id)}")


class OperatorNotice:
    """Emails ``NEWSLETTER_OPERATOR_EMAIL`` when a batch waits for staff: transactional, through the
    same transport, naming the batch and issue by number only (no subject line, which may speak of
    health, and no recipient)."""

    def __init__(self, settings: Settings, transport: Transport) -> None:
        self.settings, self.transport = settings, transport

    def __call__(self, held: HeldBatch, found: str) -> None:
        address = self.settings.operator_email
        if address is None:
            return
        where = f"issue {held.issue_id}" if held.issue_id is not None else f"sequence step {held.step_id}"
        subject = f"{self.settings.newsletter_name}: a batch of {held.rows} deliveries needs a decision"
        lines = [
            f"Batch {held.batch_id} of {where}: {held.rows} deliveries are held as unknown"
            + (f" since {held.held_at:%Y-%m-%d %H:%M} UTC." if held.held_at else "."),
            "Their request to the email provider left and no answer came, and nothing since shows whether "
            "the provider accepted it.",
            f"Evidence: {found}.",
            f"If the provider's activity log shows this email went to them: newsletter issues resolve {held.batch_id} --sent",
            f"If it does not: newsletter issues resolve {held.batch_id} --resend (some may receive it twice)",
        ]
        email = CompiledEmail(subject, "", "".join(f"<p>{html.escape(line)}</p>" for line in lines),
                              "\n\n".join(lines) + "\n")
        values = RecipientValues(first_name="", unsubscribe_url="", preferences_url="", view_online_url="")
        recipient = Recipient(ascii_address(address), None, values, None)
        try:
            outcome = self.transport.send(Batch(email, [recipient], CATEGORIES))
        except TransportError as exc:  # the log line above has already told the same
            log.error("batch %s: the operator email could not be sent (%s)", held.batch_id, exc)
            return
        if outcome.refused:
            log.error("batch %s: the operator email was refused (%s)", held.batch_id, outcome.refused[0])
