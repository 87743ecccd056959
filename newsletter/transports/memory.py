"""An in-memory transport for tests: keeps every message it is given."""

from __future__ import annotations

from email.message import EmailMessage
from typing import ClassVar

from newsletter.config import Settings, get_settings
from newsletter.transports.base import Batch, BatchResult, each_message


class MemoryTransport:
    name = "memory"
    max_batch = 1000
    # Shared by every instance in the process, so a test can read what the app sent.
    sent: ClassVar[list[EmailMessage]] = []

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def send(self, batch: Batch) -> BatchResult:
        result = BatchResult()
        for index, message in each_message(batch, self.settings or get_settings(), result):
            self.sent.append(message)
            result.accepted[index] = message["Message-ID"]
        return result
