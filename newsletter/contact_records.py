"""What may be done with one person's records or with many contacts at once that must be audited:
erasure, a copy of one person's data, a CSV export. One function each, used by the CLI and the staff
pages alike, so the action and its audit entry (who, what, when; never the person's data) always go
together, in one transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from newsletter import erasure
from newsletter.config import Settings
from newsletter.staff import audit
from newsletter.staff.audit import Actor, AuditAction
from subscribers import privacy
from subscribers.csv_export import ExportSummary, export_csv
from subscribers.segments import segment_filter

SUBJECT_ACCESS = "one person's data (subject access request)"


def contact_target(contact_id: int | None) -> str | None:
    """How an audit entry names a contact: by number only."""
    return f"contact {contact_id}" if contact_id is not None else None


def erase(session: Session, settings: Settings, email: str, actor: Actor,
          contact_id: int | None = None) -> erasure.ErasureResult:
    """``newsletter.erasure.erase``, audited (``contact_id``: the number the page knew them by)."""
    result = erasure.erase(session, settings, email)
    audit.record(session, actor, AuditAction.ERASE, contact_target(contact_id),
                 "a contact erased" if result.erased else "an address suppressed by hash")
    return result


def export_one(session: Session, email: str, actor: Actor, contact_id: int | None = None) -> dict[str, Any] | None:
    """Everything stored about one address (``privacy.export_personal_data``), audited when there
    is something; None when nothing is stored."""
    data = privacy.export_personal_data(session, email)
    if data is not None:
        audit.record(session, actor, AuditAction.EXPORT, contact_target(contact_id), SUBJECT_ACCESS)
    return data


def export_contacts(session: Session, path: Path, actor: Actor, *, list_slug: str | None = None,
                    segment: str | None = None, include_suppressed: bool = False) -> ExportSummary:
    """Contacts of a list and/or a segment to a CSV file (``csv_export.export_csv``), audited."""
    where = segment_filter(session, segment) if segment else None
    summary = export_csv(session, path, list_slug=list_slug, where=where, include_suppressed=include_suppressed)
    audit.record(session, actor, AuditAction.EXPORT, f"list {list_slug}" if list_slug else None,
                 f"{summary.rows} contacts to CSV" + (f", segment {segment}" if segment else ""))
    return summary
