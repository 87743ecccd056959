"""The audit log page (admins): filter by action, actor and date range (GET parameters, so a filtered
view can be linked to), newest first, a page at a time by keyset (``before``: where the page starts)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from newsletter.staff import audit as audit_log
from newsletter.paging import Cursor
from newsletter.staff.audit import AuditAction, AuditFilter
from newsletter.staff.roles import Area
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page

router = APIRouter()


def _day(value: str, name: str, errors: dict[str, str]) -> date | None:
    if not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        errors[name] = "Give a date like 2026-12-31."
        return None
    if day == date.max:  # the day after it, where "until" ends, is past the calendar (OverflowError)
        errors[name] = "Give a date before 9999-12-31."
        return None
    return day


def _start_of(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), tzinfo=timezone.utc) if day else None


@router.get("/staff/audit")
def audit_page(request: Request, action: str = "", actor: str = "", since: str = "", until: str = "",
               before: str = "", staff: Staff = Depends(Require(Area.AUDIT))) -> Response:
    # Every filter is read as text: a mangled query gets an error beside its field, never a 422.
    errors: dict[str, str] = {}
    chosen = None
    if action:
        try:
            chosen = AuditAction(action)
        except ValueError:
            errors["action"] = "Choose an action from the list."
    first, last = _day(since, "since", errors), _day(until, "until", errors)
    if first and last and last < first:
        errors["until"] = "The last day must not be before the first day."
    filters = AuditFilter(chosen, actor.strip() or None, _start_of(first),
                          _start_of(last + timedelta(days=1)) if last else None)
    with request.app.state.db.session() as session:
        result = None if errors else audit_log.entries(session, filters, Cursor.parse(before))
        actors = audit_log.actors(session)
    query = {k: v for k, v in {"action": action, "actor": actor, "since": since, "until": until}.items() if v}

    def page_link(cursor: Cursor | None = None) -> str:
        return "/staff/audit?" + urlencode({**query, **({"before": str(cursor)} if cursor else {})})

    return page(request, staff, "staff/audit.html", 400 if errors else 200, result=result,
                action_options=[("", "Any action")] + [(a.value, a.value.replace("_", " ")) for a in AuditAction],
                actor_options=[("", "Anyone")] + [(a, a) for a in actors],
                values={"action": action, "actor": actor, "since": since, "until": until},
                errors=errors, page_link=page_link)
