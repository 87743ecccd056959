"""Subscriptions and their consent history: request, double opt-in, confirm, frequency, unsubscribe.

Every change a person makes is recorded as an append-only ``ConsentEvent`` and is idempotent: a
repeated confirm or unsubscribe changes nothing more. Withdrawal always wins over imports: a
re-import never re-subscribes someone who left, and nothing is ever sent to a suppressed address.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.errors import InputError
from subscribers.models import ConsentEvent, ConsentText, Contact, MailingList, Subscription
from subscribers.states import ContactStatus, SubscribeOutcome, SubscriptionStatus
from subscribers.suppression import SuppressionReason, is_suppressed, suppress
from subscribers.db import utcnow

METHODS = ("form", "import", "api", "admin", "email_link", "one_click", "provider")
FREQUENCIES = ("every", "monthly")
# Resend limit for confirmation emails: a pause between sends and a daily cap per subscription.
RESEND_PAUSE = timedelta(minutes=2)
RESEND_DAILY_CAP = 5


class ConsentAction(StrEnum):
    """``consent_events.action``: what the person (or staff, or an import) did."""

    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    WITHDRAWN = "withdrawn"
    FREQUENCY = "frequency"  # the note holds the new one


@dataclass
class Proof:
    """How consent (or its withdrawal) was given."""

    method: str
    form_id: str | None = None
    form_version: str | None = None
    text: str | None = None  # the exact consent wording shown
    text_version: str | None = None
    note: str | None = None  # e.g. the proof supplied with an import
    ip_address: str | None = None  # kept only when the caller's settings allow it
    user_agent: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"consent method must be one of {', '.join(METHODS)}, not {self.method!r}")


def consent_text_hash(session: Session, text: str, version: str | None) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if session.get(ConsentText, digest) is None:
        session.add(ConsentText(hash=digest, version=version or "", text=text))
        session.flush()
    return digest


def record(session: Session, contact: Contact, mailing_list: MailingList | None, action: ConsentAction,
           proof: Proof) -> ConsentEvent:
    event = ConsentEvent(
        contact_id=contact.id,
        list_id=mailing_list.id if mailing_list else None,
        action=action,
        method=proof.method,
        form_id=proof.form_id,
        form_version=proof.form_version,
        consent_text_hash=consent_text_hash(session, proof.text, proof.text_version) if proof.text else None,
        note=proof.note,
        ip_address=proof.ip_address,
        user_agent=(proof.user_agent or "")[:500] or None,
    )
    session.add(event)
    return event


def subscription_for(session: Session, contact: Contact, mailing_list: MailingList) -> Subscription | None:
    return session.scalar(
        select(Subscription).where(Subscription.contact_id == contact.id, Subscription.list_id == mailing_list.id)
    )


@dataclass
class Outcome:
    """What a subscribe request did. ``state`` is one of: pending (a confirmation email is due),
    confirmed (now subscribed), already (was subscribed), withdrawn (left earlier; an import does not
    bring them back), suppressed (nothing may be sent)."""

    state: SubscribeOutcome
    subscription: Subscription | None

    @property
    def needs_confirmation_email(self) -> bool:
        return self.state == SubscribeOutcome.PENDING


def request_subscription(
    session: Session, contact: Contact, mailing_list: MailingList, proof: Proof, *, confirmed: bool = False
) -> Outcome:
    """A person (form, API), staff (admin) or an import asks for ``contact`` to be on the list.

    ``confirmed`` means the caller holds proof of opt-in already (an import marked --confirmed, or
    staff); the proof is kept in the history. Otherwise double opt-in applies where the list wants it.
    """
    suppressed = is_suppressed(session, contact.email)
    sub = subscription_for(session, contact, mailing_list)
    state = subscribe_outcome(suppressed=suppressed, current=sub.status if sub else None, method=proof.method,
                              confirmed=confirmed, double_opt_in=mailing_list.double_opt_in)
    if state in (SubscribeOutcome.SUPPRESSED, SubscribeOutcome.ALREADY, SubscribeOutcome.WITHDRAWN):
        return Outcome(state, sub)
    if sub is None:
        sub = Subscription(contact=contact, mailing_list=mailing_list, status=SubscriptionStatus.PENDING)
        session.add(sub)
    else:
        sub.status, sub.unsubscribed_at = SubscriptionStatus.PENDING, None
    session.flush()
    record(session, contact, mailing_list, ConsentAction.REQUESTED, proof)
    if state == SubscribeOutcome.CONFIRMED:
        _confirm(session, sub, proof)
    return Outcome(state, sub)


def subscribe_outcome(*, suppressed: bool, current: str | None, method: str, confirmed: bool,
                      double_opt_in: bool) -> SubscribeOutcome:
    """The rules of a subscribe request, in one place: ``request_subscription`` applies them one
    contact at a time, ``csv_import`` to a whole batch in a few statements.

    ``current`` is the subscription's status on the list (None: no subscription yet). Returns an
    ``Outcome`` state: suppressed | already | withdrawn | confirmed | pending.
    """
    if suppressed:
        return SubscribeOutcome.SUPPRESSED  # nothing is ever sent to a suppressed address
    if current == SubscriptionStatus.CONFIRMED:
        return SubscribeOutcome.ALREADY
    if current == SubscriptionStatus.UNSUBSCRIBED and method == "import":
        return SubscribeOutcome.WITHDRAWN  # leaving wins over an old list; the person may come back by themselves
    return SubscribeOutcome.CONFIRMED if confirmed or not double_opt_in else SubscribeOutcome.PENDING


def status_after_confirm(contact_status: str) -> str:
    """A confirmed subscription makes a contact who had unsubscribed active again."""
    return ContactStatus.ACTIVE if contact_status == ContactStatus.UNSUBSCRIBED else contact_status


def _confirm(session: Session, sub: Subscription, proof: Proof) -> None:
    sub.status, sub.confirmed_at = SubscriptionStatus.CONFIRMED, utcnow()
    sub.contact.status = status_after_confirm(sub.contact.status)
    record(session, sub.contact, sub.mailing_list, ConsentAction.CONFIRMED, proof)
    session.flush()


def confirm(session: Session, sub: Subscription, proof: Proof) -> SubscribeOutcome:
    """The person pressed the confirm button. Returns confirmed | already | withdrawn | suppressed."""
    if is_suppressed(session, sub.contact.email):
        return SubscribeOutcome.SUPPRESSED
    if sub.status == SubscriptionStatus.CONFIRMED:
        return SubscribeOutcome.ALREADY
    if sub.status == SubscriptionStatus.UNSUBSCRIBED:  # an old link after leaving: leaving wins
        return SubscribeOutcome.WITHDRAWN
    _confirm(session, sub, proof)
    return SubscribeOutcome.CONFIRMED


def may_send_confirmation(sub: Subscription, now: datetime | None = None) -> bool:
    now = now or utcnow()
    last = sub.confirmation_sent_at
    if last is None:
        return True
    if now - last < RESEND_PAUSE:
        return False
    return now - last >= timedelta(days=1) or sub.confirmation_sends < RESEND_DAILY_CAP


def mark_confirmation_sent(sub: Subscription, now: datetime | None = None) -> None:
    now = now or utcnow()
    if sub.confirmation_sent_at is None or now - sub.confirmation_sent_at >= timedelta(days=1):
        sub.confirmation_sends = 0
    sub.confirmation_sent_at, sub.confirmation_sends = now, sub.confirmation_sends + 1


def unsubscribe(
    session: Session, contact: Contact, mailing_list: MailingList | None, proof: Proof
) -> bool:
    """Leave one list, or every list (``mailing_list`` None: the address is suppressed too).
    Honoured at once; returns whether anything changed."""
    changed = False
    subs = [s for s in contact.subscriptions if mailing_list is None or s.list_id == mailing_list.id]
    for sub in subs:
        if sub.status != SubscriptionStatus.UNSUBSCRIBED:
            sub.status, sub.unsubscribed_at = SubscriptionStatus.UNSUBSCRIBED, utcnow()
            record(session, contact, sub.mailing_list, ConsentAction.WITHDRAWN, proof)
            changed = True
    if mailing_list is None:
        if contact.status != ContactStatus.UNSUBSCRIBED:
            contact.status = ContactStatus.UNSUBSCRIBED
            record(session, contact, None, ConsentAction.WITHDRAWN, proof)
            changed = True
        suppress(session, contact.email, SuppressionReason.UNSUBSCRIBED, note=f"via {proof.method}")
    session.flush()
    return changed


def set_frequency(session: Session, sub: Subscription, frequency: str, proof: Proof) -> bool:
    if frequency not in FREQUENCIES:
        raise InputError(f"frequency must be one of {', '.join(FREQUENCIES)}, not {frequency!r}")
    if sub.frequency == frequency:
        return False
    sub.frequency = frequency
    record(session, sub.contact, sub.mailing_list, ConsentAction.FREQUENCY, Proof(proof.method, note=frequency))
    session.flush()
    return True


def history(session: Session, contact: Contact) -> list[ConsentEvent]:
    return list(session.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == contact.id).order_by(ConsentEvent.id)))
