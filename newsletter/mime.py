"""The complete MIME message one recipient receives: what the outbox writes and previews show.

multipart/alternative with the text part first (clients show the last part they understand),
UTF-8, and the RFC 2369 / RFC 8058 unsubscribe headers that Gmail and Yahoo require of bulk mail.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from newsletter.config import Settings
from newsletter.personalize import RecipientValues, substitute
from newsletter.render import RenderedEmail


def list_id_header(settings: Settings) -> str:
    """RFC 2919 List-Id: lets mailbox providers group the newsletter's mail."""
    return f"{settings.newsletter_name} <newsletter.{settings.from_domain}>"


def list_unsubscribe_header(https_url: str, mailto_url: str) -> str:
    return f"<{https_url}>, <{mailto_url}>"


def build_message(
    email: RenderedEmail,
    *,
    to_email: str,
    to_name: str | None,
    values: RecipientValues,
    unsubscribe_mailto: str | None,
    settings: Settings,
    date: datetime | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(settings.from_name, addr_spec=settings.from_email)
    message["To"] = Address(to_name or "", addr_spec=to_email)
    if settings.reply_to:
        message["Reply-To"] = settings.reply_to
    message["Subject"] = email.subject
    message["Date"] = format_datetime(date or datetime.now(timezone.utc))
    message["Message-ID"] = message_id or make_msgid(domain=settings.from_domain)
    if unsubscribe_mailto is not None:  # marketing mail; transactional mail (a confirmation) has none
        message["List-Id"] = list_id_header(settings)
        message["List-Unsubscribe"] = list_unsubscribe_header(values.unsubscribe_url, unsubscribe_mailto)
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(substitute(email.text, values), subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(substitute(email.html, values), subtype="html", charset="utf-8", cte="quoted-printable")
    return message
