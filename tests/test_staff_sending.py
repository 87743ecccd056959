"""The Send and Results tabs of an issue over HTTP (the real app, real SQLite): the audience and its live
count, scheduling and its errors, send now, approval, cancel/pause/resume (each audited exactly once,
target "issue N"), the JSON endpoints, roles, CSRF, and settling batches held as unknown both ways."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Issue, SendBatch
from newsletter.sending import ledger
from newsletter.sending.dispatch import Dispatcher
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from newsletter.transports.base import OutcomeUnknown
from newsletter.web.app import create_app
from subscribers.lists import ensure_list
from tests.sendkit import ScriptedTransport, add_audience, make_issue, raises
from tests.staffkit import Login, csrf_of, make_user, sign_in

ZONE = "America/Los_Angeles"


def client_for(settings: Settings, db: Database) -> TestClient:
    # Plain http on 127.0.0.1: the staff cookies are not Secure-only there, as with `newsletter serve` locally.
    return TestClient(create_app(settings, db), base_url="http://127.0.0.1", follow_redirects=False)


@pytest.fixture
def app_client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with client_for(settings, db) as c:
        yield c


def signed_in(settings: Settings, db: Database, login: Login) -> TestClient:
    c = client_for(settings, db)
    sign_in(c, login)
    return c


def audit_of(db: Database, issue_id: int) -> list[tuple[str, str, str | None]]:
    """(action, actor, detail) of every entry whose target is this issue, oldest first."""
    with db.session() as s:
        rows = s.execute(select(AuditEntry.action, AuditEntry.actor, AuditEntry.detail)
                         .where(AuditEntry.target == f"issue {issue_id}").order_by(AuditEntry.id))
        return [tuple(r) for r in rows]


def status_of(db: Database, issue_id: int) -> str:
    with db.session() as s:
        return s.get(Issue, issue_id).status


def later(hours: int = 2, zone: str = ZONE) -> tuple[str, str]:
    when = datetime.now(ZoneInfo(zone)) + timedelta(hours=hours)
    return f"{when:%Y-%m-%d}", f"{when:%H:%M}"


def post(c: TestClient, page: str, action: str, data: dict[str, str] | None = None):  # noqa: ANN201
    token = csrf_of(c.get(page).text)
    return c.post(action, data={**(data or {}), "csrf_token": token})


def schedule_form(c: TestClient, issue_id: int, **overrides: str):  # noqa: ANN201
    day, clock = later()
    data = {"date": day, "time": clock, "zone": ZONE, "local_time": "", "list_id": "", "segment_id": ""}
    return post(c, f"/staff/issues/{issue_id}/send", f"/staff/issues/{issue_id}/schedule", {**data, **overrides})


def field_error(html: str, name: str) -> str:
    """The error shown beside field ``name``, checking it is tied to the field."""
    match = re.search(rf'<p class="error" id="{name}-error">([^<]*)</p>', html)
    assert match, f"no error beside {name}"
    tag = re.search(rf'<(?:input|select) id="{name}"[^>]*>', html, re.S)
    assert tag and 'aria-invalid="true"' in tag.group(0) and f"{name}-error" in tag.group(0)
    return match.group(1)


def held_batch(db: Database, settings: Settings, issue_id: int) -> int:
    """Send ``issue_id`` now through a transport whose one request gets no answer: its batch is held as unknown."""
    with db.session() as s:
        from newsletter.sending import schedule
        schedule.start_now(s, settings, s.get(Issue, issue_id), datetime.now(timezone.utc))
    transport = ScriptedTransport(script=[raises(OutcomeUnknown("read timeout"))])
    Dispatcher(settings, db, transport, sleep=lambda s: None).run_until_idle()
    with db.session() as s:
        (held,) = ledger.unknown_batches(s, issue_id)
        return held.batch_id


# --- the audience ----------------------------------------------------------------------------------------


def test_the_send_page_shows_the_live_count_of_the_audience_chosen(settings: Settings, db: Database) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 3)
    add_audience(db, 2, list_slug="clinic-news", start=100)
    with db.session() as s:
        other = ensure_list(s, "clinic-news").id
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    with signed_in(settings, db, login) as c:
        page = c.get(f"/staff/issues/{issue_id}/send")
        assert page.status_code == 200
        assert re.search(r'id="audience-count"[^>]*>[^<]*: 3 people<', page.text)
        assert 'aria-current="page">Send<' in page.text  # the Send tab of the issue's tabs
        # Without JavaScript: "Update count" loads the page with the choice in the query.
        chosen = c.get(f"/staff/issues/{issue_id}/send", params={"list": str(other), "segment": ""})
        assert re.search(r'id="audience-count"[^>]*>[^<]*: 2 people<', chosen.text)
        assert f'name="list_id" value="{other}"' in chosen.text  # the schedule form sends to that choice
        # With JavaScript: the JSON endpoint gives the count of a choice.
        answer = c.get(f"/staff/issues/{issue_id}/send/audience", params={"list": str(other), "segment": ""})
        assert answer.status_code == 200 and answer.json()["count"] == 2 and answer.json()["list"] == other
        bad = c.get(f"/staff/issues/{issue_id}/send/audience", params={"list": "999", "segment": ""})
        assert bad.status_code == 400 and bad.json()["field"] == "list"
        bad_page = c.get(f"/staff/issues/{issue_id}/send", params={"list": "x' or 1=1", "segment": ""})
        assert bad_page.status_code == 400 and "choose a list" in field_error(bad_page.text, "list")


def test_a_segment_narrows_the_count(settings: Settings, db: Database) -> None:
    from subscribers.segments import save_segment
    issue_id = make_issue(db, settings)
    add_audience(db, 4, zones=["America/Los_Angeles", "Europe/Paris"])
    with db.session() as s:
        segment = save_segment(s, "paris", {"timezone": "Europe/Paris"}).id
    with signed_in(settings, db, make_user(db, "mia@clinic.example", Role.MARKETING)) as c:
        answer = c.get(f"/staff/issues/{issue_id}/send/audience", params={"list": "", "segment": str(segment)})
        assert answer.json()["count"] == 2 and "segment paris" in answer.json()["text"]


# --- roles, sign-in, CSRF, missing things ------------------------------------------------------------------


def test_only_issue_roles_may_open_the_pages_and_json_needs_sign_in(settings: Settings, db: Database,
                                                                     app_client: TestClient) -> None:
    issue_id = make_issue(db, settings)
    paths = [f"/staff/issues/{issue_id}/send", f"/staff/issues/{issue_id}/results",
             f"/staff/issues/{issue_id}/progress", f"/staff/issues/{issue_id}/send/audience",
             f"/staff/issues/{issue_id}/send/confirm"]
    for path in paths + ["/staff/static/send-progress.js"]:
        answer = app_client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/staff/sign-in"), path
    with signed_in(settings, db, make_user(db, "cal@clinic.example", Role.CLINIC)) as c:
        for path in paths:
            assert c.get(path).status_code == 403, path
        token = csrf_of(c.get("/staff/").text)
        assert c.post(f"/staff/issues/{issue_id}/send-now", data={"csrf_token": token}).status_code == 403
    for role in (Role.MARKETING, Role.ADMIN):
        with signed_in(settings, db, make_user(db, f"{role}@clinic.example", role)) as c:
            for path in paths:
                assert c.get(path).status_code == 200, (role, path)
    assert status_of(db, issue_id) == "draft" and audit_of(db, issue_id) == []


def test_posts_without_the_csrf_token_change_nothing(settings: Settings, db: Database) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 2)
    day, clock = later()
    with signed_in(settings, db, make_user(db, "ana@clinic.example", Role.ADMIN)) as c:
        for action, data in (("schedule", {"date": day, "time": clock, "zone": ZONE}), ("send-now", {}),
                             ("pause", {}), ("cancel", {}), ("approve", {}), ("resume", {}),
                             ("batches/1/settle", {"outcome": "sent"})):
            for token in ({}, {"csrf_token": "forged"}):
                answer = c.post(f"/staff/issues/{issue_id}/{action}", data={**data, **token})
                assert answer.status_code == 403, action
    assert status_of(db, issue_id) == "draft" and audit_of(db, issue_id) == []


def test_an_issue_that_does_not_exist_is_the_404_page(settings: Settings, db: Database) -> None:
    with signed_in(settings, db, make_user(db, "ana@clinic.example", Role.ADMIN)) as c:
        for path in ("/staff/issues/999/send", "/staff/issues/999/results", "/staff/issues/abc/send",
                     "/staff/issues/999/progress", "/staff/issues/99999999999999999999/results"):
            answer = c.get(path)
            assert answer.status_code == 404 and "This page does not exist" in answer.text, path
        token = csrf_of(c.get("/staff/").text)
        for action in ("pause", "send-now", "batches/1/settle"):
            assert c.post(f"/staff/issues/999/{action}", data={"csrf_token": token}).status_code == 404


def test_the_scripts_are_served_first_party_with_their_type(settings: Settings, db: Database) -> None:
    with signed_in(settings, db, make_user(db, "ana@clinic.example", Role.ADMIN)) as c:
        for name in ("send-progress.js", "audience-count.js"):
            answer = c.get(f"/staff/static/{name}")
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/javascript")
            assert "http://" not in answer.text and "https://" not in answer.text  # nothing from another host
        for name in ("missing.js", "..%2Fstaff%2Fauth.py", "auth.py", ".hidden.js"):
            assert c.get(f"/staff/static/{name}").status_code == 404, name
        page = c.get(f"/staff/issues/{make_issue(db, c.app.state.settings)}/send")
        assert '<script src="/staff/static/audience-count.js" defer></script>' in page.text
        assert "<script>" not in page.text  # no inline script: the CSP is script-src 'self'


# --- scheduling and its errors -------------------------------------------------------------------------------


def test_a_bad_time_zone_or_a_past_time_is_shown_beside_its_field_with_the_values_kept(
        settings: Settings, db: Database) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 2)
    day, clock = later()
    with signed_in(settings, db, make_user(db, "mia@clinic.example", Role.MARKETING)) as c:
        bad_zone = schedule_form(c, issue_id, date=day, time=clock, zone="Mars/Olympus_Mons")
        assert bad_zone.status_code == 400
        assert "not a time zone" in field_error(bad_zone.text, "zone")
        assert f'value="{day}"' in bad_zone.text and f'value="{clock}"' in bad_zone.text  # kept
        past_day, past_clock = later(-3)
        past = schedule_form(c, issue_id, date=past_day, time=past_clock, zone=ZONE)
        assert past.status_code == 400 and "has passed" in field_error(past.text, "date")
        assert f'value="{past_day}"' in past.text and f'<option value="{ZONE}" selected>' in past.text
        garbled = schedule_form(c, issue_id, date="3rd of May", time="25:99")
        assert garbled.status_code == 400 and "2026-12-03" in field_error(garbled.text, "date")
        assert 'value="3rd of May"' in garbled.text
        wrong_list = schedule_form(c, issue_id, list_id="12345")
        assert wrong_list.status_code == 400 and "no list" in field_error(wrong_list.text, "list")
    assert status_of(db, issue_id) == "draft" and audit_of(db, issue_id) == []


def test_a_failing_preflight_is_told_at_the_top_of_the_form(settings: Settings, db: Database) -> None:
    issue_id = make_issue(db, settings)
    no_address = settings.model_copy(update={"postal_address": ""})
    with signed_in(no_address, db, make_user(db, "mia@clinic.example", Role.MARKETING)) as c:
        answer = schedule_form(c, issue_id)
        assert answer.status_code == 400
        top = re.search(r'<p class="alert" id="schedule-error" role="alert">([^<]*)</p>', answer.text)
        assert top and "preflight failed" in top.group(1) and "postal" in top.group(1).lower()
        assert 'aria-describedby="schedule-error"' in answer.text
    assert status_of(db, issue_id) == "draft" and audit_of(db, issue_id) == []


def test_schedule_cancel_pause_resume_and_send_now_each_write_one_audit_entry(settings: Settings, db: Database) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 3)
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    send = f"/staff/issues/{issue_id}/send"
    with signed_in(settings, db, login) as c:
        draft = c.get(send).text
        for absent in ("/pause", "/resume", "/cancel", "/approve"):
            assert f'action="/staff/issues/{issue_id}{absent}"' not in draft  # nothing to do yet
        scheduled = schedule_form(c, issue_id, local_time="yes")
        assert scheduled.status_code == 303 and scheduled.headers["location"] == send
        assert status_of(db, issue_id) == "scheduled"
        page = c.get(send).text
        assert "in each contact's own time zone" in page and "Issue " in page  # the flash and the schedule
        assert f'action="/staff/issues/{issue_id}/cancel"' in page and f'action="/staff/issues/{issue_id}/pause"' in page
        assert f'action="/staff/issues/{issue_id}/resume"' not in page
        assert post(c, send, f"/staff/issues/{issue_id}/cancel").status_code == 303
        assert status_of(db, issue_id) == "draft"
        assert schedule_form(c, issue_id).status_code == 303
        assert post(c, send, f"/staff/issues/{issue_id}/pause").status_code == 303
        assert status_of(db, issue_id) == "paused"
        paused = c.get(send).text
        assert f'action="/staff/issues/{issue_id}/resume"' in paused and f'action="/staff/issues/{issue_id}/pause"' not in paused
        assert post(c, send, f"/staff/issues/{issue_id}/resume").status_code == 303
        assert status_of(db, issue_id) == "scheduled"
        # Send now: a confirm page first (a GET that changes nothing), then the POST.
        confirm = c.get(f"{send}/confirm", params={"list": "", "segment": ""})
        assert confirm.status_code == 200 and "3 people" in confirm.text and "Yes, send now" in confirm.text
        assert status_of(db, issue_id) == "scheduled"
        wrong = c.post(f"/staff/issues/{issue_id}/send-now", data={"csrf_token": csrf_of(confirm.text),
                                                                   "list_id": "999", "segment_id": ""})
        assert wrong.status_code == 400 and "there is no list 999" in wrong.text and status_of(db, issue_id) == "scheduled"
        sent = c.post(f"/staff/issues/{issue_id}/send-now", data={"csrf_token": csrf_of(confirm.text),
                                                                  "list_id": "", "segment_id": ""})
        assert sent.status_code == 303 and status_of(db, issue_id) == "sending"
        assert "sending to 3 people" in c.get(send).text
        # A repeated post (a double click) changes nothing and is not audited again.
        again = post(c, send, f"/staff/issues/{issue_id}/send-now")
        assert again.status_code == 400 and "Not sent: issue" in again.text and "is sending" in again.text
        refused = post(c, send, f"/staff/issues/{issue_id}/cancel")
        assert refused.status_code == 303 and "Nothing changed" in c.get(send).text
    actions = [(action, actor) for action, actor, _ in audit_of(db, issue_id)]
    assert actions == [("schedule", login.email), ("cancel", login.email), ("schedule", login.email),
                       ("pause", login.email), ("resume", login.email), ("send", login.email)]
    details = [detail for _, _, detail in audit_of(db, issue_id)]
    assert "each contact's own time zone" in details[0] and "@" not in " ".join(d or "" for d in details)


def test_with_approval_on_a_marketing_schedule_waits_for_an_admin(settings: Settings, db: Database) -> None:
    approving = settings.model_copy(update={"issue_approval": True})
    issue_id = make_issue(db, settings)
    add_audience(db, 2)
    marketer = make_user(db, "mia@clinic.example", Role.MARKETING)
    admin = make_user(db, "ana@clinic.example", Role.ADMIN)
    send = f"/staff/issues/{issue_id}/send"
    with signed_in(approving, db, marketer) as c:
        assert "Schedule for approval" in c.get(send).text
        assert schedule_form(c, issue_id).status_code == 303
        assert status_of(db, issue_id) == "awaiting_approval"
        page = c.get(send).text
        assert "waits for an admin's approval" in page and f'action="/staff/issues/{issue_id}/approve"' not in page
        refused = post(c, send, f"/staff/issues/{issue_id}/approve")  # the button is not shown; the post is refused
        assert refused.status_code == 303 and "only an admin can approve" in c.get(send).text
        assert status_of(db, issue_id) == "awaiting_approval"
    with signed_in(approving, db, admin) as c:
        page = c.get(send).text
        assert f'action="/staff/issues/{issue_id}/approve"' in page and "Schedule for approval" not in page
        assert post(c, send, f"/staff/issues/{issue_id}/approve").status_code == 303
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        assert issue.status == "scheduled" and issue.approved_by == f"user {admin.user_id}"
    assert [(a, who) for a, who, _ in audit_of(db, issue_id)] == [("schedule", marketer.email), ("approve", admin.email)]


def test_with_approval_on_send_now_by_marketing_waits_and_an_admin_sends_at_once(settings: Settings,
                                                                                 db: Database) -> None:
    approving = settings.model_copy(update={"issue_approval": True})
    issue_id = make_issue(db, settings)
    add_audience(db, 2)
    send = f"/staff/issues/{issue_id}/send"
    with signed_in(approving, db, make_user(db, "mia@clinic.example", Role.MARKETING)) as c:
        confirm = c.get(f"{send}/confirm")
        assert "Ask for approval to send now" in confirm.text
        assert post(c, f"{send}/confirm", f"/staff/issues/{issue_id}/send-now").status_code == 303
        assert status_of(db, issue_id) == "awaiting_approval" and "waits for an admin" in c.get(send).text
    with signed_in(approving, db, make_user(db, "ana@clinic.example", Role.ADMIN)) as c:
        assert post(c, send, f"/staff/issues/{issue_id}/approve").status_code == 303
        assert status_of(db, issue_id) == "scheduled"  # due now: the scheduler's next round starts it
        other = make_issue(db, settings, "Another")
        assert post(c, f"/staff/issues/{other}/send/confirm", f"/staff/issues/{other}/send-now").status_code == 303
        assert status_of(db, other) == "sending"
    assert [a for a, _, _ in audit_of(db, issue_id)] == ["schedule", "approve"]
    assert [a for a, _, _ in audit_of(db, other)] == ["send"]


# --- progress and results ------------------------------------------------------------------------------------


def test_progress_json_follows_the_send(settings: Settings, db: Database) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 3)
    with signed_in(settings, db, make_user(db, "mia@clinic.example", Role.MARKETING)) as c:
        before = c.get(f"/staff/issues/{issue_id}/progress").json()
        assert before["recipients"] == 0 and before["live"] is False and before["status"] == "draft"
        post(c, f"/staff/issues/{issue_id}/send/confirm", f"/staff/issues/{issue_id}/send-now")
        queued = c.get(f"/staff/issues/{issue_id}/progress").json()
        assert queued["counts"] == {"queued": 3} and queued["live"] is True and queued["percent"] == 0
        page = c.get(f"/staff/issues/{issue_id}/send").text
        assert 'data-live="true"' in page and '<progress id="progress-bar" max="3" value="0"' in page
        assert 'id="progress-summary" role="status" aria-live="polite">0 of 3 handled (0%)' in page
        Dispatcher(settings, db, ScriptedTransport(), sleep=lambda s: None).run_until_idle()
        done = c.get(f"/staff/issues/{issue_id}/progress").json()
        assert done["counts"] == {"submitted": 3} and done["percent"] == 100 and done["live"] is False
        assert done["status"] == "sent"
        assert '<td data-count="submitted">3</td>' in c.get(f"/staff/issues/{issue_id}/send").text


def test_results_show_figures_and_held_batches_settled_both_ways(settings: Settings, db: Database) -> None:
    first = make_issue(db, settings)
    add_audience(db, 3)
    held_first = held_batch(db, settings, first)
    second = make_issue(db, settings, "Second")
    held_second = held_batch(db, settings, second)
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    results = f"/staff/issues/{first}/results"
    with signed_in(settings, db, login) as c:
        page = c.get(results)
        assert page.status_code == 200 and 'aria-current="page">Results<' in page.text
        assert f"Batch {held_first}: 3 deliveries" in page.text and "read timeout" in page.text
        assert "The provider accepted it (mark sent)" in page.text and "Send again (may duplicate)" in page.text
        assert "sent, 3 unknown" in page.text
        # A batch of another issue, or a made-up outcome, is refused with a message; nothing changes.
        wrong = post(c, results, f"/staff/issues/{first}/batches/{held_second}/settle", {"outcome": "sent"})
        assert wrong.status_code == 303 and "holds no deliveries as unknown" in c.get(results).text
        odd = post(c, results, f"/staff/issues/{first}/batches/{held_first}/settle", {"outcome": "maybe"})
        assert odd.status_code == 303 and "Nothing changed" in c.get(results).text
        assert audit_of(db, first) == []
        # Mark sent.
        assert post(c, results, f"/staff/issues/{first}/batches/{held_first}/settle",
                    {"outcome": "sent"}).status_code == 303
        settled = c.get(results).text
        assert "3 deliveries marked sent" in settled and "None: every request's outcome is known" in settled
        # Send again (the second issue): its rows are queued once more for the dispatchers.
        assert post(c, f"/staff/issues/{second}/results", f"/staff/issues/{second}/batches/{held_second}/settle",
                    {"outcome": "resend"}).status_code == 303
        again = post(c, results, f"/staff/issues/{first}/batches/{held_first}/settle", {"outcome": "sent"})
        assert again.status_code == 303  # a replayed post: told nothing is held, not audited twice
    with db.session() as s:
        assert ledger.status_counts(s, first) == {"submitted": 3}
        assert ledger.status_counts(s, second) == {"queued": 3} and s.get(Issue, second).status == "sending"
        assert s.get(SendBatch, held_first).evidence == f"settled by user {login.user_id}: sent"
        assert s.get(SendBatch, held_second).evidence == f"settled by user {login.user_id}: queued again"
    assert audit_of(db, first) == [("batch_settled", login.email, f"batch {held_first}: 3 marked sent")]
    assert audit_of(db, second) == [("batch_settled", login.email, f"batch {held_second}: 3 queued again")]


def test_results_keep_people_machines_and_anonymous_counts_apart(settings: Settings, db: Database) -> None:
    from newsletter.models import Delivery, Event
    issue_id = make_issue(db, settings)
    add_audience(db, 3)
    with db.session() as s:
        from newsletter.sending import schedule
        schedule.start_now(s, settings, s.get(Issue, issue_id), datetime.now(timezone.utc))
    Dispatcher(settings, db, ScriptedTransport(), sleep=lambda s: None).run_until_idle()
    now = datetime.now(timezone.utc)
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        issue.tracking = "anonymous"
        rows = s.scalars(select(Delivery).where(Delivery.issue_id == issue_id).order_by(Delivery.id)).all()
        events = [("open", False, rows[0]), ("open", True, rows[1]), ("click", False, rows[0]),
                  ("click", True, rows[2]), ("spamreport", False, rows[2]), ("unsubscribe", False, rows[1])]
        for n, (kind, machine, row) in enumerate(events):
            s.add(Event(provider_event_id=f"t-{n}", source="sendgrid", type=kind, machine=machine, delivery_id=row.id, issue_id=issue_id,
                        contact_id=row.contact_id, occurred_at=now, url="https://example.org/walk" if kind == "click" else None))
        s.add(Event(provider_event_id="anon-1", source="first_party", type="open", machine=False, issue_id=issue_id, occurred_at=now))
    with signed_in(settings, db, make_user(db, "mia@clinic.example", Role.MARKETING)) as c:
        page = c.get(f"/staff/issues/{issue_id}/results").text
    cells = re.findall(r'<tr><th scope="row">(Opens|Clicks)</th>((?:<td class="num">\d+</td>\s*)+)', page)
    figures = {name: re.findall(r"\d+", tds) for name, tds in cells}
    assert figures == {"Opens": ["1", "1", "1"], "Clicks": ["1", "1", "0"]}  # people, machines, anonymous
    assert "Anonymous</th>" in page and "https://example.org/walk" in page
    assert re.search(r"<dt>Unsubscribes</dt><dd>1</dd>", page) and re.search(r"<dt>Complaints[^<]*</dt><dd>1</dd>", page)
    assert re.search(r"<dt>Bookings attributed to this issue</dt><dd>0</dd>", page)
