"""An in-memory transport for tests: keeps every message it is given."""

from __future__ import annotations

from email.message import EmailMessage

from newsletter.config import Settings
from newsletter.transports.base import Batch, BatchResult, each_message


class MemoryTransport:
    name = "memory"
    max_batch = 1000

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent: list[EmailMessage] = []  # this transport's own: a test reads what it was given

    def send(self, batch: Batch) -> BatchResult:
        result = BatchResult()
        for index, message in each_message(batch, self.settings, result):
            self.sent.append(message)
            result.accepted[index] = message["Message-ID"]
        return result
