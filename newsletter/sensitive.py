"""Sensitive marks: the custom fields, tags and segments staff say reveal health information
(a field ``diagnosis``, a tag ``ketamine-patient``, a segment "Treatment-resistant depression").

Under the minimal health-information policy (``newsletter.health_policy``) nothing marked is sent to
the provider. Marking and unmarking are audited; the faces (staff Settings page, ``newsletter
sensitive``) call these functions and hold no rule of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import InputError, NotFound
from newsletter.models import SensitiveMark
from newsletter.staff import audit
from newsletter.staff.audit import AuditAction
from subscribers.contacts import MAX_FIELD_KEY, clean_tag
from subscribers.db import utcnow
from subscribers.models import Segment
from subscribers.segments import get_segment

FIELD, TAG, SEGMENT = "field", "tag", "segment"
KINDS = {FIELD: "custom field", TAG: "tag", SEGMENT: "segment"}  # kind -> its name in words


@dataclass(frozen=True)
class Marks:
    """What is marked, as the policy checks it (segments by their current names)."""

    fields: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    segments: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.fields or self.tags or self.segments)

    def metadata_names(self) -> list[tuple[str, str]]:
        """The names that must not ride in provider metadata, with their kind in words."""
        return [*((KINDS[TAG], t) for t in sorted(self.tags)), *((KINDS[SEGMENT], s) for s in self.segments)]


@dataclass(frozen=True)
class Marked:
    """One mark as staff read it."""

    kind: str
    name: str
    marked_by: str
    marked_at: datetime

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]


def marks_of(session: Session) -> Marks:
    rows = session.execute(select(SensitiveMark.kind, SensitiveMark.name, Segment.name)
                           .outerjoin(Segment, Segment.id == SensitiveMark.segment_id)).all()
    return Marks(fields=frozenset(n for k, n, _ in rows if k == FIELD),
                 tags=frozenset(n for k, n, _ in rows if k == TAG),
                 segments=tuple(sorted(s for k, _, s in rows if k == SEGMENT)))


def listing(session: Session) -> list[Marked]:
    """Every mark, by kind then name."""
    rows = session.execute(select(SensitiveMark, Segment.name)
                           .outerjoin(Segment, Segment.id == SensitiveMark.segment_id)).all()
    found = [Marked(m.kind, segment_name if m.kind == SEGMENT else m.name, m.marked_by, m.marked_at)
             for m, segment_name in rows]
    return sorted(found, key=lambda m: (list(KINDS).index(m.kind), m.name.lower()))


def check_kind(kind: str) -> str:
    kind = (kind or "").strip().lower()
    if kind not in KINDS:
        raise InputError(f"kind {kind!r}: choose field, tag or segment")
    return kind


def _find(session: Session, kind: str, name: str) -> tuple[SensitiveMark | None, str, Segment | None]:
    """The mark of ``kind`` and ``name`` (or None), the name as stored, and the segment it names."""
    kind = check_kind(kind)
    if not (name or "").strip():
        raise InputError(f"give the {KINDS[kind]}'s name")
    if kind == SEGMENT:
        segment = get_segment(session, name.strip())  # NotFound names it
        return session.scalar(select(SensitiveMark).where(SensitiveMark.segment_id == segment.id)), segment.name, segment
    if kind == TAG:
        name = clean_tag(name)  # tags are stored cleaned: a mark must match them
    else:
        name = name.strip()
        if len(name) > MAX_FIELD_KEY:
            raise InputError(f"a custom field's name has 1 to {MAX_FIELD_KEY} characters")
    mark = session.scalar(select(SensitiveMark).where(SensitiveMark.kind == kind, SensitiveMark.name == name))
    return mark, name, None


def _target(kind: str, name: str, segment: Segment | None) -> str:
    """The audit log's target: a segment by its number, a field or tag by its name (never a value)."""
    return f"segment {segment.id}" if segment is not None else f"{KINDS[kind]} {name}"


def mark(session: Session, kind: str, name: str, actor: audit.Actor) -> tuple[Marked, bool]:
    """Mark a custom field, tag or segment as sensitive; True when it was not marked before (a
    repeat changes nothing and is not audited again)."""
    kind = check_kind(kind)
    found, name, segment = _find(session, kind, name)
    if found is not None:
        return Marked(kind, name, found.marked_by, found.marked_at), False
    by = actor.email if isinstance(actor, audit.StaffUser) else actor
    row = SensitiveMark(kind=kind, name=None if segment else name, segment_id=segment.id if segment else None,
                        marked_by=by, marked_at=utcnow())
    session.add(row)
    session.flush()
    audit.record(session, actor, AuditAction.SENSITIVE_MARKED, _target(kind, name, segment), "marked sensitive")
    return Marked(kind, name, by, row.marked_at), True


def unmark(session: Session, kind: str, name: str, actor: audit.Actor) -> str:
    """Take a mark away; returns the name as it was marked. NotFound when it was not marked."""
    kind = check_kind(kind)
    found, name, segment = _find(session, kind, name)
    if found is None:
        raise NotFound(f"the {KINDS[kind]} {name!r} is not marked sensitive")
    session.delete(found)
    session.flush()
    audit.record(session, actor, AuditAction.SENSITIVE_UNMARKED, _target(kind, name, segment), "unmarked")
    return name
