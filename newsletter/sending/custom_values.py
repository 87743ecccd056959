"""The custom-field values a claimed batch needs: read only when its email personalises with a field.

An email without merge tags costs nothing more to send; one with them reads the batch's contacts'
``custom_fields`` in one query, and each recipient's values are made once for the whole batch's
placeholders (``newsletter.compose.personalize.field_values``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.models import Contact


def custom_fields_of(session: Session, contact_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Each contact's custom fields, by contact id, in one query."""
    rows = session.execute(select(Contact.id, Contact.custom_fields).where(Contact.id.in_(list(contact_ids))))
    return {contact_id: fields or {} for contact_id, fields in rows}
