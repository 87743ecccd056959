"""Helpers for tests of staff pages: make a user, sign in (through the real page in a browser, or
with httpx carrying the CSRF token), read a page's CSRF token, and keep screenshots at phone and
desktop width under test-artifacts/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pyotp

from newsletter.database import Database
from newsletter.staff import totp as staff_totp
from newsletter.staff.roles import Role
from newsletter.staff.users import add_user, get
from tests.a11y import assert_accessible, shoot  # noqa: F401 - one home for screenshots and the axe check; page tests import them from here too

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Login:
    email: str
    password: str
    role: Role
    user_id: int
    totp_secret: str | None = None

    def code(self, at: datetime | None = None) -> str:
        """A current TOTP code (each may be used once: pass ``at`` a step apart for another)."""
        assert self.totp_secret, "this user has no TOTP"
        return pyotp.TOTP(self.totp_secret).at(at or datetime.now(timezone.utc))


def make_user(db: Database, email: str = "ana@clinic.example", role: Role | str = Role.ADMIN,
              password: str = PASSWORD, *, with_totp: bool = False) -> Login:
    """A staff user (added as the CLI would, audited as 'system'); ``with_totp``: two-factor on."""
    with db.session() as session:
        user, password = add_user(session, email, role, password)
        secret = None
        if with_totp:
            secret = staff_totp.begin_enrolment(user)
            user.totp_secret, user.totp_pending_secret = secret, None
        return Login(user.email, password, Role(user.role), user.id, secret)


def user_row(db: Database, email: str) -> Any:
    with db.session() as session:
        return get(session, email)


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def client(server: Any) -> httpx.Client:
    """An HTTP client of the live app ``server`` that shows each answer as it is (no redirects followed)."""
    return httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)


@contextmanager
def signed_in(server: Any, login: Login) -> Iterator[httpx.Client]:
    """A ``client`` of ``server`` signed in as ``login`` through the sign-in form."""
    with client(server) as c:
        sign_in(c, login)
        yield c


def sign_in(client: httpx.Client, login: Login, *, code: str | None = None) -> httpx.Response:
    """Sign in through the sign-in form (and the code step for a user with TOTP) with ``client``,
    whose base_url is the app on http://127.0.0.1 (so the cookies are not Secure-only)."""
    form = client.get("/staff/sign-in")
    answer = client.post("/staff/sign-in", data={"email": login.email, "password": login.password,
                                                 "csrf_token": csrf_of(form.text)})
    if login.totp_secret is None:
        assert answer.status_code == 303, answer.text
        return answer
    assert answer.status_code == 303 and answer.headers["location"].startswith("/staff/sign-in/code"), answer.text
    step = client.get("/staff/sign-in/code")
    answer = client.post("/staff/sign-in/code", data={"code": code or login.code(), "csrf_token": csrf_of(step.text)})
    assert answer.status_code == 303, answer.text
    return answer


def post_form(client: httpx.Client, page: str, action: str, data: dict[str, str] | None = None) -> httpx.Response:
    """Open ``page``, take its CSRF token, and post ``data`` to ``action`` as its form would."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={**(data or {}), "csrf_token": token})


def tab_to(page: Any, element_id: str, most: int = 12) -> None:
    """Press Tab until the element with ``element_id`` has the focus (as a keyboard user would)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} was not reached with {most} presses of Tab")


def browser_sign_in(page: Any, base_url: str, login: Login, *, next_path: str = "/staff/") -> None:
    """Sign in through the real page with the keyboard only (Tab, typing, Enter)."""
    page.goto(f"{base_url}/staff/sign-in" + (f"?next={next_path}" if next_path != "/staff/" else ""))
    tab_to(page, "email")
    page.keyboard.type(login.email)
    page.keyboard.press("Tab")
    page.keyboard.type(login.password)
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    if login.totp_secret:
        page.wait_for_url("**/staff/sign-in/code**")
        tab_to(page, "code")
        page.keyboard.type(login.code())
        page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}{next_path}")


def signed_in_page(browser: Any, base_url: str, login: Login, *, next_path: str = "/staff/",
                   **options: Any) -> tuple[Any, Any, list[str]]:
    """A desktop-sized browser context signed in as ``login`` (through the real page), its page, and
    the list of requests that page makes to any other host (which must stay empty)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    page = context.new_page()
    elsewhere: list[str] = []
    page.on("request", lambda r: elsewhere.append(r.url)
            if not r.url.startswith((base_url, "data:", "about:", "blob:")) else None)
    browser_sign_in(page, base_url, login, next_path=next_path)
    return context, page, elsewhere


def visited(page: Any, name: str) -> None:
    """What every staff page of a flow must pass: axe-core at the width it is walked at and at 390 px,
    no page-wide sideways scroll at 390 px, and screenshots at 390 and 1280 px (the viewport is put back)."""
    size = page.viewport_size or {"width": 1280, "height": 900}
    assert_accessible(page)
    page.set_viewport_size({"width": 390, "height": 900})
    assert no_horizontal_scroll(page), f"{name} scrolls sideways at 390 px"
    assert_accessible(page)
    page.set_viewport_size(size)
    shoot(page, name)


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"))
