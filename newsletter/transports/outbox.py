"""The outbox: one personalised ``.eml`` per recipient in a folder. The embedded default and the demo:
the files are exactly the MIME messages a provider would deliver, and open in any mail program."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from email.errors import MessageError
from email.utils import make_msgid
from pathlib import Path

from newsletter.config import Settings
from newsletter.mime import build_message
from newsletter.transports.base import Batch, BatchResult, refusal


class OutboxTransport:
    name = "outbox"
    max_batch = 1000

    def __init__(self, folder: Path, settings: Settings) -> None:
        self.folder = folder
        self.settings = settings

    def send(self, batch: Batch) -> BatchResult:
        self.folder.mkdir(parents=True, exist_ok=True)
        result = BatchResult()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        for index, recipient in enumerate(batch.recipients):
            message_id = make_msgid(domain=self.settings.from_domain)
            try:
                message = build_message(
                    batch.email,
                    to_email=recipient.email,
                    to_name=recipient.name,
                    values=recipient.values,
                    unsubscribe_mailto=recipient.unsubscribe_mailto,
                    settings=self.settings,
                    message_id=message_id,
                ).as_bytes()
            except (ValueError, MessageError) as exc:  # this recipient's data only: the others still go
                result.refused[index] = refusal(exc)
                continue
            # The file name says nothing about the recipient (no address in file names or logs).
            name = f"{stamp}-{hashlib.sha256(message_id.encode()).hexdigest()[:16]}.eml"
            temporary = self.folder / f".{name}.tmp"
            temporary.write_bytes(message)
            os.replace(temporary, self.folder / name)  # never a half-written .eml
            result.accepted[index] = message_id
        return result
