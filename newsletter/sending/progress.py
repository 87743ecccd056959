"""Where an issue's send stands, as people are told it: the one home of the derived state.

The stored ``issues.status`` (draft, scheduled, sending, paused, cancelled, sent) says where the send
path is; it reads "sent" as soon as nothing is left queued or claimed, even when some rows are held
as **unknown** (their request left and no answer came). Telling staff "sent" then would be false:
nobody knows whether those recipients got it. So every face (the CLI's ``issues status | list |
show | send``, the reports) shows the state derived here from the stored status and the unknown
count, and no face spells the rule itself. When the unknown rows are settled (``issues resolve
--sent``, or a provider or first-party event proving the request arrived), the count falls to 0 and
the state is plain "sent" again, with nothing stored to update.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import Delivery, Issue
from newsletter.sending import ledger
from newsletter.sending.ledger import HeldBatch
from subscribers.states import ON_ITS_WAY, SENT_WITH_UNKNOWN, DeliveryStatus, IssueStatus


@dataclass(frozen=True)
class IssueState:
    """``status``: as stored; ``unknown``: deliveries held as unknown; ``state``: the stored status,
    except ``sent_with_unknown`` for a send that is over with rows held as unknown; ``label``: what a
    person reads ("sent", "sent, 3 unknown", "paused, 3 unknown")."""

    status: str
    unknown: int

    @property
    def state(self) -> str:
        return SENT_WITH_UNKNOWN if self.status == IssueStatus.SENT and self.unknown else self.status

    @property
    def label(self) -> str:
        return f"{self.status}, {self.unknown} unknown" if self.unknown else self.status

    @property
    def settled(self) -> bool:
        """No row is held as unknown: what was sent is known to have been accepted (or failed)."""
        return not self.unknown

    def as_dict(self) -> dict[str, Any]:
        """For JSON and CSV: ``status`` stays the stored state (stable for scripts); the rest is added."""
        return {"status": self.status, "state": self.state, "unknown": self.unknown, "label": self.label}


def describe(status: str, unknown: int) -> IssueState:
    """The state of an issue whose stored status is ``status`` and which has ``unknown`` deliveries
    held as unknown (from the ledger, or a report's own count of them)."""
    return IssueState(status, unknown)


def unknown_counts(session: Session, issue_ids: Iterable[int]) -> dict[int, int]:
    """Deliveries held as unknown per issue (the rows ``issues resolve`` settles), in one statement;
    an issue without any is left out."""
    ids = list(issue_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Delivery.issue_id, func.count())
        .where(Delivery.issue_id.in_(ids), Delivery.status == DeliveryStatus.UNKNOWN)
        .group_by(Delivery.issue_id)
    )
    return {issue_id: count for issue_id, count in rows}


def issue_states(session: Session, issues: Iterable[Issue]) -> dict[int, IssueState]:
    """The state of each issue. Only issues that were ever enqueued have ledger rows to count."""
    issues = list(issues)
    counts = unknown_counts(session, [i.id for i in issues if i.enqueued_at is not None])
    return {i.id: describe(i.status, counts.get(i.id, 0)) for i in issues}


def issue_state(session: Session, issue: Issue) -> IssueState:
    return issue_states(session, [issue])[issue.id]


@dataclass(frozen=True)
class SendProgress:
    """How far an issue's send has gone, from its ledger rows by status (``ledger.status_counts``):
    ``recipients`` are the rows not suppressed, ``waiting`` those still queued or claimed, ``handled``
    the rest (submitted, delivered, bounced, dropped, failed or held as unknown)."""

    state: IssueState
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def recipients(self) -> int:
        return sum(n for status, n in self.counts.items() if status != DeliveryStatus.SUPPRESSED)

    @property
    def waiting(self) -> int:
        return sum(self.counts.get(status, 0) for status in ON_ITS_WAY)

    @property
    def handled(self) -> int:
        return self.recipients - self.waiting

    @property
    def percent(self) -> int:
        """Whole percent handled, rounded down: 100 only once nothing is waiting."""
        return self.handled * 100 // self.recipients if self.recipients else 100

    def as_dict(self) -> dict[str, Any]:
        return {**self.state.as_dict(), "recipients": self.recipients, "waiting": self.waiting,
                "handled": self.handled, "percent": self.percent, "counts": dict(self.counts)}


def send_progress(session: Session, issue: Issue) -> SendProgress:
    """The progress of one issue's send (one grouped count of its ledger rows), with its state."""
    counts = ledger.status_counts(session, issue.id) if issue.enqueued_at is not None else {}
    return SendProgress(describe(issue.status, counts.get(DeliveryStatus.UNKNOWN, 0)), counts)


def settle_hint(unknown: int, *, issue_id: int | None = None, sequence: str | None = None) -> str:
    """One line for staff: how many are unknown, where the batches are listed, how to settle them."""
    where = (f"'newsletter issues status {issue_id}'" if issue_id is not None
             else f"'newsletter sequences show {_argument(sequence)}'" if sequence is not None
             else "'newsletter issues status ID' (or 'newsletter sequences show NAME')")
    return (f"{unknown} delivery(ies) held as unknown (the request left and no answer came): the provider's "
            f"events settle them by themselves; {where} lists the batches still waiting; settle one by hand with "
            "'newsletter issues resolve BATCH --sent' (SendGrid's activity log shows it) or "
            "'newsletter issues resolve BATCH --resend' (accepting possible duplicates)")


def settle_commands(batch_id: int) -> str:
    return f"'newsletter issues resolve {batch_id} --sent' or 'newsletter issues resolve {batch_id} --resend'"


def batch_record(held: HeldBatch) -> dict[str, Any]:
    """A batch held as unknown, as every face shows it (JSON as is; text through ``batch_line``)."""
    return {"batch": held.batch_id, "rows": held.rows, "error": held.error,
            "held_at": held.held_at.isoformat(timespec="seconds") if held.held_at else None,
            "evidence": held.evidence, "waits_for_staff": held.notified_at is not None}


def batch_line(record: dict[str, Any]) -> str:
    """One batch held as unknown: since when, why, what reconciliation found, and the two ways to settle it."""
    since = f" since {record['held_at']}" if record.get("held_at") else ""
    found = f"; {record['evidence']}" if record.get("evidence") else ""
    waiting = ("; waits for staff" if record.get("waits_for_staff")
               else "; waiting for the provider's events, which settle it by themselves")
    return (f"batch {record['batch']}: {record['rows']} held as unknown{since} ({record['error'] or 'no answer'})"
            f"{found}{waiting}; settle by hand with {settle_commands(record['batch'])}")


def _argument(name: str) -> str:
    """A sequence name as typed in a shell: quoted when it has spaces ("Consultation follow-up")."""
    return name if re.fullmatch(r"[\w.-]+", name) else json.dumps(name)
