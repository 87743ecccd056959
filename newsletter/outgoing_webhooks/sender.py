"""Delivering outgoing webhook events, in the dispatcher processes (``serve``, ``worker``, ``tick``),
never in a web request.

A round captures new events (``events.capture``), then claims one due delivery under a lease and
POSTs it, signed, to its endpoint:

- the claim is a conditional UPDATE (pending -> sending, on PostgreSQL after ``FOR UPDATE SKIP
  LOCKED``), committed before the request leaves, so a second dispatcher never takes a claimed row;
  the lease (``lease_for``) outlives the request's timeouts, so a slow receiver is never sent the
  same event a second time while the first request waits;
- 2xx: delivered, never sent again;
- anything else (3xx, 4xx, 5xx, a timeout, no connection, an address refused): tried again with
  exponential backoff and jitter until ``NEWSLETTER_WEBHOOK_RETRY_HOURS`` after the event, then
  failed. A timed-out request may have reached the receiver: the retry carries the same event id
  (receivers deduplicate by it);
- a dispatcher that died mid-request leaves the row "sending"; once its lease lapses the row is due
  again (at least once, same event id);
- an endpoint whose every attempt failed for the whole retry window is disabled, what waits for it
  fails, and the admins are emailed (``DisabledNotice``).
"""

from __future__ import annotations

import html
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.compose.personalize import RecipientValues
from newsletter.compose.render import CompiledEmail
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.errors import InputError
from newsletter.outgoing_webhooks import endpoints, events, sealing, signing
from newsletter.outgoing_webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from newsletter.posts.fetch import checked_addresses, send_pinned
from newsletter.staff.models import StaffUser
from newsletter.staff.roles import Role
from newsletter.staff.users import SYSTEM
from newsletter.transports import Batch, Recipient, Transport
from newsletter.transports.base import TransportError
from subscribers.contacts import ascii_address
from subscribers.db import is_postgresql, utcnow
from subscribers.states import WebhookDeliveryStatus, WebhookEndpointState, sql_literal

log = logging.getLogger("newsletter.webhooks")
USER_AGENT = "clinic-newsletter/0.1 (webhooks)"
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
PENDING, SENDING = WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.SENDING


