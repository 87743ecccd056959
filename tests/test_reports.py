"""Reports: exact figures on a small hand-built world, the same on SQLite and PostgreSQL.

The world (rows inserted directly, the way the webhook, the tracking endpoints and the bookings
webhook would leave them):

- issue A, 15 deliveries covering every status and event case (machine opens apart, a click without
  an open, a bounce, unsubscribes of both kinds, a complaint, anonymous events, link order);
- issue B, 2 deliveries: Lou clicks three different links, Rae clicks the booking button;
- sequence "lead-nurture" (steps welcome, what-to-expect, ready) and "welcome" (no steps);
- ten leads, among them Jo's journey: lead -> two nurture emails -> a human click on the booking
  button of the second -> a booking attributed to that step.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Attribution, Delivery, Enrollment, Event, Issue, Link, Post, Sequence, SequenceStep
from newsletter.reports.email_stats import LinkStats, issue_report, merge_links, ranked, sequence_report
from newsletter.reports.follow_up import follow_up_report
from newsletter.reports.funnel import funnel_report
from newsletter.reports.output import follow_up_output, write_csv, write_tables
from newsletter.sequences.service import get_sequence
from subscribers.errors import InputError, NotFound
from subscribers.models import Booking, Contact, Lead, LeadStageChange

runner = CliRunner()
BOOK = "https://clinic.example/book"
STUDY = "https://clinic.example/blog/study"
TEAM = "https://clinic.example/team"


@dataclass
class World:
    """Builds the rows and remembers the ids tests need."""

    s: Session
    now: datetime
    ids: dict[str, int] = field(default_factory=dict)
    contacts: int = 0

    def ago(self, days: float = 0, hours: float = 0) -> datetime:
        return self.now - timedelta(days=days, hours=hours)

    def add(self, row: Any) -> Any:
        self.s.add(row)
        self.s.flush()
        return row

    def contact(self, name: str | None = None) -> Contact:
        self.contacts += 1
        email = f"{(name or f'reader{self.contacts}').lower()}@example.org"
        return self.add(Contact(email=email, email_hash=f"hash-{email}", name=name, timezone="UTC", source="import"))

    def issue(self, subject: str) -> Issue:
        post = self.add(Post(title=subject, source_format="text", blocks=[], reading_minutes=1,
                             content_hash=f"post-{subject}"))
        return self.add(Issue(post_id=post.id, subject=subject, status="sent", html="<p>x</p>", text="x"))

    def link(self, position: int, url: str, label: str, *, issue: Issue | None = None,
             step: SequenceStep | None = None) -> Link:
        return self.add(Link(issue_id=issue.id if issue else None, step_id=step.id if step else None,
                             position=position, url=url, label=label, is_booking=url == BOOK))

    def delivery(self, contact: Contact, status: str, sent_at: datetime, *, issue: Issue | None = None,
                 step: SequenceStep | None = None, enrollment: Enrollment | None = None) -> Delivery:
        return self.add(Delivery(issue_id=issue.id if issue else None, step_id=step.id if step else None,
                                 enrollment_id=enrollment.id if enrollment else None, contact_id=contact.id,
                                 status=status, due_at=sent_at, created_at=sent_at,
                                 submitted_at=sent_at if status not in ("queued", "suppressed", "failed") else None))

    def event(self, delivery: Delivery | None, kind: str, at: datetime, *, machine: bool = False,
              link: Link | None = None, url: str | None = None, source: str = "first_party",
              issue: Issue | None = None) -> None:
        self.add(Event(delivery_id=delivery.id if delivery else None,
                       contact_id=delivery.contact_id if delivery else None,
                       issue_id=delivery.issue_id if delivery else issue.id if issue else None,
                       step_id=delivery.step_id if delivery else None,
                       link_id=link.id if link else None, url=url or (link.url if link else None),
                       type=kind, machine=machine, source=source, occurred_at=at))

    def lead(self, name: str, source: str, created: datetime, *, stage: str = "new", phone: str | None = None,
             requested: datetime | None = None, contact: Contact | None = None) -> Lead:
        contact = contact or self.contact(name)
        lead = self.add(Lead(contact_id=contact.id, source=source, stage="new", created_at=created,
                             requested_at=requested or created, phone=phone,
                             preferred_contact="phone" if phone else "email"))
        self.add(LeadStageChange(lead_id=lead.id, from_stage=None, to_stage="new", by="api", at=created))
        if stage != "new":
            self.stage(lead, stage, created)
        self.ids[name] = lead.id
        return lead

    def stage(self, lead: Lead, stage: str, at: datetime) -> None:
        self.add(LeadStageChange(lead_id=lead.id, from_stage=lead.stage, to_stage=stage, by="staff", at=at))
        lead.stage = stage

    def book(self, lead: Lead, at: datetime, *, delivery: Delivery | None = None, kind: str = "click",
             event_at: datetime | None = None) -> Booking:
        booking = self.add(Booking(lead_id=lead.id, recorded_at=at, booked_for=at + timedelta(days=3),
                                   origin="api", source=lead.source))
        self.add(LeadStageChange(lead_id=lead.id, from_stage=lead.stage, to_stage="booked", by="booking", at=at))
        lead.stage = "booked"
        if delivery is not None:
            self.add(Attribution(booking_id=booking.id, delivery_id=delivery.id, issue_id=delivery.issue_id,
                                 step_id=delivery.step_id, kind=kind, event_at=event_at or at))
        return booking


def build_world(db: Database, now: datetime) -> dict[str, int]:
    with db.session() as s:
        w = World(s, now)
        _issue_a(w)
        _nurture_and_leads(w)
        return w.ids


def _issue_a(w: World) -> None:
    a = w.issue("Small steps for steadier days")
    w.ids["issue_a"] = a.id
    study = w.link(1, STUDY, "Read the study", issue=a)
    book = w.link(2, BOOK, "Book a consultation", issue=a)
    team = w.link(3, TEAM, "Meet the team", issue=a)
    sent, t = w.ago(13), w.ago(13, -1)  # events an hour after sending
    # d1..d14 but d3 go to readers who are not leads; d3 and d15 to leads (below).
    statuses = {1: "delivered", 2: "delivered", 4: "delivered", 5: "bounced", 6: "delivered", 7: "delivered",
                8: "submitted", 9: "suppressed", 10: "unknown", 11: "unknown", 12: "queued", 13: "failed",
                14: "delivered"}
    d = {n: w.delivery(w.contact(), status, sent, issue=a) for n, status in statuses.items()}
    # d1: human open, two human clicks on the study.
    for kind, link in (("delivered", None), ("open", None), ("click", study), ("click", study)):
        w.event(d[1], kind, t, link=link, source="sendgrid" if kind == "delivered" else "first_party")
    # d2: only Apple's proxy opened it.
    w.event(d[2], "delivered", t, source="sendgrid")
    w.event(d[2], "open", t, machine=True)
    # d4: a person and a proxy.
    for machine in (False, True):
        w.event(d[4], "open", t, machine=machine)
    w.event(d[5], "bounce", t, source="sendgrid")
    # d6: opened, then one-click unsubscribe on our own endpoint; d7: opened, then a spam report.
    w.event(d[6], "open", t)
    w.event(d[6], "unsubscribe", t)
    w.event(d[7], "open", t)
    w.event(d[7], "spamreport", t, source="sendgrid")
    # d10: status unknown, but SendGrid reported it delivered: the request arrived.
    w.event(d[10], "delivered", t, source="sendgrid")
    # d14: a link scanner: machine open and machine click only.
    w.event(d[14], "open", t, machine=True)
    w.event(d[14], "click", t, machine=True, link=study)
    # Anonymous tracking events: the issue, no delivery.
    w.event(None, "open", t, issue=a)
    w.event(None, "click", t, link=study, issue=a)
    # d3 (Ada, a lead): clicks the booking button without an open (images blocked), also seen by
    # SendGrid as a bare URL; books the next day.
    ada = w.lead("Ada", "referral", w.ago(40))
    d3 = w.delivery(s_contact(w, ada), "delivered", sent, issue=a)
    w.event(d3, "click", t, link=book)
    w.event(d3, "click", t, url=BOOK, source="sendgrid")
    w.book(ada, w.ago(12), delivery=d3, event_at=t)
    w.stage(ada, "attended", w.ago(11))
    # d15 (Tia, a lead): opens, clicks the study once and the team page three times, then leaves the group.
    tia = w.lead("Tia", "web_form", w.ago(50))
    d15 = w.delivery(s_contact(w, tia), "delivered", sent, issue=a)
    w.event(d15, "open", w.ago(13, -2))
    w.event(d15, "click", w.ago(13, -2), link=study)
    for _ in range(3):
        w.event(d15, "click", w.ago(13, -2), link=team)
    w.event(d15, "group_unsubscribe", w.ago(13, -3), source="sendgrid")


def s_contact(w: World, lead: Lead) -> Contact:
    return w.s.get(Contact, lead.contact_id)


def _nurture_and_leads(w: World) -> None:
    nurture = w.add(Sequence(name="lead-nurture", trigger_type="lead_created", definition={}))
    welcome_seq = w.add(Sequence(name="welcome", trigger_type="list_confirmed", trigger_value="newsletter",
                                 definition={}))
    steps = [w.add(SequenceStep(sequence_id=nurture.id, key=key, position=n, delay_seconds=86400 * n,
                                subject=subject, html="<p>x</p>", text="x"))
             for n, (key, subject) in enumerate([("welcome", "Welcome"), ("what-to-expect", "What to expect"),
                                                 ("ready", "Ready when you are")], start=1)]
    w.ids.update(step_welcome=steps[0].id, step_expect=steps[1].id, step_ready=steps[2].id)
    s1_book = w.link(1, BOOK, "Book a consultation", step=steps[0])
    s2_book = w.link(1, BOOK, "Book a consultation", step=steps[1])

    def enrol(lead: Lead, sequence: Sequence = nurture) -> Enrollment:
        return w.add(Enrollment(sequence_id=sequence.id, contact_id=lead.contact_id, enrolled_at=lead.created_at))

    def step_email(lead: Lead, enrollment: Enrollment, n: int, at: datetime) -> Delivery:
        return w.delivery(s_contact(w, lead), "delivered", at, step=steps[n], enrollment=enrollment)

    # Jo's journey: two nurture emails, a human click on the second's booking button, a booking.
    jo = w.lead("Jo", "web_form", w.ago(10))
    e = enrol(jo)
    w.event(step_email(jo, e, 0, w.ago(9)), "open", w.ago(9, -1))
    jo_second = step_email(jo, e, 1, w.ago(5))
    w.event(jo_second, "click", w.ago(4), link=s2_book)
    w.book(jo, w.ago(4, -2), delivery=jo_second, event_at=w.ago(4))
    # Wendy: clicked the booking button two days ago, not booked: a call to make.
    wendy = w.lead("Wendy", "campaign", w.ago(20), stage="contacted", phone="+14155550100")
    w.event(step_email(wendy, enrol(wendy), 0, w.ago(19)), "click", w.ago(2), link=s1_book)
    # Max: only a link scanner and a proxy touched his email.
    max_ = w.lead("Max", "web_form", w.ago(8))
    d = step_email(max_, enrol(max_), 0, w.ago(7))
    w.event(d, "open", w.ago(1), machine=True)
    w.event(d, "click", w.ago(1), machine=True, link=s1_book)
    # Bea: clicked the booking button and booked: no call needed.
    bea = w.lead("Bea", "phone", w.ago(30), phone="+14155550101")
    bea_email = step_email(bea, enrol(bea), 0, w.ago(5))
    w.event(bea_email, "click", w.ago(3), link=s1_book)
    w.book(bea, w.ago(1), delivery=bea_email, event_at=w.ago(3))
    # Old: clicked the booking button twenty days ago: outside the default 14 days.
    old = w.lead("Old", "import", w.ago(25))
    w.event(step_email(old, enrol(old), 0, w.ago(21)), "click", w.ago(20), link=s1_book)
    # Pat: a phone enquiry booked on the next day's call; never emailed.
    pat = w.lead("Pat", "phone", w.ago(3), phone="+14155550102")
    w.book(pat, w.ago(2))
    # Issue B: Lou clicks three different links; Rae (booked long ago, lost, enquired again) the button.
    b = w.issue("Sleep and mood")
    w.ids["issue_b"] = b.id
    links = [w.link(n, url, label, issue=b) for n, (url, label) in enumerate(
        [("https://clinic.example/a", "Article A"), ("https://clinic.example/b", "Article B"),
         ("https://clinic.example/c", "Article C"), (BOOK, "Book a consultation")], start=1)]
    lou = w.lead("Lou", "web_form", w.ago(6))
    enrol(lou, welcome_seq)
    lou_email = w.delivery(s_contact(w, lou), "delivered", w.ago(2), issue=b)
    for n, link in enumerate(links[:3]):
        w.event(lou_email, "click", w.ago(0, 6 + n), link=link)
    rae = w.lead("Rae", "web_form", w.ago(100))
    w.book(rae, w.ago(90))
    w.stage(rae, "lost", w.ago(60))
    w.stage(rae, "new", w.ago(5))
    rae.requested_at = w.ago(5)
    w.event(w.delivery(s_contact(w, rae), "delivered", w.ago(2), issue=b), "click", w.ago(1, 1), link=links[3])


NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def world(db: Database) -> dict[str, int]:
    return build_world(db, NOW)


# --- the issue report -------------------------------------------------------------------------------

ISSUE_A = {
    "recipients": 14, "sent": 11, "delivered": 9, "bounced": 1, "dropped": 0, "pending": 1, "failed": 1,
    "unknown": 1, "suppressed": 1, "unique_opens": 6, "machine_opens": 3, "unique_clicks": 3,
    "machine_clicks": 1, "unsubscribes": 2, "complaints": 1, "anonymous_opens": 1, "anonymous_clicks": 1,
    "bookings": 1, "ctr": 0.3333, "ctor": 0.5,
}
ISSUE_A_LINKS = [
    {"url": STUDY, "label": "Read the study", "is_booking": False, "unique_clickers": 2, "clicks": 4},
    {"url": TEAM, "label": "Meet the team", "is_booking": False, "unique_clickers": 1, "clicks": 3},
    {"url": BOOK, "label": "Book a consultation", "is_booking": True, "unique_clickers": 1, "clicks": 2},
]


def test_issue_figures_follow_the_definitions(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        data = issue_report(s, world["issue_a"]).as_dict()
    assert {k: data[k] for k in ISSUE_A} == ISSUE_A
    assert data["top_links"] == ISSUE_A_LINKS
    assert (data["subject"], data["status"]) == ("Small steps for steadier days", "sent")


def test_machine_only_activity_is_kept_apart_from_people(db: Database, world: dict[str, int]) -> None:
    """d2 (proxy open) and d14 (scanner open and click) count as delivered, never as opened or clicked."""
    with db.session() as s:
        stats = issue_report(s, world["issue_a"]).stats
    assert stats.machine_opens == 3 and stats.machine_clicks == 1
    assert stats.unique_opens == 6  # d1, d3 (click without open), d4, d6, d7, d15
    assert stats.unique_clicks <= stats.unique_opens <= stats.delivered <= stats.sent <= stats.recipients


def test_an_issue_with_no_deliveries_reports_zeros_and_no_rates(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        empty = World(s, NOW).issue("Not sent yet")
        data = issue_report(s, empty.id).as_dict()
    assert data["recipients"] == data["sent"] == data["unique_opens"] == 0
    assert data["ctr"] is None and data["ctor"] is None and data["top_links"] == []


def test_an_unknown_issue_is_not_found(db: Database) -> None:
    with db.session() as s, pytest.raises(NotFound, match="no issue 404"):
        issue_report(s, 404)


# --- the sequence report ----------------------------------------------------------------------------


def _figures(row: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("recipients", "sent", "delivered", "unique_opens", "machine_opens", "unique_clicks", "machine_clicks",
            "ctr", "ctor", "bookings")
    return tuple(row[k] for k in keys)


def test_sequence_report_per_step_and_totals(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        data = sequence_report(s, get_sequence(s, "lead-nurture")).as_dict()
    assert [(r["position"], r["key"]) for r in data["steps"]] == [(1, "welcome"), (2, "what-to-expect"), (3, "ready")]
    welcome, expect, ready = data["steps"]
    # welcome: Jo opened; Wendy, Bea and Old clicked the button; Max's were machines.
    assert _figures(welcome) == (5, 5, 5, 4, 1, 3, 1, 0.6, 0.75, 1)
    assert welcome["top_links"] == [{"url": BOOK, "label": "Book a consultation", "is_booking": True,
                                     "unique_clickers": 3, "clicks": 3}]
    assert _figures(expect) == (1, 1, 1, 1, 0, 1, 0, 1.0, 1.0, 1)  # Jo's click, credited with her booking
    assert _figures(ready) == (0, 0, 0, 0, 0, 0, 0, None, None, 0)
    assert _figures(data["totals"]) == (6, 6, 6, 5, 1, 4, 1, 0.6667, 0.8, 2)
    # The same target in two steps is one line of the totals.
    assert data["totals"]["top_links"] == [{"url": BOOK, "label": "Book a consultation", "is_booking": True,
                                            "unique_clickers": 4, "clicks": 4}]


def test_sequence_totals_rank_every_link_not_only_each_steps_top_ten() -> None:
    """A target eleventh in two steps can lead the totals: totals merge the full lists."""
    def step(shared_clickers: int) -> list[LinkStats]:
        own = [LinkStats(f"https://clinic.example/{shared_clickers}/{n}", "", False, 5, 5) for n in range(10)]
        return ranked(own + [LinkStats(STUDY, "Read the study", False, 4, 4)])

    first, second = step(1), step(2)
    assert STUDY not in [link.url for link in first[:10]] + [link.url for link in second[:10]]
    totals = merge_links([first, second])
    assert (totals[0].url, totals[0].unique_clickers, totals[0].clicks) == (STUDY, 8, 8)
    assert len(totals) == 21


# --- the funnel -------------------------------------------------------------------------------------


def _stages(funnel: dict[str, Any]) -> tuple[int, ...]:
    return tuple(funnel[k] for k in ("leads", "emailed", "engaged", "booked", "attended", "attributed"))


def test_funnel_counts_rates_and_median_time_to_book(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        data = funnel_report(s).as_dict()
    total = data["total"]
    # Ten leads; Pat was never emailed; Max's clicks were machines; Jo, Bea, Ada, Pat and Rae booked.
    assert _stages(total) == (10, 9, 8, 5, 1, 3)
    assert [(r["stage"], r["count"], r["rate_from_previous"], r["rate_overall"]) for r in total["stages"]] == [
        ("leads", 10, None, 1.0), ("emailed", 9, 0.9, 0.9), ("engaged", 8, 0.8889, 0.8),
        ("booked", 5, 0.625, 0.5), ("attended", 1, 0.2, 0.1)]
    # Hours from lead to first booking: Pat 24, Jo 146, Rae 240, Ada 672, Bea 696.
    assert total["median_hours_to_book"] == 240.0
    assert list(data["by_source"]) == ["web_form", "phone", "campaign", "import", "referral"]
    assert _stages(data["by_source"]["web_form"]) == (5, 5, 4, 2, 0, 1)
    assert data["by_source"]["web_form"]["median_hours_to_book"] == 193.0
    assert _stages(data["by_source"]["phone"]) == (2, 1, 1, 2, 0, 1)
    assert data["by_source"]["phone"]["median_hours_to_book"] == 360.0
    assert _stages(data["by_source"]["referral"]) == (1, 1, 1, 1, 1, 1)
    assert _stages(data["by_sequence"]["lead-nurture"]) == (5, 5, 4, 2, 0, 2)
    assert data["by_sequence"]["lead-nurture"]["median_hours_to_book"] == 421.0
    assert _stages(data["by_sequence"]["welcome"]) == (1, 1, 1, 0, 0, 0)


def test_jos_journey_shows_in_the_funnel_and_the_attribution(db: Database, world: dict[str, int]) -> None:
    """Lead -> two nurture emails -> a human click on the booking button -> a booking credited to the step."""
    with db.session() as s:
        window = funnel_report(s, since=NOW - timedelta(days=10, seconds=1), until=NOW - timedelta(days=9)).as_dict()
        everything = funnel_report(s).as_dict()
        expect = sequence_report(s, get_sequence(s, "lead-nurture")).steps[1]
    assert _stages(window["total"]) == (1, 1, 1, 1, 0, 1)  # only Jo was created then
    assert window["total"]["median_hours_to_book"] == 146.0  # six days and two hours
    assert window["by_sequence"] == {"lead-nurture": window["total"]}
    assert everything["bookings_by_step"] == [
        {"step_id": world["step_welcome"], "name": "lead-nurture / welcome", "subject": "Welcome",
         "bookings": 1, "by_click": 1, "by_open": 0},
        {"step_id": world["step_expect"], "name": "lead-nurture / what-to-expect", "subject": "What to expect",
         "bookings": 1, "by_click": 1, "by_open": 0},
    ]
    assert everything["bookings_by_issue"] == [
        {"issue_id": world["issue_a"], "name": "Small steps for steadier days",
         "subject": "Small steps for steadier days", "bookings": 1, "by_click": 1, "by_open": 0}]
    assert (expect.key, expect.stats.unique_clicks, expect.stats.bookings) == ("what-to-expect", 1, 1)


def test_funnel_filters_by_window_and_source(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        recent = funnel_report(s, since=NOW - timedelta(days=15)).as_dict()
        phone = funnel_report(s, source="phone").as_dict()
    assert _stages(recent["total"]) == (4, 3, 2, 2, 0, 1)  # Jo, Max, Lou, Pat
    # Bookings per email follow the booking time: all three attributed bookings are in the last 15 days.
    assert [r["bookings"] for r in recent["bookings_by_step"] + recent["bookings_by_issue"]] == [1, 1, 1]
    assert _stages(phone["total"]) == (2, 1, 1, 2, 0, 1)  # Bea and Pat
    assert list(phone["by_source"]) == ["phone"]
    assert [r["name"] for r in phone["bookings_by_step"]] == ["lead-nurture / welcome"]  # Bea's
    assert phone["bookings_by_issue"] == []


def test_funnel_refuses_bad_filters(db: Database) -> None:
    with db.session() as s:
        with pytest.raises(InputError, match="source must be one of"):
            funnel_report(s, source="newsletter")
        with pytest.raises(InputError, match="must be before"):
            funnel_report(s, since=NOW, until=NOW - timedelta(days=1))


# --- follow-up --------------------------------------------------------------------------------------


def test_follow_up_lists_warm_leads_newest_first(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        report = follow_up_report(s, now=NOW)
    # Lou: three links 6-8 hours ago; Rae: the button 25 hours ago (her old booking predates this enquiry);
    # Wendy: the button two days ago; Tia: opened and clicked two links 12 days 22 hours ago. Not Bea
    # (booked), Ada (attended), Jo (booked), Max (machines only), Old (twenty days ago).
    assert [(w.name, w.booking_click, w.links_clicked) for w in report.leads] == [
        ("Lou", False, 3), ("Rae", True, 1), ("Wendy", True, 1), ("Tia", False, 2)]
    lou, rae, wendy, tia = report.leads
    assert lou.last_click_at == lou.last_active_at == NOW - timedelta(hours=6) and lou.last_opened_at is None
    assert lou.clicked_text == "Article A; Article B; Article C"
    assert (lou.reason.kind, lou.reason.email, lou.reason.at) == ("clicked", "Sleep and mood", NOW - timedelta(hours=6))
    assert lou.reason.text() == "clicked 3 links (“Article A”, “Article B”, “Article C”), the latest in “Sleep and mood”"
    assert rae.reason.text() == "clicked “Book a consultation” in “Sleep and mood”"
    assert (wendy.email, wendy.phone, wendy.preferred_contact, wendy.source, wendy.stage) == (
        "wendy@example.org", "+14155550100", "phone", "campaign", "contacted")
    assert wendy.clicked_text == "Book a consultation"
    assert (wendy.reason.kind, wendy.reason.email) == ("booking_click", "lead-nurture / welcome")
    assert tia.last_opened_at == tia.last_click_at == NOW - timedelta(days=13, hours=-2)
    assert tia.opened_email == "Small steps for steadier days" and tia.clicked[0].clicks == 1
    assert [(c.label, c.clicks) for c in tia.clicked] == [("Read the study", 1), ("Meet the team", 3)]


def test_follow_up_window_is_a_setting(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        month = [w.name for w in follow_up_report(s, now=NOW, days=30).leads]
        day = [w.name for w in follow_up_report(s, now=NOW, days=1).leads]
        with pytest.raises(InputError, match="at least 1"):
            follow_up_report(s, now=NOW, days=0)
    assert month == ["Lou", "Rae", "Wendy", "Tia", "Old"]  # Old's click of twenty days ago
    assert day == ["Lou"]


def test_follow_up_csv_has_the_contact_fields_staff_call_with(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        output = follow_up_output(follow_up_report(s, now=NOW))
    buffer = io.StringIO()
    write_csv(output.tables, buffer)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert [(r["name"], r["email"], r["phone"], r["booking_click"]) for r in rows] == [
        ("Lou", "lou@example.org", "", "false"), ("Rae", "rae@example.org", "", "true"),
        ("Wendy", "wendy@example.org", "+14155550100", "true"), ("Tia", "tia@example.org", "", "false")]
    assert rows[2]["why"] == "clicked “Book a consultation” in “lead-nurture / welcome”"
    assert rows[2]["why_at"] == rows[2]["last_click_at"] == rows[2]["last_active_at"] == (
        NOW - timedelta(days=2)).isoformat()
    assert (rows[3]["opened_email"], rows[3]["last_opened_at"]) == (
        "Small steps for steadier days", (NOW - timedelta(days=13, hours=-2)).isoformat())


def _emailed(w: World, lead: Lead, subject: str) -> tuple[Delivery, Link, Link]:
    """``lead`` was sent issue ``subject`` a week ago; returns the delivery, its article link and its booking button."""
    issue = w.issue(subject)
    article = w.link(1, f"https://clinic.example/{len(subject)}", f"Article of {subject}", issue=issue)
    button = w.link(2, BOOK, "Book a consultation", issue=issue)
    return w.delivery(s_contact(w, lead), "delivered", w.ago(7), issue=issue), article, button


def test_follow_up_an_open_alone_makes_a_lead_warm(db: Database) -> None:
    with db.session() as s:
        w = World(s, NOW)
        olive = w.lead("Olive", "web_form", w.ago(10), phone="+14155550104")
        email, _, _ = _emailed(w, olive, "Sleep and mood")
        w.event(email, "open", w.ago(hours=5))
        w.event(email, "open", w.ago(hours=3))  # read it again
        report = follow_up_report(s, now=NOW)
        output = follow_up_output(report)
    [lead] = report.leads
    assert (lead.name, lead.last_active_at, lead.last_opened_at, lead.opened_email) == (
        "Olive", NOW - timedelta(hours=3), NOW - timedelta(hours=3), "Sleep and mood")
    assert (lead.last_click_at, lead.booking_click, lead.links_clicked, lead.clicked) == (None, False, 0, [])
    assert (lead.reason.kind, lead.reason.email, lead.reason.at) == ("opened", "Sleep and mood", NOW - timedelta(hours=3))
    assert lead.reason.text("3 hours ago") == "opened “Sleep and mood” 3 hours ago"
    buffer = io.StringIO()
    write_csv(output.tables, buffer)
    [row] = csv.DictReader(io.StringIO(buffer.getvalue()))
    assert (row["why"], row["last_click_at"], row["clicked"], row["links_clicked"], row["booking_click"]) == (
        "opened “Sleep and mood”", "", "", "0", "false")
    console = Console(file=io.StringIO(), width=300)
    write_tables(output, console)
    assert "opened “Sleep and mood”" in console.file.getvalue()
    assert output.data["leads"][0]["reason"]["kind"] == "opened"


def test_follow_up_machines_never_make_a_lead_warm(db: Database) -> None:
    with db.session() as s:
        w = World(s, NOW)
        proxied = w.lead("Proxied", "web_form", w.ago(10))
        email, _, _ = _emailed(w, proxied, "Sleep and mood")
        w.event(email, "open", w.ago(hours=2), machine=True)  # Apple's privacy proxy
        scanned = w.lead("Scanned", "web_form", w.ago(10))
        email, article, button = _emailed(w, scanned, "Small steps")
        for link in (article, button):  # a link scanner follows every link
            w.event(email, "click", w.ago(hours=1), machine=True, link=link)
        w.event(email, "click", w.ago(hours=1), machine=True, url=BOOK, source="sendgrid")
        assert follow_up_report(s, now=NOW).leads == []


def test_follow_up_never_lists_a_booked_lead(db: Database) -> None:
    with db.session() as s:
        w = World(s, NOW)
        for name, stage in (("Booked", "booked"), ("Attended", "attended"), ("Lost", "lost")):
            lead = w.lead(name, "web_form", w.ago(20), stage=stage)
            email, _, button = _emailed(w, lead, f"Issue for {name}")
            w.event(email, "open", w.ago(hours=4))
            w.event(email, "click", w.ago(hours=4), link=button)
        # Still new in the board's eyes, but a booking was recorded since the enquiry (webhook first).
        fresh = w.lead("Fresh", "web_form", w.ago(5))
        email, _, _ = _emailed(w, fresh, "Issue for Fresh")
        w.event(email, "open", w.ago(hours=2))
        w.add(Booking(lead_id=fresh.id, recorded_at=w.ago(1), booked_for=NOW + timedelta(days=2), origin="api",
                      source="web_form"))
        assert follow_up_report(s, now=NOW).leads == []


def test_follow_up_is_ordered_by_latest_activity(db: Database) -> None:
    with db.session() as s:
        w = World(s, NOW)
        leads = {name: w.lead(name, "web_form", w.ago(10)) for name in ("Ann", "Ben", "Cy", "Di", "Ed")}
        emails = {name: _emailed(w, lead, f"For {name}") for name, lead in leads.items()}
        w.event(emails["Ann"][0], "click", w.ago(3), link=emails["Ann"][2])  # the button three days ago...
        w.event(emails["Ann"][0], "open", w.ago(hours=1))  # ...and an open an hour ago
        w.event(emails["Ben"][0], "open", w.ago(hours=2))
        w.event(emails["Cy"][0], "click", w.ago(hours=0.5), link=emails["Cy"][1])
        for name in ("Di", "Ed"):  # the same moment: the newer lead first
            w.event(emails[name][0], "open", w.ago(1))
        report = follow_up_report(s, now=NOW)
    assert [(lead.name, lead.last_active_at) for lead in report.leads] == [
        ("Cy", NOW - timedelta(minutes=30)), ("Ann", NOW - timedelta(hours=1)), ("Ben", NOW - timedelta(hours=2)),
        ("Ed", NOW - timedelta(days=1)), ("Di", NOW - timedelta(days=1))]


def test_follow_up_reason_is_the_strongest_sign(db: Database) -> None:
    """A booking click beats a later plain click, which beats a later open."""
    with db.session() as s:
        w = World(s, NOW)
        booker, clicker = w.lead("Booker", "web_form", w.ago(10)), w.lead("Clicker", "web_form", w.ago(10))
        email, article, button = _emailed(w, booker, "Sleep and mood")
        later, later_article, _ = _emailed(w, booker, "Small steps")
        w.event(email, "click", w.ago(3), link=button)
        w.event(later, "click", w.ago(2), link=later_article)
        w.event(later, "open", w.ago(hours=1))
        email, article, _ = _emailed(w, clicker, "What to expect")
        w.event(email, "click", w.ago(2), link=article)
        w.event(email, "open", w.ago(hours=1))
        report = follow_up_report(s, now=NOW)
    # Both were last active an hour ago: the newer lead first.
    assert [lead.name for lead in report.leads] == ["Clicker", "Booker"]
    by_name = {lead.name: lead for lead in report.leads}
    booker_reason, clicker_reason = by_name["Booker"].reason, by_name["Clicker"].reason
    assert (booker_reason.kind, booker_reason.email, booker_reason.at) == ("booking_click", "Sleep and mood", NOW - timedelta(days=3))
    assert booker_reason.text("3 days ago") == (
        "clicked “Book a consultation” in “Sleep and mood” 3 days ago; 2 links clicked in all")
    assert by_name["Booker"].clicked_text == "Book a consultation; Article of Small steps"
    assert (by_name["Booker"].last_active_at, by_name["Booker"].last_opened_at) == (
        NOW - timedelta(hours=1), NOW - timedelta(hours=1))
    assert (clicker_reason.kind, clicker_reason.email, clicker_reason.at) == ("clicked", "What to expect", NOW - timedelta(days=2))
    assert clicker_reason.text("2 days ago") == "clicked “Article of What to expect” in “What to expect” 2 days ago"


def test_output_keeps_names_as_text_in_csv_and_tables(db: Database) -> None:
    """Names come from the public form: a formula stays text in a spreadsheet, brackets stay text in rich."""
    with db.session() as s:
        w = World(s, NOW)
        lead = w.lead("=HYPERLINK(x)", "web_form", w.ago(3), phone="+14155550103")
        issue = w.issue("[Update] sleep")
        booking_link = w.link(1, BOOK, "[b]Book[/b]", issue=issue)
        email = w.delivery(s_contact(w, lead), "delivered", w.ago(2), issue=issue)
        w.event(email, "click", w.ago(1), link=booking_link)
        output = follow_up_output(follow_up_report(s, now=NOW))
    buffer = io.StringIO()
    write_csv(output.tables, buffer)
    row = next(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert (row["name"], row["phone"], row["clicked"]) == ("'=HYPERLINK(x)", "+14155550103", "[b]Book[/b]")
    console = Console(file=io.StringIO(), width=300)
    write_tables(output, console)
    shown = console.file.getvalue()
    assert "=HYPERLINK(x)" in shown and "[b]Book[/b]" in shown


# --- the command ------------------------------------------------------------------------------------


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["report", *args])
    assert result.exit_code == code, result.output
    return result.output


def csv_blocks(text: str) -> list[list[dict[str, str]]]:
    return [list(csv.DictReader(io.StringIO(block))) for block in text.strip().split("\n\n")]


def test_cli_issue_as_json_csv_and_table(settings: Settings, db: Database, world: dict[str, int]) -> None:
    issue = str(world["issue_a"])
    data = json.loads(run("issue", issue, "--json"))
    assert {k: data[k] for k in ISSUE_A} == ISSUE_A and data["top_links"] == ISSUE_A_LINKS
    figures, links = csv_blocks(run("issue", issue, "--csv"))
    assert len(figures) == 1
    assert {k: figures[0][k] for k in ("recipients", "sent", "delivered", "unique_opens", "machine_opens", "ctr",
                                       "ctor", "unsubscribes", "complaints")} == {
        "recipients": "14", "sent": "11", "delivered": "9", "unique_opens": "6", "machine_opens": "3",
        "ctr": "0.3333", "ctor": "0.5", "unsubscribes": "2", "complaints": "1"}
    assert [(r["rank"], r["url"], r["unique_clickers"], r["clicks"]) for r in links] == [
        ("1", STUDY, "2", "4"), ("2", TEAM, "1", "3"), ("3", BOOK, "1", "2")]
    table = run("issue", issue)
    assert "33.3%" in table and "Top links" in table and "Read the study" in table


def test_cli_sequence_funnel_and_follow_up(settings: Settings, db: Database, world: dict[str, int]) -> None:
    steps, top = csv_blocks(run("sequence", "lead-nurture", "--csv"))
    assert [(r["key"], r["recipients"], r["unique_clicks"], r["bookings"]) for r in steps] == [
        ("welcome", "5", "3", "1"), ("what-to-expect", "1", "1", "1"), ("ready", "0", "0", "0"),
        ("total", "6", "4", "2")]
    assert [(r["url"], r["unique_clickers"]) for r in top] == [(BOOK, "4")]

    breakdown, emails = csv_blocks(run("funnel", "--csv"))
    assert [(r["group"], r["name"], r["leads"], r["booked"]) for r in breakdown] == [
        ("all", "all", "10", "5"), ("source", "web_form", "5", "2"), ("source", "phone", "2", "2"),
        ("source", "campaign", "1", "0"), ("source", "import", "1", "0"), ("source", "referral", "1", "1"),
        ("sequence", "lead-nurture", "5", "2"), ("sequence", "welcome", "1", "0")]
    assert (breakdown[0]["engaged_rate"], breakdown[0]["median_hours_to_book"]) == ("0.8889", "240.0")
    assert [(r["kind"], r["name"], r["bookings"]) for r in emails] == [
        ("issue", "Small steps for steadier days", "1"), ("step", "lead-nurture / welcome", "1"),
        ("step", "lead-nurture / what-to-expect", "1")]
    since = (NOW - timedelta(days=15)).isoformat()
    phone = json.loads(run("funnel", "--since", since, "--source", "phone", "--json"))
    assert _stages(phone["total"]) == (1, 0, 0, 1, 0, 0)  # Pat only
    assert "Funnel" in run("funnel") and "median h to book" in run("funnel")

    warm = json.loads(run("follow-up", "--json"))
    assert [lead["email"] for lead in warm["leads"]] == [
        "lou@example.org", "rae@example.org", "wendy@example.org", "tia@example.org"]
    assert warm["leads"][2]["clicked"][0]["url"] == BOOK and warm["days"] == 14
    assert warm["leads"][2]["reason"]["kind"] == "booking_click"
    assert [r["name"] for r in csv_blocks(run("follow-up", "--days", "30", "--csv"))[0]] == [
        "Lou", "Rae", "Wendy", "Tia", "Old"]
    table = run("follow-up")
    assert "Wendy" in table and "opened or clicked in the last 14 days" in table
    assert "clicked “Book a consultation” in “lead-nurture / welcome”" in table


def test_cli_errors_are_one_clear_line(settings: Settings, db: Database) -> None:
    assert "there is no issue 7" in run("issue", "7", code=1)
    assert "there is no sequence 'nope'" in run("sequence", "nope", code=1)
    assert "choose one of --json and --csv" in run("funnel", "--json", "--csv", code=2)
    assert "is not an ISO 8601 date" in run("funnel", "--since", "last week", code=2)
    assert "has no time zone" in run("funnel", "--until", "2026-01-01T09:00", code=2)
    assert "source must be one of" in run("funnel", "--source", "tv", code=2)
    assert "--days must be at least 1" in run("follow-up", "--days", "0", code=2)
    empty = json.loads(run("funnel", "--json"))
    assert _stages(empty["total"]) == (0, 0, 0, 0, 0, 0) and empty["total"]["median_hours_to_book"] is None


# --- the same figures on PostgreSQL -----------------------------------------------------------------


def all_reports(db: Database, ids: dict[str, int]) -> dict[str, Any]:
    with db.session() as s:
        return {
            "issue_a": issue_report(s, ids["issue_a"]).as_dict(),
            "issue_b": issue_report(s, ids["issue_b"]).as_dict(),
            "sequence": sequence_report(s, get_sequence(s, "lead-nurture")).as_dict(),
            "funnel": funnel_report(s).as_dict(),
            "funnel_recent_phone": funnel_report(s, since=NOW - timedelta(days=40), source="phone").as_dict(),
            "follow_up": follow_up_report(s, now=NOW, days=30).as_dict(),
        }


@pytest.mark.postgres
def test_postgresql_gives_the_same_figures_as_sqlite(db: Database, postgres_db: Database) -> None:
    sqlite = all_reports(db, build_world(db, NOW))
    postgres = all_reports(postgres_db, build_world(postgres_db, NOW))
    assert postgres == sqlite
    assert {k: postgres["issue_a"][k] for k in ISSUE_A} == ISSUE_A
    assert _stages(postgres["funnel"]["total"]) == (10, 9, 8, 5, 1, 3)
