"""Tables for content: posts, feeds and issues. (The audience's tables live in ``subscribers``.)"""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, TextClause, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from subscribers.db import DELIVERIES_TABLE, EVENTS_TABLE, Base, JSONType, UTCDateTime, utcnow
from subscribers.states import (BatchStatus, ConfirmationStatus, DeliveryStatus, EnrollmentState, IssueStatus,
                                SequenceStatus)


class Feed(Base):
    """An RSS or Atom feed polled for new posts."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str | None] = mapped_column(String(500))
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Since when its polls fail, and how many in a row (0 and None once a poll succeeds): staff see it.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Post(Base):
    """An article as imported: title, structured blocks and where it came from."""

    __tablename__ = "posts"
    __table_args__ = (UniqueConstraint("feed_id", "feed_entry_key", name="uq_posts_feed_entry"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    excerpt: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(String(300))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source_url: Mapped[str | None] = mapped_column(String(2000))
    canonical_url: Mapped[str | None] = mapped_column(String(2000))
    source_format: Mapped[str] = mapped_column(String(20))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    blocks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    reading_minutes: Mapped[int] = mapped_column(Integer)
    # sha256 of the parsed content: importing the same content again finds this row.
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="SET NULL"))
    feed_entry_key: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The language it is written in (subscribers.languages; None: the newsletter's own) and the post
    # it is a translation of, if any: an issue's version in that language is made from it. A plain
    # column, not a foreign key: adding one would rebuild ``posts`` on SQLite, and it only guides
    # staff's choice of a version's post (which the version references itself).
    language: Mapped[str | None] = mapped_column(String(8))
    translation_of_id: Mapped[int | None] = mapped_column(Integer, index=True)

    feed: Mapped[Feed | None] = relationship()


class Issue(Base):
    """One email made from a post: subject, preheader and the compiled body.

    ``html`` and ``text`` are compiled once (Jinja2 -> MJML -> HTML) and hold per-recipient
    placeholders (see ``newsletter.compose.personalize``); sending only substitutes them.
    """

    __tablename__ = "issues"
    # The public archive's list, newest sent first: only the few published issues are in it.
    __table_args__ = (Index("ix_issues_archive", "enqueued_at", "id", sqlite_where=text("archive_published_at IS NOT NULL"),
                            postgresql_where=text("archive_published_at IS NOT NULL")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="RESTRICT"), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    # draft -> scheduled -> sending -> sent; or paused (resumable), cancelled (never sends)
    status: Mapped[str] = mapped_column(String(20), default=IssueStatus.DRAFT, index=True)
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="RESTRICT"))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="RESTRICT"))
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # "Send at each recipient's local time": this wall-clock date and time (YYYY-MM-DDTHH:MM) in each
    # contact's own zone; scheduled_at is then when the first zone reaches it.
    local_send_time: Mapped[str | None] = mapped_column(String(16))
    schedule_timezone: Mapped[str | None] = mapped_column(String(64))
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_reason: Mapped[str | None] = mapped_column(Text)
    # A note from the team, shown above the post (plain text).
    intro: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Who let an issue that waited for approval go out ("user 3"), and when.
    approved_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # First-party tracking: full (per recipient), anonymous (aggregate counts only) or off.
    tracking: Mapped[str] = mapped_column(String(10), default="full")
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    compiled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # When staff published it in the public archive (newsletter.archive); None: not in the archive.
    archive_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How the email is laid out (newsletter.compose.layouts): full, teaser or digest.
    layout: Mapped[str] = mapped_column(String(10), default="full", server_default="full")
    # The hero image: NULL the post's first image, "none" no hero, else the src of one of its images;
    # hero_alt: staff's own alt text for it (NULL: the image's own).
    hero: Mapped[str | None] = mapped_column(String(2000))
    hero_alt: Mapped[str | None] = mapped_column(String(300))

    post: Mapped[Post] = relationship()
    # A digest's posts in order (the first is ``post``); other layouts have none.
    digest_entries: Mapped[list[IssuePost]] = relationship(
        order_by="IssuePost.position", cascade="all, delete-orphan", passive_deletes=True)


class IssuePost(Base):
    """One post of a digest issue, at its place in the email (0 = the lead post, the issue's post_id)."""

    __tablename__ = "issue_posts"
    __table_args__ = (UniqueConstraint("issue_id", "post_id", name="uq_issue_posts_post"),)

    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="RESTRICT"), index=True)

    post: Mapped[Post] = relationship()


