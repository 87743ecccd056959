"""The outbox: one personalised ``.eml`` per recipient in a folder. The embedded default and the demo:
the files are exactly the MIME messages a provider would deliver, and open in any mail program.

A file is named ``<UTC time>-<recipient tag>-<message tag>.eml``. The recipient tag (a hash of the
lower-cased address) lets erasure find a person's emails from the names alone, without opening every
file; it reveals nothing the file itself does not (its To header holds the address).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import getaddresses
from pathlib import Path

from newsletter.config import Settings
from newsletter.transports.base import Batch, BatchResult, each_message_bytes


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
        for index, message_id, data in each_message_bytes(batch, self.settings, result):
            recipient = batch.recipients[index]
            # No address in file names or logs: the recipient is named by a tag only (erasure finds it).
            name = f"{stamp}-{recipient_tag(recipient.email)}-{hashlib.sha256(message_id.encode()).hexdigest()[:16]}.eml"
            temporary = self.folder / f".{name}.tmp"
            temporary.write_bytes(data)
            os.replace(temporary, self.folder / name)  # never a half-written .eml
            result.accepted[index] = message_id
        return result


_NAME = re.compile(r"^\.?\d{8}T\d{6}-(?P<tag>[0-9a-f]{16})-[0-9a-f]{16}\.eml(\.tmp)?$")


def recipient_tag(address: str) -> str:
    return hashlib.sha256(f"newsletter.outbox:{address.strip().lower()}".encode()).hexdigest()[:16]


def files_addressed_to(folder: Path, addresses: Iterable[str]) -> list[Path]:
    """The outbox files (and half-written ones) sent to any of ``addresses``: by the tag in their
    names; files named before tags existed are identified by their headers (never their bodies)."""
    if not folder.is_dir():
        return []
    wanted = {a.strip().lower() for a in addresses}
    tags = {recipient_tag(a) for a in wanted}
    found = []
    for path in folder.iterdir():
        if not path.is_file() or not path.name.endswith((".eml", ".eml.tmp")):
            continue
        named = _NAME.match(path.name)
        if named:
            if named.group("tag") in tags:
                found.append(path)
        elif wanted & _header_addresses(path):
            found.append(path)
    return sorted(found)


def _header_addresses(path: Path) -> set[str]:
    lines = []
    with path.open("rb") as handle:
        for line in handle:  # the header block only: stop at the blank line before the body
            if not line.strip():
                break
            lines.append(line)
    headers = BytesHeaderParser(policy=default_policy).parsebytes(b"".join(lines))
    fields = [str(v) for name in ("To", "Cc", "Bcc", "Delivered-To") for v in headers.get_all(name, [])]
    return {address.lower() for _, address in getaddresses(fields) if address}