def lease_for(settings: Settings) -> timedelta:
    """Longer than any request can take: httpx's timeout applies to connecting, writing and each
    read, so a request may use it a few times over."""
    return timedelta(seconds=4 * settings.webhook_timeout + 60)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … up to an hour, each between half and one and a half times that."""
    base = min(FIRST_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)
    return base * (0.5 + random.random())


@dataclass(frozen=True)
class Claimed:
    id: int
    endpoint_id: int
    url: str
    sealed_secret: str
    event_id: str
    event_type: str
    body: bytes
    attempts: int


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    """Captures and delivers outgoing webhook events; one per dispatcher loop."""

    def __init__(self, settings: Settings, db: Database, *, worker: str, transport: Transport | None = None,
                 clock: Callable[[], datetime] = utcnow, verify: ssl.SSLContext | bool = True) -> None:
        # ``verify``: the CAs that certificates are checked against (True: the system's; tests pass their own).
        self.settings, self.db, self.worker, self.clock, self.verify = settings, db, worker, clock, verify
        self.notice = DisabledNotice(settings, transport) if transport is not None else None

    @property
    def window(self) -> timedelta:
        return timedelta(hours=self.settings.webhook_retry_hours)

    def run_once(self) -> bool:
        """Capture new events, then deliver one due delivery; False when none was due."""
        now = self.clock()
        with self.db.session() as session:
            events.capture(session, now, retry_window=self.window)
        with self.db.session() as session:
            disabled = self._sweep(session, now)
            claimed = self._claim(session, now)
        self._tell(disabled)
        if claimed is None:
            return False
        outcome = self._post(claimed)
        self._record(claimed, outcome)
        return True

    def run_until_idle(self) -> int:
        """Deliver everything due now (``newsletter tick``); returns how many attempts were made."""
        attempts = 0
        while self.run_once():
            attempts += 1
        return attempts

    # The queue ---------------------------------------------------------------------------------

    def _sweep(self, session: Session, now: datetime) -> list[int]:
        """Rows whose dispatcher died mid-request are due again; rows past their retry window fail,
        and an endpoint failing all that while is disabled. Returns the endpoints disabled."""
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.status == sql_literal(SENDING), WebhookDelivery.lease_expires_at < now)
            .values(status=PENDING, claimed_by=None, lease_expires_at=None, next_attempt_at=now,
                    last_error="the dispatcher stopped during the request; sent again (same event id)")
            .execution_options(synchronize_session=False))
        expired = list(session.execute(
            select(WebhookDelivery.id, WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.status == sql_literal(PENDING), WebhookDelivery.give_up_at <= now)))
        if not expired:
            return []
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_([row.id for row in expired]))
            .values(status=WebhookDeliveryStatus.FAILED, next_attempt_at=None,
                    last_error=f"gave up: not delivered within {self.settings.webhook_retry_hours} hours")
            .execution_options(synchronize_session=False))
        return [e for e in {row.endpoint_id for row in expired} if self._disable_if_dead(session, e, now)]

    def _claim(self, session: Session, now: datetime) -> Claimed | None:
        pick = (select(WebhookDelivery.id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.status == sql_literal(PENDING), WebhookDelivery.next_attempt_at <= now,
                       WebhookEndpoint.state == WebhookEndpointState.ENABLED)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(1))
        if is_postgresql(session):
            pick = pick.with_for_update(of=WebhookDelivery, skip_locked=True)
        while (delivery_id := session.scalar(pick)) is not None:
            # Conditional: of two dispatchers that picked the same row, one takes it.
            taken = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == PENDING)
                .values(status=SENDING, claimed_by=self.worker, lease_expires_at=now + lease_for(self.settings),
                        attempts=WebhookDelivery.attempts + 1, last_attempt_at=now)
                .execution_options(synchronize_session=False)).rowcount
            if not taken:
                continue
            row = session.execute(
                select(WebhookDelivery.attempts, WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.sealed_secret,
                       WebhookEvent)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.id == delivery_id)).one()
            event: WebhookEvent = row.WebhookEvent
            return Claimed(delivery_id, row.id, row.url, row.sealed_secret, event.event_id, event.type,
                           signing.body_of(events.payload(event)), row.attempts)
        return None

    # The request -------------------------------------------------------------------------------

    def _post(self, claimed: Claimed) -> Outcome:
        timeout = self.settings.webhook_timeout
        try:
            secret = sealing.unseal(self.settings.signing_key(), claimed.sealed_secret)
            url = httpx.URL(claimed.url)
            if url.scheme != "https":  # registration checked it; the allow list may have changed since
                endpoints.check_url(self.settings, claimed.url, resolve=False)
            addresses = checked_addresses(url, claimed.url, endpoints.allow_list(self.settings),
                                          endpoints.ALLOW_SETTING, doing="send events to")
        except (sealing.SealBroken, InputError) as exc:
            return Outcome(None, str(exc).replace(claimed.url, f"endpoint {claimed.endpoint_id}"))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            signing.EVENT_ID_HEADER: claimed.event_id,
            signing.EVENT_TYPE_HEADER: claimed.event_type,
            signing.SIGNATURE_HEADER: signing.signature(secret, int(time.time()), claimed.body),
        }
        try:
            with httpx.Client(timeout=timeout, verify=self.verify, trust_env=False, follow_redirects=False) as client:
                response = send_pinned(client, url, addresses, "POST", content=claimed.body, headers=headers)
                response.close()  # the status is the answer; the body is not read
        except httpx.TimeoutException:
            return Outcome(None, f"no answer within {timeout:g} seconds")
        except httpx.HTTPError as exc:
            return Outcome(None, f"could not connect ({type(exc).__name__})")
        if 200 <= response.status_code < 300:
            return Outcome(response.status_code, None)
        return Outcome(response.status_code, f"HTTP {response.status_code}")

    def _record(self, claimed: Claimed, outcome: Outcome) -> None:
        now = self.clock()
        mine = (WebhookDelivery.id == claimed.id, WebhookDelivery.status == SENDING,
                WebhookDelivery.claimed_by == self.worker)
        disabled: list[int] = []
        with self.db.session() as session:
            endpoint = session.get(WebhookEndpoint, claimed.endpoint_id)
            if outcome.ok:
                values: dict[str, Any] = dict(status=WebhookDeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=None,
                                              last_error=None)
            else:
                give_up_at = session.scalar(select(WebhookDelivery.give_up_at).where(WebhookDelivery.id == claimed.id))
                due = now + backoff(claimed.attempts)
                gone = give_up_at is None or due >= give_up_at
                values = dict(status=WebhookDeliveryStatus.FAILED if gone else PENDING,
                              next_attempt_at=None if gone else due, last_error=(outcome.error or "failed")[:500])
            changed = session.execute(
                update(WebhookDelivery).where(*mine)
                .values(claimed_by=None, lease_expires_at=None, last_status_code=outcome.status_code, **values)
                .execution_options(synchronize_session=False)).rowcount
            if not changed:
                log.warning("webhook delivery %s: its lease had lapsed before the answer came; recorded nothing",
                            claimed.id)
            if endpoint is not None:
                if outcome.ok:
                    endpoint.last_success_at, endpoint.failing_since = now, None
                else:
                    endpoint.last_failure_at = now
                    endpoint.failing_since = endpoint.failing_since or now
                    if self._disable_if_dead(session, endpoint.id, now):
                        disabled.append(endpoint.id)
        if outcome.ok:
            log.info("webhook %s (%s) delivered to endpoint %s", claimed.event_id, claimed.event_type, claimed.endpoint_id)
        else:
            log.warning("webhook %s to endpoint %s: %s (attempt %d)", claimed.event_id, claimed.endpoint_id,
                        outcome.error, claimed.attempts)
        self._tell(disabled)

    def _disable_if_dead(self, session: Session, endpoint_id: int, now: datetime) -> bool:
        """Every attempt has failed for a whole retry window: disable the endpoint."""
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if (endpoint is None or endpoint.state != WebhookEndpointState.ENABLED or endpoint.failing_since is None
                or now - endpoint.failing_since < self.window):
            return False
        hours = self.settings.webhook_retry_hours
        endpoints.disable(session, endpoint, actor=SYSTEM, now=now,
                          reason=f"every attempt failed for {hours} hours")
        log.error("webhook endpoint %s disabled: every attempt failed for %d hours", endpoint_id, hours)
        return True

    def _tell(self, disabled: list[int]) -> None:
        if self.notice is None:
            return
        for endpoint_id in disabled:
            self.notice(self.db, endpoint_id)


class DisabledNotice:
    """Emails the active admins (and ``NEWSLETTER_OPERATOR_EMAIL``) that an endpoint was disabled:
    transactional, through the same transport, naming the endpoint by number and host only."""

    categories = ["operations"]

    def __init__(self, settings: Settings, transport: Transport) -> None:
        self.settings, self.transport = settings, transport

    def __call__(self, db: Database, endpoint_id: int) -> None:
        with db.session() as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            if endpoint is None:
                return
            host = httpx.URL(endpoint.url).host
            reason = endpoint.disabled_reason or "disabled"
            last_error = session.scalar(
                select(WebhookDelivery.last_error).where(WebhookDelivery.endpoint_id == endpoint_id,
                                                         WebhookDelivery.last_error.is_not(None))
                .order_by(WebhookDelivery.last_attempt_at.desc().nulls_last(), WebhookDelivery.id.desc()).limit(1))
            people = set(session.scalars(select(StaffUser.email).where(StaffUser.role == Role.ADMIN,
                                                                       StaffUser.disabled_at.is_(None))))
        if self.settings.operator_email:
            people.add(self.settings.operator_email)
        if not people:
            return
        subject = f"{self.settings.newsletter_name}: webhook endpoint {endpoint_id} was disabled"
        lines = [f"The outgoing webhook endpoint {endpoint_id} (host {host}) was disabled: {reason}.",
                 f"Last error: {last_error or 'none recorded'}.",
                 "Events are no longer sent to it. When the receiver works again, enable it on the staff app's "
                 f"Webhooks page or with: newsletter webhooks enable {endpoint_id}"]
        email = CompiledEmail(subject, "", "".join(f"<p>{html.escape(line)}</p>" for line in lines),
                              "\n\n".join(lines) + "\n")
        values = RecipientValues(first_name="", unsubscribe_url="", preferences_url="", view_online_url="")
        for address in sorted(people):
            try:
                outcome = self.transport.send(Batch(email, [Recipient(ascii_address(address), None, values, None)],
                                                    self.categories))
            except (TransportError, ValueError) as exc:
                log.error("webhook endpoint %s: the admin notice could not be sent (%s)", endpoint_id, exc)
                continue
            if outcome.refused:
                log.error("webhook endpoint %s: the admin notice was refused (%s)", endpoint_id, outcome.refused[0])
