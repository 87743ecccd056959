"""Running sequences: enrol contacts, check goals, and turn due steps into deliveries.

Due steps go into the same delivery ledger as issues (unique per enrolment and step) and out through
the same dispatch path, so a step is never sent twice and a restart never skips one. Each round
works in chunks with a handful of queries per chunk; the per-row work in Python is only the time
arithmetic that SQL cannot do portably (time zones and send windows).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.models import Delivery, Enrollment, Event, Sequence, SequenceStep
from newsletter.sequences.windows import Window
from subscribers.models import Booking, Contact, ContactTag, Lead, MailingList, Subscription, Suppression

CHUNK = 1000
ACTIVE_DELIVERY = ("queued", "claimed", "submitted", "delivered", "unknown")


def steps_of(session: Session, sequence: Sequence) -> list[SequenceStep]:
    return list(session.scalars(
        select(SequenceStep).where(SequenceStep.sequence_id == sequence.id, SequenceStep.active.is_(True))
        .order_by(SequenceStep.position)
    ))


def window_of(sequence: Sequence) -> Window:
    return Window.from_definition(sequence.definition["window"])


def first_due(session: Session, sequence: Sequence, contact_id: int, step: SequenceStep, now: datetime) -> datetime:
    zone = session.scalar(select(Contact.timezone).where(Contact.id == contact_id)) or "UTC"
    return window_of(sequence).next_open(now + timedelta(seconds=step.delay_seconds), zone)


# Enrolment ----------------------------------------------------------------------------------------


def enroll(session: Session, sequence: Sequence, contact: Contact, now: datetime, *, source: str = "manual") -> Enrollment:
    """Enrol one contact (staff, or a trigger). Refuses a second active enrolment, and a new one
    after a finished one unless the sequence allows re-enrolment."""
    previous = session.scalars(
        select(Enrollment).where(Enrollment.sequence_id == sequence.id, Enrollment.contact_id == contact.id)
        .order_by(Enrollment.generation.desc())
    ).first()
    if previous is not None and previous.state == "active":
        raise InputError("this contact is already going through the sequence")
    if previous is not None and not sequence.definition.get("reenroll"):
        raise InputError("this contact went through the sequence before and it does not allow enrolling again")
    steps = steps_of(session, sequence)
    if not steps:
        raise InputError(f"sequence {sequence.name!r} has no active steps")
    enrollment = Enrollment(
        sequence_id=sequence.id, contact_id=contact.id, generation=(previous.generation + 1) if previous else 1,
        state="active", next_step_id=steps[0].id, enrolled_at=now, source=source,
        next_due_at=window_of(sequence).next_open(now + timedelta(seconds=steps[0].delay_seconds), contact.timezone),
    )
    session.add(enrollment)
    session.flush()
    return enrollment


def _trigger_candidates(sequence: Sequence):  # noqa: ANN202 - a Select
    """Contacts whose trigger happened since the sequence started listening, as (contact id, when)."""
    since = sequence.triggers_since
    if sequence.trigger_type == "list_confirmed":
        return (
            select(Subscription.contact_id, Subscription.confirmed_at)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(MailingList.slug == sequence.trigger_value, Subscription.status == "confirmed",
                   Subscription.confirmed_at >= since)
        )
    if sequence.trigger_type == "lead_created":
        return select(Lead.contact_id, Lead.requested_at).where(Lead.requested_at >= since)
    if sequence.trigger_type == "tag_added":
        return select(ContactTag.contact_id, ContactTag.added_at).where(
            ContactTag.tag == sequence.trigger_value, ContactTag.added_at >= since
        )
    return None  # manual


def enroll_triggered(session: Session, now: datetime) -> int:
    """Enrol everyone whose trigger fired and who is not yet (or, if allowed, no longer) enrolled."""
    added = 0
    for sequence in session.scalars(select(Sequence).where(Sequence.status == "active")):
        candidates = _trigger_candidates(sequence)
        steps = steps_of(session, sequence)
        if candidates is None or not steps:
            continue
        sub = candidates.subquery()
        latest = (
            select(Enrollment.contact_id, func.max(Enrollment.generation).label("generation"),
                   func.max(Enrollment.enrolled_at).label("enrolled_at"))
            .where(Enrollment.sequence_id == sequence.id).group_by(Enrollment.contact_id).subquery()
        )
        active = exists().where(Enrollment.sequence_id == sequence.id, Enrollment.contact_id == sub.c[0],
                                Enrollment.state == "active")
        query = (
            select(sub.c[0], func.max(sub.c[1]), Contact.timezone, latest.c.generation)
            .join(Contact, Contact.id == sub.c[0])
            .outerjoin(latest, latest.c.contact_id == sub.c[0])
            .where(~active, ~exists().where(Suppression.email_hash == Contact.email_hash), Contact.status == "active")
            .group_by(sub.c[0], Contact.timezone, latest.c.generation, latest.c.enrolled_at)
        )
        if sequence.definition.get("reenroll"):
            # again only when the trigger fired after the previous enrolment began
            query = query.having(or_(latest.c.enrolled_at.is_(None), func.max(sub.c[1]) > latest.c.enrolled_at))
        else:
            query = query.where(latest.c.generation.is_(None))
        window, first = window_of(sequence), steps[0]
        rows = [
            {"sequence_id": sequence.id, "contact_id": contact_id, "generation": (generation or 0) + 1,
             "state": "active", "next_step_id": first.id, "enrolled_at": now, "source": "trigger",
             "next_due_at": window.next_open(now + timedelta(seconds=first.delay_seconds), zone)}
            for contact_id, _when, zone, generation in session.execute(query)
        ]
        for start in range(0, len(rows), CHUNK):
            session.execute(insert(Enrollment), rows[start:start + CHUNK])
        added += len(rows)
    return added


# Goals --------------------------------------------------------------------------------------------


def _goal_clause(goal: dict, sequence: Sequence):  # noqa: ANN202 - a SQL condition on Enrollment
    contact = Enrollment.contact_id
    kind = goal["type"]
    if kind == "booking":
        return exists().where(Lead.contact_id == contact, Booking.lead_id == Lead.id,
                              Booking.recorded_at >= Enrollment.enrolled_at)
    if kind == "lead_stage":
        return exists().where(Lead.contact_id == contact, Lead.stage == goal["stage"])
    if kind == "tag":
        return exists().where(ContactTag.contact_id == contact, ContactTag.tag == goal["tag"])
    if kind == "clicked":
        return exists().where(Event.contact_id == contact, Event.type == "click", Event.machine.is_(False),
                              Event.url == goal["url"], Event.occurred_at >= Enrollment.enrolled_at)
    if kind == "unsubscribed":
        left = [exists().where(Contact.id == contact, Contact.status != "active")]
        if sequence.trigger_type == "list_confirmed":
            left.append(exists().where(
                Subscription.contact_id == contact, Subscription.status == "unsubscribed",
                Subscription.list_id.in_(select(MailingList.id).where(MailingList.slug == sequence.trigger_value)),
            ))
        return or_(*left)
    raise ValueError(f"unknown goal {kind!r}")


def check_goals(session: Session, now: datetime, *, contact_id: int | None = None) -> int:
    """End every active enrolment whose goal is met. Nobody suppressed stays enrolled either."""
    ended = 0
    suppressed = exists().where(Contact.id == Enrollment.contact_id, Suppression.email_hash == Contact.email_hash)
    for sequence in session.scalars(select(Sequence)):
        goals = [(g, _goal_clause(g, sequence)) for g in sequence.definition.get("goals", [])]
        goals.append(({"type": "suppressed"}, suppressed))
        for goal, clause in goals:
            scope = [Enrollment.sequence_id == sequence.id, Enrollment.state == "active", clause]
            if contact_id is not None:
                scope.append(Enrollment.contact_id == contact_id)
            ended += session.execute(
                update(Enrollment).where(*scope)
                .values(state="exited", exit_reason=f"goal: {goal['type']}" if goal["type"] != "suppressed"
                        else "address suppressed", finished_at=now, next_due_at=None)
                .execution_options(synchronize_session=False)
            ).rowcount or 0
    return ended


def end_on_booking(session: Session, result) -> None:  # noqa: ANN001 - subscribers.leads.BookingResult
    """Listener: a booking ends nurture at once, and steps queued but not yet claimed never go."""
    if result.lead is None:
        return
    contact_id = result.lead.contact_id
    check_goals(session, result.booking.recorded_at, contact_id=contact_id)
    session.execute(
        update(Delivery)
        .where(Delivery.status == "queued", Delivery.enrollment_id.in_(
            select(Enrollment.id).where(Enrollment.contact_id == contact_id, Enrollment.state == "exited")))
        .values(status="suppressed", error="the enrolment ended (goal reached) before this step went out")
        .execution_options(synchronize_session=False)
    )


# Due steps ----------------------------------------------------------------------------------------


@dataclass
class DueReport:
    enrolled: int = 0
    exited: int = 0
    queued: int = 0
    skipped: int = 0
    postponed: int = 0
    completed: int = 0


def process_due(session: Session, settings: Settings, now: datetime) -> DueReport:
    """One round: enrol by triggers, end enrolments whose goal is met, queue every due step."""
    report = DueReport(enrolled=enroll_triggered(session, now), exited=check_goals(session, now))
    cap = timedelta(hours=settings.frequency_cap_hours)
    mailed_now: set[int] = set()  # contacts given a step in this round (the cap spans sequences)
    sequences = {s.id: s for s in session.scalars(select(Sequence).where(Sequence.status == "active"))}
    steps = defaultdict(list)
    for step in session.scalars(select(SequenceStep).where(SequenceStep.active.is_(True)).order_by(SequenceStep.position)):
        steps[step.sequence_id].append(step)
    all_steps = {s.id: s for s in session.scalars(select(SequenceStep))}
    lists = dict(session.execute(select(MailingList.slug, MailingList.id)).all())
    after_id = 0
    while True:
        rows = session.execute(
            select(Enrollment.id, Enrollment.sequence_id, Enrollment.contact_id, Enrollment.next_step_id,
                   Enrollment.last_step_id, Contact.timezone)
            .join(Contact, Contact.id == Enrollment.contact_id)
            .where(Enrollment.state == "active", Enrollment.next_due_at <= now, Enrollment.id > after_id,
                   Enrollment.sequence_id.in_(list(sequences)))
            .order_by(Enrollment.id).limit(CHUNK)
        ).all()
        if not rows:
            return report
        after_id = rows[-1][0]
        _process_chunk(session, rows, sequences, steps, all_steps, lists, cap, mailed_now, now, report)


def _process_chunk(session, rows, sequences, steps, all_steps, lists, cap, mailed_now, now, report) -> None:  # noqa: ANN001, PLR0913
    contact_ids = {r[2] for r in rows}
    enrollment_ids = [r[0] for r in rows]
    last_mail = dict(session.execute(
        select(Delivery.contact_id, func.max(Delivery.due_at))
        .where(Delivery.contact_id.in_(contact_ids), Delivery.status.in_(ACTIVE_DELIVERY),
               Delivery.due_at > now - cap, Delivery.due_at <= now)
        .group_by(Delivery.contact_id)
    ).all()) if cap else {}
    tags = defaultdict(set)
    for contact_id, tag in session.execute(select(ContactTag.contact_id, ContactTag.tag).where(ContactTag.contact_id.in_(contact_ids))):
        tags[contact_id].add(tag)
    engaged = defaultdict(set)  # enrolment id -> {"open", "click"} by a person on its previous step
    for enrollment_id, kind in session.execute(
        select(Delivery.enrollment_id, Event.type).join(Event, Event.delivery_id == Delivery.id)
        .join(Enrollment, and_(Enrollment.id == Delivery.enrollment_id, Enrollment.last_step_id == Delivery.step_id))
        .where(Delivery.enrollment_id.in_(enrollment_ids), Event.type.in_(("open", "click")), Event.machine.is_(False))
    ):
        engaged[enrollment_id].add(kind)

    deliveries, updates = [], []
    for enrollment_id, sequence_id, contact_id, next_step_id, _last_step_id, zone in rows:
        sequence = sequences[sequence_id]
        window = window_of(sequence)
        active_steps = steps[sequence_id]
        step = all_steps.get(next_step_id)
        if step is None or not step.active:  # removed while waiting: never sent; the next one keeps its delay
            following = next((s for s in active_steps if step is None or s.position > step.position), None)
            if following is None:
                updates.append(_complete(enrollment_id, now))
                report.completed += 1
            else:
                updates.append({"e_id": enrollment_id, "next_step_id": following.id, "state": "active",
                                "finished_at": None, "keep_sent": True,
                                "next_due_at": window.next_open(now + timedelta(seconds=following.delay_seconds), zone)})
            continue
        last = last_mail.get(contact_id)
        if contact_id in mailed_now or (last is not None and now - last < cap):
            later = window.next_open((last if last is not None else now) + cap, zone)
            updates.append({"e_id": enrollment_id, "next_step_id": step.id, "next_due_at": later, "state": "active",
                            "finished_at": None, "keep_sent": True})
            report.postponed += 1
            continue
        if _condition_met(step.condition, engaged[enrollment_id], tags[contact_id]):
            deliveries.append({
                "enrollment_id": enrollment_id, "step_id": step.id, "contact_id": contact_id,
                "list_id": lists.get(sequence.trigger_value) if sequence.trigger_type == "list_confirmed" else None,
                "status": "queued", "due_at": now, "attempts": 0, "created_at": now,
            })
            mailed_now.add(contact_id)
            report.queued += 1
            sent_step = step.id
        else:
            report.skipped += 1
            sent_step = _last_step_id
        following = next((s for s in active_steps if s.position > step.position), None)
        if following is None:
            updates.append({**_complete(enrollment_id, now), "last_step_id": sent_step,
                            "last_sent_at": now if sent_step == step.id else None, "keep_sent": sent_step != step.id})
            report.completed += 1
        else:
            updates.append({"e_id": enrollment_id, "next_step_id": following.id, "state": "active", "finished_at": None,
                            "next_due_at": window.next_open(now + timedelta(seconds=following.delay_seconds), zone),
                            "last_step_id": sent_step, "last_sent_at": now if sent_step == step.id else None,
                            "keep_sent": sent_step != step.id})
    if deliveries:
        session.execute(_insert_ignore(session), deliveries)
    _apply(session, updates)


def _complete(enrollment_id: int, now: datetime) -> dict:
    return {"e_id": enrollment_id, "next_step_id": None, "next_due_at": None, "state": "completed",
            "finished_at": now, "keep_sent": True}


def _apply(session: Session, updates: list[dict]) -> None:
    """Bulk UPDATE by id (executemany); ``keep_sent`` leaves last_step_id/last_sent_at as they were."""
    keep = [u for u in updates if u["keep_sent"]]
    sent = [u for u in updates if not u["keep_sent"]]
    base = update(Enrollment).where(Enrollment.id == bindparam("e_id")).execution_options(synchronize_session=False)
    if keep:
        session.connection().execute(
            base.values(next_step_id=bindparam("next_step_id"), next_due_at=bindparam("next_due_at"),
                        state=bindparam("state"), finished_at=bindparam("finished_at")),
            [{k: u[k] for k in ("e_id", "next_step_id", "next_due_at", "state", "finished_at")} for u in keep],
        )
    if sent:
        session.connection().execute(
            base.values(next_step_id=bindparam("next_step_id"), next_due_at=bindparam("next_due_at"),
                        state=bindparam("state"), finished_at=bindparam("finished_at"),
                        last_step_id=bindparam("last_step_id"), last_sent_at=bindparam("last_sent_at")),
            [{k: u[k] for k in ("e_id", "next_step_id", "next_due_at", "state", "finished_at", "last_step_id",
                                "last_sent_at")} for u in sent],
        )


def _condition_met(condition: dict | None, engaged: set[str], tags: set[str]) -> bool:
    if not condition:
        return True
    if condition.get("opened_previous"):
        return bool(engaged & {"open", "click"})  # a click implies the email was opened
    if condition.get("clicked_previous"):
        return "click" in engaged
    if condition.get("has_tag"):
        return condition["has_tag"].strip().lower() in tags
    return True


def _insert_ignore(session: Session):  # noqa: ANN202
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(Delivery).on_conflict_do_nothing(index_elements=["enrollment_id", "step_id"])


def skip_removed_steps(session: Session, settings: Settings, sequence: Sequence, now: datetime) -> None:
    """After an edit removed steps: enrolments waiting for one are due now, and the next round moves
    them on to the next active step (a removed step is never sent)."""
    removed = select(SequenceStep.id).where(SequenceStep.sequence_id == sequence.id, SequenceStep.active.is_(False))
    session.execute(
        update(Enrollment).where(Enrollment.sequence_id == sequence.id, Enrollment.state == "active",
                                 Enrollment.next_step_id.in_(removed))
        .values(next_due_at=now).execution_options(synchronize_session=False)
    )
