"""Attribution: credit a booking to the email whose human click (else open) came last before it,
inside the window. Runs as a booking listener (``newsletter.bootstrap.wire`` registers it), so staff,
CLI and webhook bookings are all credited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Attribution, Event
from subscribers.states import EventType


@dataclass(frozen=True)
class Attribute:
    """The booking listener, with its window (``NEWSLETTER_ATTRIBUTION_DAYS``) handed in, not read
    from the settings of the moment. Equal by value, so registering it twice registers it once."""

    days: int

    def __call__(self, session: Session, result) -> None:  # noqa: ANN001 - subscribers.leads.BookingResult
        if result.lead is None or session.get(Attribution, result.booking.id) is not None:
            return
        booked = result.booking.recorded_at
        since = booked - timedelta(days=self.days)
        for kind in (EventType.CLICK, EventType.OPEN):  # a click is the stronger evidence
            event = session.scalars(
                select(Event)
                .where(Event.contact_id == result.lead.contact_id, Event.type == kind, Event.machine.is_(False),
                       Event.delivery_id.is_not(None), Event.occurred_at >= since, Event.occurred_at <= booked)
                .order_by(Event.occurred_at.desc(), Event.id.desc())
                .limit(1)
            ).first()
            if event is not None:
                session.add(Attribution(booking_id=result.booking.id, delivery_id=event.delivery_id,
                                        issue_id=event.issue_id, step_id=event.step_id, kind=kind,
                                        event_at=event.occurred_at))
                return
