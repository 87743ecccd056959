"""A staff-sized history, loaded in bulk: what the staff pages are timed against.

``fill(db, now=...)`` writes, into a migrated empty database (SQLite file or PostgreSQL schema):

- 100,000 contacts over two years, each on the newsletter list (confirmed, some pending, some
  unsubscribed lately) with the consent event that put them there;
- 40 weekly issues (the newest still sending, a quarter of its rows queued) and one scheduled, with
  four links each (one the booking button): 25,000 deliveries each, 1,000,000 in all;
- their events: delivered, bounces, human and machine opens and clicks, unsubscribes, complaints
  (about 1.6 events per delivery);
- 10,000 leads at every stage with their stage changes, bookings for the booked and attended, most
  of them credited to a delivery the lead clicked;
- names, custom fields and tags on the contacts, and a saved segment;
- with ``fill_sequences``: the shipped sequences, every lead enrolled in the consultation follow-up
  with the steps it has had sent (about 25,000 step deliveries) and their opens and clicks.

Rows are made in Python in chunks and written with COPY (PostgreSQL) or executemany in one
transaction (SQLite), never through the ORM row by row; it is deterministic (seeded). On SQLite it
takes about a minute.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import write_rows
from newsletter.database import Database

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
CHUNK = 100_000
BOOK = "https://clinic.example/book"


@dataclass(frozen=True)
class Size:
    contacts: int = 100_000
    issues: int = 40
    per_issue: int = 25_000  # deliveries per issue: issues x per_issue deliveries in all
    leads: int = 10_000
    links: int = 4  # per issue, the last one the booking button

    @classmethod
    def scaled(cls, contacts: int) -> Size:
        """The default history's proportions at ``contacts`` contacts (for bench/run_all.py's small size)."""
        return cls(contacts=contacts, per_issue=max(1, contacts // 4), leads=max(1, contacts // 10))


COLUMNS = {
    "lists": "id, slug, name, description, double_opt_in, created_at",
    "contacts": "id, email, email_hash, name, timezone, custom_fields, status, source, created_at, updated_at",
    "contact_tags": "contact_id, tag, added_at",
    "segments": "name, description, definition, created_at, updated_at",
    "enrollments": "id, sequence_id, contact_id, generation, state, next_step_id, next_due_at, last_step_id, "
                   "last_sent_at, enrolled_at, finished_at, source",
    "subscriptions": "id, contact_id, list_id, status, frequency, created_at, confirmed_at, unsubscribed_at, "
                     "confirmation_sends",
    "consent_events": "contact_id, list_id, action, method, note, at",
    "posts": "id, title, excerpt, source_format, tags, blocks, reading_minutes, content_hash, created_at",
    "issues": "id, post_id, subject, preheader, status, list_id, scheduled_at, schedule_timezone, enqueued_at, "
              "finished_at, tracking, html, text, compiled_at, created_at, updated_at",
    "links": "id, issue_id, position, url, label, is_booking",
    "leads": "id, contact_id, preferred_contact, requested_at, source, stage, created_at, updated_at",
    "lead_stage_changes": "lead_id, from_stage, to_stage, by, at",
    "deliveries": "id, issue_id, contact_id, list_id, status, due_at, attempts, created_at, submitted_at",
    "events": "delivery_id, contact_id, issue_id, link_id, type, machine, source, url, occurred_at, recorded_at",
    "bookings": "id, lead_id, booked_for, recorded_at, origin, source",
    "attributions": "booking_id, delivery_id, issue_id, kind, event_at",
}
# Tables whose ids the rows carry: PostgreSQL's sequences are moved past them afterwards.
WITH_IDS = ("lists", "contacts", "subscriptions", "posts", "issues", "links", "leads", "deliveries", "bookings")
STAGES = ["new", "contacted", "booked", "attended", "lost"]
STAGE_WEIGHTS = [55, 22, 10, 6, 7]
SOURCES = ["web_form"] * 5 + ["phone"] * 2 + ["referral", "campaign", "import"]
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jon", "Kemi", "Luis"]
LAST = ["Alvarez", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Huang", "Ito", "Jones", "Khan"]
TAGS = ["event-2026", "webinar", "referral-partner", "spanish", "north-clinic"]


def _status(rnd: random.Random) -> str:
    r = rnd.random()
    return ("delivered" if r < 0.94 else "bounced" if r < 0.965 else "submitted" if r < 0.985
            else "dropped" if r < 0.99 else "suppressed" if r < 0.995 else "failed")


def generate(size: Size, now: datetime) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """(table, rows) in foreign-key order, at most CHUNK rows at a time."""
    rnd = random.Random(14)
    two_years = 730 * 86400
    created = [now - timedelta(seconds=rnd.randrange(60, two_years)) for _ in range(size.contacts)]
    yield "lists", [(1, "newsletter", "The Limbic Letter", "", True, now - timedelta(days=800))]
    contacts, subscriptions, consents, tags = [], [], [], []
    for i, at in enumerate(created, start=1):
        r = rnd.random()
        status = "pending" if r < 0.03 else "unsubscribed" if r < 0.11 else "confirmed"
        confirmed = at + timedelta(hours=1) if status != "pending" and at + timedelta(hours=1) < now else None
        left = (now - timedelta(seconds=rnd.randrange(1, min(365 * 86400, int((now - at).total_seconds())))))\
            if status == "unsubscribed" else None
        name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}" if rnd.random() < 0.8 else None
        fields = '{"clinic": "%s"}' % rnd.choice(["north", "south"]) if rnd.random() < 0.5 else "{}"
        contacts.append((i, f"reader{i}@example.org", f"h{i}", name, "America/Los_Angeles", fields,
                         "unsubscribed" if left else "active", "import", at, at))
        if rnd.random() < 0.3:
            tags.append((i, rnd.choice(TAGS), at))
        subscriptions.append((i, i, 1, status, "every", at, confirmed, left, 1))
        consents.append((i, 1, "confirmed" if confirmed else "requested", "form", None, confirmed or at))
    yield "contacts", contacts
    yield "subscriptions", subscriptions
    yield "consent_events", consents
    yield "contact_tags", tags
    yield "segments", [("engaged-north", "Confirmed readers of the north clinic who opened lately",
                        '{"all": [{"list": "newsletter"}, {"field": "clinic", "op": "eq", "value": "north"}, '
                        '{"opened": {"within_days": 90}}]}', now, now)]
    del contacts, subscriptions, consents, tags

    # Weekly issues, the newest still sending, one more scheduled for next week.
    started = {k: now - timedelta(weeks=size.issues - k, hours=-1 if k == size.issues else 0)
               for k in range(1, size.issues + 1)}
    started[size.issues] = now - timedelta(hours=2)
    total = size.issues + 1
    yield "posts", [(k, f"Post {k}", "", "text", "[]", "[]", 3, f"p{k}", now - timedelta(weeks=total - k + 1))
                    for k in range(1, total + 1)]
    issues = []
    for k in range(1, total + 1):
        at = started.get(k, now + timedelta(days=6))
        status = "sent" if k < size.issues else "sending" if k == size.issues else "scheduled"
        issues.append((k, k, f"Issue {k}", "", status, 1, at, "America/Los_Angeles", at if k <= size.issues else None,
                       at + timedelta(hours=1) if status == "sent" else None, "full", "<p/>", "x", at, at, at))
    yield "issues", issues
    links = [((k - 1) * size.links + p, k, p, BOOK if p == size.links else f"https://clinic.example/{k}/{p}",
              "Book a consultation" if p == size.links else f"Link {p}", p == size.links)
             for k in range(1, total + 1) for p in range(1, size.links + 1)]
    yield "links", links

    # Leads: contacts 1..leads, made in the last year.
    lead_at = {n: now - timedelta(seconds=rnd.randrange(3600, 365 * 86400)) for n in range(1, size.leads + 1)}
    stage = {n: rnd.choices(STAGES, STAGE_WEIGHTS)[0] for n in lead_at}
    source = {n: rnd.choice(SOURCES) for n in lead_at}
    yield "leads", [(n, n, "email", at, source[n], stage[n], at, at) for n, at in lead_at.items()]
    booked_at = {n: min(now - timedelta(minutes=1), lead_at[n] + timedelta(hours=rnd.randrange(1, 21 * 24)))
                 for n in lead_at if stage[n] in ("booked", "attended")}
    changes = [(n, None, "new", "api", at) for n, at in lead_at.items()]
    changes += [(n, "new", "booked", "booking", at) for n, at in booked_at.items()]
    changes += [(n, "booked", "attended", "staff", at + timedelta(days=3)) for n, at in booked_at.items()
                if stage[n] == "attended"]
    changes += [(n, "new", stage[n], "staff", lead_at[n] + timedelta(days=1)) for n in lead_at
                if stage[n] in ("contacted", "lost")]
    yield "lead_stage_changes", changes

    # The ledger and its events, streamed; a lead's last human click before booking is remembered.
    deliveries: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    last_click: dict[int, tuple[int, int, datetime]] = {}
    n = 0
    for k in range(1, size.issues + 1):
        at = started[k]
        sending = k == size.issues
        offset = (k * 7919) % size.contacts
        for j in range(size.per_issue):
            n += 1
            contact = (offset + j) % size.contacts + 1
            status = "queued" if sending and j >= size.per_issue * 3 // 4 else _status(rnd)
            sent = status in ("delivered", "bounced", "submitted", "dropped")
            submitted = at + timedelta(seconds=j * 3600 // size.per_issue) if sent else None
            deliveries.append((n, k, contact, 1, status, at, 1 if status != "queued" else 0, at, submitted))
            if submitted is None:
                continue
            seen = submitted + timedelta(minutes=1)
            kind = {"delivered": "delivered", "bounced": "bounce", "dropped": "dropped"}.get(status)
            if kind:
                events.append((n, contact, k, None, kind, False, "sendgrid", None, seen, seen))
            if status != "delivered":
                continue
            if rnd.random() < 0.25:  # Apple Mail Privacy Protection fetches the pixel at once
                events.append((n, contact, k, None, "open", True, "first_party", None, seen, seen))
            if rnd.random() < 0.35:
                read = min(now, submitted + timedelta(seconds=rnd.randrange(60, 5 * 86400)))
                for _ in range(1 + (rnd.random() < 0.3)):  # some read it twice
                    events.append((n, contact, k, None, "open", False, "first_party", None, read, read))
                r = rnd.random()
                if r < 0.12:
                    position = rnd.randrange(1, size.links + 1)
                    link_id = (k - 1) * size.links + position
                    url = links[link_id - 1][3]
                    events.append((n, contact, k, link_id, "click", False, "first_party", url, read, read))
                    if contact in booked_at and read < booked_at[contact]:
                        last_click[contact] = (n, k, read)
                elif r < 0.125:
                    events.append((n, contact, k, None, "unsubscribe", False, "first_party", None, read, read))
                elif r < 0.1255:
                    events.append((n, contact, k, None, "spamreport", False, "sendgrid", None, read, read))
            if rnd.random() < 0.02:  # a link scanner follows a link
                link_id = (k - 1) * size.links + 1
                events.append((n, contact, k, link_id, "click", True, "first_party", links[link_id - 1][3], seen, seen))
            if len(deliveries) >= CHUNK:
                yield "deliveries", deliveries
                yield "events", events
                deliveries, events = [], []
    yield "deliveries", deliveries
    yield "events", events

    bookings, attributions = [], []
    for booking_id, (lead, at) in enumerate(sorted(booked_at.items()), start=1):
        bookings.append((booking_id, lead, at + timedelta(days=5), at, "api", source[lead]))
        if lead in last_click:
            delivery, issue, clicked = last_click[lead]
            attributions.append((booking_id, delivery, issue, "click", clicked))
    yield "bookings", bookings
    yield "attributions", attributions


def fill(db: Database, *, now: datetime = NOW, size: Size = Size()) -> dict[str, int]:
    """Load the history into ``db`` (migrated and empty). Returns the rows written per table."""
    postgres = db.engine.dialect.name == "postgresql"
    counts: dict[str, int] = {}
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if not postgres:
            cursor.execute("PRAGMA cache_size = -500000")  # 500 MB for this load only
            cursor.execute("BEGIN")  # one transaction, not one per row
        for table, rows in generate(size, now):
            counts[table] = counts.get(table, 0) + len(rows)
            if rows:
                write_rows(cursor, table, COLUMNS[table], rows, postgres=postgres)
        if postgres:
            for table in WITH_IDS:
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
        raw.commit()
    finally:
        raw.close()
    counts.update(fill_sequences(db, now=now, size=size))
    if postgres:  # autovacuum would do this on a live server
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    return counts


def fill_sequences(db: Database, *, now: datetime = NOW, size: Size = Size()) -> dict[str, int]:
    """The shipped sequences (installed as the demo does), every lead enrolled in the consultation
    follow-up at its own point, the steps it was sent as deliveries with their opens and clicks."""
    from sqlalchemy import func, select

    from newsletter.config import Settings
    from newsletter.models import Delivery, Sequence, SequenceStep
    from newsletter.sequences.service import install_shipped

    settings = Settings(database_url=db.engine.url.render_as_string(hide_password=False), secret_key="s" * 48)
    with db.session() as s:
        install_shipped(s, settings, now - timedelta(days=400))
    with db.session() as s:
        sequence_id = s.scalar(select(Sequence.id).where(Sequence.trigger_type == "lead_created"))
        steps = list(s.execute(select(SequenceStep.id, SequenceStep.delay_seconds)
                               .where(SequenceStep.sequence_id == sequence_id).order_by(SequenceStep.position)))
        first_id = (s.scalar(select(func.max(Delivery.id))) or 0) + 1
    rnd = random.Random(15)
    enrollments, deliveries, events = [], [], []
    n = first_id
    for lead in range(1, size.leads + 1):
        enrolled = now - timedelta(seconds=rnd.randrange(3600, 365 * 86400))
        sent = rnd.randrange(0, len(steps) + 1)
        at, last = enrolled, None
        for step_id, delay in steps[:sent]:
            at = at + timedelta(seconds=delay)
            if at >= now:
                break
            deliveries.append((n, None, lead, None, "delivered", at, 1, at, at, lead, step_id))
            events.append((n, lead, None, None, "delivered", False, "sendgrid", None, at, at))
            if rnd.random() < 0.4:
                events.append((n, lead, None, None, "open", False, "first_party", None, at, at))
                if rnd.random() < 0.15:
                    events.append((n, lead, None, None, "click", False, "first_party", BOOK, at, at))
            last, n = step_id, n + 1
        done = last == steps[-1][0]
        following = None if done else steps[[s for s, _ in steps].index(last) + 1 if last else 0]
        enrollments.append((lead, sequence_id, lead, 1, "completed" if done else "active",
                            following[0] if following else None, (at + timedelta(seconds=following[1]))
                            if following else None, last, at if last else None, enrolled, at if done else None,
                            "trigger"))
    postgres = db.engine.dialect.name == "postgresql"
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        write_rows(cursor, "enrollments", COLUMNS["enrollments"], enrollments, postgres=postgres)
        write_rows(cursor, "deliveries", COLUMNS["deliveries"] + ", enrollment_id, step_id", deliveries,
                   postgres=postgres)
        write_rows(cursor, "events", COLUMNS["events"], events, postgres=postgres)
        if postgres:
            for table in ("enrollments", "deliveries"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
        raw.commit()
    finally:
        raw.close()
    return {"enrollments": len(enrollments), "step deliveries": len(deliveries), "step events": len(events)}
