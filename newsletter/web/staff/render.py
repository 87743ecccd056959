"""How staff pages are drawn: the templates, the navigation for a role, and one-time messages.

The navigation lists an area only when the role may open it and the app has its page (a GET route at
the area's path), so a page added later appears in the menu of the roles that may use it by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeSerializer

from newsletter.compose.templating import templates_dir
from newsletter.staff.roles import Area, may
from newsletter.web.staff.auth import Staff, clear_cookie, cookie_name, set_cookie
from newsletter.web.staff.routes import staff_routes

templates = Jinja2Templates(directory=f"{templates_dir()}/web")
FLASH = "staff_flash"

# The staff page of a thing named as the audit log names it ("issue 3" -> /staff/issues/3), for links
# from the log and from a contact's timeline. An erased contact or a deleted segment is "not found".
THING_PAGES = {"contact": "/staff/contacts/", "lead": "/staff/leads/", "issue": "/staff/issues/",
               "post": "/staff/posts/", "sequence": "/staff/sequences/", "segment": "/staff/segments/"}


def page_of(thing: str | None) -> str | None:
    kind, _, number = (thing or "").partition(" ")
    return THING_PAGES[kind] + number if kind in THING_PAGES and number.isdigit() else None


templates.env.globals["page_of"] = page_of


@dataclass(frozen=True)
class AreaPage:
    area: Area
    label: str
    path: str
    about: str


AREA_PAGES = [
    AreaPage(Area.HOME, "Home", "/staff/", "What is scheduled and sending, recent issues and this month's figures."),
    AreaPage(Area.POSTS, "Posts", "/staff/posts", "Import posts by URL, file or paste, and follow the feeds."),
    AreaPage(Area.ISSUES, "Issues", "/staff/issues", "Make issues from posts, preview, test, schedule and read "
             "their results."),
    AreaPage(Area.CONTACTS, "Contacts", "/staff/contacts", "The audience: search, timelines, imports and exports."),
    AreaPage(Area.CONTACTS, "Segments", "/staff/segments", "Groups of contacts by a definition, with their count."),
    AreaPage(Area.SEQUENCES, "Sequences", "/staff/sequences", "Drips: steps, their figures, pause, resume and enrol."),
    AreaPage(Area.REPORTS, "Reports", "/staff/reports", "Figures for issues, sequences and the lead funnel."),
    AreaPage(Area.LEADS, "Leads", "/staff/leads", "People who asked for a consultation: follow-up and bookings."),
    AreaPage(Area.AUDIT, "Audit log", "/staff/audit", "Who did what and when: sign-ins, sends, exports, changes."),
    AreaPage(Area.USERS, "Users", "/staff/users", "Staff accounts: add people, change roles, disable, reset "
             "passwords."),
    AreaPage(Area.SETTINGS, "Settings", "/staff/settings", "How the newsletter and the app are set up."),
    AreaPage(Area.SETTINGS, "Webhooks", "/staff/webhooks", "The clinic CRM's endpoints for signed events, "
             "and what was sent to them."),
    AreaPage(Area.SETTINGS, "API tokens", "/staff/api-tokens", "Tokens that let other programs use the REST API."),
]


def _served_paths(request: Request) -> frozenset[str]:
    cached = getattr(request.app.state, "staff_pages", None)
    if cached is None:
        cached = frozenset(route.path.rstrip("/") for route in staff_routes(request.app) if "GET" in route.methods)
        request.app.state.staff_pages = cached
    return cached


def areas_open_to(request: Request, staff: Staff) -> list[AreaPage]:
    """The areas ``staff``'s role may open that have a page in this app."""
    served = _served_paths(request)
    return [a for a in AREA_PAGES if may(staff.user.role, a.area) and a.path.rstrip("/") in served]


def _flash_serializer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app.state.settings.signing_key(), salt="staff-flash")


def redirect(request: Request, to: str, message: str | None = None, *, error: bool = False) -> RedirectResponse:
    """303 to ``to``, with a message for the next page shown once (a signed cookie: no state stored)."""
    response = RedirectResponse(to, status_code=303)
    if message:
        set_cookie(response, request, FLASH, _flash_serializer(request).dumps({"text": message, "error": error}))
    return response


def _take_flash(request: Request) -> dict[str, Any] | None:
    raw = request.cookies.get(cookie_name(request, FLASH))
    if not raw:
        return None
    try:
        value = _flash_serializer(request).loads(raw)
    except BadSignature:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("text"), str) else None


def page(request: Request, staff: Staff | None, template: str, status: int = 200, *,
         flash: str | None = None, flash_error: bool = False, **context: Any) -> HTMLResponse:
    """A staff page: ``template`` with the user, their navigation, the CSRF token and any message."""
    message = {"text": flash, "error": flash_error} if flash else _take_flash(request)
    csrf = staff.csrf if staff else context.pop("csrf_token", "")
    response = templates.TemplateResponse(request, template, {
        "settings": request.app.state.settings,
        "staff": staff,
        "nav": areas_open_to(request, staff) if staff else [],
        "csrf_token": csrf,
        "flash": message,
        "current_path": request.url.path,
        **context,
    }, status_code=status)
    if request.cookies.get(cookie_name(request, FLASH)):
        clear_cookie(response, request, FLASH)
    return response
