"""The staff home page's figures and charts, on a small history made through the real services: an
issue sent by the dispatcher, opens and clicks recorded by the first-party endpoints' functions (people,
Apple's privacy proxy, a link scanner), a lead who books through the booking service (attributed by the
wired listener), subscriptions through the consent service."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from sqlalchemy import select, update

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Delivery, Issue, Link
from newsletter.reports import charts, dashboard
from newsletter.reports.email_stats import issue_report
from newsletter.reports.funnel import funnel_report
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.tracking.first_party import Request, record_click, record_open
from newsletter.urls import delivery_token, pixel_key
from subscribers.consent import Proof, unsubscribe
from subscribers.contacts import find_contact
from subscribers.leads import add_lead, record_booking
from subscribers.models import Lead, MailingList, Subscription
from tests.audience import subscriber
from tests.sendkit import ScriptedTransport, add_audience, make_issue

LA = "America/Los_Angeles"
NOW = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)  # a Thursday; 09:00 in Los Angeles
SENT = NOW - timedelta(days=1)
PERSON = Request("GET", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                        "Chrome/120.0 Safari/537.36", "198.51.100.7")
APPLE_PROXY = Request("GET", PERSON.user_agent, "17.58.1.1")
SCANNER = Request("GET", "Proofpoint URL Defense", "203.0.113.9")


def send(db: Database, settings: Settings, issue_id: int, at: datetime, **overrides: int) -> Dispatcher:
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), at)
    return Dispatcher(settings.model_copy(update=overrides), db, ScriptedTransport(), sleep=lambda _: None,
                      clock=lambda: at)


def sent_issue(db: Database, settings: Settings) -> tuple[int, dict[str, int]]:
    """Issue 'Small steps' sent to reader0..4 at SENT; returns its id and the deliveries by address."""
    add_audience(db, 5)
    issue_id = make_issue(db, settings)
    send(db, settings, issue_id, SENT).run_until_idle()
    with db.session() as s:
        rows = s.execute(select(Delivery.id, Delivery.contact_id).where(Delivery.issue_id == issue_id)).all()
        by_email = {find_contact_by_id(s, contact_id): delivery_id for delivery_id, contact_id in rows}
    return issue_id, by_email


def find_contact_by_id(s, contact_id: int) -> str:
    from subscribers.models import Contact

    return s.get(Contact, contact_id).email


@pytest.fixture
def history(db: Database, wired: Settings) -> dict[str, int]:
    settings = wired
    issue_id, d = sent_issue(db, settings)
    read = SENT + timedelta(hours=2)
    with db.session() as s:
        links = list(s.scalars(select(Link.id).where(Link.issue_id == issue_id).order_by(Link.position)))

        def token(email: str) -> str:
            return delivery_token(settings, d[email])

        key = pixel_key(issue_id, None)
        # reader0 opens and clicks; reader1 only through Apple's proxy; reader2 opens twice (one
        # delivery); a scanner follows a link of reader3's email; reader4 never opens.
        assert record_open(s, settings, token("reader0@example.org"), key, PERSON, read)
        assert record_click(s, settings, token("reader0@example.org"), str(links[0]), PERSON, read)
        assert record_open(s, settings, token("reader1@example.org"), key, APPLE_PROXY, read)
        for minutes in (0, 30):
            assert record_open(s, settings, token("reader2@example.org"), key, PERSON, read + timedelta(minutes=minutes))
        assert record_click(s, settings, token("reader3@example.org"), str(links[1]), SCANNER, read)
    with db.session() as s:
        lead = add_lead(s, "reader0@example.org", default_timezone=LA, source="web_form", consent_method="form").lead
        record_booking(s, lead, booked_for=NOW + timedelta(days=7), origin="staff", external_id=None,
                       recorded_at=read + timedelta(hours=1))
        add_lead(s, "reader4@example.org", default_timezone=LA, source="phone", consent_method="phone")
    return {"issue": issue_id}


def test_recent_issues_match_what_was_sent_opened_and_booked(db: Database, history: dict[str, int]) -> None:
    with db.session() as s:
        [recent] = dashboard.recent_issues(s, NOW)
        report = issue_report(s, history["issue"])
    assert recent.issue_id == history["issue"] and recent.started_at == SENT
    assert recent.state.label == "sent"
    stats = recent.stats
    assert (stats.recipients, stats.sent) == (5, 5)
    assert stats.delivered == 4  # an open or click proves it arrived, the proxy's and the scanner's too
    assert (stats.unique_opens, stats.machine_opens) == (2, 1)  # reader0 and reader2; the proxy apart
    assert (stats.unique_clicks, stats.machine_clicks) == (1, 1)  # reader0; the scanner apart
    assert (stats.bounced, stats.unsubscribes, stats.bookings) == (0, 0, 1)
    assert stats.as_dict() == report.stats.as_dict()  # the issue's own report, figure for figure


def test_engagement_by_week_counts_people_only(db: Database, history: dict[str, int]) -> None:
    with db.session() as s:
        weeks = dashboard.engagement_by_week(s, zone=LA, now=NOW)
    assert len(weeks) == 12
    assert [w.week_of.weekday() for w in weeks] == [0] * 12
    assert weeks[-1].week_of.isoformat() == "2026-11-30"  # Monday of the week NOW falls in, in Los Angeles
    current = weeks[-1]
    assert (current.sent, current.human_opens, current.human_clicks) == (5, 2, 1)
    assert current.open_rate == 0.4
    assert all((w.sent, w.human_opens, w.human_clicks) == (0, 0, 0) for w in weeks[:-1])


def test_lead_funnel_by_stage_and_booked(db: Database, history: dict[str, int]) -> None:
    with db.session() as s:
        funnel = dashboard.lead_funnel(s)
        total = funnel_report(s).total
    assert funnel.by_stage == {"new": 1, "contacted": 0, "booked": 1, "attended": 0, "lost": 0}
    assert (funnel.leads, funnel.booked, funnel.booked_by_email) == (2, 1, 1)
    assert (funnel.leads, funnel.booked, funnel.booked_by_email) == (total.leads, total.booked, total.attributed)
    assert funnel.booked_rate == 0.5


def test_a_lead_moved_to_lost_after_booking_still_counts_as_booked(db: Database, wired: Settings) -> None:
    from subscribers.leads import change_stage

    with db.session() as s:
        lead = add_lead(s, "once@example.org", default_timezone=LA, source="referral", consent_method="admin").lead
        change_stage(s, lead, "booked", by="staff")
        change_stage(s, lead, "lost", by="staff")
    with db.session() as s:
        funnel = dashboard.lead_funnel(s)
        assert funnel.by_stage["lost"] == 1 and funnel.booked == 1 == funnel_report(s).total.booked


def test_outgoing_shows_scheduled_and_sending_with_progress(db: Database, settings: Settings) -> None:
    add_audience(db, 5)
    later = make_issue(db, settings, subject="Next week's letter")
    with db.session() as s:
        schedule.schedule_issue(s, settings, s.get(Issue, later), at=NOW + timedelta(days=2), now=NOW, zone=LA)
    sending = make_issue(db, settings, subject="Going out now")
    dispatcher = send(db, settings, sending, NOW, batch_size=2, send_concurrency=1)
    with db.session() as s:
        before = dashboard.outgoing(s)
    first = dispatcher.run_once()
    with db.session() as s:
        after = dashboard.outgoing(s)

    [waiting] = before.scheduled
    assert (waiting.issue_id, waiting.subject, waiting.status) == (later, "Next week's letter", "scheduled")
    assert waiting.when == NOW + timedelta(days=2) and waiting.timezone == LA
    with db.session() as s:
        assert waiting.audience == s.scalar(
            select(MailingList.name).join(Issue, Issue.list_id == MailingList.id).where(Issue.id == later))
    [going] = before.sending
    assert going.issue_id == sending and going.started_at == NOW
    assert (going.progress.recipients, going.progress.handled, going.progress.percent) == (5, 0, 0)
    progress = after.sending[0].progress
    assert 0 < first.submitted == progress.handled < 5 and progress.waiting == 5 - first.submitted
    assert progress.percent == progress.handled * 100 // 5 and progress.state.label == "sending"

    dispatcher.run_until_idle()
    with db.session() as s:
        done = dashboard.outgoing(s)
        assert done.sending == [] and [i.issue_id for i in done.scheduled] == [later]
        assert [i.issue_id for i in dashboard.recent_issues(s, NOW)] == [sending]


def set_times(db: Database, model, column: str, times: dict[int, datetime]) -> None:
    with db.session() as s:
        for row_id, at in times.items():
            s.execute(update(model).where(model.id == row_id).values({column: at}))


def test_month_figures_follow_the_configured_time_zone(db: Database, wired: Settings) -> None:
    """Months begin at midnight in Los Angeles, DST included: December began at 08:00 UTC, November
    (the day daylight saving time ended) at 07:00 UTC. Each row is made by its service, then given
    the instant under test."""
    at = {
        "nov30_late": datetime(2026, 12, 1, 7, 30, tzinfo=UTC),  # Nov 30, 23:30 in Los Angeles: last month
        "dec1_early": datetime(2026, 12, 1, 8, 30, tzinfo=UTC),  # Dec 1, 00:30: this month
        "oct31_late": datetime(2026, 11, 1, 6, 30, tzinfo=UTC),  # Oct 31, 23:30 (PDT): before last month
        "nov1_early": datetime(2026, 11, 1, 7, 30, tzinfo=UTC),  # Nov 1, 00:30 (PDT): last month
    }
    ids: dict[str, int] = {}
    with db.session() as s:
        for name in at:
            contact = subscriber(s, wired, f"{name}@example.org")
            s.flush()
            ids[name] = s.scalar(select(Subscription.id).where(Subscription.contact_id == contact.id))
        unsubscribe(s, find_contact(s, "nov30_late@example.org"), None, Proof("one_click"))
        unsubscribe(s, find_contact(s, "dec1_early@example.org"), None, Proof("one_click"))
        leads = {name: add_lead(s, f"{name}@example.org", default_timezone=LA, source="web_form",
                                consent_method="form").lead.id for name in at}
        for name in ("nov30_late", "dec1_early"):
            record_booking(s, s.get(Lead, leads[name]), booked_for=None, origin="api", external_id=f"b-{name}",
                           recorded_at=at[name])
    set_times(db, Subscription, "confirmed_at", {ids[name]: when for name, when in at.items()})
    set_times(db, Subscription, "unsubscribed_at", {ids["nov30_late"]: at["nov30_late"],
                                                    ids["dec1_early"]: at["dec1_early"]})
    set_times(db, Lead, "created_at", {leads[name]: when for name, when in at.items()})

    with db.session() as s:
        months = dashboard.month_comparison(s, zone=LA, now=NOW)
        in_utc = dashboard.month_comparison(s, zone="UTC", now=NOW)
    assert (months.this_month.isoformat(), months.last_month.isoformat()) == ("2026-12-01", "2026-11-01")
    assert months.rows() == [("sign_ups", 1, 2), ("unsubscribes", 1, 1), ("leads", 1, 2), ("bookings", 1, 1)]
    # In UTC the same instants fall otherwise: both Dec 1 rows are this month, and Oct 31 23:30 PDT is November.
    assert in_utc.rows() == [("sign_ups", 2, 2), ("unsubscribes", 2, 0), ("leads", 2, 2), ("bookings", 2, 0)]


def test_weeks_start_on_local_mondays_across_daylight_saving() -> None:
    starts = dashboard.week_starts(zone=LA, now=datetime(2026, 11, 12, 12, 0, tzinfo=UTC), weeks=4)
    local = [s.astimezone(ZoneInfo(LA)) for s in starts]
    assert [(d.weekday(), d.hour, d.minute) for d in local] == [(0, 0, 0)] * 4
    assert [d.date().isoformat() for d in local] == ["2026-10-19", "2026-10-26", "2026-11-02", "2026-11-09"]
    # The week in which DST ended (Sunday Nov 1) is an hour longer in UTC (aware datetimes of one zone
    # subtract as wall times in Python, hence the conversion).
    utc = [s.astimezone(UTC) for s in starts]
    assert [b - a for a, b in zip(utc, utc[1:])] == [timedelta(days=7), timedelta(days=7, hours=1),
                                                          timedelta(days=7)]


# --- charts -----------------------------------------------------------------------------------------

XMLNS = re.compile(r'xmlns(:\w+)?="[^"]*"')
URL = re.compile(r"https?://", re.IGNORECASE)


def self_contained(svg: str) -> etree._Element:
    """The checks every chart must pass: no script, no comment, no URL to another host (the namespace
    names aside, which are never fetched), labelled and described as one image."""
    assert not URL.search(XMLNS.sub("", svg)), "the SVG names a URL"
    assert "@import" not in svg and "<script" not in svg.lower() and "<!--" not in svg
    assert not re.search(r"url\((?!#)", svg), "a CSS url() to something outside the SVG"
    root = etree.fromstring(svg.encode())
    ns = {"svg": charts.SVG_NS}
    assert root.xpath("//svg:script | //svg:foreignObject | //svg:image", namespaces=ns) == []
    assert not [v for v in root.xpath("//@*[local-name()='href']") if not v.startswith("#")]
    title, desc = root[0], root[1]
    assert title.tag == f"{{{charts.SVG_NS}}}title" and desc.tag == f"{{{charts.SVG_NS}}}desc"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == title.get("id") and root.get("aria-describedby") == desc.get("id")
    return root


def test_engagement_chart_is_self_contained_and_carries_its_table(db: Database, history: dict[str, int]) -> None:
    with db.session() as s:
        weeks = dashboard.engagement_by_week(s, zone=LA, now=NOW)
    chart = charts.engagement_chart(weeks)
    root = self_contained(chart.svg)
    assert root[0].text == chart.title == "Engagement by week"
    assert "5 sent, 2 opened by a person, 1 clicked by a person" in root[1].text
    assert chart.columns == ["Week", "Sent", "Opened by a person", "Clicked by a person"]
    assert len(chart.rows) == 12 and chart.rows[-1] == ["Week of Nov 30", 5, 2, 1]
    assert chart.rows[0][1:] == [0, 0, 0]


def test_funnel_chart_is_self_contained_and_carries_its_table(db: Database, history: dict[str, int]) -> None:
    with db.session() as s:
        funnel = dashboard.lead_funnel(s)
    chart = charts.funnel_chart(funnel)
    root = self_contained(chart.svg)
    assert root[0].text == "Lead funnel"
    assert root[1].text.startswith("2 leads by their stage now: new 1, contacted 0, booked 1")
    assert chart.rows == [["New", 1], ["Contacted", 0], ["Booked", 1], ["Attended", 0], ["Lost", 0],
                          ["Ever booked", 1]]


def luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_chart_colours_meet_wcag_aa_on_white() -> None:
    for colour in (charts.TEXT, charts.MUTED, *charts.SERIES):
        assert (1.05 / (luminance(colour) + 0.05)) >= 4.5, colour


def test_chart_axes_count_in_whole_steps() -> None:
    from newsletter.reports.charts import whole_ticks

    assert whole_ticks(0) == [0, 1]
    assert whole_ticks(3) == [0, 1, 2, 3, 4]
    assert whole_ticks(37) == [0, 10, 20, 30, 40]
    assert whole_ticks(25_000) == [0, 5000, 10000, 15000, 20000, 25000, 30000]


def test_kept_figures_are_refreshed_once_they_are_old(db: Database, history: dict[str, int]) -> None:
    from datetime import timedelta

    from newsletter.reports.snapshots import MAX_AGE, figures_of, refresh_figures

    issue_id = history["issue"]
    with db.session() as s:
        first = figures_of(s, [issue_id], NOW)[issue_id]  # none kept yet: computed and kept
        assert first.computed_at == NOW
        assert first.stats.as_dict() == issue_report(s, issue_id).stats.as_dict()
        assert refresh_figures(s, NOW + MAX_AGE - timedelta(seconds=1)) == 0  # still fresh
        assert refresh_figures(s, NOW + MAX_AGE + timedelta(seconds=1)) == 1
        assert figures_of(s, [issue_id], NOW)[issue_id].computed_at == NOW + MAX_AGE + timedelta(seconds=1)
