"""Every stored state, and the named sets of them the rules use: the one home of their spelling.

It lives in ``subscribers`` (the shared core, beside ``db``) because both packages need it:
``subscribers.segments`` counts what "counts as sent" in ``newsletter``'s ledger, and ``subscribers``
never imports ``newsletter``. Members are ``StrEnum``s, so they compare equal to, and are stored as,
their values: "queued", never "QUEUED" (psycopg dumps a ``str`` subclass as a string, not by the
member's name; ``tests/test_sending_postgres.py`` shows it). ``docs/glossary.md`` defines each. The
kinds of event (``EventType``) live here too: not states, but stored words that both packages read.

Queries that must use a partial index (``WHERE status = 'queued'``) spell the state with
``sql_literal``: the planner matches a literal, not a bound parameter, to the index's predicate.
Compared with a column, a member takes the column's type; standing alone (a ``CASE`` branch, a
``literal()``), give it the column's type (``literal(state, Delivery.status.type)``) or pass
``.value``: SQLAlchemy types a ``str`` as String but leaves an ``Enum`` member untyped.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import literal_column
from sqlalchemy.sql.elements import ColumnClause


class DeliveryStatus(StrEnum):
    """``deliveries.status``: one email to one contact, on its way, with the provider, or settled."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    SUBMITTED = "submitted"  # the provider accepted it (not yet delivered)
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    FAILED = "failed"
    UNKNOWN = "unknown"  # its request may have left and no answer came
    SUPPRESSED = "suppressed"


DELIVERY_STATES = tuple(DeliveryStatus)
# The provider accepted the email (or reported on it): what reports and segments count as sent.
COUNTS_AS_SENT = (DeliveryStatus.SUBMITTED, DeliveryStatus.DELIVERED, DeliveryStatus.BOUNCED, DeliveryStatus.DROPPED)
ON_ITS_WAY = (DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED)
# In a request whose answer is not recorded: a provider event about the row proves it was accepted.
IN_REQUEST = (DeliveryStatus.CLAIMED, DeliveryStatus.UNKNOWN)
# A sequence's next step waits while the previous one may still reach the contact.
MAY_STILL_ARRIVE = (DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED, DeliveryStatus.SUBMITTED,
                    DeliveryStatus.DELIVERED, DeliveryStatus.UNKNOWN)


class BatchStatus(StrEnum):
    """``send_batches.status``: one provider request."""

    CLAIMED = "claimed"  # its request has not begun: after a crash its rows are queued again
    REQUESTING = "requesting"  # its request may have left (marked durably first)
    SENDING = "sending"  # what requesting was called before the two were told apart
    SUBMITTED = "submitted"
    FAILED = "failed"
    SPLIT = "split"  # refused whole; its halves went as batches of their own
    UNKNOWN = "unknown"


MAY_HAVE_LEFT = (BatchStatus.REQUESTING, BatchStatus.SENDING)


class IssueStatus(StrEnum):
    """``issues.status``: draft -> scheduled -> sending -> sent; or paused (resumable), cancelled.
    With approval required (``NEWSLETTER_ISSUE_APPROVAL``), an issue a marketing user schedules is
    awaiting_approval until an admin approves it (then scheduled); it never sends before."""

    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    PAUSED = "paused"
    CANCELLED = "cancelled"


# Derived, never stored: a send that is over with deliveries held as unknown ("sent, N unknown").
SENT_WITH_UNKNOWN = "sent_with_unknown"
SCHEDULABLE = (IssueStatus.DRAFT, IssueStatus.AWAITING_APPROVAL, IssueStatus.SCHEDULED, IssueStatus.CANCELLED)
PAUSABLE = (IssueStatus.SENDING, IssueStatus.SCHEDULED)
RECOMPILABLE = (IssueStatus.DRAFT, IssueStatus.AWAITING_APPROVAL, IssueStatus.SCHEDULED)  # nothing queued yet
CANCELLABLE = (IssueStatus.AWAITING_APPROVAL, IssueStatus.SCHEDULED)  # back to draft
# May be published in the public archive: the email has gone out (or is going out), so what it says is final.
PUBLISHABLE = (IssueStatus.SENDING, IssueStatus.SENT)


class ConfirmationStatus(StrEnum):
    """``confirmation_emails.status``: a double opt-in email."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"  # confirmed, withdrawn or suppressed before it went


class SequenceStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class EnrollmentState(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"


class SubscriptionStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class ContactStatus(StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class SubscribeOutcome(StrEnum):
    """What a subscribe request did (``subscribers.consent.Outcome.state``)."""

    PENDING = "pending"  # a confirmation email is due
    CONFIRMED = "confirmed"  # now subscribed
    ALREADY = "already"  # was subscribed
    WITHDRAWN = "withdrawn"  # left earlier: an import does not bring them back
    SUPPRESSED = "suppressed"  # nothing may be sent


# An import stores an outcome as the subscription's status: the two spellings must stay one.
assert SubscribeOutcome.PENDING == SubscriptionStatus.PENDING and SubscribeOutcome.CONFIRMED == SubscriptionStatus.CONFIRMED


class EventType(StrEnum):
    """``events.type``: what was reported about a delivery. SendGrid's event names; our own open,
    click and unsubscribe endpoints record the same ones."""

    PROCESSED = "processed"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    BOUNCE = "bounce"  # a hard bounce
    BLOCKED = "blocked"  # what SendGrid reports as a bounce of another type (a soft one): stored apart
    DROPPED = "dropped"
    OPEN = "open"
    CLICK = "click"
    SPAMREPORT = "spamreport"
    UNSUBSCRIBE = "unsubscribe"
    GROUP_UNSUBSCRIBE = "group_unsubscribe"
    GROUP_RESUBSCRIBE = "group_resubscribe"


# Someone (or a machine) read the email: ``events.machine`` tells which.
ENGAGEMENT = (EventType.OPEN, EventType.CLICK)


def sql_literal(state: StrEnum) -> ColumnClause[str]:
    """``'queued'`` as a SQL literal, for a query that must match a partial index's predicate."""
    return literal_column(f"'{state.value}'")
