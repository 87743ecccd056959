"""The audit log: who did what, when, for every sensitive action, whichever face it came through.

Append only. This module has no way to change or remove an entry, and the database refuses UPDATE
and DELETE on ``audit_log`` (triggers of migration 0010). An entry never holds a contact's data:
``target`` names what was acted on by kind and number ("issue 3", "user 2"); ``detail`` is short
text written by the code, never text someone typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from newsletter.paging import Cursor
from newsletter.staff.models import ApiToken, AuditEntry, StaffUser
from subscribers.db import utcnow

CLI = "cli"  # the actor of a command typed at a terminal
UNKNOWN_ACCOUNT = "unknown account"  # a failed sign-in for an address no user has: what was typed is not kept
PAGE_SIZE = 50


class AuditAction(StrEnum):
    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_OUT = "sign_out"
    EXPORT = "export"
    ERASE = "erase"
    IMPORT = "import"
    SEND = "send"
    SEND_TEST = "send_test"
    SCHEDULE = "schedule"
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    SETTINGS_CHANGED = "settings_changed"
    ROLE_CHANGED = "role_changed"
    USER_ADDED = "user_added"
    USER_DISABLED = "user_disabled"
    PASSWORD_RESET = "password_reset"
    CONTACT_ADDED = "contact_added"
    CONTACT_EDITED = "contact_edited"
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"
    TOTP_ENABLED = "totp_enabled"
    TOTP_DISABLED = "totp_disabled"
    API_TOKEN_CREATED = "api_token_created"
    API_TOKEN_REVOKED = "api_token_revoked"
    POST_IMPORTED = "post_imported"
    POST_EDITED = "post_edited"
    ISSUE_CREATED = "issue_created"
    ISSUE_EDITED = "issue_edited"
    FEED_ADDED = "feed_added"
    LEAD_STAGE_CHANGED = "lead_stage_changed"
    BOOKING_RECORDED = "booking_recorded"
    SEQUENCE_EDITED = "sequence_edited"  # a step changed, added or removed (loaded as `sequences load` does)
    ENROLLED = "enrolled"  # a contact enrolled in a sequence by hand
    SEGMENT_SAVED = "segment_saved"
    SEGMENT_DELETED = "segment_deleted"
    BATCH_SETTLED = "batch_settled"  # a batch held as unknown, settled by a person (marked sent or queued again)
    ARCHIVE_PUBLISHED = "archive_published"  # an issue put in the public archive
    ARCHIVE_UNPUBLISHED = "archive_unpublished"  # an issue taken out of it
    WEBHOOK_ADDED = "webhook_added"  # an outgoing webhook endpoint registered (its secret shown once)
    WEBHOOK_ENABLED = "webhook_enabled"
    WEBHOOK_DISABLED = "webhook_disabled"  # by an admin, or by the system after a day of failures
    WEBHOOK_REMOVED = "webhook_removed"
    WEBHOOK_TEST_QUEUED = "webhook_test_queued"
    SUBSCRIBED = "subscribed"  # a contact subscribed to a list through the API (double opt-in or with proof)
    UNSUBSCRIBED = "unsubscribed"  # a contact taken off a list (or every list) through the API
    LEAD_ADDED = "lead_added"  # a lead made (or a lost one enquiring again) through the API
    LEAD_UPDATED = "lead_updated"  # a lead's details changed through the API
    AUTOMATION_SET = "automation_set"  # a feed or digest automation set (mode, slot, layout, audience, templates)
    ISSUE_VERSION_SAVED = "issue_version_saved"  # an issue's language version added or replaced
    ISSUE_VERSION_REMOVED = "issue_version_removed"
    SENSITIVE_MARKED = "sensitive_marked"  # a custom field, tag or segment marked as revealing health information
    SENSITIVE_UNMARKED = "sensitive_unmarked"


Actor = StaffUser | str  # a staff user, or CLI / another fixed label


def record(session: Session, actor: Actor, action: AuditAction, target: str | None = None,
           detail: str | None = None, *, at: datetime | None = None) -> AuditEntry:
    """Append one entry, in the caller's transaction: the entry and the action commit together."""
    entry = AuditEntry(
        at=at or utcnow(),
        actor=actor.email if isinstance(actor, StaffUser) else actor,
        actor_user_id=actor.id if isinstance(actor, StaffUser) else None,
        action=AuditAction(action).value,
        target=target,
        detail=detail,
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class AuditFilter:
    action: AuditAction | None = None
    actor: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    older: Cursor | None  # where the next, older page starts (None: this is the last)
    first: bool  # the newest entries matching the filter


def entries(session: Session, filters: AuditFilter = AuditFilter(), before: Cursor | None = None,
            per_page: int = PAGE_SIZE) -> AuditPage:
    """Entries matching ``filters``, newest first: the ``per_page`` just older than ``before``. Each
    filter is served by an index: (action, at), (actor, at) or (at)."""
    conditions = []
    if filters.action is not None:
        conditions.append(AuditEntry.action == filters.action.value)
    if filters.actor:
        conditions.append(AuditEntry.actor == filters.actor)
    if filters.since is not None:
        conditions.append(AuditEntry.at >= filters.since)
    if filters.until is not None:
        conditions.append(AuditEntry.at < filters.until)
    if before is not None:
        # (at, id) < (before.at, before.id), with a plain range on ``at`` for the index to use.
        conditions.append(and_(AuditEntry.at <= before.at,
                               or_(AuditEntry.at < before.at, AuditEntry.id < before.id)))
    rows = list(session.scalars(select(AuditEntry).where(*conditions)
                                .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(per_page + 1)))
    older = Cursor(rows[per_page - 1].at, rows[per_page - 1].id) if len(rows) > per_page else None
    return AuditPage(rows[:per_page], older, before is None)


def actors(session: Session) -> list[str]:
    """Every actor the log may name (to filter by): staff addresses (from the small users table, not
    a scan of the log), then the fixed labels of the CLI, the system and unknown accounts, then the
    API tokens ("api token 3", from their own small table)."""
    from newsletter import api_tokens  # both record through this module: imported when asked
    from newsletter.staff.users import SYSTEM

    people = list(session.scalars(select(StaffUser.email).order_by(StaffUser.email)))
    tokens = [api_tokens.target(token_id) for token_id in session.scalars(select(ApiToken.id).order_by(ApiToken.id))]
    return people + [CLI, SYSTEM, UNKNOWN_ACCOUNT] + tokens
