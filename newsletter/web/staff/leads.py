"""The Leads pages (admins and clinic staff): the board by stage, a lead's page with its stage and
bookings, the warm leads to call, and the funnel. Thin: the rules are ``subscribers.leads`` (the
``newsletter leads`` commands' services), ``newsletter.staff.lead_actions`` (the same, audited) and
the reports ``follow_up`` and ``funnel`` (``newsletter report follow-up`` / ``funnel``).

What a page shows of a contact: only a lead's (a contact who asked for a consultation): name,
address, phone, preferred contact method and time, time zone, source and UTM values, the consent to
be contacted about the consultation, stage history, bookings and the emails sent to them with human
opens and clicks. Never lists, tags, custom fields or newsletter consent: those are the Contacts
area's (admins and marketing). A contact who is not a lead is a 404 here, whatever the role. Admins
and clinic staff see the same pages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import Response

from newsletter.reports import charts
from newsletter.reports.follow_up import follow_up_report
from newsletter.reports.funnel import funnel_report
from newsletter.reports.lead_emails import lead_emails
from newsletter.staff import lead_actions
from newsletter.paging import Cursor
from newsletter.staff.roles import Area
from newsletter.urls import url_id
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.home import local_time
from newsletter.web.staff.render import page, redirect
from subscribers import leads as lead_service
from subscribers.db import utcnow
from subscribers.errors import InputError, NotFound

router = APIRouter()
LEADS = "/staff/leads"
clinic = Require(Area.LEADS)
BOARD_COLUMN = 8  # cards per stage on the board; "more" opens the stage alone
STAGE_PAGE = 50
FOLLOW_UP_PAGE = 50


def _number(value: str | None, what: str) -> int:
    """A numeric id from a path or query (anything else is a 404, never a 500: ``url_id`` refuses
    "²", which ``str.isdigit`` takes, and numbers too big for the column, which PostgreSQL refuses)."""
    number = url_id(value or "")
    if number is None:
        raise HTTPException(404, f"no such {what}")
    return number


def _requested(shown: Callable[[datetime | None], str]) -> Callable[[str | None], str]:
    """A lead's requested time for people: a window in words, or a date-time in the clinic's zone."""
    def text(value: str | None) -> str:
        if not value:
            return "not given"
        if value in lead_service.REQUESTED_WINDOWS:
            return value.replace("_", " ")
        return shown(datetime.fromisoformat(value))
    return text


def _ago(now: datetime) -> Callable[[datetime], str]:
    def text(value: datetime) -> str:
        minutes = max(0, int((now - value).total_seconds() // 60))
        for size, word in ((1440, "day"), (60, "hour"), (1, "minute")):
            if minutes >= size:
                n = minutes // size
                return f"{n} {word}{'s' if n != 1 else ''} ago"
        return "just now"
    return text


def _common(request: Request) -> dict[str, Any]:
    zone = request.app.state.settings.default_timezone
    shown = local_time(zone)
    return {"zone": zone, "shown": shown, "requested": _requested(shown), "stage_labels": charts.STAGE_LABELS,
            "stages": lead_service.STAGES, "ago": _ago(utcnow())}


@router.get(LEADS)
def board(request: Request, stage: str | None = None, after: str | None = None,
          staff: Staff = Depends(clinic)) -> Response:
    """Every stage's newest leads; with ``stage`` that stage alone, paged on by ``after`` (a lead id)."""
    if stage is not None and stage not in lead_service.STAGES:
        raise HTTPException(404, "no such stage")
    start = _number(after, "lead") if after is not None else None
    with request.app.state.db.session() as session:
        try:
            if stage is None:
                columns = [lead_service.leads_in_stage(session, s, limit=BOARD_COLUMN) for s in lead_service.STAGES]
            else:
                columns = [lead_service.leads_in_stage(session, stage, after=start, limit=STAGE_PAGE)]
        except NotFound:
            raise HTTPException(404, "no such lead") from None
        return page(request, staff, "staff/leads/board.html", columns=columns, one_stage=stage, after=start,
                    **_common(request))


