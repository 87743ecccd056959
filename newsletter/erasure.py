"""Erasing a person everywhere the newsletter side keeps them, handed to ``subscribers.privacy.erase``.

``subscribers`` deletes the contact and its own rows; these steps cover the rest, in the same
transaction and before the contact row goes (while their deliveries still point at them):

- sending records: the events of their deliveries keep only what an anonymous count needs (a
  provider's reason loses their name and address, a URL its query string); provider text that was
  never matched to them, delivery errors and pause reasons lose any mention of them;
- the outbox folder: their ``.eml`` files are removed once the erasure has committed;
- SQLite: deleted rows are zeroed as they go (``secure_delete``, set on every connection in
  ``database``) and, once the erasure has committed, the write-ahead log is checkpointed and
  truncated, so neither the database file nor its ``-wal`` holds the old pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.database import after_commit, truncate_wal
from newsletter.models import Delivery, Event, SendBatch, SendPause
from newsletter.transports.outbox import files_addressed_to
from subscribers import privacy
from subscribers.privacy import ErasureStep
from subscribers.traces import ErasedPerson, scrub_mentions, scrub_their_rows


@dataclass
class ErasureResult:
    erased: bool  # a contact was deleted (else the address is only suppressed, by hash)
    outbox_files: int = 0  # filled in once committed
    wal_truncated: bool = True  # False: another process kept reading; the -wal empties at its next checkpoint


def erase(session: Session, settings: Settings, email: str) -> ErasureResult:
    """Erase the person with this address from every table, the outbox folder and SQLite's files.
    ``session`` must come from ``Database.session``: the file work runs after it commits."""
    result = ErasureResult(erased=False)
    also = [scrub_sending_records, _remove_outbox_files(settings.outbox_dir, result), _truncate_wal(result)]
    result.erased = privacy.erase(session, email, also=also)
    return result


def scrub_sending_records(session: Session, person: ErasedPerson) -> None:
    if person.contact_id is not None:
        theirs = select(Delivery.id).where(Delivery.contact_id == person.contact_id)
        scrub_their_rows(session, person, [Event.reason],
                         or_(Event.contact_id == person.contact_id, Event.delivery_id.in_(theirs)), urls=[Event.url])
        scrub_their_rows(session, person, [Delivery.error], Delivery.contact_id == person.contact_id)
        # Their deliveries stay as anonymous counts (the column has no foreign key to clear it).
        session.execute(update(Delivery).where(Delivery.contact_id == person.contact_id).values(contact_id=None)
                        .execution_options(synchronize_session=False))
    # Events of other contacts are about their own addresses; those of nobody (unmatched provider
    # events, anonymous tracking) may still quote this person.
    scrub_mentions(session, person, [Event.reason, Event.url], where=Event.contact_id.is_(None))
    scrub_mentions(session, person, [Delivery.error, SendBatch.error, SendPause.reason])


def _remove_outbox_files(folder: Path | None, result: ErasureResult) -> ErasureStep:
    def step(session: Session, person: ErasedPerson) -> None:
        if folder is None:
            return

        def remove() -> None:
            for path in files_addressed_to(folder, person.emails):
                path.unlink(missing_ok=True)
                result.outbox_files += 1

        after_commit(session, remove)  # a rolled-back erasure keeps them

    return step


def _truncate_wal(result: ErasureResult) -> ErasureStep:
    def step(session: Session, _person: ErasedPerson) -> None:
        engine = session.get_bind().engine

        def checkpoint() -> None:
            result.wal_truncated = truncate_wal(engine)

        after_commit(session, checkpoint)

    return step
