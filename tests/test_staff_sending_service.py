"""newsletter.sending.staff_actions and newsletter.reports.issue_results without the web: reading the
schedule form, which actions apply to which state and role, the audience chosen, the audit entries."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.errors import InputError
from newsletter.models import Issue
from newsletter.reports.issue_results import issue_results
from newsletter.sending import schedule, staff_actions
from newsletter.sending.staff_actions import FieldError
from newsletter.staff.models import AuditEntry, StaffUser
from newsletter.staff.roles import Role
from subscribers.lists import ensure_list
from subscribers.states import IssueStatus
from tests.sendkit import add_audience, make_issue
from tests.staffkit import make_user

NOW = datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc)


def user(role: Role) -> StaffUser:
    return StaffUser(id=7, email=f"{role}@clinic.example", role=role)


def test_read_when_reads_the_wall_clock_in_the_zone_and_names_the_bad_field() -> None:
    when = staff_actions.read_when("2026-03-08", "02:30", "America/New_York")  # inside the spring-forward gap
    assert when.tzinfo is not None and when.utcoffset() is not None
    assert staff_actions.read_when(" 2026-12-03", "09:00 ", "Europe/Paris").astimezone(timezone.utc) == \
        datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)
    for day, clock, zone, field in (("2026-12-03", "09:00", "Mars/Base", "zone"), ("2026-12-03", "09:00", "", "zone"),
                                    ("03/12/2026", "09:00", "UTC", "date"), ("2026-12-03", "9 am", "UTC", "time"),
                                    ("2026-12-03", "09:00", "../../etc/passwd", "zone")):
        with pytest.raises(FieldError) as caught:
            staff_actions.read_when(day, clock, zone)
        assert caught.value.field == field


def test_in_the_past_is_one_rule_for_the_cli_and_the_page() -> None:
    earlier = datetime(2026, 12, 3, 16, 0, tzinfo=timezone.utc)
    assert schedule.in_the_past(earlier, NOW, local_time=False)
    assert not schedule.in_the_past(earlier, NOW, local_time=True)  # the date may be ahead elsewhere
    assert not schedule.in_the_past(NOW, NOW, local_time=False)


@pytest.mark.parametrize("status, role, approval, expected", [
    (IssueStatus.DRAFT, Role.MARKETING, False, {"schedule", "send_now"}),
    (IssueStatus.DRAFT, Role.MARKETING, True, {"schedule", "send_now", "asks_approval"}),
    (IssueStatus.DRAFT, Role.ADMIN, True, {"schedule", "send_now"}),
    (IssueStatus.AWAITING_APPROVAL, Role.MARKETING, True, {"schedule", "send_now", "cancel", "awaiting_approval",
                                                          "asks_approval"}),
    (IssueStatus.AWAITING_APPROVAL, Role.ADMIN, True, {"schedule", "send_now", "cancel", "awaiting_approval",
                                                      "approve"}),
    (IssueStatus.SCHEDULED, Role.MARKETING, False, {"schedule", "send_now", "cancel", "pause", "live"}),
    (IssueStatus.SENDING, Role.MARKETING, False, {"pause", "live"}),
    (IssueStatus.PAUSED, Role.MARKETING, False, {"resume"}),
    (IssueStatus.SENT, Role.ADMIN, False, set()),
    (IssueStatus.CANCELLED, Role.ADMIN, False, {"schedule", "send_now"}),
])
def test_the_actions_shown_follow_the_state_sets_and_the_role(settings: Settings, status: str, role: Role,
                                                               approval: bool, expected: set[str]) -> None:
    issue = SimpleNamespace(status=status)
    shown = staff_actions.actions_for(issue, settings.model_copy(update={"issue_approval": approval}), user(role))
    assert {name for name, on in vars(shown).items() if on} == expected


def test_the_audience_defaults_to_the_issues_choice_then_the_newsletter(settings: Settings, db: Database) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 2)
    add_audience(db, 1, list_slug="clinic-news", start=10)
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        default = staff_actions.choose_audience(s, settings, issue)
        assert default.mailing_list.slug == settings.default_list and default.count == 2
        other = ensure_list(s, "clinic-news")
        issue.list_id = other.id
        assert staff_actions.choose_audience(s, settings, issue).count == 1  # the issue's own choice
        assert staff_actions.choose_audience(s, settings, issue, "", "").mailing_list.slug == settings.default_list
        assert staff_actions.choose_audience(s, settings, issue, str(other.id), "").description == "Clinic News: 1 person"
        for bad, field in (({"list_id": "0"}, "list"), ({"list_id": "-1"}, "list"), ({"segment_id": "4"}, "segment")):
            with pytest.raises(FieldError) as caught:
                staff_actions.choose_audience(s, settings, issue, bad.get("list_id", ""), bad.get("segment_id", ""))
            assert caught.value.field == field


def test_scheduling_writes_one_entry_and_a_refusal_none(settings: Settings, db: Database) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 2)
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    approving = settings.model_copy(update={"issue_approval": True})
    with db.session() as s:
        staff = s.get(StaffUser, login.user_id)
        issue = s.get(Issue, issue_id)
        staff_actions.schedule_by_staff(s, approving, issue, staff, day="2026-12-04", clock="09:00", zone="Europe/Paris",
                                        local_time=False, list_id="", segment_id="", now=NOW)
        assert issue.status == IssueStatus.AWAITING_APPROVAL and issue.scheduled_at == \
            datetime(2026, 12, 4, 8, 0, tzinfo=timezone.utc)
        assert staff_actions.schedule_text(issue, settings) == "2026-12-04 09:00 (Europe/Paris)"
        with pytest.raises(InputError, match="only an admin"):
            staff_actions.approve_by_staff(s, issue, staff, NOW)
        with pytest.raises(FieldError, match="has passed"):
            staff_actions.schedule_by_staff(s, settings, issue, staff, day="2026-12-03", clock="08:00", zone="UTC",
                                            local_time=False, list_id="", segment_id="", now=NOW)
        entries = s.execute(select(AuditEntry.action, AuditEntry.target, AuditEntry.detail)).all()
    assert [(a, t) for a, t, _ in entries if a != "user_added"] == [("schedule", f"issue {issue_id}")]
    assert "awaits approval" in entries[-1][2]


def test_results_show_anonymous_counts_only_when_they_mean_something(settings: Settings, db: Database) -> None:
    issue_id = make_issue(db, settings)
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        assert not issue_results(s, issue).show_anonymous and issue_results(s, issue).held == []
        issue.tracking = "anonymous"
        assert issue_results(s, issue).show_anonymous
