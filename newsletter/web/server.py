"""How ``newsletter serve`` runs the app under uvicorn: one home for the server's configuration, used
by the command and by the tests that start a real server.

Proxy headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are believed only from the addresses in
``NEWSLETTER_TRUSTED_PROXIES``. uvicorn's own default believes them from loopback, so behind nothing
(or beside anything else on the host) a client could name any address it liked and slip past the
public forms' per-client rate limit; with no trusted proxy, the client is the peer that connected.
"""

from __future__ import annotations

from typing import Any

import uvicorn

from newsletter.config import Settings


def server_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    trusted = list(settings.trusted_proxies)
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          proxy_headers=bool(trusted), forwarded_allow_ips=trusted)
