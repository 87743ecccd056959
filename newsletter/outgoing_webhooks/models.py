"""Tables of outgoing webhooks: endpoints, the events captured once each, and one delivery row per
(event, endpoint), the log staff read and the queue the dispatchers claim from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from subscribers.db import Base, JSONType, UTCDateTime, utcnow
from subscribers.states import WebhookDeliveryStatus, WebhookEndpointState


class WebhookEndpoint(Base):
    """An HTTPS URL of the clinic's CRM and the event types it gets. The signing secret is stored
    sealed with the app's secret key (``sealing``): it must be read back to sign, so it cannot be hashed."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    sealed_secret: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default=WebhookEndpointState.ENABLED)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set at the first failed attempt after a success (or ever), cleared by a success: an endpoint
    # failing for a whole retry window is disabled.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Registered or last enabled: the endpoint gets the events that occurred since.
    enabled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEvent(Base):
    """One event, captured once: unique per (source table, source row), so a second scan, a second
    worker or a restart never makes it twice. ``data`` holds ids and stages only."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("source", "source_id", name="uq_webhook_events_source_row"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)  # "evt_…": what receivers deduplicate by
    type: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(30))
    source_id: Mapped[int | None] = mapped_column(BigInteger())  # None: a test event
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event to one endpoint: the queue row (claimed under a lease) and its line in the log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10), default=WebhookDeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    event: Mapped[WebhookEvent] = relationship(lazy="joined")


class WebhookCursor(Base):
    """How far the capture has read a source table (its highest row id seen)."""

    __tablename__ = "webhook_cursors"

    source: Mapped[str] = mapped_column(String(30), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger(), default=0)
