"""How ``newsletter serve`` runs the app under uvicorn: one home for the server's configuration, used
by the command, the benchmarks and the tests that start a real server.

Proxy headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are believed only from the addresses in
``NEWSLETTER_TRUSTED_PROXIES``. uvicorn's own default believes them from loopback, so behind nothing
(or beside anything else on the host) a client could name any address it liked and slip past the
public forms' per-client rate limit; with no trusted proxy, the client is the peer that connected.

Several web processes (``--workers N``) share one listening socket, each with its own tracking log
(one drain process takes them all: ``tracking/drain_process.py``); they need PostgreSQL: SQLite has one writer, and processes would queue on its file lock.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import uvicorn

from newsletter.config import Settings
from newsletter.errors import InputError

SWITCH_INTERVAL = 0.0005  # seconds
FACTORY = "newsletter.web.server:app_from_environment"  # what each of several worker processes runs


def server_config(app: Any, settings: Settings, host: str, port: int, workers: int = 1) -> uvicorn.Config:
    trusted = list(settings.trusted_proxies)
    return uvicorn.Config(served(app), host=host, port=port, log_level="warning", access_log=False,
                          proxy_headers=bool(trusted), forwarded_allow_ips=trusted, workers=workers,
                          factory=isinstance(app, str))


def served(app: Any) -> Any:
    """What uvicorn runs: the app behind its tracking fast path (``web/tracking.py``: clicks and pixels
    answered before FastAPI and its middleware are entered), when it is the product's app."""
    tracker = getattr(getattr(app, "state", None), "tracker", None)
    if tracker is None:
        return app  # an import string (each worker process wraps its own), or another ASGI app
    from newsletter.web.tracking import FastTracking

    # The tracking log's writer thread hands each fsynced group back to the loop, and other threads
    # (the drain's, when no drain process runs; the thread pool's cache misses) would keep the GIL for
    # the default 5 ms before the loop or the writer got it. A shorter switch interval keeps waits short.
    sys.setswitchinterval(SWITCH_INTERVAL)
    return FastTracking(app, tracker)


def check_workers(settings: Settings, workers: int) -> None:
    if workers < 1:
        raise InputError(f"--workers must be 1 or more, not {workers}")
    if workers > 1 and str(settings.database_url).startswith("sqlite"):
        raise InputError("--workers above 1 needs PostgreSQL (NEWSLETTER_DATABASE_URL): SQLite has one writer, "
                         "so several web processes would queue on its lock")


def app_from_environment() -> Any:
    """The app as ``newsletter serve`` makes it, in a worker process (settings from the environment)."""
    from newsletter.bootstrap import open_database
    from newsletter.config import get_settings
    from newsletter.web.app import create_app

    settings = get_settings()
    app = served(create_app(settings, open_database(settings)))
    freeze_startup()
    return app


def freeze_startup() -> None:
    """Once the app is made, in the process that serves it: what start-up made (modules, routes,
    SQLAlchemy's mappers and caches: a few hundred thousand objects that live as long as the process)
    is moved out of the cyclic collector's view. Each full collection walked them all, with the event
    loop stopped meanwhile: 114-136 ms each on a 2-core machine, four of them during 16 s of click
    bursts, every redirect in flight waiting; 6-14 ms once they are frozen (bench/click_redirects.py
    prints a full collection's time before and after). Only in a serving process (``run``, and each of
    several workers): a process that builds many apps, as the tests do, would keep their garbage."""
    gc.freeze()


def run(config: uvicorn.Config) -> uvicorn.Server:
    """Serve until stopped: in this process, or in ``config.workers`` processes sharing one socket."""
    server = uvicorn.Server(config)
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
    else:
        freeze_startup()  # the app was made with the config
        server.run()
    return server
