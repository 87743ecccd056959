"""Emails about a consultation request: the acknowledgement to the lead and the notification to the
intake address, queued with the request (``newsletter.consultation``) and sent as one-off emails
(``newsletter.sending.one_off``: at most once, retried, held as unknown when the request may have left).

Both are read when sent: an acknowledgement is skipped when the address was suppressed meanwhile,
an intake notification when NEWSLETTER_INTAKE_EMAIL is no longer set; erasing the lead deletes both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from newsletter.compose.render import CompiledEmail
from newsletter.consultation import (
    ACKNOWLEDGEMENT,
    AcknowledgementFor,
    IntakeFor,
    acknowledgement_email,
    intake_email,
)
from newsletter.models import ConsultationEmail
from newsletter.sending.one_off import OneOffSender
from newsletter.transports import Recipient
from subscribers.models import Lead
from subscribers.suppression import is_suppressed


class ConsultationEmailSender(OneOffSender):
    model = ConsultationEmail
    kind = "consultation email"
    categories = ["request-reply"]  # provider metadata: nothing about health or the person

    def prepare(self, session: Session, row: Any) -> tuple[str | None, Any]:
        lead = session.get(Lead, row.lead_id)
        assert lead is not None  # the foreign key cascades: an erased lead's rows are gone
        if row.kind == ACKNOWLEDGEMENT:
            if is_suppressed(session, lead.contact.email):
                return "not sent: the address is suppressed", None
            return None, AcknowledgementFor(lead.contact.email, lead.contact.name, lead.preferred_contact,
                                            lead.requested_time, lead.contact.language)
        if self.settings.intake_email is None:
            return "not sent: NEWSLETTER_INTAKE_EMAIL is not set", None
        return None, IntakeFor(self.settings.intake_email, lead.contact.name, lead.contact_id)

    def compose(self, to: AcknowledgementFor | IntakeFor) -> tuple[CompiledEmail, Recipient]:
        if isinstance(to, AcknowledgementFor):
            return acknowledgement_email(self.settings, to)
        return intake_email(self.settings, to)
