"""A dispatcher loop: ``newsletter worker`` (several may run at once against PostgreSQL) and the one
``newsletter serve`` runs in a thread."""

from __future__ import annotations

import logging
import threading

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.sending.dispatch import Dispatcher, SendingStopped
from newsletter.transports import Transport

log = logging.getLogger("newsletter.worker")
IDLE_SECONDS = 1.0
STOPPED_SECONDS = 30.0


def run_worker(settings: Settings, db: Database, transport: Transport, stop: threading.Event,
               *, worker: str | None = None) -> None:
    """Send due batches until ``stop`` is set; a stop request lets the batch in hand finish first."""
    dispatcher = Dispatcher(settings, db, transport, worker=worker, sleep=lambda s: stop.wait(s))
    log.info("worker %s started (%s transport)", dispatcher.worker, transport.name)
    while not stop.is_set():
        try:
            result = dispatcher.run_once()
        except SendingStopped as exc:
            log.error("%s", exc)
            stop.wait(STOPPED_SECONDS)
            continue
        except Exception:  # a bug or a database outage: log it and keep the worker alive
            log.exception("dispatch round failed")
            stop.wait(STOPPED_SECONDS)
            continue
        if result.handled == 0:
            stop.wait(IDLE_SECONDS)
    log.info("worker %s stopped", dispatcher.worker)
