"""Confirmation emails: the queue the sign-up and "send me a new link" forms write to, and the
dispatchers send from.

A sign-up writes a ``ConfirmationEmail`` row in its own transaction (``optin.queue_confirmation``),
so the answer to a public form takes the same path whether the address is new, pending or
subscribed already. It is sent as a one-off email (``newsletter.sending.one_off``: at most once,
retried, held as unknown when its request may have left). A row is skipped, not sent, when there is
nothing left to confirm (confirmed or withdrawn meanwhile) or the address was suppressed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from newsletter.compose.render import CompiledEmail
from newsletter.models import ConfirmationEmail
from newsletter.optin import ConfirmationFor, confirmation_email
from newsletter.sending.one_off import OneOffSender
from newsletter.transports import Recipient
from subscribers.models import Subscription
from subscribers.states import SubscriptionStatus
from subscribers.suppression import is_suppressed


class ConfirmationSender(OneOffSender):
    model = ConfirmationEmail
    kind = "confirmation email"
    categories = ["confirmation"]

    def prepare(self, session: Session, row: Any) -> tuple[str | None, Any]:
        sub = session.get(Subscription, row.subscription_id)
        assert sub is not None  # the foreign key cascades: an erased contact's rows are gone
        if sub.status != SubscriptionStatus.PENDING:
            return f"not sent: the subscription is {sub.status} now", None
        if is_suppressed(session, sub.contact.email):
            return "not sent: the address is suppressed", None
        return None, ConfirmationFor(sub.id, sub.contact.email, sub.contact.name, sub.mailing_list.name,
                                     sub.contact.language)

    def compose(self, to: ConfirmationFor) -> tuple[CompiledEmail, Recipient]:
        return confirmation_email(self.settings, to)
