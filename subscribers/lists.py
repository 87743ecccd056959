"""Lists contacts subscribe to. The newsletter's list is made on first use."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.errors import InputError, NotFound
from subscribers.models import MailingList

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


def check_slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise InputError(f"list name {slug!r}: use lower-case letters, digits and dashes (e.g. 'newsletter')")
    return slug


def ensure_list(session: Session, slug: str, name: str | None = None, *, double_opt_in: bool = True) -> MailingList:
    check_slug(slug)
    found = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        found = MailingList(slug=slug, name=name or slug.replace("-", " ").title(), double_opt_in=double_opt_in)
        session.add(found)
        session.flush()
    return found


def get_list(session: Session, slug: str) -> MailingList:
    found = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        raise NotFound(f"there is no list {slug!r}")
    return found


def all_lists(session: Session) -> list[MailingList]:
    return list(session.scalars(select(MailingList).order_by(MailingList.id)))
