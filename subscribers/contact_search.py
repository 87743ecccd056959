"""Finding contacts for staff: a search by address or name, filters, and keyset pages.

Shaped to stay fast at 100,000 contacts and more:

- Pages are keyset pages on the primary key, newest first (``id < before``, ``LIMIT n + 1``): no
  OFFSET, and no count of all rows; one row more than a page tells whether there is a next one.
- A whole address is matched exactly by its salted hash (the unique ``email_hash`` index, the way
  ``contacts.find_contact`` finds it, so case does not matter). Anything else is a prefix of the
  lower-cased address or of the lower-cased name, each served by an index on that expression
  (migration 0014; ``db.starts_with`` writes the predicate each database can use the index for).
  A name is matched from its start ("ana" finds "Ana Lopez", "lopez" does not): a match inside a
  name would read every row, and the few that matched may be anywhere in the table.
- Filters by list, tag, status and saved segment are plain predicates on the same keyset walk.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from subscribers.contacts import normalise_email
from subscribers.db import starts_with
from subscribers.errors import InputError
from subscribers.lists import get_list
from subscribers.models import Contact, ContactTag, MailingList, Subscription, Suppression
from subscribers.segments import segment_filter
from subscribers.states import ContactStatus
from subscribers.suppression import address_hash

PAGE_SIZE = 50
MAX_TERM = 320
SUPPRESSED = "suppressed"  # a status filter beside the contact's own statuses: on the suppression list
STATUS_FILTERS = (*ContactStatus, SUPPRESSED)


@dataclass(frozen=True)
class ContactQuery:
    """What staff asked for: all optional. ``term``: an address, or the start of one or of a name."""

    term: str = ""
    list_slug: str = ""
    tag: str = ""
    status: str = ""
    segment: str = ""

    @property
    def empty(self) -> bool:
        return not (self.term or self.list_slug or self.tag or self.status or self.segment)


@dataclass(frozen=True)
class ContactRow:
    id: int
    email: str
    name: str | None
    status: str
    suppressed: bool
    created_at: datetime
    lists: list[tuple[str, str]] = field(default_factory=list)  # (list slug, subscription status)
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ContactPage:
    rows: list[ContactRow]
    before: int | None  # the cursor of the next (older) page; None: this is the last
    first: bool  # this is the first page


def _term_filter(session: Session, term: str) -> ColumnElement[bool]:
    text = term.strip()
    if len(text) > MAX_TERM:
        raise InputError(f"the search is too long: at most {MAX_TERM} characters")
    if "@" in text:
        try:
            address = normalise_email(text)
        except InputError:
            address = None
        if address is not None:
            return Contact.email_hash == address_hash(session, address)
        return starts_with(session, func.lower(Contact.email), text.lower())
    lowered = text.lower()
    return or_(starts_with(session, func.lower(Contact.email), lowered),
               starts_with(session, func.lower(Contact.name), lowered))


def _conditions(session: Session, query: ContactQuery) -> list[ColumnElement[bool]]:
    """The query as WHERE clauses; InputError names a filter that does not exist."""
    conditions: list[ColumnElement[bool]] = []
    if query.term.strip():
        conditions.append(_term_filter(session, query.term))
    if query.list_slug:
        list_id = get_list(session, query.list_slug).id
        conditions.append(Contact.id.in_(select(Subscription.contact_id).where(Subscription.list_id == list_id)))
    if query.tag:
        conditions.append(Contact.id.in_(select(ContactTag.contact_id).where(ContactTag.tag == query.tag)))
    if query.status == SUPPRESSED:
        conditions.append(exists().where(Suppression.email_hash == Contact.email_hash))
    elif query.status:
        if query.status not in set(ContactStatus):
            raise InputError(f"there is no status {query.status!r}; one of {', '.join(STATUS_FILTERS)}")
        conditions.append(Contact.status == query.status)
    if query.segment:
        conditions.append(segment_filter(session, query.segment))
    return conditions


def search_contacts(session: Session, query: ContactQuery, *, before: int | None = None,
                    page_size: int = PAGE_SIZE) -> ContactPage:
    """One page of the contacts matching ``query``, newest first, older than the contact ``before``.
    Raises InputError (a term too long, an unknown status) or NotFound (a list or segment)."""
    conditions = _conditions(session, query)
    if before is not None:
        conditions.append(Contact.id < before)
    suppressed = exists().where(Suppression.email_hash == Contact.email_hash)
    found = session.execute(
        select(Contact.id, Contact.email, Contact.name, Contact.status, suppressed, Contact.created_at)
        .where(*conditions).order_by(Contact.id.desc()).limit(page_size + 1)
    ).all()
    more = len(found) > page_size
    found = found[:page_size]
    ids = [row.id for row in found]
    lists: dict[int, list[tuple[str, str]]] = defaultdict(list)
    tags: dict[int, list[str]] = defaultdict(list)
    if ids:
        for contact_id, slug, status in session.execute(
            select(Subscription.contact_id, MailingList.slug, Subscription.status)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscription.contact_id.in_(ids)).order_by(MailingList.slug)
        ):
            lists[contact_id].append((slug, status))
        for contact_id, tag in session.execute(
            select(ContactTag.contact_id, ContactTag.tag).where(ContactTag.contact_id.in_(ids)).order_by(ContactTag.tag)
        ):
            tags[contact_id].append(tag)
    rows = [ContactRow(r.id, r.email, r.name, r.status, bool(r[4]), r.created_at, lists[r.id], tags[r.id])
            for r in found]
    return ContactPage(rows, rows[-1].id if more and rows else None, before is None)


def all_tags(session: Session, limit: int = 500) -> list[str]:
    """The tags in use, for a filter's choices (distinct over the tag index)."""
    return list(session.scalars(select(ContactTag.tag).distinct().order_by(ContactTag.tag).limit(limit)))
