"""One round of due work, the same whoever runs it: the scheduler, ``newsletter tick`` or a test.

Automations first (new posts become issues, digests are made, issues unapproved by their slot move
to the next: ``newsletter.automations.runner``), then issues (start those scheduled, recover dead workers' rows, close finished sends), then
sequences (enrol, end enrolments whose goal is met, queue due steps). Everything is read from and
written to the tables, so a round can be repeated or run late without losing or repeating an email.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.automations.runner import AutomationReport, run_automations
from newsletter.config import Settings
from newsletter.sending.schedule import TickReport, due_work
from newsletter.sequences.engine import DueReport, process_due


@dataclass
class Round:
    issues: TickReport
    sequences: DueReport
    automations: AutomationReport = field(default_factory=AutomationReport)

    def busy(self) -> bool:
        i, s = self.issues, self.sequences
        return self.automations.busy() or bool(
            i.started or i.finished or i.requeued or i.held_unknown or i.held_by_policy or s.enrolled or s.exited
            or s.queued or s.skipped or s.postponed or s.completed)  # a sequence held every round is not news

    def summary(self) -> str:
        i, s = self.issues, self.sequences
        made = f"{self.automations.summary()}; " if self.automations.busy() else ""
        return (f"{made}issues started {i.started or 'none'}, finished {i.finished or 'none'}, requeued {i.requeued}, "
                f"held unknown {i.held_unknown}, paused by the health-information policy {i.held_by_policy or 'none'}; "
                f"sequences: enrolled {s.enrolled}, exited {s.exited}, "
                f"steps queued {s.queued}, skipped {s.skipped}, postponed {s.postponed}, completed {s.completed}"
                + "".join(f"; sequence {sid} waits: {why}" for sid, why in s.held_by_policy.items()))


def run_round(session: Session, settings: Settings, now: datetime) -> Round:
    automations = run_automations(session, settings, now)
    return Round(due_work(session, now, settings), process_due(session, settings, now), automations)
