"""An in-memory transport for tests: keeps every message it is given."""

from __future__ import annotations

from email.errors import MessageError
from email.message import EmailMessage
from typing import ClassVar

from newsletter.config import Settings, get_settings
from newsletter.mime import build_message
from newsletter.transports.base import Batch, BatchResult, refusal


class MemoryTransport:
    name = "memory"
    max_batch = 1000
    # Shared by every instance in the process, so a test can read what the app sent.
    sent: ClassVar[list[EmailMessage]] = []

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def send(self, batch: Batch) -> BatchResult:
        result = BatchResult()
        settings = self.settings or get_settings()
        for index, recipient in enumerate(batch.recipients):
            try:
                message = build_message(
                    batch.email,
                    to_email=recipient.email,
                    to_name=recipient.name,
                    values=recipient.values,
                    unsubscribe_mailto=recipient.unsubscribe_mailto,
                    settings=settings,
                )
            except (ValueError, MessageError) as exc:  # this recipient's data only: the others still go
                result.refused[index] = refusal(exc)
                continue
            self.sent.append(message)
            result.accepted[index] = message["Message-ID"]
        return result
