"""The sending loop: ``newsletter worker`` (several may run at once against PostgreSQL) and the one
``newsletter serve`` runs in the background; each runs ``send_concurrency`` dispatcher threads."""

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
    """Send due batches until ``stop`` is set, with ``send_concurrency`` dispatcher threads; a stop
    request lets the batches in hand finish first."""
    dispatchers = Dispatcher.pool(settings, db, transport, worker=worker, stop=stop)
    log.info("worker %s started (%s transport, %d in flight)", dispatchers[0].worker.rpartition("/")[0],
             transport.name, len(dispatchers))
    threads = [threading.Thread(target=_loop, args=(d, stop), name=f"dispatcher-{n}", daemon=True)
               for n, d in enumerate(dispatchers)]
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


def _loop(dispatcher: Dispatcher, stop: threading.Event) -> None:
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
