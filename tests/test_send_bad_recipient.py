"""One recipient's bad data fails that recipient only, on every transport: the rest of its batch goes
out in the same request, and nothing is left claimed (then held as unknown) for the whole batch.

The bad data is what older rules let in and is still stored: an address with characters beyond
ASCII before the @ (no transport can carry it), and names with a raw or an RFC 2047 encoded line
break (sent, flattened to one line, never as a header of their own)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser

import pytest
from sqlalchemy import insert, select

from newsletter.config import Settings, get_settings
from newsletter.database import Database
from newsletter.models import Delivery, Issue, SendBatch
from newsletter.sending import ledger, schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.transports import MemoryTransport, Transport, get_transport
from subscribers.lists import ensure_list
from subscribers.models import Contact, Installation, Subscription
from subscribers.suppression import hash_with_salt
from tests.sendgrid_fake import FakeSendGrid
from tests.webhook_signer import Signer
from tests.sendkit import add_audience, make_issue

LEGACY = {  # address -> name, stored before today's rules
    "josé@example.org": "José",
    "crlf@example.org": "Eve\r\nBcc: evil@example.com",
    "encoded@example.org": "=?utf-8?q?x=0D=0ABcc:_evil@example.com?=",
}


def add_legacy_contacts(db: Database) -> None:
    with db.session() as s:
        salt = s.scalar(select(Installation.hash_salt))
        newsletter = ensure_list(s, "newsletter")
        for address, name in LEGACY.items():
            contact_id = s.execute(insert(Contact).values(
                email=address, email_hash=hash_with_salt(salt, address), name=name, timezone="UTC",
                custom_fields={}, status="active", source="import").returning(Contact.id)).scalar_one()
            s.add(Subscription(contact_id=contact_id, list_id=newsletter.id, status="confirmed"))


@pytest.fixture(params=["memory", "outbox", "sendgrid"])
def transport_name(request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
                   ) -> Iterator[tuple[str, FakeSendGrid | None]]:
    if request.param != "sendgrid":
        yield request.param, None
        return
    with FakeSendGrid() as fake:
        monkeypatch.setenv("SENDGRID_API_KEY", fake.api_key)
        monkeypatch.setenv("SENDGRID_API_HOST", fake.url)
        monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", Signer().public)  # SendGrid sending needs it
        get_settings.cache_clear()
        yield "sendgrid", fake


def received(transport: Transport, settings: Settings, fake: FakeSendGrid | None) -> dict[str, str | None]:
    """Address -> display name of every email the transport let out, checking each header block."""
    if fake is not None:
        assert len(fake.requests) == 1  # the good recipients went in one request
        return {d.to: d.name for d in fake.deliveries}
    if isinstance(transport, MemoryTransport):
        raws = [m.as_bytes() for m in transport.sent]
    else:
        assert settings.outbox_dir is not None
        raws = [p.read_bytes() for p in settings.outbox_dir.glob("*.eml")]
    out: dict[str, str | None] = {}
    for raw in raws:
        assert "bcc" not in [h.lower() for h in BytesHeaderParser().parsebytes(raw).keys()]
        message: EmailMessage = message_from_bytes(raw, policy=policy.default)  # type: ignore[assignment]
        (to,) = message["To"].addresses
        out[to.addr_spec] = to.display_name or None
    return out


def test_one_recipients_bad_data_fails_that_recipient_alone(db: Database, settings: Settings,
                                                             transport_name: tuple[str, FakeSendGrid | None]) -> None:
    name, fake = transport_name
    settings = get_settings().model_copy(update={"transport": name})
    issue_id = make_issue(db, settings)
    add_audience(db, 2)  # reader0@example.org and reader1@example.org
    add_legacy_contacts(db)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), datetime.now(timezone.utc))
    transport = get_transport(settings)
    total = Dispatcher(settings, db, transport).run_until_idle()

    assert (total.submitted, total.failed, total.unknown) == (4, 1, 0)
    with db.session() as s:
        assert ledger.status_counts(s, issue_id) == {"submitted": 4, "failed": 1}
        (error,) = s.scalars(select(Delivery.error).where(Delivery.status == "failed"))
        assert s.get(Issue, issue_id).status == "sent"
        assert [b.status for b in s.scalars(select(SendBatch))] == ["submitted"]
    assert "before the @" in error and "josé" not in error  # a clear reason, without the address
    assert received(transport, settings, fake) == {
        "reader0@example.org": "Reader 0",
        "reader1@example.org": "Reader 1",
        "crlf@example.org": "Eve Bcc: evil@example.com",
        "encoded@example.org": "x Bcc: evil@example.com",
    }
