"""The issue pages over HTTP on a real server: roles, CSRF, forms that keep what was typed with each
error beside its field, editing refused once an issue is sending, the preview route's CSP and
content, test emails queued and audited, and exactly one audit entry per action."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from html import unescape
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from newsletter import issues as issue_service
from newsletter.compose.preflight import CHECKS
from newsletter.database import Database
from newsletter.models import Issue, TestEmail
from newsletter.posts.service import given_bytes, import_post
from newsletter.sending import schedule
from newsletter.staff.audit import AuditAction
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from subscribers.states import ConfirmationStatus, IssueStatus
from tests.liveserver import LiveServer
from tests.sendkit import add_audience
from tests.staffkit import Login, csrf_of, make_user, post_form, sign_in

WALKING = Path(__file__).parent / "fixtures" / "posts" / "walking-post.txt"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def make_post(server: LiveServer) -> int:
    with server.db.session() as s:
        raw = given_bytes("walking-post.txt", WALKING.read_bytes(), server.settings)
        return import_post(s, raw).post.id


def make_issue(server: LiveServer, post_id: int, subject: str = "A walk a day") -> int:
    with server.db.session() as s:
        return issue_service.create_issue(s, server.settings, post_id, subject,
                                          "Small habits for the week that add up to calmer days").id


def audit_rows(db: Database, action: AuditAction) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action.value).order_by(AuditEntry.id)))


def field_error(html: str, name: str) -> str:
    """The error shown beside field ``name``, after checking that the field points at it."""
    match = re.search(rf'<(?:input|textarea|select)[^>]*\bid="{name}"[^>]*>', html)
    assert match, f"no field {name}"
    assert 'aria-invalid="true"' in match.group(0) and f"{name}-error" in match.group(0), match.group(0)
    error = re.search(rf'<p class="error" id="{name}-error">([^<]*)</p>', html)
    assert error, f"no error beside {name}"
    return unescape(error.group(1))


@pytest.fixture
def people(db: Database) -> dict[Role, Login]:
    return {role: make_user(db, f"{role.value}@clinic.example", role) for role in Role}


@pytest.fixture
def marketing(live_server: LiveServer, people: dict[Role, Login]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, follow_redirects=False, timeout=30) as c:
        sign_in(c, people[Role.MARKETING])
        yield c


def test_the_pages_send_anonymous_users_to_sign_in_and_refuse_clinic_staff(
        live_server: LiveServer, people: dict[Role, Login]) -> None:
    issue_id = make_issue(live_server, make_post(live_server))
    pages = ["/staff/issues", "/staff/issues/new", f"/staff/issues/{issue_id}", f"/staff/issues/{issue_id}/preview.html"]
    forms = ["/staff/issues/new", f"/staff/issues/{issue_id}/edit", f"/staff/issues/{issue_id}/test"]
    with httpx.Client(base_url=live_server.url, follow_redirects=False, timeout=30) as anonymous:
        for path in pages:
            answer = anonymous.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/staff/sign-in?next="), path
        for path in forms:
            answer = anonymous.post(path, data={"csrf_token": "x", "subject": "Hijacked"})
            assert (answer.status_code, answer.headers["location"]) == (303, "/staff/sign-in"), path
    with httpx.Client(base_url=live_server.url, follow_redirects=False, timeout=30) as clinic:
        sign_in(clinic, people[Role.CLINIC])
        token = csrf_of(clinic.get("/staff/account").text)
        for path in pages:
            assert clinic.get(path).status_code == 403, path
        for path in forms:
            answer = clinic.post(path, data={"csrf_token": token, "subject": "Hijacked", "to": "x@clinic.example",
                                             "post": "1"})
            assert answer.status_code == 403 and "not for your role" in answer.text, path
    with httpx.Client(base_url=live_server.url, follow_redirects=False, timeout=30) as admin:
        sign_in(admin, people[Role.ADMIN])
        assert all(admin.get(path).status_code == 200 for path in pages)
    with live_server.db.session() as s:
        assert s.get(Issue, issue_id).subject == "A walk a day"
        assert s.scalar(select(func.count()).select_from(Issue)) == 1
        assert s.scalar(select(func.count()).select_from(TestEmail)) == 0


def test_a_post_without_the_csrf_token_is_refused(live_server: LiveServer, marketing: httpx.Client) -> None:
    post_id = make_post(live_server)
    issue_id = make_issue(live_server, post_id)
    for path, data in (("/staff/issues/new", {"post": str(post_id), "subject": "Forged"}),
                       (f"/staff/issues/{issue_id}/edit", {"subject": "Forged"}),
                       (f"/staff/issues/{issue_id}/test", {"to": "me@clinic.example"})):
        for token in (None, "not-the-token"):
            answer = marketing.post(path, data={**data, **({"csrf_token": token} if token else {})})
            assert answer.status_code == 403, (path, token)
    with live_server.db.session() as s:
        assert [i.subject for i in s.scalars(select(Issue))] == ["A walk a day"]
        assert s.scalar(select(func.count()).select_from(TestEmail)) == 0
    assert audit_rows(live_server.db, AuditAction.ISSUE_CREATED) == []


def test_the_list_shows_issues_newest_first_with_their_status_in_words(
        live_server: LiveServer, marketing: httpx.Client) -> None:
    empty = marketing.get("/staff/issues")
    assert empty.status_code == 200 and "There are no issues yet" in empty.text
    assert 'href="/staff/issues/new"' in empty.text
    post_id = make_post(live_server)
    first, second = make_issue(live_server, post_id, "First walk"), make_issue(live_server, post_id, "Second walk")
    with live_server.db.session() as s:
        s.get(Issue, first).status = IssueStatus.AWAITING_APPROVAL
    html = marketing.get("/staff/issues").text
    assert html.index("Second walk") < html.index("First walk")
    assert "awaiting approval" in html and ">draft<" in html
    for issue_id in (first, second):
        for path in ("", "/send", "/results"):
            assert f'href="/staff/issues/{issue_id}{path}"' in html


def test_a_new_issue_from_a_post_is_made_audited_once_and_opens(live_server: LiveServer,
                                                                marketing: httpx.Client) -> None:
    post_id = make_post(live_server)
    form = marketing.get(f"/staff/issues/new?post={post_id}")
    assert form.status_code == 200
    assert 'value="Why a Daily Walk Helps Your Mood"' in form.text  # the post's title as the subject
    assert re.search(rf'<option value="{post_id}" selected>', form.text)
    assert re.search(r'<option value="full" selected>', form.text)  # the settings' default tracking
    answer = marketing.post("/staff/issues/new", data={
        "csrf_token": csrf_of(form.text), "post": str(post_id), "subject": "Walk  with us", "preheader": "Ten minutes",
        "intro": "Hello from the team.\n\nSee you soon.", "tracking": "anonymous"})
    assert answer.status_code == 303
    issue_id = int(answer.headers["location"].rsplit("/", 1)[1])
    with live_server.db.session() as s:
        issue = s.get(Issue, issue_id)
        assert (issue.post_id, issue.subject, issue.preheader, issue.tracking, issue.intro) == (
            post_id, "Walk with us", "Ten minutes", "anonymous", "Hello from the team.\n\nSee you soon.")
    page = marketing.get(answer.headers["location"])
    assert f"Issue {issue_id} is made, as a draft" in page.text
    assert f"<h1>Issue {issue_id}: Walk with us</h1>" in page.text
    (entry,) = audit_rows(live_server.db, AuditAction.ISSUE_CREATED)
    assert (entry.actor, entry.target, entry.detail) == ("marketing@clinic.example", f"issue {issue_id}",
                                                         f"from post {post_id}")


def test_left_empty_the_subject_and_preheader_are_the_posts(live_server: LiveServer, marketing: httpx.Client) -> None:
    post_id = make_post(live_server)
    form = marketing.get("/staff/issues/new")  # no post given: chosen from the select
    assert re.search(rf'<option value="{post_id}">Why a Daily Walk Helps Your Mood \(post {post_id}\)</option>', form.text)
    answer = marketing.post("/staff/issues/new", data={"csrf_token": csrf_of(form.text), "post": str(post_id),
                                                       "subject": " ", "preheader": "", "intro": "", "tracking": "off"})
    assert answer.status_code == 303
    with live_server.db.session() as s:
        issue = s.scalars(select(Issue)).one()
        assert issue.subject == "Why a Daily Walk Helps Your Mood" and issue.preheader and issue.tracking == "off"


def test_a_new_issue_form_keeps_what_was_typed_with_each_error_beside_its_field(
        live_server: LiveServer, marketing: httpx.Client) -> None:
    post_id = make_post(live_server)
    token = csrf_of(marketing.get("/staff/issues/new").text)
    typed = {"csrf_token": token, "post": "", "subject": "S" * 301, "preheader": "Kept <as typed>",
             "intro": "I" * 2001, "tracking": "loud"}
    answer = marketing.post("/staff/issues/new", data=typed)
    assert answer.status_code == 400
    assert field_error(answer.text, "post") == "Choose the post the issue is made from."
    assert field_error(answer.text, "subject") == "The subject is 301 characters; keep it under 300."
    assert field_error(answer.text, "intro") == "The intro note is 2001 characters; keep it under 2000."
    assert field_error(answer.text, "tracking").startswith("Tracking must be one of full, anonymous, off")
    assert 'value="Kept &lt;as typed&gt;"' in answer.text and "I" * 2001 + "</textarea>" in answer.text
    assert f'value="{"S" * 301}"' in answer.text
    for post in ("99999", "abc", "1" * 20, "\uff11"):
        answer = marketing.post("/staff/issues/new", data={**typed, "post": post, "subject": "Fine", "intro": "",
                                                           "tracking": "full"})
        assert answer.status_code == 400, post
        assert "choose one from the list" in field_error(answer.text, "post")
    for query in ("99999", "1" * 20, "%EF%BC%91"):  # missing, too long, a full-width digit
        answer = marketing.get(f"/staff/issues/new?post={query}")
        assert answer.status_code == 400 and "choose one from the list" in field_error(answer.text, "post"), query
    # A NUL is refused for every staff request before its route runs, naming the field.
    answer = marketing.get("/staff/issues/new?post=x%00y")
    assert answer.status_code == 400 and "The field “post” holds a NUL character" in answer.text
    with live_server.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Issue)) == 0
    assert audit_rows(live_server.db, AuditAction.ISSUE_CREATED) == []
    assert post_id


def test_editing_saves_once_audited_and_keeps_typed_values_on_error(live_server: LiveServer,
                                                                    marketing: httpx.Client) -> None:
    issue_id = make_issue(live_server, make_post(live_server))
    page = f"/staff/issues/{issue_id}"
    bad = post_form(marketing, page, f"{page}/edit", {"subject": "", "preheader": "Still here", "intro": "Kept note"})
    assert bad.status_code == 400
    assert field_error(bad.text, "subject") == "The subject is empty; every issue needs one."
    assert 'value="Still here"' in bad.text and "Kept note</textarea>" in bad.text
    good = post_form(marketing, page, f"{page}/edit",
                     {"subject": "Walking, together", "preheader": "Ten minutes a day", "intro": "From Dr Lee"})
    assert (good.status_code, good.headers["location"]) == (303, page)
    shown = marketing.get(page).text
    assert "Saved." in shown and "<h1>Issue %d: Walking, together</h1>" % issue_id in shown
    with live_server.db.session() as s:
        issue = s.get(Issue, issue_id)
        assert (issue.subject, issue.preheader, issue.intro) == ("Walking, together", "Ten minutes a day", "From Dr Lee")
        assert "From Dr Lee" in issue.html  # compiled again
    (entry,) = audit_rows(live_server.db, AuditAction.ISSUE_EDITED)
    assert (entry.actor, entry.target) == ("marketing@clinic.example", f"issue {issue_id}")


def test_editing_is_refused_once_the_issue_is_sending(live_server: LiveServer, marketing: httpx.Client) -> None:
    issue_id = make_issue(live_server, make_post(live_server))
    page = f"/staff/issues/{issue_id}"
    token = csrf_of(marketing.get(page).text)  # the form, opened before the send started
    add_audience(live_server.db, 2)
    with live_server.db.session() as s:
        schedule.start_now(s, live_server.settings, s.get(Issue, issue_id), NOW)
    answer = marketing.post(f"{page}/edit", data={"csrf_token": token, "subject": "Too late", "preheader": "",
                                                  "intro": ""})
    assert answer.status_code == 409
    assert f"Not saved: issue {issue_id} is sending: it can be edited only before sending." in answer.text
    assert 'action="/staff/issues/%d/edit"' % issue_id not in answer.text  # shown read-only now
    read_only = marketing.get(page).text
    assert "what was sent can no longer be changed" in read_only and "Small habits" in read_only
    assert 'name="subject"' not in read_only
    with live_server.db.session() as s:
        assert s.get(Issue, issue_id).subject == "A walk a day"
    assert audit_rows(live_server.db, AuditAction.ISSUE_EDITED) == []


def test_the_preview_route_has_a_csp_without_scripts_and_no_placeholders(live_server: LiveServer,
                                                                           marketing: httpx.Client) -> None:
    issue_id = make_issue(live_server, make_post(live_server))
    answer = marketing.get(f"/staff/issues/{issue_id}/preview.html")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    csp = answer.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and "script-src" not in directives  # so no script may run
    assert directives["frame-ancestors"] == "'self'"
    assert "%%" not in answer.text and "Alex" in answer.text  # the sample reader's name
    assert "Why a Daily Walk Helps Your Mood" in answer.text and "<script" not in answer.text
    page = marketing.get(f"/staff/issues/{issue_id}").text
    frames = re.findall(r'<iframe src="([^"]+)"[^>]*\bsandbox\b[^>]*>', page)
    assert frames == [f"/staff/issues/{issue_id}/preview.html"] * 2
    plain = re.search(r'<pre class="plain"[^>]*>(.*?)</pre>', page, re.S)
    assert plain and "%%" not in plain.group(1) and "Why a Daily Walk Helps Your Mood" in unescape(plain.group(1))
    listed = re.findall(r'<li class="(\w+)">\s*<span class="result">(\w+):</span>\s*([^<]*?)\s*</li>', page)
    assert [(result, label, unescape(name)) for result, label, name in listed] == [
        ("pass", "Passed", check.name) for check in CHECKS]  # every check, passing ones too, in words


def test_missing_and_mangled_issue_ids_are_the_404_page(marketing: httpx.Client) -> None:
    for path in ("/staff/issues/999", "/staff/issues/abc", "/staff/issues/999/preview.html",
                 "/staff/issues/" + "9" * 30, "/staff/issues/%EF%BC%91"):
        assert marketing.get(path).status_code == 404, path
    token = csrf_of(marketing.get("/staff/issues").text)
    assert marketing.post("/staff/issues/999/edit", data={"csrf_token": token, "subject": "x"}).status_code == 404
    assert marketing.post("/staff/issues/999/test", data={"csrf_token": token, "to": "a@clinic.example"}).status_code == 404


def test_a_test_send_is_queued_audited_once_and_listed(live_server: LiveServer, marketing: httpx.Client,
                                                       people: dict[Role, Login]) -> None:
    issue_id = make_issue(live_server, make_post(live_server))
    page = f"/staff/issues/{issue_id}"
    opened = marketing.get(page).text
    assert 'id="to" name="to" type="text" value="marketing@clinic.example"' in opened  # prefilled
    assert "never counted" in opened and "[Test] " in opened
    bad = post_form(marketing, page, f"{page}/test", {"to": "me@clinic.example, not-an-address"})
    assert bad.status_code == 400
    assert field_error(bad.text, "to").startswith("'not-an-address' is not a valid email address")
    assert 'value="me@clinic.example, not-an-address"' in bad.text
    answer = post_form(marketing, page, f"{page}/test", {"to": "me@clinic.example; dr.lee@clinic.example"})
    assert (answer.status_code, answer.headers["location"]) == (303, f"{page}#tests")
    shown = marketing.get(page).text
    assert "Test queued for 2 addresses." in shown
    assert shown.count("queued: a dispatcher sends it shortly") == 2
    with live_server.db.session() as s:
        rows = list(s.scalars(select(TestEmail).order_by(TestEmail.id)))
        assert [(r.to_email, r.requested_by, r.status) for r in rows] == [
            ("me@clinic.example", f"user {people[Role.MARKETING].user_id}", ConfirmationStatus.QUEUED),
            ("dr.lee@clinic.example", f"user {people[Role.MARKETING].user_id}", ConfirmationStatus.QUEUED)]
    (entry,) = audit_rows(live_server.db, AuditAction.SEND_TEST)
    assert (entry.target, entry.detail) == (f"issue {issue_id}", "2 address(es)")
    assert "clinic.example" not in (entry.detail or "")
    live_server.send_queued()
    assert marketing.get(page).text.count("<td>sent</td>") == 2
    one = post_form(marketing, page, f"{page}/test", {"to": "me@clinic.example"})
    assert "Test queued for 1 address." in marketing.get(one.headers["location"].split("#")[0]).text
    assert len(audit_rows(live_server.db, AuditAction.SEND_TEST)) == 2