class EmailVersion(Base):
    """An issue's (or a sequence step's) email in another language, compiled once like the email itself.
    The issue or step keeps its own email as the default version; a contact whose language has a
    version gets it instead (newsletter.versions). The ledger stays one row per (issue, contact)."""

    __tablename__ = "email_versions"
    __table_args__ = (UniqueConstraint("issue_id", "language", name="uq_email_versions_issue_language"),
                      UniqueConstraint("step_id", "language", name="uq_email_versions_step_language"))

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    step_id: Mapped[int | None] = mapped_column(ForeignKey("sequence_steps.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))
    # An issue's version is made from the translated post; a step's from its definition's translation.
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="RESTRICT"), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    compiled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    post: Mapped[Post | None] = relationship()


# The delivery ledger ------------------------------------------------------------------------------

LedgerId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite's rowid is 64-bit anyway


def _status_is(state: StrEnum) -> TextClause:
    """A partial index's predicate, ``status = 'queued'``: the words the migrations wrote."""
    return text(f"status = '{state}'")


_QUEUED = _status_is(DeliveryStatus.QUEUED)
_CLAIMED = _status_is(DeliveryStatus.CLAIMED)
_UNKNOWN = _status_is(DeliveryStatus.UNKNOWN)
_BATCH_UNKNOWN = _status_is(BatchStatus.UNKNOWN)
_HAS_BATCH = text("batch_id IS NOT NULL")
_SUBMITTED = text("submitted_at IS NOT NULL")
_HAS_STEP = text("step_id IS NOT NULL")
_HAS_ENROLLMENT = text("enrollment_id IS NOT NULL")
# ``on_conflict_do_nothing(**ENROLLMENT_STEP_CONFLICT)``: the partial unique index it relies on.
ENROLLMENT_STEP_CONFLICT = {"index_elements": ["enrollment_id", "step_id"], "index_where": _HAS_ENROLLMENT}


class SendBatch(Base):
    """The deliveries sent in one provider request. ``status`` requesting means the request may have
    left: if its worker dies, its rows become unknown, never queued again blindly."""

    __tablename__ = "send_batches"
    __table_args__ = (Index("ix_send_batches_unknown", "id", sqlite_where=_BATCH_UNKNOWN,
                                    postgresql_where=_BATCH_UNKNOWN),)

    id: Mapped[int] = mapped_column(LedgerId, primary_key=True, autoincrement=True)
    transport: Mapped[str] = mapped_column(String(20))
    worker: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))  # a BatchStatus
    size: Mapped[int] = mapped_column(Integer)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Sent with the request (SendGrid: a custom arg every event echoes), so the provider's records of
    # this one request can be found again; random, so two installations sharing an account never match.
    marker: Mapped[str | None] = mapped_column(String(32), default=lambda: secrets.token_hex(8))
    began_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # its request's latest attempt began
    # A batch held as unknown: how it was settled (the evidence, or the policy), when the provider's
    # log was last asked, and when staff were told it waits for them.
    evidence: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The language of the email version this batch carried (newsletter.versions); None: the email's own.
    language: Mapped[str | None] = mapped_column(String(8))


