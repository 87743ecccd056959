"""Staff operations on sequences: load, export, list, show with per-step counts, pause, resume, enrol;
and the figures the staff pages show (per sequence, and per step)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.compose.compile import check_tracking
from newsletter.config import Settings
from newsletter.errors import InputError, NotFound
from newsletter.models import Delivery, Enrollment, Sequence, SequenceStep
from newsletter.reports.email_stats import EmailStats
from newsletter.reports.snapshots import step_figures_of
from newsletter.sending import ledger
from newsletter.sending.progress import batch_record
from newsletter.sequences.definition import SequenceDefinition, TriggerType, parse_definition, to_yaml
from newsletter.sequences.engine import enroll, steps_of
from newsletter.sequences.install import InstallReport, install
from newsletter.sequences.library import shipped_definitions
from subscribers.contacts import get_contact
from subscribers.states import DeliveryStatus, EnrollmentState, SequenceStatus


def get_sequence(session: Session, name: str) -> Sequence:
    sequence = session.scalar(select(Sequence).where(func.lower(Sequence.name) == name.strip().lower()))
    if sequence is None:
        names = ", ".join(session.scalars(select(Sequence.name).order_by(Sequence.name))) or "none yet"
        raise NotFound(f"there is no sequence {name!r} (sequences: {names})")
    return sequence


def sequence_by_id(session: Session, sequence_id: int, *, for_update: bool = False) -> Sequence:
    """``for_update``: the row locked until the transaction ends (PostgreSQL; SQLite's writers are
    serial already). Every edit reads the definition, changes it and writes it whole: two edits at
    once (two people adding a step) each read the same definition and the last write lost the other's
    step, though both were told it was saved and both were audited."""
    sequence = session.get(Sequence, sequence_id, with_for_update=for_update or None, populate_existing=for_update)
    if sequence is None:
        raise NotFound(f"there is no sequence {sequence_id}")
    return sequence


def load(session: Session, settings: Settings, definition: SequenceDefinition, now: datetime, *,
         reach_completed: bool = False) -> InstallReport:
    return install(session, settings, definition, now=now, reach_completed=reach_completed)


def install_shipped(session: Session, settings: Settings, now: datetime) -> list[str]:
    """Put the sequences the product ships into the database, paused for staff to review first.
    Ones already there (perhaps edited) are left alone."""
    added = []
    for definition in shipped_definitions():
        if session.scalar(select(Sequence.id).where(Sequence.name == definition.name)) is None:
            report = install(session, settings, definition, now=now)
            report.sequence.status = SequenceStatus.PAUSED
            added.append(definition.name)
    return added


def export(sequence: Sequence) -> str:
    return to_yaml(parse_definition(sequence.definition, source=f"sequence {sequence.name!r}"))


def set_status(sequence: Sequence, status: SequenceStatus) -> None:
    """Pausing holds every enrolment where it is; resuming carries on (inside the send window)."""
    if sequence.status == status:
        raise InputError(f"sequence {sequence.name!r} is already {status}")
    sequence.status = status


def set_tracking(session: Session, settings: Settings, sequence: Sequence, mode: str, now: datetime) -> None:
    """Change a sequence's tracking: its steps are compiled again (emails already sent keep theirs)."""
    sequence.tracking = check_tracking(mode)
    install(session, settings, parse_definition(sequence.definition, source=sequence.name), now=now)


def enroll_contact(session: Session, sequence: Sequence, email: str, now: datetime) -> Enrollment:
    return enroll(session, sequence, get_contact(session, email), now, source=TriggerType.MANUAL)


def summary(session: Session, sequence: Sequence) -> dict[str, Any]:
    states = dict(session.execute(
        select(Enrollment.state, func.count()).where(Enrollment.sequence_id == sequence.id).group_by(Enrollment.state)
    ).all())
    per_step: dict[int, dict[str, int]] = {}
    for step_id, status, count in session.execute(
        select(Delivery.step_id, Delivery.status, func.count())
        .join(SequenceStep, SequenceStep.id == Delivery.step_id)
        .where(SequenceStep.sequence_id == sequence.id)
        .group_by(Delivery.step_id, Delivery.status)
    ):
        per_step.setdefault(step_id, {})[status] = count
    waiting = dict(session.execute(
        select(Enrollment.next_step_id, func.count())
        .where(Enrollment.sequence_id == sequence.id, Enrollment.state == EnrollmentState.ACTIVE)
        .group_by(Enrollment.next_step_id)
    ).all())
    definition = sequence.definition
    unknown = sum(counts.get(DeliveryStatus.UNKNOWN, 0) for counts in per_step.values())
    return {
        "name": sequence.name, "status": sequence.status,
        "trigger": {"type": sequence.trigger_type, "value": sequence.trigger_value},
        "window": definition.get("window"), "goals": definition.get("goals", []), "reenroll": definition.get("reenroll"),
        "enrollments": {state.value: states.get(state, 0) for state in EnrollmentState},
        "steps": [
            {"position": s.position, "key": s.key, "subject": s.subject, "delay_seconds": s.delay_seconds,
             "waiting": waiting.get(s.id, 0), "deliveries": per_step.get(s.id, {}),
             "unknown": per_step.get(s.id, {}).get(DeliveryStatus.UNKNOWN, 0)}
            for s in steps_of(session, sequence)
        ],
        # Held as unknown: the request left and no answer came; settled like an issue's batches.
        "unknown": unknown,
        "unknown_batches": [batch_record(held)
                            for held in ledger.unknown_batches(session, sequence_id=sequence.id)] if unknown else [],
    }


