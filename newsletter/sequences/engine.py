"""Running sequences: enrol contacts, check goals, and turn due steps into deliveries.

Due steps go into the same delivery ledger as issues (unique per enrolment and step) and out through
the same dispatch path, so a step is never sent twice and a restart never skips one. Each round
works in chunks with a handful of queries per chunk, writing the rows that get the same values
together; the work in Python is only the time arithmetic that SQL cannot do portably (time zones and
send windows), done once per step and zone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    and_,
    any_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter import health_policy
from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.models import ENROLLMENT_STEP_CONFLICT, Delivery, Enrollment, Event, Lease, Sequence, SequenceStep
from newsletter.sequences.windows import Window
from newsletter.sequences.definition import GoalType, TriggerType
from subscribers.db import insert_ignoring_conflicts, is_postgresql
from subscribers.models import Booking, Contact, ContactTag, Lead, MailingList, Subscription, Suppression
from subscribers.states import (ENGAGEMENT, MAY_STILL_ARRIVE, ContactStatus, DeliveryStatus, EnrollmentState, EventType,
                                SequenceStatus, SubscriptionStatus)

CHUNK = 1000


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


def enroll(session: Session, sequence: Sequence, contact: Contact, now: datetime, *, source: str = TriggerType.MANUAL) -> Enrollment:
    """Enrol one contact (staff, or a trigger). Refuses a second active enrolment, and a new one
    after a finished one unless the sequence allows re-enrolment."""
    # The contact's row locked first (PostgreSQL): two enrolments of one contact at once (a form sent
    # twice, a trigger beside staff) both read "not enrolled" and one failed on the unique generation.
    session.execute(select(Contact.id).where(Contact.id == contact.id).with_for_update())
    previous = session.scalars(
        select(Enrollment).where(Enrollment.sequence_id == sequence.id, Enrollment.contact_id == contact.id)
        .order_by(Enrollment.generation.desc())
    ).first()
    if previous is not None and previous.state == EnrollmentState.ACTIVE:
        raise InputError("this contact is already going through the sequence")
    if previous is not None and not sequence.definition.get("reenroll"):
        raise InputError("this contact went through the sequence before and it does not allow enrolling again")
    steps = steps_of(session, sequence)
    if not steps:
        raise InputError(f"sequence {sequence.name!r} has no active steps")
    enrollment = Enrollment(
        sequence_id=sequence.id, contact_id=contact.id, generation=(previous.generation + 1) if previous else 1,
        state=EnrollmentState.ACTIVE, next_step_id=steps[0].id, enrolled_at=now, source=source,
        next_due_at=window_of(sequence).next_open(now + timedelta(seconds=steps[0].delay_seconds), contact.timezone),
    )
    session.add(enrollment)
    session.flush()
    return enrollment


def _trigger_candidates(sequence: Sequence):  # noqa: ANN202 - a Select
    """Contacts whose trigger happened since the sequence started listening, as (contact id, when)."""
    since = sequence.triggers_since
    if sequence.trigger_type == TriggerType.LIST_CONFIRMED:
        return (
            select(Subscription.contact_id, Subscription.confirmed_at)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(MailingList.slug == sequence.trigger_value, Subscription.status == SubscriptionStatus.CONFIRMED,
                   Subscription.confirmed_at >= since)
        )
    if sequence.trigger_type == TriggerType.LEAD_CREATED:
        return select(Lead.contact_id, Lead.requested_at).where(Lead.requested_at >= since)
    if sequence.trigger_type == TriggerType.TAG_ADDED:
        return select(ContactTag.contact_id, ContactTag.added_at).where(
            ContactTag.tag == sequence.trigger_value, ContactTag.added_at >= since
        )
    return None  # manual


def enroll_triggered(session: Session, now: datetime) -> int:
    """Enrol everyone whose trigger fired and who is not yet (or, if allowed, no longer) enrolled."""
    added = 0
    for sequence in session.scalars(select(Sequence).where(Sequence.status == SequenceStatus.ACTIVE)):
        candidates = _trigger_candidates(sequence)
        if candidates is None:
            continue
        # At most one candidate row per contact (one subscription per list, one lead per contact, one
        # tag row per contact and tag). Every tick looks at every trigger since the sequence started
        # listening, most of them long enrolled: an anti-join (an index probe each, or one hash) drops
        # those, where grouping all the sequence's enrolments by contact cost a full aggregate a tick.
        sub = candidates.subquery()
        candidate, when = sub.c[0], sub.c[1]
        mine = (Enrollment.sequence_id == sequence.id, Enrollment.contact_id == candidate)
        if sequence.definition.get("reenroll"):
            # again only when none is active and the trigger fired after the previous enrolment began
            blocked = exists().where(*mine, or_(Enrollment.state == EnrollmentState.ACTIVE,
                                                Enrollment.enrolled_at >= when))
        else:
            blocked = exists().where(*mine)
        generation = select(func.coalesce(func.max(Enrollment.generation), 0)).where(*mine).scalar_subquery()
        found = session.execute(
            select(candidate, Contact.timezone, generation)
            .join(Contact, Contact.id == candidate)
            .where(~blocked, Contact.status == ContactStatus.ACTIVE,
                   ~exists().where(Suppression.email_hash == Contact.email_hash))
        ).all()
        steps = steps_of(session, sequence) if found else []
        if not steps:
            continue
        window, first = window_of(sequence), steps[0]
        rows = [
            {"sequence_id": sequence.id, "contact_id": contact_id, "generation": generation + 1,
             "state": EnrollmentState.ACTIVE, "next_step_id": first.id, "enrolled_at": now, "source": "trigger",
             "next_due_at": window.next_open(now + timedelta(seconds=first.delay_seconds), zone)}
            for contact_id, zone, generation in found
        ]
        for start in range(0, len(rows), CHUNK):
            session.execute(insert(Enrollment), rows[start:start + CHUNK])
        added += len(rows)
    return added


# Goals --------------------------------------------------------------------------------------------

# Goals are enforced as they happen (``end_on_booking``) and, in every round, for the enrolments whose
# step is due before that step is queued; the sweep over every active enrolment only tidies up the
# ones still waiting (their state and the reports), so once an hour is enough. The time of the next
# sweep is a row of the leases table (shared by every process, survives restarts; losing it only
# brings the next sweep forward). The sweep works on it as on a lease that one round takes for an hour.
GOAL_SWEEP_LEASE = "sequence-goal-sweep"
GOAL_SWEEP_EVERY = timedelta(hours=1)


def _goal_clause(goal: dict, sequence: Sequence):  # noqa: ANN202 - a SQL condition on Enrollment
    contact = Enrollment.contact_id
    kind = goal["type"]
    if kind == GoalType.BOOKING:
        return exists().where(Lead.contact_id == contact, Booking.lead_id == Lead.id,
                              Booking.recorded_at >= Enrollment.enrolled_at)
    if kind == GoalType.LEAD_STAGE:
        return exists().where(Lead.contact_id == contact, Lead.stage == goal["stage"])
    if kind == GoalType.TAG:
        return exists().where(ContactTag.contact_id == contact, ContactTag.tag == goal["tag"])
    if kind == GoalType.CLICKED:
        return exists().where(Event.contact_id == contact, Event.type == EventType.CLICK, Event.machine.is_(False),
                              Event.url == goal["url"], Event.occurred_at >= Enrollment.enrolled_at)
    if kind == GoalType.UNSUBSCRIBED:
        left = [exists().where(Contact.id == contact, Contact.status != ContactStatus.ACTIVE)]
        if sequence.trigger_type == TriggerType.LIST_CONFIRMED:
            left.append(exists().where(
                Subscription.contact_id == contact, Subscription.status == SubscriptionStatus.UNSUBSCRIBED,
                Subscription.list_id.in_(select(MailingList.id).where(MailingList.slug == sequence.trigger_value)),
            ))
        return or_(*left)
    raise ValueError(f"unknown goal {kind!r}")


def _end_at_goals(session: Session, sequence: Sequence, now: datetime, *scope: ColumnElement[bool]) -> int:
    """End the active enrolments of ``sequence`` (narrowed by ``scope``) whose goal is met, or whose
    address is suppressed."""
    suppressed = exists().where(Contact.id == Enrollment.contact_id, Suppression.email_hash == Contact.email_hash)
    # (why it ends, the condition)
    reasons = [(f"goal: {g['type']}", _goal_clause(g, sequence)) for g in sequence.definition.get("goals", [])]
    reasons.append(("address suppressed", suppressed))
    ended = 0
    for reason, clause in reasons:
        ended += session.execute(
            update(Enrollment)
            .where(Enrollment.sequence_id == sequence.id, Enrollment.state == EnrollmentState.ACTIVE, clause, *scope)
            .values(state=EnrollmentState.EXITED, exit_reason=reason, finished_at=now, next_due_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount or 0
    return ended


def check_goals(session: Session, now: datetime, *, contact_id: int | None = None) -> int:
    """End every active enrolment (of ``contact_id`` when given) whose goal is met. Nobody
    suppressed stays enrolled either."""
    scope = [] if contact_id is None else [Enrollment.contact_id == contact_id]
    return sum(_end_at_goals(session, sequence, now, *scope) for sequence in session.scalars(select(Sequence)))


def goal_sweep_due(session: Session, now: datetime) -> bool:
    """True when this round should sweep every active enrolment for goals, and then the next one is
    due GOAL_SWEEP_EVERY later. Atomic across processes (a conditional UPDATE, or the INSERT that
    creates the row); the row goes with the round's transaction, so a round rolled back sweeps again."""
    taken = session.execute(
        update(Lease).where(
            Lease.name == GOAL_SWEEP_LEASE,
            # a sweep time further ahead than one period means the clock went back: sweep now
            or_(Lease.expires_at <= now, Lease.expires_at > now + GOAL_SWEEP_EVERY),
        ).values(holder="goal sweep", expires_at=now + GOAL_SWEEP_EVERY).execution_options(synchronize_session=False)
    ).rowcount
    if taken:
        return True
    created = session.execute(  # RETURNING, as psycopg reports no rowcount for this INSERT
        insert_ignoring_conflicts(session, Lease).values(name=GOAL_SWEEP_LEASE, holder="goal sweep",
                                                         expires_at=now + GOAL_SWEEP_EVERY)
        .on_conflict_do_nothing(index_elements=["name"]).returning(Lease.name)
    ).first()
    return created is not None


