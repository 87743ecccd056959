"""The transport interface: a batch is one compiled email and the recipients it goes to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from newsletter.personalize import RecipientValues
from newsletter.render import RenderedEmail


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str | None
    values: RecipientValues
    unsubscribe_mailto: str | None  # None for transactional mail (no List-Unsubscribe)
    delivery_id: str | None = None  # the ledger row, when there is one


@dataclass
class Batch:
    email: RenderedEmail
    recipients: list[Recipient]
    categories: list[str] = field(default_factory=list)


@dataclass
class BatchResult:
    """Per recipient: the provider's message id, or the reason it was refused."""

    accepted: dict[int, str] = field(default_factory=dict)  # index in batch -> message id
    refused: dict[int, str] = field(default_factory=dict)  # index in batch -> reason


class Transport(Protocol):
    name: str
    max_batch: int

    def send(self, batch: Batch) -> BatchResult: ...