@router.get(LEADS + "/follow-up")
def follow_up(request: Request, after: str = "", staff: Staff = Depends(clinic)) -> Response:
    """The warm leads, most recent first, a page at a time (``after``: where the page starts)."""
    start = Cursor.parse(after)  # anything else: the first page
    with request.app.state.db.session() as session:
        report = follow_up_report(session, now=utcnow(), limit=FOLLOW_UP_PAGE, after=start)
    return page(request, staff, "staff/leads/follow_up.html", report=report, first=start is None,
                **_common(request))


@router.get(LEADS + "/funnel")
def funnel(request: Request, staff: Staff = Depends(clinic)) -> Response:
    zone = request.app.state.settings.default_timezone
    with request.app.state.db.session() as session:
        report = funnel_report(session, zone=zone)
    sources = {name.replace("_", " "): figures for name, figures in report.by_source.items()}
    chart_list = [charts.funnel_groups_chart("Leads by source", sources, "source"),
                  charts.funnel_groups_chart("Leads by month", report.by_month, "month")]
    return page(request, staff, "staff/leads/funnel.html", report=report, charts=chart_list, **_common(request))


def _lead_page(request: Request, staff: Staff, contact_id: int, status: int = 200, **context: Any) -> Response:
    with request.app.state.db.session() as session:
        try:
            lead = lead_service.lead_of_contact(session, contact_id)
        except NotFound:
            raise HTTPException(404, "no such lead") from None
        context.setdefault("booking", {"date": "", "time": "", "external_id": ""})
        context.setdefault("errors", {})
        return page(request, staff, "staff/leads/lead.html", status, lead=lead,
                    bookings=lead_service.bookings_of(session, lead), emails=lead_emails(session, contact_id),
                    utm=[(key, getattr(lead, f"utm_{key}")) for key in lead_service.UTM_KEYS
                         if getattr(lead, f"utm_{key}")],
                    **_common(request), **context)


@router.get(LEADS + "/{contact_id}")
def lead_page(request: Request, contact_id: str, staff: Staff = Depends(clinic)) -> Response:
    return _lead_page(request, staff, _number(contact_id, "lead"))


@router.post(LEADS + "/{contact_id}/stage")
def move(request: Request, contact_id: str, stage: str = Form(""), back: str = Form(""),
         staff: Staff = Depends(clinic)) -> Response:
    number = _number(contact_id, "lead")
    try:
        with request.app.state.db.session() as session:
            lead = lead_service.lead_of_contact(session, number)
            before = lead.stage
            changed = lead_actions.move_stage(session, lead, stage, actor=staff.user)
    except NotFound:
        raise HTTPException(404, "no such lead") from None
    except InputError as exc:  # shown beside the stage field of the lead's page
        return _lead_page(request, staff, number, 400, errors={"stage": str(exc)})
    # Back on the board at the lead's card (now in its new column), so the keyboard carries on from there.
    to = f"{LEADS}#lead-{number}" if back == "board" else f"{LEADS}/{number}"
    labels = charts.STAGE_LABELS
    if not changed:
        return redirect(request, to, f"The lead is already {labels[stage]}.")
    return redirect(request, to, f"Lead moved from {labels[before]} to {labels[stage]}.")


@router.post(LEADS + "/{contact_id}/bookings")
def book(request: Request, contact_id: str, date: str = Form(""), time: str = Form(""),
         external_id: str = Form(""), staff: Staff = Depends(clinic)) -> Response:
    number = _number(contact_id, "lead")
    values = {"date": date, "time": time, "external_id": external_id}
    try:
        with request.app.state.db.session() as session:
            lead = lead_service.lead_of_contact(session, number)
            result = lead_actions.book(session, lead, day=date, clock=time, external_id=external_id,
                                       zone=request.app.state.settings.default_timezone, actor=staff.user)
            booking_id = result.booking.id
    except NotFound:
        raise HTTPException(404, "no such lead") from None
    except lead_service.FieldError as exc:
        return _lead_page(request, staff, number, 400, booking=values, errors={exc.field: str(exc)})
    except InputError as exc:  # the other thing typed: the external id (used by another lead, too long)
        return _lead_page(request, staff, number, 400, booking=values, errors={"external_id": str(exc)})
    if result.created:
        return redirect(request, f"{LEADS}/{number}", f"Booking {booking_id} recorded.")
    return redirect(request, f"{LEADS}/{number}", f"Booking {booking_id} was recorded before; nothing changed.")
