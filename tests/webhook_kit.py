"""Both webhooks over real HTTP, posted to as their senders post (SendGrid's ECDSA signature, the
booking system's HMAC), and a snapshot of every table to show that a refused post stored nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.web.bookings_webhook import signature_for
from subscribers.db import Base
from tests.liveserver import LiveServer, serving
from tests.webhook_signer import Signer

SIGNER = Signer()
BOOKINGS_SECRET = secrets.token_urlsafe(48)
SENDGRID_URL = "/webhooks/sendgrid"
BOOKINGS_URL = "/webhooks/bookings"
# One client for every post: a new one per request sets up TLS contexts again (about 0.1 s each).
CLIENT = httpx.Client(timeout=60)


@contextmanager
def webhook_server(settings: Settings, db: Database, **changes: Any) -> Iterator[LiveServer]:
    """The app with both webhooks on: SendGrid's verification key and the bookings secret set."""
    configured = settings.model_copy(update={"sendgrid_webhook_public_key": SecretStr(SIGNER.public),
                                             "bookings_webhook_secret": SecretStr(BOOKINGS_SECRET), **changes})
    with serving(configured, db) as server:
        yield server


def post_sendgrid(server: LiveServer, body: bytes, *, signed: bool = True) -> httpx.Response:
    headers = SIGNER.headers(body) if signed else {"Content-Type": "application/json"}
    return CLIENT.post(server.url + SENDGRID_URL, content=body, headers=headers)


def post_bookings(server: LiveServer, body: bytes, *, signature: str | None = None) -> httpx.Response:
    headers = {"X-Signature": signature or signature_for(BOOKINGS_SECRET, body), "Content-Type": "application/json"}
    return CLIENT.post(server.url + BOOKINGS_URL, content=body, headers=headers)


def snapshot(db: Database) -> dict[str, list[str]]:
    """Every row of every table, as text, in a stable order."""
    with db.session() as s:
        return {table.name: sorted(repr(tuple(row)) for row in s.execute(select(table)))
                for table in Base.metadata.sorted_tables}
