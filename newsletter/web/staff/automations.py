"""Staff pages for automations (marketing and admin): a feed's automation and the digest, each a
form (mode, slot, layout or how often, audience, subject and preheader templates) with its state.

Routes read the form and call ``newsletter.automations``; errors come back beside their fields with
what was typed; every change is audited in the transaction that stores it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from newsletter.automations import configure, status, wording
from newsletter.automations.configure import AutomationErrors, Wanted
from newsletter.automations.status import AutomationState
from newsletter.errors import NotFound
from newsletter.models import Automation
from newsletter.sending.staff_actions import audience_options, is_admin
from newsletter.staff import audit
from newsletter.staff.audit import AuditAction
from newsletter.staff.roles import Area
from newsletter.urls import url_id
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from subscribers.db import utcnow

router = APIRouter()
FEEDS = "/staff/posts/feeds"
FEED_AUTOMATION = FEEDS + "/{feed_id}/automation"
DIGEST = "/staff/posts/digest"
marketing = Require(Area.POSTS)
FIELDS = ("mode", "slot", "layout", "every", "list", "segment", "subject_template", "preheader_template")
EVERY_OPTIONS = [("week", "Every week"), ("month", "Every month (the first such weekday)")]
LAYOUT_OPTIONS = [("full", "Full: the whole post"), ("teaser", "Teaser: title, image, excerpt and a link")]


def _values(automation: Automation | None, lists: dict[int, str], segments: dict[int, str]) -> dict[str, str]:
    if automation is None:
        return {"mode": configure.OFF, "slot": configure.DEFAULT_SLOT, "layout": "full", "every": "week",
                "list": "", "segment": "", "subject_template": "", "preheader_template": ""}
    return {"mode": automation.mode, "slot": f"{automation.slot_days} {automation.slot_time}",
            "layout": automation.layout, "every": automation.every,
            "list": lists.get(automation.list_id, "") if automation.list_id else "",
            "segment": segments.get(automation.segment_id, "") if automation.segment_id else "",
            "subject_template": automation.subject_template or "",
            "preheader_template": automation.preheader_template or ""}


def _form_page(request: Request, staff: Staff, *, feed_id: int | None, status_code: int = 200,
               values: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> Response:
    now = utcnow()
    with request.app.state.db.session() as session:
        feed = configure.get_feed(session, feed_id) if feed_id is not None else None
        automation = (configure.feed_automation(session, feed_id) if feed_id is not None
                      else configure.digest_automation(session, None))
        state: AutomationState | None = status.state_of(session, automation, now) if automation else None
        lists, segments = audience_options(session)
        list_names = {l.id: l.slug for l in lists}
        segment_names = {s.id: s.name for s in segments}
        shown = values or _values(automation, list_names, segment_names)
        return page(request, staff, "staff/posts/automation.html", status_code, feed=feed, state=state,
                    values=shown, errors=errors or {}, action=FEED_AUTOMATION.format(feed_id=feed_id)
                    if feed_id is not None else DIGEST,
                    mode_options=list(configure.MODE_LABELS.items()), every_options=EVERY_OPTIONS,
                    layout_options=LAYOUT_OPTIONS,
                    list_options=[("", "The newsletter's list")] + [(l.slug, l.name) for l in lists],
                    segment_options=[("", "Everyone on the list")] + [(s.name, s.name) for s in segments],
                    placeholders=wording.PLACEHOLDERS)


def _feed_id(value: str) -> int:
    number = url_id(value)
    if number is None:
        raise HTTPException(404)
    return number


@router.get(FEED_AUTOMATION)
def feed_automation_page(request: Request, feed_id: str, staff: Staff = Depends(marketing)) -> Response:
    try:
        return _form_page(request, staff, feed_id=_feed_id(feed_id))
    except NotFound:
        raise HTTPException(404) from None


@router.get(DIGEST)
def digest_page(request: Request, staff: Staff = Depends(marketing)) -> Response:
    return _form_page(request, staff, feed_id=None)


def _save(request: Request, staff: Staff, feed_id: int | None, form: dict[str, str]) -> Response:
    settings = request.app.state.settings
    wanted = Wanted(mode=form["mode"], slot=form["slot"], layout=form["layout"] if feed_id is not None else None,
                    every=form["every"] if feed_id is None else None, list_slug=form["list"],
                    segment=form["segment"], subject_template=form["subject_template"],
                    preheader_template=form["preheader_template"])
    try:
        with request.app.state.db.session() as session:
            if feed_id is not None:
                automation = configure.set_feed_automation(session, settings, feed_id, wanted, now=utcnow(),
                                                           may_skip_approval=is_admin(staff.user))
                what = f"feed {feed_id}: {automation.mode}"
            else:
                automation = configure.set_digest_automation(session, settings, None, wanted, now=utcnow(),
                                                             may_skip_approval=is_admin(staff.user))
                what = f"digest every {automation.every}: {automation.mode}"
            audit.record(session, staff.user, AuditAction.AUTOMATION_SET, f"automation {automation.id}",
                         f"{what}, {automation.slot_days} {automation.slot_time}")
            saved_mode = automation.mode
    except AutomationErrors as exc:
        return _form_page(request, staff, feed_id=feed_id, status_code=400, values=form, errors=exc.errors)
    except NotFound:
        raise HTTPException(404) from None
    name = f"Feed {feed_id}'s automation" if feed_id is not None else "The digest"
    return redirect(request, FEEDS, f"{name} is saved: {configure.MODE_LABELS[saved_mode]}.")


@router.post(FEED_AUTOMATION)
def save_feed_automation(request: Request, feed_id: str, mode: str = Form(""), slot: str = Form(""),
                         layout: str = Form("full"), list_slug: str = Form("", alias="list"),
                         segment: str = Form(""), subject_template: str = Form(""),
                         preheader_template: str = Form(""), staff: Staff = Depends(marketing)) -> Response:
    return _save(request, staff, _feed_id(feed_id), {
        "mode": mode, "slot": slot, "layout": layout, "every": "week", "list": list_slug, "segment": segment,
        "subject_template": subject_template, "preheader_template": preheader_template})


@router.post(DIGEST)
def save_digest(request: Request, mode: str = Form(""), slot: str = Form(""), every: str = Form("week"),
                list_slug: str = Form("", alias="list"), segment: str = Form(""), subject_template: str = Form(""),
                preheader_template: str = Form(""), staff: Staff = Depends(marketing)) -> Response:
    return _save(request, staff, None, {
        "mode": mode, "slot": slot, "layout": "digest", "every": every, "list": list_slug, "segment": segment,
        "subject_template": subject_template, "preheader_template": preheader_template})
