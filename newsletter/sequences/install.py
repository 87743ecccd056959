"""Putting a sequence definition into the database: create, or update in place with care.

Steps are matched by their key. A new step at the end reaches contacts who had already finished
only when staff ask for it (``reach_completed``); a removed step is kept inactive, so it is never
sent again; a changed step is compiled again (what was sent stays in the ledger).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from newsletter import health_policy
from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.compose.compile import compile_email
from newsletter.models import EmailVersion, Enrollment, Link, Post, Sequence, SequenceStep
from newsletter.sequences.definition import SequenceDefinition, Step, TriggerType, step_content
from newsletter.versions import compile_version, primary_language, versions_of
from subscribers.states import EnrollmentState, SequenceStatus


@dataclass
class InstallReport:
    sequence: Sequence
    created: bool
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    reopened: int = 0


def reason_for(sequence: Sequence, settings: Settings) -> str | None:
    """The footer's "why you get this": a lead asked about a consultation, not for the newsletter."""
    if sequence.trigger_type == TriggerType.LIST_CONFIRMED:
        return None  # the layout's default: you subscribed to the newsletter
    if sequence.trigger_type == TriggerType.LEAD_CREATED:
        return f"You are receiving this because you asked {settings.org_name} about a consultation."
    return f"You are receiving this because you are in touch with {settings.org_name}."


def stored_post(session: Session, step: Step, where: str) -> Post | None:
    """A post step's post (None for a Markdown step); InputError when it is not there."""
    if step.post is None:
        return None
    post = session.get(Post, step.post)
    if post is None:
        raise InputError(f"{where}: there is no post {step.post}")
    return post


def install_translations(session: Session, settings: Settings, sequence: Sequence, step: Step, row: SequenceStep,
                         where: str) -> None:
    """Compile the step's translations as its language versions (newsletter.versions), after the
    step itself (whose compile renumbers its links); a translation no longer given is removed."""
    own = primary_language(settings.language)
    if own in step.translations:
        raise InputError(f"{where}: translations.{own}: the sequence is itself in {own!r}; "
                         "a translation must be in another language")
    stored = {v.language: v for v in versions_of(session, step_id=row.id)}
    for language in step.translations:
        version = stored.pop(language, None) or EmailVersion(step_id=row.id, language=language)
        translated = step.translated(language)
        version.subject, version.preheader = translated.subject, translated.preheader or ""
        content = step_content(translated, post=stored_post(session, translated, f"{where} ({language})"),
                               source=f"{where} ({language})", reason=reason_for(sequence, settings))
        compile_version(session, settings, version, content, tracking=sequence.tracking)
    for gone in stored.values():
        session.execute(delete(Link).where(Link.version_id == gone.id))
        session.delete(gone)


def install(session: Session, settings: Settings, definition: SequenceDefinition, *, now: datetime,
            reach_completed: bool = False) -> InstallReport:
    sequence = session.scalar(select(Sequence).where(Sequence.name == definition.name))
    created = sequence is None
    if sequence is None:
        sequence = Sequence(name=definition.name, status=SequenceStatus.ACTIVE, triggers_since=now, tracking=settings.tracking)
        session.add(sequence)
    sequence.trigger_type = definition.trigger.type
    sequence.trigger_value = definition.trigger.list or definition.trigger.tag
    sequence.definition = definition.model_dump(mode="json")
    session.flush()
    report = InstallReport(sequence, created)

    existing = {s.key: s for s in session.scalars(select(SequenceStep).where(SequenceStep.sequence_id == sequence.id))}
    old_last = max((s.position for s in existing.values() if s.active), default=None)
    for position, step in enumerate(definition.steps, start=1):
        key = step.key or f"step-{position}"
        where = f"{definition.name}: step {key}"
        content = step_content(step, post=stored_post(session, step, where), source=where,
                               reason=reason_for(sequence, settings))
        row = existing.pop(key, None)
        before = None if row is None else (row.subject, row.preheader, row.text, row.delay_seconds, row.condition,
                                           row.position, row.active)
        if row is None:
            row = SequenceStep(sequence_id=sequence.id, key=key)
        row.position, row.active = position, True
        row.delay_seconds = int(step.delay.total_seconds())
        row.subject, row.preheader = step.subject, step.preheader or ""
        row.condition = step.condition.model_dump(exclude_none=True) if step.condition else None
        compile_email(content, settings, tracking=sequence.tracking, session=session, into=row, now=now)
        install_translations(session, settings, sequence, step, row, where)
        if reason := health_policy.step_refusal(session, settings, row):
            raise InputError(f"{where}: {reason}")
        if before is None:
            report.added.append(key)
        elif before != (row.subject, row.preheader, row.text, row.delay_seconds, row.condition, row.position, True):
            report.changed.append(key)
    for gone in existing.values():
        if gone.active:
            gone.active = False
            report.removed.append(gone.key)
    session.flush()
    # Enrolments waiting for a removed step move on to the next one still active.
    if report.removed:
        from newsletter.sequences.engine import skip_removed_steps

        skip_removed_steps(session, settings, sequence, now)
    if reach_completed and report.added and old_last is not None:
        report.reopened = reopen_completed(session, settings, sequence, old_last, now)
    return report


def reopen_completed(session: Session, settings: Settings, sequence: Sequence, old_last: int, now: datetime) -> int:
    """Contacts who finished before new steps were added at the end continue with the first new step."""
    from newsletter.sequences.engine import first_due, steps_of

    new_steps = [s for s in steps_of(session, sequence) if s.position > old_last]
    if not new_steps:
        return 0
    first = new_steps[0]
    rows = session.execute(
        select(Enrollment.id, Enrollment.contact_id).where(
            Enrollment.sequence_id == sequence.id, Enrollment.state == EnrollmentState.COMPLETED, Enrollment.exit_reason.is_(None)
        )
    ).all()
    for enrollment_id, contact_id in rows:
        session.execute(
            update(Enrollment).where(Enrollment.id == enrollment_id).values(
                state=EnrollmentState.ACTIVE, finished_at=None, next_step_id=first.id,
                next_due_at=first_due(session, sequence, contact_id, first, now),
            )
        )
    return len(rows)
