"""What a click redirect or an open pixel answers, decided at answer time from caches.

The rules are those of ``first_party`` (its docstring): a token only works for its own email, a
forged or foreign token is answered like an unknown link and records nothing, ``TEST_TOKEN`` is never
counted, tracking off redirects without recording. Only what the answer needs is decided here; the
event itself (machine labels, a burst of every link at once, settling an unknown delivery) is made
later from the logged ``Seen`` record by ``drain``.

What is cached, and why it may be:
- a link's email and target: immutable once compiled (``Link``);
- a delivery's email (issue or step): never changes; only deliveries that exist are cached, loaded a
  block of neighbouring ids at a time (one email's deliveries are numbered together);
- an email's tracking mode: staff may change it, so it is read again after ``MODE_TTL`` seconds;
- that an email went out (to anyone): once true, true for good.
A delivery erased after it was cached is still answered (its email did carry the link); the drain
then finds no delivery and records nothing, as the direct path would have.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import Delivery, Issue, Link, Sequence, SequenceStep
from newsletter.urls import ANONYMOUS_TOKEN, TEST_TOKEN, DeliveryLinks, pixel_email, url_id

MODE_TTL = 5.0  # seconds an email's tracking mode is believed before it is read again
BLOCK = 1024  # deliveries loaded together on a miss
MAX_BLOCKS = 512  # at most ~half a million deliveries' emails in memory (a few tens of MB)
MAX_LINKS = 100_000
MAX_TOKENS = 100_000


class Miss(Exception):
    """Answering needs the database (raised only when asked to answer from memory)."""


@dataclass(frozen=True)
class CachedLink:
    id: int
    issue_id: int | None
    step_id: int | None
    url: str
    location: bytes  # the Location header of the redirect, as Starlette's RedirectResponse writes it


@dataclass(slots=True)
class Seen:
    """A click or an open to record: what the drain needs to make the event as ``first_party`` would."""

    kind: str  # "click" | "open"
    mode: str  # the email's tracking mode when it was answered: "full" | "anonymous"
    delivery_id: int | None  # the token's delivery (None for "anon")
    issue_id: int | None
    step_id: int | None
    link_id: int | None
    reason: str | None  # ``machines.machine_reason`` from the request alone (the delivery's part: at drain)
    at: datetime


@dataclass(frozen=True)
class Answer:
    ok: bool  # False: answered as an unknown link (a click) / nothing counted (a pixel)
    link: CachedLink | None = None  # a click's target
    record: bool = False  # whether the request is to be recorded (then ``delivery_id``, ``mode`` say how)
    mode: str = "off"
    delivery_id: int | None = None
    issue_id: int | None = None  # the email answered for
    step_id: int | None = None


NOT_A_LINK = Answer(False)


class Answers:
    """The answer-time half of first-party tracking, for one web process."""

    def __init__(self, settings: Settings, read: Callable[[], AbstractContextManager[Session]]) -> None:
        self._read = read  # a read-only session (``Database.snapshot``)
        self._tokens = DeliveryLinks(settings)
        self._genuine: dict[str, int] = {}  # tokens verified, oldest first
        self._links: OrderedDict[int, CachedLink] = OrderedDict()
        self._blocks: OrderedDict[int, dict[int, tuple[int | None, int | None]]] = OrderedDict()
        self._modes: dict[tuple[int | None, int | None], tuple[str, float]] = {}
        self._went_out: set[tuple[int | None, int | None]] = set()

    # The decisions (``first_party.record_click`` / ``record_open`` minus the recording) ------------

    def click(self, token: str, link_id: str, *, offline: bool = False) -> Answer:
        number = url_id(link_id)
        link = self.link(number, offline=offline) if number is not None else None
        if link is None:
            return NOT_A_LINK
        if token == TEST_TOKEN:
            return Answer(True, link)  # a test email or a preview: the link works, nothing is counted
        mode = self.mode(link.issue_id, link.step_id, offline=offline)
        bound, delivery_id = self._bind(token, link.issue_id, link.step_id, mode, offline)
        if not bound:
            return NOT_A_LINK
        if mode == "off":
            return Answer(True, link)  # tracking turned off since: the reader still gets where the email pointed
        return Answer(True, link, True, mode, delivery_id if mode == "full" else None, link.issue_id, link.step_id)

    def open(self, token: str, key: str, *, offline: bool = False) -> Answer:
        email = pixel_email(key)
        if email is None or token == TEST_TOKEN:
            return NOT_A_LINK
        issue_id, step_id = email
        mode = self.mode(issue_id, step_id, offline=offline)
        if mode == "off":
            return NOT_A_LINK
        bound, delivery_id = self._bind(token, issue_id, step_id, mode, offline)
        if not bound:
            return NOT_A_LINK
        return Answer(True, None, True, mode, delivery_id if mode == "full" else None, issue_id, step_id)

    def _bind(self, token: str, issue_id: int | None, step_id: int | None, mode: str,
              offline: bool) -> tuple[bool, int | None]:
        if token == ANONYMOUS_TOKEN:
            return mode == "anonymous" and self.went_out(issue_id, step_id, offline=offline), None
        delivery_id = self.delivery_id(token)
        if delivery_id is None:
            return False, None
        return self.delivery_email(delivery_id, offline=offline) == (issue_id, step_id), delivery_id

    # Tokens -----------------------------------------------------------------------------------------

    def delivery_id(self, token: str) -> int | None:
        """``DeliveryLinks.delivery_of``, remembered: a scanner follows every link of an email."""
        known = self._genuine.get(token)
        if known is not None:
            return known
        delivery_id = self._tokens.delivery_of(token)
        if delivery_id is None:
            return None
        self._genuine[token] = delivery_id
        if len(self._genuine) > MAX_TOKENS:
            self._genuine.pop(next(iter(self._genuine)))
        return delivery_id

    # Cached reads -----------------------------------------------------------------------------------

    def link(self, number: int, *, offline: bool = False) -> CachedLink | None:
        cached = self._links.get(number)
        if cached is not None:
            return cached
        if offline:
            raise Miss
        with self._read() as s:
            row = s.execute(select(Link.issue_id, Link.step_id, Link.url).where(Link.id == number)).first()
        if row is None:
            return None
        cached = CachedLink(number, row.issue_id, row.step_id, row.url, location(row.url))
        self._links[number] = cached
        if len(self._links) > MAX_LINKS:
            self._links.popitem(last=False)
        return cached

    def mode(self, issue_id: int | None, step_id: int | None, *, offline: bool = False) -> str:
        cached = self._modes.get((issue_id, step_id))
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        if offline:
            raise Miss
        with self._read() as s:
            if issue_id is not None:
                mode = s.scalar(select(Issue.tracking).where(Issue.id == issue_id)) or "off"
            else:
                mode = s.scalar(select(Sequence.tracking).join(SequenceStep, SequenceStep.sequence_id == Sequence.id)
                                .where(SequenceStep.id == step_id)) or "off"
        self._modes[(issue_id, step_id)] = (mode, now + MODE_TTL)
        return mode

    def went_out(self, issue_id: int | None, step_id: int | None, *, offline: bool = False) -> bool:
        if (issue_id, step_id) in self._went_out:
            return True
        if offline:
            raise Miss
        about = Delivery.issue_id == issue_id if issue_id is not None else Delivery.step_id == step_id
        with self._read() as s:
            sent = bool(s.scalar(select(exists().where(about))))
        if sent:
            self._went_out.add((issue_id, step_id))
        return sent

    def delivery_email(self, delivery_id: int, *, offline: bool = False) -> tuple[int | None, int | None] | None:
        """(issue, step) the delivery carried; None when there is no such delivery."""
        block = self._blocks.get(delivery_id // BLOCK)
        if block is not None and delivery_id in block:
            return block[delivery_id]
        if offline:
            raise Miss
        first = delivery_id // BLOCK * BLOCK
        with self._read() as s:
            rows = s.execute(select(Delivery.id, Delivery.issue_id, Delivery.step_id)
                             .where(Delivery.id >= first, Delivery.id < first + BLOCK)).all()
        self._blocks[delivery_id // BLOCK] = {row.id: (row.issue_id, row.step_id) for row in rows}
        self._blocks.move_to_end(delivery_id // BLOCK)
        if len(self._blocks) > MAX_BLOCKS:
            self._blocks.popitem(last=False)
        return self._blocks[delivery_id // BLOCK].get(delivery_id)


def location(url: str) -> bytes:
    """The Location header Starlette's ``RedirectResponse`` would send for ``url``."""
    return quote(url, safe=":/%#?=@[]!$&'()*+,;").encode("latin-1")
