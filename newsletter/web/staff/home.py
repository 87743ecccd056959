"""The staff home: what is going out, how the last issues did, this month's figures and two charts.

Each section is shown to the roles that may open its area (issues for marketing and admins; the
month's figures and the lead funnel, which are counts and never a person, for everyone)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from newsletter.automations.status import needs_attention
from newsletter.reports import charts, dashboard
from newsletter.staff.roles import Area, may
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import areas_open_to, page
from subscribers.db import utcnow

router = APIRouter()


def local_time(zone: str):  # noqa: ANN201 - a Jinja filter
    tz = ZoneInfo(zone)

    def show(value: datetime | None) -> str:
        return value.astimezone(tz).strftime("%a %d %b %Y, %H:%M") if value else "—"

    return show


@router.get("/staff/")
def home(request: Request, staff: Staff = Depends(Require(Area.HOME))) -> Response:
    settings = request.app.state.settings
    zone, now = settings.default_timezone, utcnow()
    issues_too = may(staff.user.role, Area.ISSUES)
    with request.app.state.db.session() as session:
        outgoing = dashboard.outgoing(session) if issues_too else None
        recent = dashboard.recent_issues(session, now) if issues_too else []
        weeks = dashboard.engagement_by_week(session, zone=zone, now=now) if issues_too else []
        month = dashboard.month_comparison(session, zone=zone, now=now)
        funnel = dashboard.lead_funnel(session)
        # Drafts automations made, issues waiting for approval, feeds that keep failing.
        notices = needs_attention(session, now) if may(staff.user.role, Area.POSTS) else []
    areas = [a for a in areas_open_to(request, staff) if a.area is not Area.HOME]
    return page(request, staff, "staff/home.html", areas=areas, issues_too=issues_too, outgoing=outgoing,
                recent=recent, notices=notices, month=month, zone=zone, shown=local_time(zone),
                engagement=charts.engagement_chart(weeks) if issues_too else None,
                funnel=charts.funnel_chart(funnel))
