"""What admins do with outgoing webhook endpoints (the CLI and the staff app call these): register
one (its secret is returned once), list them, disable, enable, remove, queue a test event, and read
its delivery log. Each change is audited; the audit entry names the endpoint by number only (its URL
may carry a token of the CRM's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.outgoing_webhooks import events, sealing, signing
from newsletter.outgoing_webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from newsletter.posts.addresses import AllowList, normal_host
from newsletter.posts.fetch import checked_addresses
from newsletter.staff.audit import Actor, AuditAction, record
from subscribers.db import utcnow
from subscribers.errors import NotFound
from subscribers.states import WebhookDeliveryStatus, WebhookEndpointState

ALLOW_SETTING = "NEWSLETTER_WEBHOOK_ALLOW_HOSTS"
MAX_URL = 2000
LOG_PAGE = 50


def target(endpoint: WebhookEndpoint | int) -> str:
    return f"webhook {endpoint if isinstance(endpoint, int) else endpoint.id}"


def allow_list(settings: Settings) -> AllowList:
    return AllowList.parse(settings.webhook_allow_hosts, ALLOW_SETTING)


def check_url(settings: Settings, url: str, *, resolve: bool = True) -> str:
    """An endpoint URL we may POST to: https (http only to a host NEWSLETTER_WEBHOOK_ALLOW_HOSTS
    names), no user name or password in it, and, resolved now, no address on this machine or its
    network unless allowed (checked again at every request). InputError says what is wrong."""
    url = url.strip()
    if not url:
        raise InputError("enter the endpoint's URL (https://…)")
    if len(url) > MAX_URL:
        raise InputError(f"the URL is longer than {MAX_URL} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InputError(f"{url} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("https", "http") or not parsed.raw_host:
        raise InputError(f"{url} is not an https:// URL")
    if parsed.userinfo:
        raise InputError("put no user name or password in the URL: requests are signed instead")
    if parsed.fragment:
        raise InputError("the URL has a #fragment, which is never sent: leave it out")
    allow = allow_list(settings)
    if parsed.scheme == "http" and normal_host(parsed.host) not in allow.names and not _literal_allowed(parsed, allow):
        raise InputError(f"{url} is not an https:// URL: events are sent over https only "
                         f"(http only to a host {ALLOW_SETTING} names, for development)")
    if resolve:
        checked_addresses(parsed, url, allow, ALLOW_SETTING, doing="send events to")
    return url


def _literal_allowed(url: httpx.URL, allow: AllowList) -> bool:
    from newsletter.posts.addresses import parse_ip

    try:
        return allow.allows(url.host, parse_ip(url.host))
    except ValueError:
        return False


def register(session: Session, settings: Settings, url: str, event_types: list[str], *, actor: Actor,
             now: datetime | None = None) -> tuple[WebhookEndpoint, str]:
    """A new endpoint for ``event_types``; returns it and its signing secret, shown this once."""
    url = check_url(settings, url)
    try:
        chosen = events.parse_event_types(event_types)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    _from_now_on(session)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(url=url, event_types=chosen, sealed_secret=sealing.seal(settings.signing_key(), secret),
                               state=WebhookEndpointState.ENABLED, created_at=now or utcnow(), enabled_at=now or utcnow())
    session.add(endpoint)
    session.flush()
    record(session, actor, AuditAction.WEBHOOK_ADDED, target(endpoint), f"events: {', '.join(chosen)}")
    return endpoint, secret


def _from_now_on(session: Session) -> None:
    """While no endpoint is enabled nothing is captured: the first one enabled (or registered) gets
    events from now on, not the history nor what happened meanwhile."""
    if session.scalar(select(WebhookEndpoint.id).where(WebhookEndpoint.state == WebhookEndpointState.ENABLED)
                      .limit(1)) is None:
        events.start_cursors(session)


def by_id(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
    return endpoint


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def cancel_pending(session: Session, endpoint: WebhookEndpoint, why: str) -> int:
    """A disabled endpoint is sent nothing more: what waits for it fails, with the reason."""
    return session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == WebhookDeliveryStatus.PENDING)
        .values(status=WebhookDeliveryStatus.FAILED, next_attempt_at=None, last_error=why[:500])
        .execution_options(synchronize_session=False)
    ).rowcount or 0


def disable(session: Session, endpoint: WebhookEndpoint, *, actor: Actor, reason: str = "disabled by an admin",
            now: datetime | None = None) -> bool:
    """Stop sending to ``endpoint``; returns False if it was disabled already."""
    if endpoint.state == WebhookEndpointState.DISABLED:
        return False
    endpoint.state, endpoint.disabled_reason, endpoint.disabled_at = WebhookEndpointState.DISABLED, reason, now or utcnow()
    cancel_pending(session, endpoint, f"not sent: the endpoint was disabled ({reason})")
    record(session, actor, AuditAction.WEBHOOK_DISABLED, target(endpoint), reason[:200])
    session.flush()
    return True


def enable(session: Session, endpoint: WebhookEndpoint, *, actor: Actor, now: datetime | None = None) -> bool:
    """Send to ``endpoint`` again (events from now on); returns False if it was enabled already."""
    if endpoint.state == WebhookEndpointState.ENABLED:
        return False
    _from_now_on(session)
    endpoint.state, endpoint.enabled_at = WebhookEndpointState.ENABLED, now or utcnow()
    endpoint.disabled_reason = endpoint.disabled_at = endpoint.failing_since = None
    record(session, actor, AuditAction.WEBHOOK_ENABLED, target(endpoint))
    session.flush()
    return True


def remove(session: Session, endpoint: WebhookEndpoint, *, actor: Actor) -> None:
    """Delete the endpoint and its delivery log."""
    number = endpoint.id
    session.execute(WebhookDelivery.__table__.delete().where(WebhookDelivery.endpoint_id == number))
    session.delete(endpoint)
    record(session, actor, AuditAction.WEBHOOK_REMOVED, target(number))
    session.flush()


def queue_test(session: Session, settings: Settings, endpoint: WebhookEndpoint, *, actor: Actor,
               now: datetime | None = None) -> WebhookEvent:
    """A ``webhook.test`` event for this endpoint only, delivered by a dispatcher like any other."""
    if endpoint.state != WebhookEndpointState.ENABLED:
        raise InputError(f"webhook endpoint {endpoint.id} is disabled: enable it first")
    now = now or utcnow()
    event = WebhookEvent(event_id=events.new_event_id(), type=events.WebhookEventType.TEST, source="test",
                         source_id=None, occurred_at=now, data={"endpoint_id": endpoint.id}, created_at=now)
    session.add(event)
    session.flush()
    events.fan_out(session, [(event.id, event.type, now)], now, timedelta(hours=settings.webhook_retry_hours),
                   only_endpoint=endpoint.id)
    record(session, actor, AuditAction.WEBHOOK_TEST_QUEUED, target(endpoint))
    return event


@dataclass(frozen=True)
class LogPage:
    rows: list[WebhookDelivery]
    older: int | None  # the id the next, older page starts below (None: this is the last)


def delivery_log(session: Session, endpoint: WebhookEndpoint, *, before: int | None = None,
                 per_page: int = LOG_PAGE) -> LogPage:
    """The endpoint's deliveries, newest first, keyset-paged by id."""
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    rows = list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(per_page + 1)))
    return LogPage(rows[:per_page], rows[per_page - 1].id if len(rows) > per_page else None)


def summary(endpoint: WebhookEndpoint) -> dict[str, object]:
    """An endpoint as the CLI and the staff app list it (never its secret)."""
    return {"id": endpoint.id, "url": endpoint.url, "events": ", ".join(endpoint.event_types),
            "state": endpoint.state, "disabled_reason": endpoint.disabled_reason,
            "last_success_at": endpoint.last_success_at, "last_failure_at": endpoint.last_failure_at,
            "failing_since": endpoint.failing_since}


def log_row(delivery: WebhookDelivery) -> dict[str, object]:
    """One line of a delivery log."""
    return {"id": delivery.id, "event_type": delivery.event.type, "event_id": delivery.event.event_id,
            "status": delivery.status, "attempts": delivery.attempts, "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error, "next_attempt_at": delivery.next_attempt_at,
            "delivered_at": delivery.delivered_at, "created_at": delivery.created_at}