def end_on_booking(session: Session, result) -> None:  # noqa: ANN001 - subscribers.leads.BookingResult
    """Listener: a booking ends nurture at once, and steps queued but not yet claimed never go."""
    if result.lead is None:
        return
    contact_id = result.lead.contact_id
    check_goals(session, result.booking.recorded_at, contact_id=contact_id)
    session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.QUEUED, Delivery.enrollment_id.in_(select(Enrollment.id).where(
            Enrollment.contact_id == contact_id, Enrollment.state == EnrollmentState.EXITED)))
        .values(status=DeliveryStatus.SUPPRESSED, error="the enrolment ended (goal reached) before this step went out")
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
    held_by_policy: dict[int, str] = field(default_factory=dict)  # sequence id -> why its steps wait


def process_due(session: Session, settings: Settings, now: datetime) -> DueReport:
    """One round: enrol by triggers, end enrolments whose goal is met (those due now; all of them at
    most hourly), queue every due step."""
    report = DueReport(enrolled=enroll_triggered(session, now))
    sequences = {s.id: s for s in session.scalars(select(Sequence).where(Sequence.status == SequenceStatus.ACTIVE))}
    if goal_sweep_due(session, now):
        report.exited += check_goals(session, now)
    else:  # whoever is due is checked now, so a goal reached since the last sweep stops the step
        for sequence in sequences.values():
            report.exited += _end_at_goals(session, sequence, now, Enrollment.next_due_at <= now)
    # A sequence with a step the health-information policy refuses sends nothing until staff fix it.
    report.held_by_policy = health_policy.held_sequences(session, settings, sequences)
    for sequence_id in report.held_by_policy:
        del sequences[sequence_id]
    # The due ones through ix_enrollments_due (state, next_due_at), without ORDER BY so that no
    # planner prefers walking the primary key; sorted here to keep the order (and so who gets the
    # capped email when two sequences are due for one contact) by enrolment id. Taken once, before
    # any is moved on, so a step due again at once (delay 0) waits for the next round, as before.
    due = sorted(session.scalars(
        select(Enrollment.id)
        .where(Enrollment.state == EnrollmentState.ACTIVE, Enrollment.next_due_at <= now,
               Enrollment.sequence_id.in_(list(sequences)))
    ))
    if not due:
        return report
    tick = _Tick(session, settings, now, sequences, report)
    for start in range(0, len(due), CHUNK):
        tick.process(due[start:start + CHUNK])
    return report


