"""Helpers for send-path tests: an audience, an issue ready to send, and a scriptable transport."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import insert, select

from newsletter import issues as issue_service
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.posts.service import store_post
from newsletter.posts.blocks import Block, ParsedPost
from newsletter.transports.base import Batch, BatchResult
from subscribers.lists import ensure_list
from subscribers.models import Contact, Installation, Subscription
from subscribers.suppression import hash_with_salt


def make_issue(db: Database, settings: Settings, subject: str = "Small steps for steadier days") -> int:
    with db.session() as s:
        post = store_post(s, ParsedPost(title="Small Steps", blocks=[Block(
            "paragraph", html='Walk a little every day: <a href="https://example.org/walk">a walking guide</a> and '
                              '<a href="https://example.org/sleep">sleep tips</a>.')])).post
        issue = issue_service.create_issue(s, settings, post.id, subject, "Habits for the week, one small step at a time")
        return issue.id


def add_audience(db: Database, count: int, *, zones: list[str] | None = None, list_slug: str = "newsletter",
                 start: int = 0) -> list[int]:
    """``count`` confirmed subscribers, inserted in bulk (the way a large list would be imported)."""
    zones = zones or ["America/Los_Angeles"]
    with db.session() as s:
        salt = s.scalar(select(Installation.hash_salt))
        lst = ensure_list(s, list_slug)
        rows = []
        for n in range(start, start + count):
            email = f"reader{n}@example.org"
            rows.append({"email": email, "email_hash": hash_with_salt(salt, email), "name": f"Reader {n}",
                         "timezone": zones[n % len(zones)], "custom_fields": {}, "status": "active", "source": "import"})
        s.execute(insert(Contact), rows)
        ids = list(s.scalars(select(Contact.id).where(Contact.email.in_([r["email"] for r in rows])).order_by(Contact.id)))
        s.execute(insert(Subscription), [{"contact_id": i, "list_id": lst.id, "status": "confirmed",
                                          "frequency": "every", "confirmation_sends": 0} for i in ids])
        return ids


@dataclass
class ScriptedTransport:
    """Accepts everything, except what the script says for the next calls."""

    name: str = "scripted"
    max_batch: int = 1000
    script: list[Callable[[Batch], BatchResult | None]] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)  # recipient addresses, in order
    requests: int = 0

    def send(self, batch: Batch) -> BatchResult:
        self.requests += 1
        if self.script:
            step = self.script.pop(0)
            outcome = step(batch)  # may raise a transport error
            if outcome is not None:
                return outcome
        self.delivered.extend(r.email for r in batch.recipients)
        return BatchResult(accepted={i: f"msg-{self.requests}" for i in range(len(batch.recipients))})


def raises(error: Exception) -> Callable[[Batch], None]:
    def step(_batch: Batch) -> None:
        raise error

    return step
