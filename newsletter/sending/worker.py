"""The sending loop: ``newsletter worker`` (several may run at once against PostgreSQL) and the one
``newsletter serve`` runs in the background; each runs ``send_concurrency`` dispatcher threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.outgoing_webhooks.sender import WebhookSender
from newsletter.sending.dispatch import Dispatcher, RecordingFailed, SendingStopped
from newsletter.sending.reconcile import OperatorNotice, reconcile, request_log
from newsletter.sending.schedule import recover_and_finish
from newsletter.transports import Transport

log = logging.getLogger("newsletter.worker")
IDLE_SECONDS = 1.0
STOPPED_SECONDS = 30.0


def run_worker(settings: Settings, db: Database, transport: Transport, stop: threading.Event,
               *, worker: str | None = None) -> None:
    """Send due batches until ``stop`` is set, with ``send_concurrency`` dispatcher threads; a stop
    request lets the batches in hand finish first."""
    dispatchers = Dispatcher.pool(settings, db, transport, worker=worker, stop=stop)
    log.info("worker %s started (%s transport, %d in flight)", dispatchers[0].worker.rpartition("/")[0],
             transport.name, len(dispatchers))
    recovery = _Recovery(settings, db, transport)
    threads = [threading.Thread(target=_loop, args=(d, stop, recovery), name=f"dispatcher-{n}", daemon=True)
               for n, d in enumerate(dispatchers)]
    # Outgoing webhooks get a thread of their own: a slow CRM never holds up an email.
    hooks = WebhookSender(settings, db, worker=dispatchers[0].worker.rpartition("/")[0] + "/webhooks",
                          transport=transport)
    threads.append(threading.Thread(target=webhook_loop, args=(hooks, stop), name="webhooks", daemon=True))
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:  # Ctrl-C: the requests in hand get their answers recorded first
        stop.set()
        for thread in threads:
            thread.join()
    log.info("worker stopped")


class _Recovery:
    """At most every NEWSLETTER_RECOVER_SECONDS per process, by whichever thread is idle: recover
    dead workers' rows (cheap: index probes), close finished sends, and reconcile batches held as
    unknown (``newsletter.sending.reconcile``)."""

    def __init__(self, settings: Settings, db: Database, transport: Transport) -> None:
        self.settings, self.db = settings, db
        self.log_source = request_log(settings, transport)
        self.notify = OperatorNotice(settings, transport)
        self.lock = threading.Lock()
        self.next_at = 0.0

    def maybe_run(self, clock: Callable[[], datetime]) -> None:
        with self.lock:
            if time.monotonic() < self.next_at:
                return
            self.next_at = time.monotonic() + self.settings.recover_seconds
        with self.db.session() as session:
            report = recover_and_finish(session, clock())
        if report.requeued or report.held_unknown:
            log.warning("recovered a stopped worker's rows: %d queued again, %d held as unknown (their request "
                        "may have left; the provider's events settle them, 'newsletter issues status ID' lists "
                        "them)", report.requeued, report.held_unknown)
        settled = reconcile(self.settings, self.db, clock(), log_source=self.log_source, notify=self.notify)
        if settled.confirmed or settled.requeued:
            log.info("%s", settled.summary())


def _loop(dispatcher: Dispatcher, stop: threading.Event, recovery: _Recovery | None = None) -> None:
    while not stop.is_set():
        try:
            result = dispatcher.run_once()
        except (SendingStopped, RecordingFailed) as exc:
            log.error("%s", exc)
            stop.wait(STOPPED_SECONDS)
            continue
        except Exception:  # a bug or a database outage: log it and keep the worker alive
            log.exception("dispatch round failed")
            stop.wait(STOPPED_SECONDS)
            continue
        if result.handled == 0:
            if recovery is not None:
                try:
                    recovery.maybe_run(dispatcher.clock)
                except Exception:  # a database outage: the next idle round tries again
                    log.exception("recovery round failed")
            stop.wait(IDLE_SECONDS)


def webhook_loop(sender: WebhookSender, stop: threading.Event) -> None:
    """Capture and deliver outgoing webhook events until ``stop`` is set (the request in hand ends first)."""
    while not stop.is_set():
        try:
            busy = sender.run_once()
        except Exception:  # a bug or a database outage: log it and keep the worker alive
            log.exception("webhook round failed")
            stop.wait(STOPPED_SECONDS)
            continue
        if not busy:
            stop.wait(IDLE_SECONDS)
