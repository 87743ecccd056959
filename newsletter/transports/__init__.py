"""Transports: how a batch of personalised emails leaves the product. One interface, several backends,
chosen by ``NEWSLETTER_TRANSPORT`` the way Django chooses a mail backend."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.transports.base import Batch, BatchResult, Recipient, Transport
from newsletter.transports.memory import MemoryTransport
from newsletter.transports.outbox import OutboxTransport

__all__ = ["Batch", "BatchResult", "Recipient", "Transport", "MemoryTransport", "OutboxTransport", "get_transport"]


def get_transport(settings: Settings) -> Transport:
    if settings.transport == "sendgrid":
        from newsletter.transports.sendgrid import SendGridTransport  # the sendgrid client only when used

        return SendGridTransport(settings)
    if settings.transport == "smtp":
        from newsletter.transports.smtp import SmtpTransport

        return SmtpTransport(settings)
    if settings.transport == "ses":
        from newsletter.transports.ses import SesTransport  # boto3 only when used

        return SesTransport(settings)
    if settings.transport == "memory":
        return MemoryTransport(settings)
    assert settings.outbox_dir is not None
    return OutboxTransport(settings.outbox_dir, settings)
