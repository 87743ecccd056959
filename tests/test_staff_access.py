"""Staff access on a real server: every staff route is guarded (found by walking the app's routes, so
a page added later is checked too), roles, CSRF, sessions (disabled users, idle time, lifetime,
rotation), the sign-in throttle, TOTP, cookies, headers and the audit log (one entry per sensitive
action; the database refuses to change it)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pyotp
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DatabaseError

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.staff import audit
from newsletter.staff.audit import AuditAction, AuditFilter
from newsletter.staff.models import AuditEntry, SignInAttempt, StaffSession
from newsletter.staff.roles import Role, may
from newsletter.web.staff.auth import safe_next
from newsletter.web.staff.routes import staff_routes
from tests.liveserver import LiveServer, serving
from tests.staffkit import client, csrf_of, Login, make_user, post_form, sign_in, signed_in, user_row

OPEN_ROUTES = {"/staff/sign-in", "/staff/sign-in/code"}  # the only staff routes without Require



def concrete(path: str, user_id: int = 1) -> str:
    return re.sub(r"\{[^}]+\}", str(user_id), path)


def audit_counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return dict(s.execute(select(AuditEntry.action, func.count()).group_by(AuditEntry.action)).all())


def session_count(db: Database, user_id: int) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(StaffSession).where(StaffSession.user_id == user_id)) or 0


@pytest.fixture
def people(db: Database) -> dict[Role, Login]:
    return {role: make_user(db, f"{role.value}@clinic.example", role) for role in Role}


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with client(live_server) as c:
        yield c


# Guards on every route ------------------------------------------------------------------------------


def test_every_staff_route_is_guarded_or_is_sign_in(live_server: LiveServer) -> None:
    routes = staff_routes(live_server.app)  # type: ignore[arg-type]
    assert len(routes) >= 15
    unguarded = {r.path for r in routes if r.requirement is None}
    assert unguarded == OPEN_ROUTES, "a staff route without Require(area): add it, or it is open to anyone"


def test_every_staff_route_sends_an_anonymous_user_to_sign_in(live_server: LiveServer, http: httpx.Client) -> None:
    checked = 0
    for route in staff_routes(live_server.app):  # type: ignore[arg-type]
        if route.requirement is None:
            continue
        for method in route.methods - {"HEAD"}:
            answer = http.request(method, concrete(route.path), data={"csrf_token": "x"} if method == "POST" else None)
            assert answer.status_code == 303, (method, route.path, answer.status_code)
            assert answer.headers["location"].startswith("/staff/sign-in"), (method, route.path)
            checked += 1
    assert checked >= 14
    # A page comes back after signing in; a form's target does not.
    assert http.get("/staff/audit?action=sign_in").headers["location"] == "/staff/sign-in?next=/staff/audit%3Faction%3Dsign_in"


def test_the_wrong_role_gets_403_on_every_route_of_an_area(live_server: LiveServer, people: dict[Role, Login]) -> None:
    checked = 0
    for role, login in people.items():
        with signed_in(live_server, login) as c:
            token = csrf_of(c.get("/staff/account").text)
            for route in staff_routes(live_server.app):  # type: ignore[arg-type]
                area = route.requirement.area if route.requirement else None
                if area is None:
                    continue
                for method in route.methods - {"HEAD"}:
                    answer = c.request(method, concrete(route.path, people[Role.ADMIN].user_id),
                                       data={"csrf_token": token, "role": "clinic"} if method == "POST" else None)
                    if may(role, area):
                        assert answer.status_code != 403, (role, method, route.path)
                    else:
                        assert answer.status_code == 403, (role, method, route.path, answer.status_code)
                        assert "not for your role" in answer.text
                        checked += 1
    assert checked >= 10
    with live_server.db.session() as s:  # nothing a refused role posted changed anything
        assert user_row(live_server.db, "admin@clinic.example").role == Role.ADMIN


def test_navigation_and_home_show_only_what_the_role_may_open(live_server: LiveServer,
                                                               people: dict[Role, Login]) -> None:
    with signed_in(live_server, people[Role.CLINIC]) as c:
        home = c.get("/staff/").text
        assert "Signed in as clinic@clinic.example" in home and "Last issues" not in home and "Lead funnel" in home
        assert 'href="/staff/audit"' not in home and 'href="/staff/users"' not in home
        assert 'href="/staff/settings"' not in home
    with signed_in(live_server, people[Role.ADMIN]) as c:
        home = c.get("/staff/").text
        assert 'href="/staff/audit"' in home and 'href="/staff/users"' in home
        assert 'href="/staff/settings"' in home


# CSRF ---------------------------------------------------------------------------------------------------


def test_a_post_without_a_valid_csrf_token_is_refused(live_server: LiveServer, people: dict[Role, Login]) -> None:
    admin = people[Role.ADMIN]
    before = audit_counts(live_server.db)
    with signed_in(live_server, admin) as c:
        posted = 0
        for route in staff_routes(live_server.app):  # type: ignore[arg-type]
            if "POST" not in route.methods or route.path in OPEN_ROUTES:
                continue
            for data in ({}, {"csrf_token": "forged"}):
                answer = c.post(concrete(route.path, people[Role.CLINIC].user_id), data={**data, "role": "admin"})
                assert answer.status_code == 403, (route.path, answer.status_code)
                assert "This form was not accepted" in answer.text
                posted += 1
        assert posted >= 18
        assert c.get("/staff/").status_code == 200  # still signed in: sign-out without a token did nothing
    assert audit_counts(live_server.db) == {**before, "sign_in": before.get("sign_in", 0) + 1}
    assert user_row(live_server.db, "clinic@clinic.example").role == Role.CLINIC


def test_the_sign_in_forms_need_their_token(live_server: LiveServer, people: dict[Role, Login]) -> None:
    login = people[Role.MARKETING]
    with client(live_server) as c:
        c.get("/staff/sign-in")
        refused = c.post("/staff/sign-in", data={"email": login.email, "password": login.password})
        assert refused.status_code == 403 and "staff_session" not in refused.headers.get("set-cookie", "")
    totp_user = make_user(live_server.db, "tia@clinic.example", Role.MARKETING, with_totp=True)
    with client(live_server) as c:
        form = c.get("/staff/sign-in")
        c.post("/staff/sign-in", data={"email": totp_user.email, "password": totp_user.password,
                                       "csrf_token": csrf_of(form.text)})
        assert c.post("/staff/sign-in/code", data={"code": totp_user.code()}).status_code == 403


# Sessions -------------------------------------------------------------------------------------------------


def test_cookies_are_httponly_lax_and_secure_except_on_plain_http_localhost(live_server: LiveServer,
                                                                           people: dict[Role, Login]) -> None:
    with client(live_server) as c:
        answer = sign_in(c, people[Role.ADMIN])
        cookie = answer.headers["set-cookie"]
        assert re.search(r"(^|, )staff_session=", cookie) and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie.split(",")[0]
    # Any other host (a proxy forwards https, or plain http by mistake): Secure, with the __Host- prefix.
    elsewhere = httpx.get(live_server.url + "/staff/sign-in", headers={"Host": "staff.clinic.example"})
    cookie = elsewhere.headers["set-cookie"]
    assert cookie.startswith("__Host-staff_sign_in=") and "Secure" in cookie and "HttpOnly" in cookie
    assert "plain http" in elsewhere.text  # the page says why signing in will not stick


def test_sign_in_starts_a_new_session_and_ends_the_one_before(live_server: LiveServer,
                                                             people: dict[Role, Login]) -> None:
    login = people[Role.MARKETING]
    with signed_in(live_server, login) as c:
        first = c.cookies["staff_session"]
        sign_in(c, login)
        second = c.cookies["staff_session"]
    assert first != second
    with client(live_server) as c:
        c.cookies.set("staff_session", first)
        assert c.get("/staff/").status_code == 303
    assert session_count(live_server.db, login.user_id) == 1
    with live_server.db.session() as s:  # only the token's hash is stored
        assert s.scalar(select(func.count()).select_from(StaffSession).where(StaffSession.token_hash == second)) == 0


def test_a_disabled_users_sessions_end_at_once(live_server: LiveServer, people: dict[Role, Login]) -> None:
    marketing = people[Role.MARKETING]
    with client(live_server) as theirs, client(live_server) as other_browser, client(live_server) as admin:
        sign_in(theirs, marketing)
        sign_in(other_browser, marketing)
        assert theirs.get("/staff/").status_code == 200
        sign_in(admin, people[Role.ADMIN])
        done = post_form(admin, "/staff/users", f"/staff/users/{marketing.user_id}/disable")
        assert done.status_code == 303
        assert "is disabled" in admin.get(done.headers["location"]).text
        for c in (theirs, other_browser):
            assert c.get("/staff/").headers["location"] == "/staff/sign-in"
        assert session_count(live_server.db, marketing.user_id) == 0
        form = theirs.get("/staff/sign-in")
        again = theirs.post("/staff/sign-in", data={"email": marketing.email, "password": marketing.password,
                                                    "csrf_token": csrf_of(form.text)})
        assert again.status_code == 400 and "not right" in again.text


def _age_sessions(db: Database, user_id: int, **columns: datetime) -> None:
    with db.session() as s:
        s.execute(update(StaffSession).where(StaffSession.user_id == user_id).values(**columns))


def test_idle_time_ends_a_session(settings: Settings, db: Database) -> None:
    login = make_user(db, "ida@clinic.example", Role.MARKETING)
    with serving(settings.model_copy(update={"staff_idle_minutes": 10}), db) as server, client(server) as c:
        sign_in(c, login)
        now = datetime.now(timezone.utc)
        _age_sessions(db, login.user_id, last_seen_at=now - timedelta(minutes=9))
        assert c.get("/staff/").status_code == 200  # 9 minutes idle: still on, and touched again
        _age_sessions(db, login.user_id, last_seen_at=now - timedelta(minutes=10, seconds=1))
        assert c.get("/staff/").headers["location"] == "/staff/sign-in"
        assert session_count(db, login.user_id) == 0


def test_a_session_ends_after_its_lifetime_however_busy(live_server: LiveServer, people: dict[Role, Login]) -> None:
    login = people[Role.CLINIC]
    with signed_in(live_server, login) as c:
        _age_sessions(live_server.db, login.user_id, expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
        assert c.get("/staff/").status_code == 303


def test_sign_out_and_sign_out_everywhere(live_server: LiveServer, people: dict[Role, Login]) -> None:
    login = people[Role.MARKETING]
    with client(live_server) as one, client(live_server) as two:
        sign_in(one, login)
        sign_in(two, login)
        out = post_form(one, "/staff/", "/staff/sign-out")
        assert out.headers["location"] == "/staff/sign-in"
        assert "You are signed out." in one.get("/staff/sign-in").text
        assert one.get("/staff/").status_code == 303 and two.get("/staff/").status_code == 200
        sign_in(one, login)
        everywhere = post_form(one, "/staff/account", "/staff/account/sign-out-everywhere")
        assert everywhere.status_code == 303
        assert one.get("/staff/").status_code == 303 and two.get("/staff/").status_code == 303
    assert session_count(live_server.db, login.user_id) == 0


def test_next_goes_only_to_staff_pages_of_this_site() -> None:
    assert safe_next("/staff/audit?action=sign_in") == "/staff/audit?action=sign_in"
    for hostile in ("https://evil.example/staff/", "//evil.example/staff/", "/\\evil.example", "/subscribe",
                    "/staff/../subscribe\n", "javascript:alert(1)", "/staff/sign-in?next=//x", "", None):
        assert safe_next(hostile) == "/staff/", hostile


def test_after_signing_in_the_page_asked_for_opens(live_server: LiveServer, people: dict[Role, Login]) -> None:
    login = people[Role.ADMIN]
    with client(live_server) as c:
        form = c.get("/staff/sign-in?next=/staff/audit")
        assert 'name="next" value="/staff/audit"' in form.text
        answer = c.post("/staff/sign-in", data={"email": login.email, "password": login.password,
                                                "next": "//evil.example/", "csrf_token": csrf_of(form.text)})
        assert answer.headers["location"] == "/staff/"
        form = c.get("/staff/sign-in?next=/staff/audit")
        answer = c.post("/staff/sign-in", data={"email": login.email, "password": login.password,
                                                "next": "/staff/audit", "csrf_token": csrf_of(form.text)})
        assert answer.headers["location"] == "/staff/audit"


# Throttle ------------------------------------------------------------------------------------------------


def _try(c: httpx.Client, email: str, password: str) -> httpx.Response:
    form = c.get("/staff/sign-in")
    return c.post("/staff/sign-in", data={"email": email, "password": password, "csrf_token": csrf_of(form.text)})


def test_sign_in_is_throttled_per_account(live_server: LiveServer, people: dict[Role, Login]) -> None:
    victim, other = people[Role.ADMIN], people[Role.MARKETING]
    with client(live_server) as c:
        for _ in range(live_server.settings.signin_max_failures):
            assert _try(c, victim.email, "wrong password, again").status_code == 400
        held = _try(c, victim.email, victim.password)  # the right password waits too
        assert held.status_code == 429 and "Too many sign-ins failed" in held.text
        assert _try(c, other.email, other.password).status_code == 303  # another account is not held
        # An address nobody has is counted the same way: the throttle does not tell who has an account.
        for _ in range(live_server.settings.signin_max_failures):
            _try(c, "nobody@clinic.example", "whatever it is")
        assert _try(c, "nobody@clinic.example", "whatever it is").status_code == 429
    with live_server.db.session() as s:  # neither the address nor the client is stored as typed
        keys = " ".join(s.scalars(select(SignInAttempt.key)))
        assert "@" not in keys and "127.0.0.1" not in keys


def test_sign_in_is_throttled_per_client_across_processes(settings: Settings, db: Database) -> None:
    logins = [make_user(db, f"p{i}@clinic.example", Role.CLINIC) for i in range(4)]
    limited = settings.model_copy(update={"signin_client_max_failures": 3})
    with serving(limited, db) as first, serving(limited, db) as second:
        with client(first) as c:
            for login in logins[:3]:
                assert _try(c, login.email, "not the password").status_code == 400
        with client(second) as c:  # another process, the same database: the same count
            held = _try(c, logins[3].email, logins[3].password)
            assert held.status_code == 429


def test_a_successful_sign_in_forgives_the_accounts_failures(live_server: LiveServer,
                                                             people: dict[Role, Login]) -> None:
    login = people[Role.CLINIC]
    with client(live_server) as c:
        for _ in range(live_server.settings.signin_max_failures - 1):
            _try(c, login.email, "nearly right but no")
        assert _try(c, login.email, login.password).status_code == 303
        for _ in range(live_server.settings.signin_max_failures - 1):
            assert _try(c, login.email, "nearly right but no").status_code == 400


# TOTP ----------------------------------------------------------------------------------------------------


def test_a_user_with_totp_signs_in_with_password_then_code(live_server: LiveServer) -> None:
    login = make_user(live_server.db, "tom@clinic.example", Role.MARKETING, with_totp=True)
    with client(live_server) as c:
        form = c.get("/staff/sign-in")
        step = c.post("/staff/sign-in", data={"email": login.email, "password": login.password,
                                              "csrf_token": csrf_of(form.text)})
        assert step.headers["location"] == "/staff/sign-in/code"
        assert c.get("/staff/").status_code == 303  # the password alone opens nothing
        page = c.get("/staff/sign-in/code")
        wrong = c.post("/staff/sign-in/code", data={"code": "000000", "csrf_token": csrf_of(page.text)})
        assert wrong.status_code == 400 and 'aria-invalid="true"' in wrong.text
        code = login.code()
        right = c.post("/staff/sign-in/code", data={"code": code, "csrf_token": csrf_of(page.text)})
        assert right.status_code == 303 and c.get("/staff/").status_code == 200
    with client(live_server) as c:  # the same code a second time is refused (seen over a shoulder)
        form = c.get("/staff/sign-in")
        c.post("/staff/sign-in", data={"email": login.email, "password": login.password,
                                       "csrf_token": csrf_of(form.text)})
        page = c.get("/staff/sign-in/code")
        assert c.post("/staff/sign-in/code", data={"code": code, "csrf_token": csrf_of(page.text)}).status_code == 400


def test_totp_enrolment_confirm_and_disable_through_the_account_pages(live_server: LiveServer,
                                                                      people: dict[Role, Login]) -> None:
    login = people[Role.MARKETING]
    before = audit_counts(live_server.db)
    with signed_in(live_server, login) as c:
        assert post_form(c, "/staff/account/two-factor", "/staff/account/two-factor/start").status_code == 303
        page = c.get("/staff/account/two-factor").text
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)  # type: ignore[union-attr]
        assert f"otpauth://totp/" in page and f"secret={secret}" in page
        assert "<svg" in page and "http" not in page.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
            "http://www.w3.org", "")  # drawn here: no image from another site
        bad = post_form(c, "/staff/account/two-factor", "/staff/account/two-factor/confirm", {"code": "123456"})
        assert bad.status_code == 400 and "does not match" in bad.text
        assert post_form(c, "/staff/account/two-factor", "/staff/account/two-factor/confirm",
                         {"code": pyotp.TOTP(secret).now()}).status_code == 303
        assert user_row(live_server.db, login.email).has_totp
        later = datetime.now(timezone.utc) + timedelta(seconds=30)
        off = post_form(c, "/staff/account", "/staff/account/two-factor/disable", {"code": pyotp.TOTP(secret).at(later)})
        assert off.status_code == 303
    assert not user_row(live_server.db, login.email).has_totp
    after = audit_counts(live_server.db)
    assert after["totp_enabled"] == before.get("totp_enabled", 0) + 1
    assert after["totp_disabled"] == before.get("totp_disabled", 0) + 1


def test_admins_must_enrol_first_when_2fa_is_required(settings: Settings, db: Database) -> None:
    admin = make_user(db, "adi@clinic.example", Role.ADMIN)
    marketing = make_user(db, "mo@clinic.example", Role.MARKETING)
    with serving(settings.model_copy(update={"require_2fa": True}), db) as server:
        with signed_in(server, marketing) as c:
            assert c.get("/staff/").status_code == 200  # required of admins only
        with signed_in(server, admin) as c:
            for path in ("/staff/", "/staff/users", "/staff/audit"):
                assert c.get(path).headers["location"] == "/staff/account/two-factor", path
            page = c.get("/staff/account/two-factor")
            assert page.status_code == 200 and "Admins must sign in with a code" in page.text
            post_form(c, "/staff/account/two-factor", "/staff/account/two-factor/start")
            secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', c.get("/staff/account/two-factor").text).group(1)  # type: ignore[union-attr]
            post_form(c, "/staff/account/two-factor", "/staff/account/two-factor/confirm",
                      {"code": pyotp.TOTP(secret).now()})
            assert c.get("/staff/users").status_code == 200
            refused = post_form(c, "/staff/account", "/staff/account/two-factor/disable",
                                {"code": pyotp.TOTP(secret).at(datetime.now(timezone.utc) + timedelta(seconds=30))})
            assert refused.status_code == 400 and "must keep" in refused.text


# Audit log ------------------------------------------------------------------------------------------------


def test_each_sensitive_action_writes_exactly_one_audit_entry(live_server: LiveServer,
                                                             people: dict[Role, Login]) -> None:
    db = live_server.db
    admin = people[Role.ADMIN]
    with client(live_server) as c:

        def one(action: str, step) -> None:  # noqa: ANN001
            before = audit_counts(db)
            step()
            after = audit_counts(db)
            assert after.get(action, 0) == before.get(action, 0) + 1, action
            assert sum(after.values()) == sum(before.values()) + 1, action

        one("sign_in_failed", lambda: _try(c, admin.email, "not this one at all"))
        one("sign_in_failed", lambda: _try(c, "nobody@clinic.example", "not this one at all"))
        one("sign_in", lambda: sign_in(c, admin))
        one("user_added", lambda: post_form(c, "/staff/users", "/staff/users",
                                            {"email": "new@clinic.example", "role": "clinic"}))
        new_id = user_row(db, "new@clinic.example").id
        one("role_changed", lambda: post_form(c, "/staff/users", f"/staff/users/{new_id}/role", {"role": "marketing"}))
        one("password_reset", lambda: post_form(c, "/staff/users", f"/staff/users/{new_id}/reset-password"))
        one("user_disabled", lambda: post_form(c, "/staff/users", f"/staff/users/{new_id}/disable"))
        one("sign_out", lambda: post_form(c, "/staff/", "/staff/sign-out"))
    with db.session() as s:
        failed = s.scalars(select(AuditEntry).where(AuditEntry.action == "sign_in_failed")
                           .order_by(AuditEntry.id)).all()
        assert [e.actor for e in failed] == [admin.email, audit.UNKNOWN_ACCOUNT]  # what was typed is not kept
        added = s.scalars(select(AuditEntry).where(AuditEntry.action == "user_added", AuditEntry.actor == admin.email)).one()
        assert added.target == f"user {new_id}" and added.actor_user_id == admin.user_id


def test_unchanged_things_write_nothing(live_server: LiveServer, people: dict[Role, Login]) -> None:
    clinic = people[Role.CLINIC]
    with signed_in(live_server, people[Role.ADMIN]) as c:
        before = audit_counts(live_server.db)
        post_form(c, "/staff/users", f"/staff/users/{clinic.user_id}/role", {"role": "clinic"})
        refused = post_form(c, "/staff/users", f"/staff/users/{people[Role.ADMIN].user_id}/role", {"role": "clinic"})
        assert refused.status_code == 303
        assert "only active admin" in c.get(refused.headers["location"]).text
        assert audit_counts(live_server.db) == before


def test_the_audit_page_filters_by_action_actor_and_date_and_pages(live_server: LiveServer,
                                                                   people: dict[Role, Login]) -> None:
    db = live_server.db
    with db.session() as s:
        for day in range(1, 4):
            for n in range(30):
                audit.record(s, "cli", AuditAction.EXPORT, f"list {n}", at=datetime(2026, 3, day, 12, n, tzinfo=timezone.utc))
    with signed_in(live_server, people[Role.ADMIN]) as c:
        whole = c.get("/staff/audit", params={"action": "export"}).text
        assert "The newest entries matching the filter" in whole and whole.count("<tr>") == 1 + 50
        older = re.search(r'href="(/staff/audit\?[^"]+)" rel="next">Older entries', whole)
        assert older, "the first page links to the older entries"
        rest = c.get(html.unescape(older.group(1))).text
        assert rest.count("<tr>") == 1 + 40 and "Older entries</a>" not in rest and "Newest entries" in rest
        assert "2026-03-01 12:00:00" in rest and "2026-03-03 12:29:00" in whole  # each entry once, in order
        day_two = c.get("/staff/audit", params={"action": "export", "actor": "cli", "since": "2026-03-02",
                                                "until": "2026-03-02"}).text
        assert day_two.count("<tr>") == 1 + 30 and "2026-03-02 12:29:00" in day_two and "2026-03-03" not in day_two
        bad = c.get("/staff/audit", params={"since": "yesterday", "action": "nonsense"})
        assert bad.status_code == 400
        assert 'id="since" name="since" type="date" value="yesterday"' in bad.text
        assert 'aria-describedby="since-error" aria-invalid="true"' in bad.text
        assert c.get("/staff/audit", params={"before": "not-a-cursor"}).status_code == 200  # the newest page
    with db.session() as s:
        first = audit.entries(s, AuditFilter(actor="cli"))
        second = audit.entries(s, AuditFilter(actor="cli"), first.older)
        assert len(first.entries) == 50 and len(second.entries) == 40 and second.older is None
        assert not {e.id for e in first.entries} & {e.id for e in second.entries}
        assert audit.Cursor.parse(str(first.older)) == first.older


def _assert_append_only(db: Database) -> None:
    with db.session() as s:
        audit.record(s, "cli", AuditAction.SETTINGS_CHANGED, "settings")
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"):
            with db.session() as s:
                s.execute(text(statement))
    with db.session() as s:
        assert s.scalar(select(AuditEntry.actor)) == "cli"


def test_the_database_refuses_to_change_the_audit_log_sqlite(db: Database) -> None:
    _assert_append_only(db)


@pytest.mark.postgres
def test_the_database_refuses_to_change_the_audit_log_postgres(postgres_db: Database) -> None:
    _assert_append_only(postgres_db)
    with pytest.raises(DatabaseError, match="append-only"):
        with postgres_db.session() as s:
            s.execute(text("TRUNCATE audit_log"))


# Pages --------------------------------------------------------------------------------------------------


def test_staff_pages_have_the_staff_headers(live_server: LiveServer, http: httpx.Client) -> None:
    csp = http.get("/staff/sign-in").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-src 'self'" in csp and "img-src 'self' data:" in csp
    assert "frame-ancestors 'none'" in csp and "https:" not in csp
    # Public pages may run this app's own script files (the consultation form's), never inline script.
    public = http.get("/subscribe").headers["content-security-policy"]
    assert "script-src 'self';" in public and "frame-src" not in public


def test_a_form_keeps_what_was_typed_and_shows_the_error_beside_the_field(live_server: LiveServer,
                                                                          people: dict[Role, Login]) -> None:
    with signed_in(live_server, people[Role.ADMIN]) as c:
        answer = post_form(c, "/staff/users", "/staff/users", {"email": "not an address", "role": "clinic"})
        assert answer.status_code == 400
        assert 'value="not an address"' in answer.text
        assert 'aria-describedby="email-error" aria-invalid="true"' in answer.text
        assert '<option value="clinic" selected>' in answer.text
        assert c.post(f"/staff/users/abc/disable", data={"csrf_token": csrf_of(answer.text)}).status_code == 303
    with client(live_server) as c:
        form = c.get("/staff/sign-in")
        answer = c.post("/staff/sign-in", data={"email": "ana@clinic.example", "password": "",
                                                "csrf_token": csrf_of(form.text)})
        assert 'value="ana@clinic.example"' in answer.text and 'id="password-error"' in answer.text
