"""Amazon SES's events (published by the configuration set to SNS) become provider events.

Each SES event is read into the event shape ``provider_events.store_events`` already takes from
SendGrid, and stored through it, so matching, idempotence, the ledger moves, suppressions and the
privacy rules are the same ones:

- Bounce, ``bounceType`` Permanent: a hard bounce (the address is suppressed); Transient or
  Undetermined: stored as "blocked", nothing else (SES retried, or will report it again).
- Complaint: "spamreport" (suppressed, unsubscribed from every list, contact complained).
- Delivery: "delivered"; Send: "processed" (proof that SES accepted the message: a delivery held as
  unknown becomes submitted); DeliveryDelay: "deferred"; Reject and Rendering Failure: "dropped" (a
  reason about the message, not the address); Open and Click: as SendGrid's.
- Each recipient of an event is one stored event, its id ``ses:<SNS MessageId>`` (``:<n>`` after the
  first): SNS delivers at least once, and a message posted again stores nothing.

Matching: the ``delivery_id`` message tag (the API transport sets it); else SES's ``mail.messageId``
with the recipient's address, the message id the SMTP transport stored from SES's 250 reply.

Read from the event: type, timestamps, recipient addresses (to match and to suppress, never
stored), the bounce status and diagnostic (scrubbed of addresses), the tag, the message id, a
clicked link. Nothing else: not the subject or headers SES copies into ``mail``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from newsletter.tracking.provider_events import SES, StoreReport, store_events

EVENT_KEYS = {  # SES's event type -> the key of its details
    "Bounce": "bounce", "Complaint": "complaint", "Delivery": "delivery", "Send": "send", "Reject": "reject",
    "DeliveryDelay": "deliveryDelay", "Rendering Failure": "failure", "Open": "open", "Click": "click",
}
RECIPIENTS = {"bounce": "bouncedRecipients", "complaint": "complainedRecipients", "delivery": "recipients",
              "deliveryDelay": "delayedRecipients"}


class NotAnSesEvent(ValueError):
    """The notification's Message is not an SES event this app reads."""


def store_ses_notification(session: Session, sns_message_id: str, message: str, *, now: datetime) -> StoreReport:
    """Store the SES event carried by one SNS notification (see the module)."""
    return store_events(session, ses_events(sns_message_id, message), now=now, provider=SES)


def ses_events(sns_message_id: str, message: str) -> list[dict[str, Any]]:
    """The SendGrid-shaped events of one SES event (one per recipient it names)."""
    try:
        event = json.loads(message)
    except ValueError:
        raise NotAnSesEvent("the notification's Message is not JSON") from None
    if not isinstance(event, dict):
        raise NotAnSesEvent("the notification's Message is not an SES event")
    kind = event.get("eventType") or event.get("notificationType")  # event publishing, or identity notifications
    if kind not in EVENT_KEYS:
        raise NotAnSesEvent("the notification's Message is not an SES event type this app reads")
    details = event.get(EVENT_KEYS[kind])
    details = details if isinstance(details, dict) else {}
    mail = event.get("mail") if isinstance(event.get("mail"), dict) else {}
    common = {"timestamp": _epoch(details.get("timestamp")) or _epoch(mail.get("timestamp")),
              "sg_message_id": mail.get("messageId"), "delivery_id": _tag(mail, "delivery_id")}
    shaped = _shape(kind, details)
    listed = details.get(RECIPIENTS.get(EVENT_KEYS[kind], ""))
    if isinstance(listed, list) and listed:
        recipients = [r if isinstance(r, dict) else {"emailAddress": r} for r in listed]
    else:
        destination = mail.get("destination")
        recipients = [{"emailAddress": address} for address in destination] if isinstance(destination, list) else [{}]
    events = []
    for n, recipient in enumerate(recipients):
        one = {**common, **shaped, "sg_event_id": f"ses:{sns_message_id}" + (f":{n}" if n else "")}
        address = recipient.get("emailAddress")
        if isinstance(address, str):
            one["email"] = address
        if kind == "Bounce":
            one["status"] = recipient.get("status")
            one["reason"] = recipient.get("diagnosticCode") or details.get("bounceSubType")
        elif kind == "DeliveryDelay":
            one["response"] = recipient.get("diagnosticCode") or details.get("delayType")
        events.append(one)
    return events


def _shape(kind: str, details: dict[str, Any]) -> dict[str, Any]:
    if kind == "Bounce":
        return {"event": "bounce", "type": "bounce" if details.get("bounceType") == "Permanent" else "blocked"}
    if kind == "Complaint":
        return {"event": "spamreport"}
    if kind == "Delivery":
        return {"event": "delivered"}
    if kind == "Send":
        return {"event": "processed"}
    if kind == "DeliveryDelay":
        return {"event": "deferred"}
    if kind == "Open":
        return {"event": "open"}
    if kind == "Click":
        return {"event": "click", "url": details.get("link")}
    reason = details.get("reason") if kind == "Reject" else details.get("errorMessage")
    return {"event": "dropped", "reason": f"Amazon SES: {kind}" + (f": {reason}" if isinstance(reason, str) else "")}


def _tag(mail: dict[str, Any], name: str) -> str | None:
    """A message tag's value: SES gives each tag as a list of strings."""
    tags = mail.get("tags")
    values = tags.get(name) if isinstance(tags, dict) else None
    return values[0] if isinstance(values, list) and values and isinstance(values[0], str) else None


def _epoch(value: Any) -> float | None:
    """SES's ISO 8601 timestamps ("2026-12-07T03:21:10.123Z") as seconds since 1970."""
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp.timestamp() if stamp.tzinfo is not None else None
