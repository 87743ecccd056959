"""Tables of staff access: users, their server-side sessions, failed sign-ins and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from subscribers.db import Base, JSONType, UTCDateTime, utcnow


class StaffUser(Base):
    """A person who works on the list. Never deleted (the audit log names them); disabled instead."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(500))
    # A confirmed TOTP secret (two-factor sign-in is on), and one being enrolled, not yet confirmed.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_pending_secret: Mapped[str | None] = mapped_column(String(64))
    # The last 30-second step a code was accepted for: the same code cannot be used twice.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @property
    def has_totp(self) -> bool:
        return self.totp_secret is not None


class StaffSession(Base):
    """A signed-in browser. Only the SHA-256 of its token is stored: a copy of the database signs
    nobody in. ``pending_totp``: the password was right and the code step is still to come."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    pending_totp: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    user: Mapped[StaffUser] = relationship(lazy="joined")


class SignInAttempt(Base):
    """One failed sign-in, kept for the throttle's window. ``key`` is a keyed hash of the account's
    address or of the client's IP (``scope`` says which), so neither is stored as typed."""

    __tablename__ = "sign_in_attempts"
    __table_args__ = (Index("ix_sign_in_attempts_key_at", "scope", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(10))
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEntry(Base):
    """Who did what, when. Append only: the database refuses UPDATE and DELETE (migration 0010).
    ``target`` names things by kind and number ("issue 3", "user 2"), never a contact's data."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_action_at", "action", "at"), Index("ix_audit_log_actor_at", "actor", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(320))  # a staff user's address, "cli" or "unknown account"
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)


class StoredSetting(Base):
    """A setting staff saved on the settings page (newsletter.stored_settings): one row per setting,
    its value as JSON. The environment still wins over it; the audit log keeps each change."""

    __tablename__ = "stored_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    updated_by: Mapped[str] = mapped_column(String(320))  # a staff user's address, or "cli"
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """A bearer token of the REST API (``newsletter.api_tokens``), made by an admin. Only the SHA-256
    of its secret is stored (a copy of the database calls nothing); ``hint`` is the secret's first
    characters, so people can tell tokens apart. Never deleted (the audit log names it): revoked."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(String(300))  # space-separated, as OAuth writes them
    created_by: Mapped[str] = mapped_column(String(320))  # a staff user's address, or "cli"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def active(self) -> bool:
        return self.revoked_at is None
