"""Tables of the audience: contacts, lists, subscriptions with their consent history, suppression,
leads and bookings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from subscribers.db import Base, JSONType, UTCDateTime, utcnow
from subscribers.states import ContactStatus


class Installation(Base):
    """One row of per-installation values made at migration time (the salt of address hashes)."""

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(primary_key=True)
    hash_salt: Mapped[str] = mapped_column(String(64))


class Contact(Base):
    """One email address and what we know about it."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # normalised, see contacts.normalise_email
    # Salted hash of the address (suppression.address_hash): lets SQL match suppressions that
    # outlived an erasure, on every backend.
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    # A language subtag we speak (subscribers.languages), or None: the newsletter's own language.
    language: Mapped[str | None] = mapped_column(String(8))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=ContactStatus.ACTIVE)  # a ContactStatus
    source: Mapped[str] = mapped_column(String(20))  # form | import | api | admin | lead
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    tags: Mapped[list["ContactTag"]] = relationship(cascade="all, delete-orphan", lazy="selectin")
    subscriptions: Mapped[list["Subscription"]] = relationship(
        back_populates="contact", cascade="all, delete-orphan"
    )

    @property
    def tag_names(self) -> list[str]:
        return sorted(t.tag for t in self.tags)


# Staff search by the start of an address or a name (``subscribers.contact_search``; migration 0014).
for _column in ("email", "name"):
    Index(f"ix_contacts_{_column}_lower", func.lower(Contact.__table__.c[_column]).label(f"{_column}_lower"),
          postgresql_ops={f"{_column}_lower": "text_pattern_ops"})


class ContactTag(Base):
    __tablename__ = "contact_tags"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)  # "tag added" triggers


class MailingList(Base):
    """A list contacts subscribe to; the newsletter is one."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConsentText(Base):
    """The exact wording a person agreed to, stored once by its hash."""

    __tablename__ = "consent_texts"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(50))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Subscription(Base):
    """A contact's current standing on one list; how it got there is in ``ConsentEvent``."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("contact_id", "list_id", name="uq_subscriptions_contact_list"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20))  # a SubscriptionStatus: pending | confirmed | unsubscribed
    frequency: Mapped[str] = mapped_column(String(20), default="every")  # every | monthly
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Confirmation emails sent (for the resend rate limit).
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmation_sends: Mapped[int] = mapped_column(Integer, default=0)

    contact: Mapped[Contact] = relationship(back_populates="subscriptions")
    mailing_list: Mapped[MailingList] = relationship()


class ConsentEvent(Base):
    """Append-only history of consent: never updated, never deleted except by erasure."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))  # None: all lists
    action: Mapped[str] = mapped_column(String(20))  # requested | confirmed | withdrawn | frequency
    method: Mapped[str] = mapped_column(String(20))  # form | import | api | admin | email_link | one_click | provider
    form_id: Mapped[str | None] = mapped_column(String(100))
    form_version: Mapped[str | None] = mapped_column(String(50))
    consent_text_hash: Mapped[str | None] = mapped_column(ForeignKey("consent_texts.hash"))
    note: Mapped[str | None] = mapped_column(Text)  # e.g. the proof given with an import
    ip_address: Mapped[str | None] = mapped_column(String(45))  # only when NEWSLETTER_RECORD_IP_AND_AGENT
    user_agent: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Suppression(Base):
    """An address we must not mail. Looked up by a salted hash, so an erased address can stay
    suppressed without being stored."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))  # None once erased
    reason: Mapped[str] = mapped_column(String(20))  # unsubscribed | hard_bounce | spam_complaint | invalid_address | manual | erased
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Lead(Base):
    """A contact who asked for a consultation. Holds contact details only, never health details."""

    __tablename__ = "leads"
    # The staff board: a stage's newest enquiries first, paged by keyset (migration 0015).
    __table_args__ = (Index("ix_leads_stage_requested", "stage", "requested_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), unique=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    preferred_contact: Mapped[str] = mapped_column(String(10), default="email")  # email | phone | text
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    requested_time: Mapped[str | None] = mapped_column(String(100))  # "weekday mornings"
    source: Mapped[str] = mapped_column(String(20))  # web_form | phone | referral | campaign | import
    utm_source: Mapped[str | None] = mapped_column(String(200))
    utm_medium: Mapped[str | None] = mapped_column(String(200))
    utm_campaign: Mapped[str | None] = mapped_column(String(200))
    utm_term: Mapped[str | None] = mapped_column(String(200))
    utm_content: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(20), default="new", index=True)
    # Consent to be contacted about the consultation: separate from any newsletter consent.
    contact_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    contact_consent_method: Mapped[str | None] = mapped_column(String(20))
    # How that consent was given on a form (migration 0018): which form, the exact wording's hash and
    # version, and the client's IP and agent only when NEWSLETTER_RECORD_IP_AND_AGENT is on.
    contact_consent_form_id: Mapped[str | None] = mapped_column(String(100))
    contact_consent_text_hash: Mapped[str | None] = mapped_column(ForeignKey("consent_texts.hash"))
    contact_consent_text_version: Mapped[str | None] = mapped_column(String(50))
    contact_consent_ip: Mapped[str | None] = mapped_column(String(45))
    contact_consent_agent: Mapped[str | None] = mapped_column(String(500))
    heard_from: Mapped[str | None] = mapped_column(String(30))  # one of leads.HEARD_FROM, never free text
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    contact: Mapped[Contact] = relationship()
    stage_changes: Mapped[list["LeadStageChange"]] = relationship(
        cascade="all, delete-orphan", order_by="LeadStageChange.id"
    )


class LeadStageChange(Base):
    __tablename__ = "lead_stage_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    by: Mapped[str] = mapped_column(String(20))  # staff | booking | api | import
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Booking(Base):
    """A consultation booked by a lead. Kept (unlinked) after erasure for anonymous counts."""

    __tablename__ = "bookings"
    __table_args__ = (Index("ix_bookings_recorded_at", "recorded_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"), index=True)
    booked_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    origin: Mapped[str] = mapped_column(String(20))  # staff | api | import
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    source: Mapped[str | None] = mapped_column(String(20))  # the lead's source, kept for anonymous counts


class Erasure(Base):
    """That an erasure happened, and when: an anonymous count, nothing about whom."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Segment(Base):
    """A saved filter over contacts, compiled to SQL (see ``subscribers.segments``)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