class Delivery(Base):
    """One email to one contact: the ledger row. Unique per (issue, contact), so enqueueing twice,
    a restart or a second worker can never send it twice."""

    __tablename__ = DELIVERIES_TABLE
    __table_args__ = (
        UniqueConstraint("issue_id", "contact_id", name="uq_deliveries_issue_contact"),
        # A step's row is unique per (enrolment, step). Partial: an issue's rows have no enrolment,
        # and PostgreSQL would add an entry of NULLs for each of their row versions (insert, claim,
        # submitted) that no lookup ever reads. ``ENROLLMENT_STEP_CONFLICT`` names it in ON CONFLICT.
        Index("uq_deliveries_enrollment_step", "enrollment_id", "step_id", unique=True,
              sqlite_where=_HAS_ENROLLMENT, postgresql_where=_HAS_ENROLLMENT),
        # The queue: partial indexes hold only the rows still to claim (a claim never walks the rows
        # already sent) and the few claimed right now. Queries must spell the status as a literal
        # (``states.sql_literal``) for either database to use them.
        Index("ix_deliveries_queued_issue", "issue_id", "due_at", "id", sqlite_where=_QUEUED, postgresql_where=_QUEUED),
        Index("ix_deliveries_queued_step", "step_id", "due_at", "id", sqlite_where=_QUEUED, postgresql_where=_QUEUED),
        Index("ix_deliveries_claimed", "issue_id", "lease_expires_at", sqlite_where=_CLAIMED, postgresql_where=_CLAIMED),
        # Only the rows that have a value: PostgreSQL adds an entry to every full index for every
        # row version, so an index of NULLs costs on each of a row's two updates for nothing.
        Index("ix_deliveries_batch", "batch_id", sqlite_where=_HAS_BATCH, postgresql_where=_HAS_BATCH),
        Index("ix_deliveries_submitted_at", "submitted_at", sqlite_where=_SUBMITTED, postgresql_where=_SUBMITTED),
        Index("ix_deliveries_step_id", "step_id", sqlite_where=_HAS_STEP, postgresql_where=_HAS_STEP),
        # The few rows held as unknown, by batch: status pages, metrics and reconciliation find them
        # without reading an issue's every row.
        Index("ix_deliveries_unknown", "batch_id", sqlite_where=_UNKNOWN, postgresql_where=_UNKNOWN),
    )

    id: Mapped[int] = mapped_column(LedgerId, primary_key=True, autoincrement=True)
    # Indexed by uq_deliveries_issue_contact, which starts with it. Like batch_id and list_id, without
    # a foreign key: PostgreSQL checks one row by row (a locking lookup of the issue, and of the list,
    # for each of an enqueue's rows: 30% of its time), for values the same INSERT ... SELECT reads
    # from the issue itself. Issues and lists are never deleted.
    issue_id: Mapped[int | None] = mapped_column(Integer)
    # A sequence step's email: one row per (enrolment, step).
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="SET NULL"))
    step_id: Mapped[int | None] = mapped_column(ForeignKey("sequence_steps.id", ondelete="SET NULL"))
    # Erasure keeps the row as an anonymous count, clearing this column itself (newsletter.erasure):
    # no foreign key, which PostgreSQL would check with a locking lookup of the contact for each of
    # an enqueue's rows. Contacts are deleted only by erasure.
    contact_id: Mapped[int | None] = mapped_column(Integer, index=True)
    list_id: Mapped[int | None] = mapped_column(Integer)  # the list it was sent for (no foreign key: above)
    # queued -> claimed -> submitted -> delivered | bounced | dropped; or failed, unknown, suppressed
    status: Mapped[str] = mapped_column(String(12))  # a DeliveryStatus
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A send_batches id, deliberately without a foreign key: PostgreSQL would check it row by row,
    # a thousand lookups in every claim (a quarter of the claim's time), for a batch the same
    # transaction has just created. Batches are never deleted once a row points at one.
    batch_id: Mapped[int | None] = mapped_column(LedgerId)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Lease(Base):
    """A named lease in the database: who holds it and until when. Elects the one active scheduler
    (APScheduler's job store must not be shared), on SQLite and PostgreSQL alike."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SendPause(Base):
    """A send stopped by the circuit breaker or a wrong API key, with the reason staff see."""

    __tablename__ = "send_pauses"

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# Confirmation emails ------------------------------------------------------------------------------

_CONFIRMATION_QUEUED = _status_is(ConfirmationStatus.QUEUED)
_CONFIRMATION_SENDING = _status_is(ConfirmationStatus.SENDING)


class OneOffQueue:
    """The columns of a one-off email's row (``newsletter.sending.one_off``): queued -> sending ->
    sent; or failed (with the reason), unknown (the request left, no answer came), skipped (nothing
    left to send when its turn came)."""

    status: Mapped[str] = mapped_column(String(12))  # a ConfirmationStatus
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConfirmationEmail(OneOffQueue, Base):
    """A double opt-in confirmation email to send: queued in the same transaction as the sign-up (or
    the request for a new link) and sent by a dispatcher, never inside the web request, so every
    answer to the public forms takes the same path whether or not the address is known. Sent at
    most once per row, like the ledger: the row is claimed under a lease and committed before the
    request leaves; a request that may have left without an answer is held as unknown, never sent
    again (the person can ask for a new link, which queues a new row). The address and the link are
    read from the subscription when it is sent; erasing the contact deletes the row with it."""

    __tablename__ = "confirmation_emails"
    __table_args__ = (
        Index("ix_confirmation_emails_queued", "due_at", "id",
              sqlite_where=_CONFIRMATION_QUEUED, postgresql_where=_CONFIRMATION_QUEUED),
        Index("ix_confirmation_emails_sending", "lease_expires_at",
              sqlite_where=_CONFIRMATION_SENDING, postgresql_where=_CONFIRMATION_SENDING),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)


_TEST_QUEUED = _status_is(ConfirmationStatus.QUEUED)


class TestEmail(OneOffQueue, Base):
    """A test copy of an issue for a staff address: queued by "send a test" and sent by a dispatcher
    like a confirmation email (same states, same at-most-once lease). It is not in the delivery
    ledger and its links carry ``urls.TEST_TOKEN``, so it is never counted in the issue's results."""

    __test__ = False  # not a pytest test class
    __tablename__ = "test_emails"
    __table_args__ = (
        Index("ix_test_emails_queued", "due_at", "id", sqlite_where=_TEST_QUEUED, postgresql_where=_TEST_QUEUED),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    to_email: Mapped[str] = mapped_column(String(320))
    requested_by: Mapped[str] = mapped_column(String(100))  # "user 3", "cli"
    # A test of the issue's version in this language (newsletter.versions); None: the issue's own.
    language: Mapped[str | None] = mapped_column(String(8))


_CONSULTATION_QUEUED = _status_is(ConfirmationStatus.QUEUED)


class ConsultationEmail(OneOffQueue, Base):
    """An email about a consultation request (``newsletter.consultation``), queued with the request
    and sent by a dispatcher like a confirmation email (same states, same at-most-once lease):
    ``kind`` "acknowledgement" goes to the lead, "intake" to NEWSLETTER_INTAKE_EMAIL. Both are read
    from the lead and the settings when sent; erasing the lead deletes its rows."""

    __tablename__ = "consultation_emails"
    __table_args__ = (
        Index("ix_consultation_emails_queued", "due_at", "id",
              sqlite_where=_CONSULTATION_QUEUED, postgresql_where=_CONSULTATION_QUEUED),
        # The replay rule looks up a lead's latest email of a kind.
        Index("ix_consultation_emails_lead", "lead_id", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # acknowledgement | intake


# Sequences ----------------------------------------------------------------------------------------


class Sequence(Base):
    """A drip: steps sent one after another to each enrolled contact, inside a send window."""

    __tablename__ = "sequences"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=SequenceStatus.ACTIVE)  # active | paused
    trigger_type: Mapped[str] = mapped_column(String(20))  # list_confirmed | lead_created | tag_added | manual
    trigger_value: Mapped[str | None] = mapped_column(String(100))  # the list slug or the tag
    # The whole definition as loaded (window, goals, reenroll, steps): what `export` writes back.
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # Triggers only enrol contacts whose trigger happened after this moment (not the whole history).
    triggers_since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    tracking: Mapped[str] = mapped_column(String(10), default="full")  # full | anonymous | off


class SequenceStep(Base):
    """One email of a sequence, compiled once (like an issue). A removed step stays, inactive, so
    it is never sent again and its history remains."""

    __tablename__ = "sequence_steps"
    __table_args__ = (UniqueConstraint("sequence_id", "key", name="uq_sequence_steps_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    delay_seconds: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    condition: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    compiled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Enrollment(Base):
    """One contact's way through a sequence. ``next_due_at`` (UTC) already respects the send window
    in the contact's own time zone; ``generation`` counts re-enrolments."""

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("sequence_id", "contact_id", "generation", name="uq_enrollments_generation"),
        Index("ix_enrollments_due", "state", "next_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(20), default=EnrollmentState.ACTIVE)  # active | completed | exited
    next_step_id: Mapped[int | None] = mapped_column(ForeignKey("sequence_steps.id", ondelete="SET NULL"))
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_step_id: Mapped[int | None] = mapped_column(ForeignKey("sequence_steps.id", ondelete="SET NULL"))
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    exit_reason: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(20), default="trigger")  # trigger | manual


# Events -------------------------------------------------------------------------------------------


class Event(Base):
    """Something reported about a delivery (by the provider or our own open/click endpoints), stored
    once per provider event id. ``machine`` marks opens and clicks we believe no person caused."""

    __tablename__ = EVENTS_TABLE
    __table_args__ = (
        Index("ix_events_delivery_type", "delivery_id", "type"),
        Index("ix_events_contact_kind_time", "contact_id", "type", "machine", "occurred_at"),
        # Reports read an email's events by kind; follow-up reads recent clicks.
        Index("ix_events_issue_kind", "issue_id", "type", "machine", "delivery_id"),
        Index("ix_events_step_kind", "step_id", "type", "machine", "delivery_id"),
        Index("ix_events_type_time", "type", "occurred_at"),
        # The staff home page's engagement by week: human opens and clicks in a time range, by delivery.
        Index("ix_events_kind_time", "type", "machine", "occurred_at", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(LedgerId, primary_key=True, autoincrement=True)
    provider_event_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    # Which email it was about, kept even for anonymous (aggregate-only) tracking.
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    step_id: Mapped[int | None] = mapped_column(ForeignKey("sequence_steps.id", ondelete="SET NULL"))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(20))  # an EventType
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(20))  # sendgrid | first_party | staff
    url: Mapped[str | None] = mapped_column(String(2000))
    reason: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TrackingLogProgress(Base):
    """How far a web process's tracking log (``newsletter.tracking.event_log``) has been drained into
    the events table: updated in the same transaction as the events it drained, so replaying a log
    after a crash starts exactly after the last committed event (none twice, none lost)."""

    __tablename__ = "tracking_log_progress"

    log: Mapped[str] = mapped_column(String(100), primary_key=True)  # the log file's name (unique per process)
    offset: Mapped[int] = mapped_column(BigInteger)  # bytes of the log already in the events table
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Link(Base):
    """A link in a compiled email. Click URLs carry its id and a delivery token; the redirect target
    is read from here, so a tampered URL can never send anyone elsewhere."""

    __tablename__ = "links"
    # A version's links are numbered after its email's other links (newsletter.versions), so one
    # position is one link of the issue or step, whichever version shows it.
    __table_args__ = (
        UniqueConstraint("issue_id", "position", name="uq_links_issue_position"),
        UniqueConstraint("step_id", "position", name="uq_links_step_position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    step_id: Mapped[int | None] = mapped_column(ForeignKey("sequence_steps.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(2000))
    label: Mapped[str] = mapped_column(String(300), default="")
    is_booking: Mapped[bool] = mapped_column(Boolean, default=False)  # the "Book a consultation" button
    # A link of a language version (its issue_id or step_id still names the email, for clicks and
    # reports). A plain column: see migration 0025; a version's links are deleted with it.
    version_id: Mapped[int | None] = mapped_column(Integer, index=True)


class Attribution(Base):
    """Which email a booking is credited to: the last human click (else open) before it, inside the window."""

    __tablename__ = "attributions"

    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("sequence_steps.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # click | open
    event_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IssueFigures(Base):
    """An issue's report figures as last computed (``newsletter.reports.snapshots``): pages that list
    several issues read these instead of folding every delivery's events on each request. The
    scheduler refreshes those of recent issues every few minutes; ``computed_at`` says how fresh."""

    __tablename__ = "issue_figures"

    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    figures: Mapped[dict[str, Any]] = mapped_column(JSONType)


class StepFigures(Base):
    """A sequence step's report figures as last computed (``newsletter.reports.snapshots``), for the
    sequence pages; refreshed with the issues' figures. ``computed_at`` says how fresh."""

    __tablename__ = "step_figures"

    step_id: Mapped[int] = mapped_column(ForeignKey("sequence_steps.id", ondelete="CASCADE"), primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    figures: Mapped[dict[str, Any]] = mapped_column(JSONType)


class Automation(Base):
    """Issues made without anyone running ``issues create`` (``newsletter.automations``): a feed
    automation makes one issue per new post of its feed; a digest automation one issue per week or
    month from the posts since its last digest. ``mode`` says how far it goes on its own (off, draft,
    review, send); the slot (weekdays and a time, in each contact's own time zone) says when."""

    __tablename__ = "automations"
    __table_args__ = (UniqueConstraint("feed_id", "kind", name="uq_automations_feed_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # feed | digest
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(10))  # off | draft | review | send
    every: Mapped[str] = mapped_column(String(10))  # post (feed automations) | week | month (digests)
    slot_days: Mapped[str] = mapped_column(String(30))  # "tue" or "mon,thu"
    slot_time: Mapped[str] = mapped_column(String(5))  # "09:00", each contact's wall-clock time
    layout: Mapped[str] = mapped_column(String(10))
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="RESTRICT"))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="RESTRICT"))
    subject_template: Mapped[str | None] = mapped_column(String(300))
    preheader_template: Mapped[str | None] = mapped_column(String(300))
    # Posts published before this are never made into issues (a feed's back catalogue).
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    feed: Mapped[Feed | None] = relationship()


class AutomationIssue(Base):
    """What an automation made of one post (feed automations) or one period (digests, ``period``
    the slot's date): the unique keys are the guarantee that a repeated round, a second scheduler
    or a restart never makes a second issue. ``issue_id`` None: nothing was made (``note`` says why:
    nothing new for a digest, or the issue could not be made)."""

    __tablename__ = "automation_issues"
    __table_args__ = (UniqueConstraint("automation_id", "post_id", name="uq_automation_issues_post"),
                      UniqueConstraint("automation_id", "period", name="uq_automation_issues_period"))

    id: Mapped[int] = mapped_column(primary_key=True)
    automation_id: Mapped[int] = mapped_column(ForeignKey("automations.id", ondelete="CASCADE"))
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    period: Mapped[str | None] = mapped_column(String(10))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"), index=True)
    # How many slots went by while it waited for approval (review mode): staff are told.
    missed_slots: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    issue: Mapped[Issue | None] = relationship()



class SensitiveMark(Base):
    """A custom field, tag or segment staff marked as revealing health information
    (``newsletter.sensitive``). Under the minimal health-information policy (``newsletter.health_policy``)
    nothing marked is sent to the provider. A field or tag is named (``name``); a segment is held by its
    id, so renaming it keeps the mark and deleting it takes the mark away."""

    __tablename__ = "sensitive_marks"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_sensitive_marks_kind_name"),
                      UniqueConstraint("segment_id", name="uq_sensitive_marks_segment"))

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # field | tag | segment
    name: Mapped[str | None] = mapped_column(String(100))  # a field's or tag's name; None for a segment
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    marked_by: Mapped[str] = mapped_column(String(320))  # the staff user's address, or "cli"
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

# Staff access keeps its tables beside its services; importing them here puts them on the shared
# metadata wherever the models are (one Alembic history, one schema check).
from newsletter.staff import models as _staff_models  # noqa: E402,F401
from newsletter.outgoing_webhooks import models as _webhook_models  # noqa: E402,F401