def all_sequences(session: Session) -> list[Sequence]:
    return list(session.scalars(select(Sequence).order_by(Sequence.name)))


# Figures for the staff pages -------------------------------------------------------------------------


@dataclass
class SequenceFigures:
    """One line of the sequences list: its active steps, enrolments by state, and totals over every
    email it sent (removed steps too), as of ``computed_at`` (None: nothing to count yet)."""

    sequence: Sequence
    steps: int
    enrollments: dict[str, int]
    totals: EmailStats
    computed_at: datetime | None


def _enrollment_states(session: Session, *where: Any) -> dict[int, dict[str, int]]:
    """Enrolments per sequence and state, one grouped query (index on sequence_id)."""
    found: dict[int, dict[str, int]] = {}
    for sequence_id, state, count in session.execute(
            select(Enrollment.sequence_id, Enrollment.state, func.count()).where(*where)
            .group_by(Enrollment.sequence_id, Enrollment.state)):
        found.setdefault(sequence_id, {})[state] = count
    return {sid: {state.value: states.get(state, 0) for state in EnrollmentState} for sid, states in found.items()}


def _no_enrollments() -> dict[str, int]:
    return {state.value: 0 for state in EnrollmentState}


def overview(session: Session, now: datetime) -> list[SequenceFigures]:
    """Every sequence with its figures: a grouped query for the enrolments and the steps' kept
    figures (``reports.snapshots``: folding every delivery's events on each visit would cost most
    of a second at 100,000 sequence deliveries)."""
    sequences = all_sequences(session)
    states = _enrollment_states(session)
    steps = session.execute(select(SequenceStep.id, SequenceStep.sequence_id, SequenceStep.active)).all()
    kept = step_figures_of(session, [step_id for step_id, _, _ in steps], now)
    totals: dict[int, EmailStats] = {s.id: EmailStats() for s in sequences}
    computed: dict[int, datetime] = {}
    active: dict[int, int] = {}
    for step_id, sequence_id, is_active in steps:
        totals.setdefault(sequence_id, EmailStats()).add(kept[step_id].stats)
        computed[sequence_id] = min(computed.get(sequence_id, now), kept[step_id].computed_at)
        active[sequence_id] = active.get(sequence_id, 0) + int(bool(is_active))
    return [SequenceFigures(s, active.get(s.id, 0), states.get(s.id, _no_enrollments()), totals[s.id],
                            computed.get(s.id)) for s in sequences]


@dataclass
class StepFigures:
    """A step as its sequence's page shows it: the row, how many wait for it, its figures."""

    row: SequenceStep
    waiting: int
    stats: EmailStats


@dataclass
class SequenceView:
    sequence: Sequence
    enrollments: dict[str, int]
    steps: list[StepFigures]  # the active steps, in order
    removed: list[StepFigures]  # steps removed by an edit: never sent again, their figures kept
    totals: EmailStats
    computed_at: datetime | None  # when the oldest of these figures was computed


def waiting_per_step(session: Session, sequence: Sequence) -> dict[int, int]:
    """Active enrolments per step they wait for."""
    return dict(session.execute(  # type: ignore[arg-type]
        select(Enrollment.next_step_id, func.count())
        .where(Enrollment.sequence_id == sequence.id, Enrollment.state == EnrollmentState.ACTIVE)
        .group_by(Enrollment.next_step_id)
    ).all())


def view(session: Session, sequence: Sequence, now: datetime) -> SequenceView:
    """A sequence's page: its steps in order with their (kept) figures and who waits for each."""
    rows = list(session.scalars(select(SequenceStep).where(SequenceStep.sequence_id == sequence.id)
                                .order_by(SequenceStep.position, SequenceStep.id)))
    kept = step_figures_of(session, [row.id for row in rows], now)
    waiting = waiting_per_step(session, sequence)
    steps = [StepFigures(row, waiting.get(row.id, 0), kept[row.id].stats) for row in rows]
    totals = EmailStats()
    for item in steps:
        totals.add(item.stats)
    states = _enrollment_states(session, Enrollment.sequence_id == sequence.id)
    return SequenceView(sequence, states.get(sequence.id, _no_enrollments()),
                        [s for s in steps if s.row.active], [s for s in steps if not s.row.active], totals,
                        min((f.computed_at for f in kept.values()), default=None))