class _Step(NamedTuple):
    """A step as a round needs it: plain values read once (not the compiled email, and no ORM
    attribute access per row)."""

    id: int
    sequence_id: int
    active: bool
    delay_seconds: int
    condition: dict | None
    following: int | None  # the next active step of the sequence


# New values of an enrolment: (next_step_id, next_due_at, state, finished_at, (last_step_id,
# last_sent_at) or None to leave those as they were). Rows with the same values are written together.
Change = tuple[int | None, datetime | None, str, datetime | None, tuple[int, datetime] | None]


class _Tick:
    """What one round reads once (steps, windows, lists) and carries across chunks (who was mailed
    in this round, since the cap spans sequences; next_due_at per step and zone)."""

    def __init__(self, session: Session, settings: Settings, now: datetime, sequences: dict[int, Sequence],
                 report: DueReport) -> None:
        self.session, self.now, self.sequences, self.report = session, now, sequences, report
        self.cap = timedelta(hours=settings.frequency_cap_hours)
        self.mailed_now: set[int] = set()
        self.windows = {sid: window_of(s) for sid, s in sequences.items()}
        rows = session.execute(
            select(SequenceStep.id, SequenceStep.sequence_id, SequenceStep.active, SequenceStep.delay_seconds,
                   SequenceStep.condition, SequenceStep.position)
            .order_by(SequenceStep.sequence_id, SequenceStep.position.desc())
        ).all()
        self.steps: dict[int, _Step] = {}
        self.first: dict[int, int] = {}  # sequence -> its first active step (for a step deleted outright)
        for step_id, sequence_id, active, delay, condition, _position in rows:  # last to first
            following = self.first.get(sequence_id)
            self.steps[step_id] = _Step(step_id, sequence_id, active, delay, condition, following)
            if active:
                self.first[sequence_id] = step_id
        self.lists = dict(session.execute(select(MailingList.slug, MailingList.id)).all())
        self._due_at: dict[tuple[int, int, str], datetime] = {}
        self.postgres = is_postgresql(session)

    def among(self, column: ColumnElement[int], values: Collection[int]) -> ColumnElement[bool]:
        """``column IN values``; on PostgreSQL ``= ANY(array)``: one parameter, where a thousand cost
        psycopg and the server more (binding, parsing, planning) than the rows themselves."""
        if self.postgres:
            return column == any_(literal(list(values), ARRAY(Integer())))
        return column.in_(values)

    def move_on(self, sequence_id: int, following: int | None, zone: str) -> tuple[int | None, datetime | None, str,
                                                                                   datetime | None]:
        """Wait for ``following``, or complete when there is none. next_due_at is the same for
        everyone in a zone, so it is worked out once per round (most of the Python time a row otherwise)."""
        if following is None:
            return None, None, EnrollmentState.COMPLETED, self.now
        delay = self.steps[following].delay_seconds
        key = (sequence_id, delay, zone)
        if key not in self._due_at:
            self._due_at[key] = self.windows[sequence_id].next_open(self.now + timedelta(seconds=delay), zone)
        return following, self._due_at[key], EnrollmentState.ACTIVE, None

    def process(self, enrollment_ids: list[int]) -> None:
        """One chunk of due enrolments."""
        session, now, cap, report = self.session, self.now, self.cap, self.report
        # The zone by a subquery rather than a join: with a thousand ids PostgreSQL would rather hash
        # every contact than look up a thousand (and take several times longer).
        zone = select(Contact.timezone).where(Contact.id == Enrollment.contact_id).scalar_subquery()
        rows = session.execute(
            select(Enrollment.id, Enrollment.sequence_id, Enrollment.contact_id, Enrollment.next_step_id, zone)
            .where(self.among(Enrollment.id, enrollment_ids)).order_by(Enrollment.id)
        ).all()
        contact_ids = {r[2] for r in rows}
        conditions = [s.condition for s in map(self.steps.get, {r[3] for r in rows}) if s and s.active and s.condition]
        # The status is checked here, not in SQL: given a status condition SQLite (which never gets
        # statistics) may walk a status index over every email of the window (all of an issue sent
        # today) instead of looking up these contacts' few (as it did with a former status index).
        last_mail: dict[int, datetime] = {}
        for contact_id, due_at, status in session.execute(
            select(Delivery.contact_id, Delivery.due_at, Delivery.status)
            .where(self.among(Delivery.contact_id, contact_ids), Delivery.due_at > now - cap, Delivery.due_at <= now)
        ) if cap else ():
            if status in MAY_STILL_ARRIVE:
                last_mail[contact_id] = max(due_at, last_mail.get(contact_id, due_at))
        # Tags and engagement only matter to steps with a condition: read them only then.
        tags = defaultdict(set)
        if any(c.get("has_tag") for c in conditions):
            for contact_id, tag in session.execute(
                select(ContactTag.contact_id, ContactTag.tag).where(self.among(ContactTag.contact_id, contact_ids))
            ):
                tags[contact_id].add(tag)
        engaged = defaultdict(set)  # enrolment id -> {open, click} by a person on its previous step
        if any(c.get("opened_previous") or c.get("clicked_previous") for c in conditions):
            for enrollment_id, kind in session.execute(
                select(Delivery.enrollment_id, Event.type).join(Event, Event.delivery_id == Delivery.id)
                .join(Enrollment, and_(Enrollment.id == Delivery.enrollment_id,
                                       Enrollment.last_step_id == Delivery.step_id))
                .where(self.among(Delivery.enrollment_id, enrollment_ids), Event.type.in_(ENGAGEMENT),
                       Event.machine.is_(False))
            ):
                engaged[enrollment_id].add(kind)

        queued: dict[int, list[int]] = defaultdict(list)  # step -> the enrolments given it now
        changes: dict[Change, list[int]] = defaultdict(list)
        for enrollment_id, sequence_id, contact_id, next_step_id, zone in rows:
            step = self.steps.get(next_step_id)
            if step is None or not step.active:  # removed while waiting: never sent; the next one keeps its delay
                following = step.following if step is not None else self.first.get(sequence_id)
                changes[(*self.move_on(sequence_id, following, zone), None)].append(enrollment_id)
                report.completed += int(following is None)
                continue
            last = last_mail.get(contact_id)
            if contact_id in self.mailed_now or (last is not None and now - last < cap):
                later = self.windows[sequence_id].next_open((last if last is not None else now) + cap, zone)
                changes[(step.id, later, EnrollmentState.ACTIVE, None, None)].append(enrollment_id)
                report.postponed += 1
                continue
            sent = _condition_met(step.condition, engaged[enrollment_id], tags[contact_id])
            if sent:
                queued[step.id].append(enrollment_id)
                self.mailed_now.add(contact_id)
                report.queued += 1
            else:
                report.skipped += 1  # and last_step_id/last_sent_at stay as they were
            changes[(*self.move_on(sequence_id, step.following, zone), (step.id, now) if sent else None)].append(
                enrollment_id)
            report.completed += int(step.following is None)
        for step_id, ids in queued.items():
            self._queue(step_id, ids)
        self._apply(changes)

    def _queue(self, step_id: int, enrollment_ids: list[int]) -> None:
        """Put ``step_id`` in the ledger for these enrolments: one INSERT ... SELECT (its parameters
        are the ids, not eight values a row); the unique (enrolment, step) makes a repeat a no-op."""
        sequence = self.sequences[self.steps[step_id].sequence_id]
        list_id = self.lists.get(sequence.trigger_value) if sequence.trigger_type == TriggerType.LIST_CONFIRMED else None
        when = literal(self.now, Delivery.due_at.type)
        rows = select(Enrollment.id, literal(step_id, Integer()), Enrollment.contact_id, literal(list_id, Integer()),
                      literal(DeliveryStatus.QUEUED, Delivery.status.type), when, literal(0), when
                      ).where(self.among(Enrollment.id, enrollment_ids))
        self.session.execute(insert_ignoring_conflicts(self.session, Delivery).from_select(
            ["enrollment_id", "step_id", "contact_id", "list_id", "status", "due_at", "attempts", "created_at"], rows,
        ).on_conflict_do_nothing(**ENROLLMENT_STEP_CONFLICT))

    def _apply(self, changes: dict[Change, list[int]]) -> None:
        """Write the enrolments' new values. Most of a chunk shares them (the same next step, and the
        same next_due_at within a zone): one UPDATE per group. The odd ones (postponed by the cap, each
        to its own time) go by executemany, which costs per row what the grouping saves."""
        singles: dict[tuple[str, ...], list[dict]] = defaultdict(list)  # by the columns they set
        for (next_step_id, next_due_at, state, finished_at, sent), ids in changes.items():
            values = {"next_step_id": next_step_id, "next_due_at": next_due_at, "state": state,
                      "finished_at": finished_at}
            if sent is not None:
                values |= {"last_step_id": sent[0], "last_sent_at": sent[1]}
            if len(ids) >= GROUPED:
                self.session.execute(update(Enrollment).where(self.among(Enrollment.id, ids)).values(values)
                                     .execution_options(synchronize_session=False))
            else:
                singles[tuple(values)].extend({"e_id": i, **values} for i in ids)
        for columns, params in singles.items():
            self.session.connection().execute(
                update(Enrollment).where(Enrollment.id == bindparam("e_id")).values({c: bindparam(c) for c in columns}),
                params,
            )


GROUPED = 10  # at least this many enrolments with the same new values: one UPDATE for them all


def _condition_met(condition: dict | None, engaged: set[str], tags: set[str]) -> bool:
    if not condition:
        return True
    if condition.get("opened_previous"):
        return bool(engaged & set(ENGAGEMENT))  # a click implies the email was opened
    if condition.get("clicked_previous"):
        return EventType.CLICK in engaged
    if condition.get("has_tag"):
        return condition["has_tag"].strip().lower() in tags
    return True


def skip_removed_steps(session: Session, settings: Settings, sequence: Sequence, now: datetime) -> None:
    """After an edit removed steps: enrolments waiting for one are due now, and the next round moves
    them on to the next active step (a removed step is never sent)."""
    removed = select(SequenceStep.id).where(SequenceStep.sequence_id == sequence.id, SequenceStep.active.is_(False))
    session.execute(
        update(Enrollment).where(Enrollment.sequence_id == sequence.id, Enrollment.state == EnrollmentState.ACTIVE,
                                 Enrollment.next_step_id.in_(removed))
        .values(next_due_at=now).execution_options(synchronize_session=False)
    )
