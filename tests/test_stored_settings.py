"""Settings staff change in the app (newsletter.stored_settings and /staff/settings): checked by
Settings' own rules and the deliverability checks, stored and audited, the environment winning, and
applied by every process: the web app, the scheduler, the dispatchers and the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import scheduler
from newsletter import stored_settings
from newsletter.cli import app as cli_app
from newsletter.config import Settings, get_settings
from newsletter.database import Database
from newsletter.models import Issue
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.staff.audit import AuditAction
from newsletter.staff.models import AuditEntry, StoredSetting
from newsletter.staff.roles import Role
from newsletter.stored_settings import LiveSettings, SettingsRefused
from subscribers.db import utcnow
from tests.liveserver import LiveServer, serving
from tests.sendkit import ScriptedTransport, add_audience, make_issue
from tests.staffkit import csrf_of, Login, make_user, signed_in

SETTINGS_PAGE = "/staff/settings"


def save(db: Database, settings: Settings, **typed: str) -> stored_settings.Saved:
    with db.session() as s:
        return stored_settings.save(s, settings, "cli", typed)


def refused(settings: Settings, **typed: str) -> dict[str, str]:
    with pytest.raises(SettingsRefused) as caught:
        stored_settings.check(settings, typed)
    return caught.value.errors


@pytest.fixture
def pinned_colour(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    """The operator pins the brand colour in the environment."""
    monkeypatch.setenv("NEWSLETTER_ACCENT_COLOUR", "#2b4c7e")
    get_settings.cache_clear()
    return get_settings()


# The rules ---------------------------------------------------------------------------------------------


def test_values_are_checked_by_the_settings_rules_and_for_deliverability(settings: Settings) -> None:
    assert refused(settings, accent_colour="teal") == {"accent_colour": "Must look like #2f6f6a, not 'teal'."}
    low = refused(settings, accent_colour="#f0e68c")["accent_colour"]
    assert low.startswith("White button text on #f0e68c has a contrast of 1.3:1") and "4.5:1" in low
    assert "https://" in refused(settings, logo_url="http://cdn.example.org/logo.png")["logo_url"]
    assert "https://" in refused(settings, logo_url="https://cdn.example.org/my logo.png")["logo_url"]
    assert "not a valid email address" in refused(settings, from_email="news@")["from_email"]
    assert "not a valid email address" in refused(settings, reply_to="Care team <care>")["reply_to"]
    assert refused(settings, rate_per_day="-5") == {"rate_per_day": "Give a number of 0 or more."}
    assert refused(settings, rate_per_second="fast") == {"rate_per_second": "Give a number, such as 10 or 2.5."}
    assert refused(settings, frequency_cap_hours="1.5") == {"frequency_cap_hours": "Give a whole number, such as 500."}
    assert refused(settings, test_send_limit="50") == {"test_send_limit": "Give a number of 20 or less."}
    assert refused(settings, tracking="sometimes") == {"tracking": "Must be full, anonymous or off, not 'sometimes'."}
    assert refused(settings, org_name="   ") == {"org_name": "Give the organisation name; it cannot be empty."}
    both = refused(settings, accent_colour="#ffffff", rate_per_day="-1", org_name="Fine")
    assert set(both) == {"accent_colour", "rate_per_day"}  # every refused field at once, each beside its own
    assert stored_settings.check(settings, {
        "accent_colour": "#1F5F5B", "logo_url": "", "reply_to": "Care team <care@clinic.example>",
        "postal_address": "1 Main Street,\n Springfield", "rate_per_second": "2.5",
    }) == {"accent_colour": "#1f5f5b", "logo_url": None, "reply_to": "Care team <care@clinic.example>",
           "postal_address": "1 Main Street, Springfield", "rate_per_second": 2.5}


def test_contrast_is_the_wcag_ratio() -> None:
    assert round(stored_settings.contrast_with_white("#000000"), 1) == 21.0
    assert round(stored_settings.contrast_with_white("#ffffff"), 1) == 1.0
    assert round(stored_settings.contrast_with_white("#767676"), 2) == 4.54  # the lightest grey that passes


def test_a_refused_save_stores_nothing(db: Database, settings: Settings) -> None:
    with pytest.raises(SettingsRefused):
        save(db, settings, org_name="New name", accent_colour="#ffff00")
    with db.session() as s:
        assert s.scalar(select(StoredSetting)) is None and s.scalar(select(AuditEntry)) is None


# Precedence -----------------------------------------------------------------------------------------------


def test_defaults_then_stored_then_environment(db: Database, pinned_colour: Settings) -> None:
    assert stored_settings.pinned(pinned_colour) == {"accent_colour"}
    saved = save(db, pinned_colour, accent_colour="#5a2d82", org_name="Calm Clinic", from_email="news@calm.example")
    assert saved.changed == ["accent_colour", "org_name", "from_email"] and saved.pinned == ["accent_colour"]
    assert ("NEWSLETTER_ACCENT_COLOUR is set in the environment and wins: emails use #2b4c7e until it is removed."
            in saved.message())
    with db.session() as s:
        applied = stored_settings.in_session(s, pinned_colour)
        states = stored_settings.field_states(s, pinned_colour)
    assert applied.accent_colour == "#2b4c7e" and applied.org_name == "Calm Clinic"
    assert applied.unsubscribe_email == "unsubscribe@calm.example"  # derived from the From address in use
    assert applied.newsletter_name == Settings.model_fields["newsletter_name"].default
    assert (states["accent_colour"].source, states["accent_colour"].value) == ("environment", "#2b4c7e")
    assert states["accent_colour"].row is not None and states["accent_colour"].row.value == "#5a2d82"  # waits
    assert states["org_name"].source == "saved" and states["newsletter_name"].source == "default"
    # Rebuilt from already applied settings, the environment still wins and a removed value goes back.
    again = stored_settings.effective(applied, {"org_name": "Other"})
    assert (again.accent_colour, again.org_name, again.from_email) == ("#2b4c7e", "Other", "newsletter@example.com")


def test_a_stored_value_the_rules_no_longer_take_is_left_out(settings: Settings) -> None:
    applied = stored_settings.effective(settings, {"accent_colour": "not a colour", "org_name": "Kept"})
    assert applied.accent_colour == "#2f6f6a" and applied.org_name == "Kept"


def test_each_change_is_audited_and_an_unchanged_value_writes_nothing(db: Database, settings: Settings) -> None:
    admin = make_user(db, "ada@clinic.example", Role.ADMIN)
    with db.session() as s:
        user = s.get(stored_settings.StaffUser, admin.user_id)
        stored_settings.save(s, settings, user, {"rate_per_day": "500", "rate_per_second": "0"})
    assert save(db, settings, rate_per_day="500").changed == []
    with db.session() as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.SETTINGS_CHANGED)))
        row = s.get(StoredSetting, "rate_per_day")
        assert row is not None and row.value == 500 and row.updated_by == "ada@clinic.example"
    assert [(e.actor, e.target, e.detail) for e in entries] == [("ada@clinic.example", "setting rate_per_day", "0 -> 500")]


@pytest.mark.postgres
def test_stored_values_round_trip_on_postgres(postgres_db: Database, settings: Settings) -> None:
    save(postgres_db, settings, reply_to="Care team <care@clinic.example>", rate_per_second="2.5",
         rate_per_day="1000", accent_colour="#1f5f5b")
    save(postgres_db, settings, reply_to="")  # cleared: stored as none, not the default's absence
    with postgres_db.session() as s:
        applied = stored_settings.in_session(s, settings)
        assert s.get(StoredSetting, "reply_to").value is None  # type: ignore[union-attr]
    assert (applied.reply_to, applied.rate_per_second, applied.rate_per_day, applied.accent_colour) == \
        (None, 2.5, 1000, "#1f5f5b")
    live = LiveSettings(settings, postgres_db, every=0)
    assert live.current().rate_per_day == 1000 and live.current() is live.current()  # rebuilt only on a change


# Every process applies them -------------------------------------------------------------------------------


def test_the_scheduler_round_uses_the_stored_values(db: Database, settings: Settings,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []
    real = scheduler.run_round
    monkeypatch.setattr(scheduler, "run_round", lambda s, used, now: seen.append(used) or real(s, used, now))
    scheduler.run_due_work(settings, db, "leader")
    save(db, settings, tracking="anonymous", frequency_cap_hours="72", rate_per_day="100")
    scheduler.run_due_work(settings, db, "leader", utcnow() + timedelta(seconds=5))
    assert (seen[0].tracking, seen[0].frequency_cap_hours) == ("full", 24)
    assert (seen[1].tracking, seen[1].frequency_cap_hours, seen[1].rate_per_day) == ("anonymous", 72, 100)


def test_a_dispatcher_picks_up_a_changed_send_limit_at_its_next_round(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 10)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), utcnow())
    transport = ScriptedTransport()
    ticks = iter(range(1000))
    live = LiveSettings(settings, db, every=1.0, clock=lambda: float(next(ticks)))
    dispatcher = Dispatcher(settings, db, transport, sleep=lambda _: None, live=live)
    save(db, settings, rate_per_day="3")
    dispatcher.run_until_idle()
    assert len(transport.delivered) == 3 and dispatcher.pacer.per_day == 3  # the daily budget staff set
    save(db, settings, rate_per_day="0")  # no limit again
    dispatcher.run_until_idle()
    assert len(transport.delivered) == 10


def test_the_dispatchers_of_a_pool_share_one_look_at_the_stored_values(db: Database, settings: Settings) -> None:
    pool = Dispatcher.pool(settings, db, ScriptedTransport(), count=3)
    assert len({id(d.live) for d in pool}) == 1 and len({id(d.pacer) for d in pool}) == 1


def test_the_cli_sees_the_stored_values(db: Database, settings: Settings) -> None:
    save(db, settings, tracking="off", org_name="Calm Clinic")
    runner = CliRunner()
    made = runner.invoke(cli_app, ["posts", "import", "-"], input="Walking\n\nA short walk helps.\n")
    assert made.exit_code == 0, made.output
    post_id = re.search(r"\d+", made.stdout).group(0)  # type: ignore[union-attr]
    created = runner.invoke(cli_app, ["issues", "create", "--post", post_id])
    assert created.exit_code == 0, created.output
    issue_id = created.stdout.split()[0]
    with db.session() as s:
        assert s.get(Issue, int(issue_id)).tracking == "off"  # the default staff chose, not the code's "full"
    assert get_settings().org_name == "Calm Clinic"


def test_a_brand_change_recompiles_unsent_issues_only(db: Database, settings: Settings) -> None:
    draft, sent = make_issue(db, settings, "Draft"), make_issue(db, settings, "Sent")
    with db.session() as s:
        s.get(Issue, sent).status = "sent"
        sent_html = s.get(Issue, sent).html
    saved = save(db, settings, accent_colour="#5a2d82")
    assert saved.recompiled == 1 and "compiled again with the new brand" in saved.message()
    with db.session() as s:
        assert "#5a2d82" in s.get(Issue, draft).html
        assert s.get(Issue, sent).html == sent_html and "#5a2d82" not in sent_html
    assert save(db, settings, rate_per_day="10").recompiled == 0  # not a brand setting


# The page ------------------------------------------------------------------------------------------------------



@pytest.fixture
def people(db: Database) -> dict[Role, Login]:
    return {role: make_user(db, f"{role.value}@clinic.example", role) for role in Role}


def post_section(c: httpx.Client, section: str, data: dict[str, str]) -> httpx.Response:
    token = csrf_of(c.get(SETTINGS_PAGE).text)
    return c.post(f"{SETTINGS_PAGE}/{section}", data={**data, "csrf_token": token})


def test_only_admins_open_the_settings_page(live_server: LiveServer, people: dict[Role, Login]) -> None:
    for role in (Role.MARKETING, Role.CLINIC):
        with signed_in(live_server, people[role]) as c:
            assert c.get(SETTINGS_PAGE).status_code == 403
            token = csrf_of(c.get("/staff/").text)
            assert c.post(f"{SETTINGS_PAGE}/brand", data={"accent_colour": "#000000",
                                                         "csrf_token": token}).status_code == 403
    with live_server.db.session() as s:
        assert s.scalar(select(StoredSetting)) is None


def test_the_page_saves_a_section_and_shows_errors_beside_fields(live_server: LiveServer,
                                                                 people: dict[Role, Login]) -> None:
    with signed_in(live_server, people[Role.ADMIN]) as c:
        page = c.get(SETTINGS_PAGE).text
        for title in ("Organisation", "Sender", "Postal address", "Brand", "Tracking", "Send limits"):
            assert f">{title}</h2>" in page
        assert 'href="/staff/users"' in page and 'href="/staff/audit?action=settings_changed"' in page
        assert page.count("In use: the default.") == len(stored_settings.FIELDS)
        bad = post_section(c, "limits", {"rate_per_second": "-1", "rate_per_day": "lots",
                                         "frequency_cap_hours": "24", "test_send_limit": "5"})
        assert bad.status_code == 400
        assert 'aria-describedby="rate_per_second-hint rate_per_second-error rate_per_second-source" aria-invalid="true"' in bad.text
        assert '<p class="error" id="rate_per_second-error">Give a number of 0 or more.</p>' in bad.text
        assert '<p class="error" id="rate_per_day-error">Give a whole number, such as 500.</p>' in bad.text
        assert 'value="lots"' in bad.text  # what was typed comes back
        bad = post_section(c, "sender", {"from_name": "Clinic", "from_email": "news at clinic", "reply_to": ""})
        assert bad.status_code == 400 and 'id="from_email-error"' in bad.text
        bad = post_section(c, "brand", {"accent_colour": "#ffd700", "accent_colour_picker": "#2f6f6a", "logo_url": ""})
        assert bad.status_code == 400 and "has a contrast of 1.4:1" in bad.text
        bad = post_section(c, "brand", {"accent_colour": "#2f6f6a", "logo_url": "ftp://x/logo.png"})
        assert bad.status_code == 400 and 'id="logo_url-error"' in bad.text
        good = post_section(c, "brand", {"accent_colour": "#2f6f6a", "accent_colour_picker": "#5a2d82",
                                         "logo_url": "https://cdn.example.org/logo.png"})
        assert good.status_code == 303 and good.headers["location"] == "/staff/settings#brand"
        page = c.get(good.headers["location"]).text
        assert "Saved: accent colour, logo url (https, optional)." in page  # the picker alone was changed
        assert "saved by admin@clinic.example on" in page and 'value="#5a2d82"' in page
        assert "<img" not in page and "Logo in use: https://cdn.example.org/logo.png" in page
        assert live_server.app.state.settings.accent_colour == "#5a2d82"  # applied at once
        # The public pages follow too.
        assert "--accent: #5a2d82" in httpx.get(live_server.url + "/subscribe").text
    with live_server.db.session() as s:
        targets = sorted(s.scalars(select(AuditEntry.target).where(AuditEntry.action == "settings_changed")))
    assert targets == ["setting accent_colour", "setting logo_url"]


@pytest.fixture
def pinned_server(pinned_colour: Settings, db: Database) -> Iterator[LiveServer]:
    with serving(pinned_colour, db) as server:
        yield server


def test_the_page_says_when_the_environment_wins(pinned_server: LiveServer, db: Database) -> None:
    admin = make_user(db, "ada@clinic.example", Role.ADMIN)
    with signed_in(pinned_server, admin) as c:
        page = c.get(SETTINGS_PAGE).text
        assert "from the environment (NEWSLETTER_ACCENT_COLOUR)" in page and 'value="#2b4c7e"' in page
        answer = post_section(c, "brand", {"accent_colour": "#5a2d82", "logo_url": ""})
        assert answer.status_code == 303
        page = c.get(answer.headers["location"]).text
    wins = "NEWSLETTER_ACCENT_COLOUR is set in the environment and wins: emails use #2b4c7e until it is removed."
    assert wins in page  # in the answer, and beside the field
    assert page.count(wins) == 2 and "(#5a2d82) waits until it is removed" in page
    assert 'id="accent_colour" name="accent_colour" type="text" value="#2b4c7e"' in page  # the value in use
    # ...and read with the field by a screen reader, with what is in use.
    assert 'aria-describedby="accent_colour-hint accent_colour-source accent_colour-wins"' in page
    assert pinned_server.app.state.settings.accent_colour == "#2b4c7e"


def test_the_web_app_applies_a_change_made_elsewhere_within_seconds(live_server: LiveServer) -> None:
    live = live_server.app.state.live_settings
    live.current()
    save(live_server.db, live_server.settings, org_name="Calm Clinic")  # another process (the CLI) saved it
    live._next = 0.0  # the few seconds pass
    assert "Calm Clinic" in httpx.get(live_server.url + "/subscribe").text
