"""Staff pages for contacts (admin and marketing): find contacts, read one's timeline, add one,
edit tags and custom fields, suppress and unsuppress, erase, export one person's data and export a
list or a segment as CSV.

Routes read forms and call the services the CLI uses (``subscribers.contact_search``,
``subscribers.contacts``, ``subscribers.suppression``, ``newsletter.optin.add_by_staff``,
``newsletter.contact_timeline``, ``newsletter.contact_records``). Contacts are named by number in
URLs; search text travels in a POST body only (the filters, which say nothing about a person, may be
in the query string). Every change is audited in the transaction that makes it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from newsletter import contact_records, optin
from newsletter.contact_timeline import timeline
from newsletter.errors import InputError, NotFound
from newsletter.issues import sentence
from newsletter.reports.charts import STAGE_LABELS
from newsletter.staff import audit
from newsletter.staff.audit import AuditAction
from newsletter.staff.roles import Area
from newsletter.urls import url_id
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from subscribers import contacts as contact_service
from subscribers import suppression
from subscribers.contact_search import STATUS_FILTERS, ContactQuery, all_tags, search_contacts
from subscribers.languages import LANGUAGES, check_language
from subscribers.leads import stage_of_contact
from subscribers.lists import all_lists, get_list
from subscribers.models import Contact
from subscribers.segments import get_segment, list_segments
from subscribers.states import SubscribeOutcome

router = APIRouter()  # fixed paths (new, export) come before /{contact_id}, which would take them
CONTACTS = "/staff/contacts"
SEARCH = CONTACTS + "/search"
NEW = CONTACTS + "/new"
EXPORT = CONTACTS + "/export"
audience = Require(Area.CONTACTS)
NO_STORE = {"Cache-Control": "no-store"}


def _contact_id(value: str) -> int:
    number = url_id(value)
    if number is None:
        raise HTTPException(404)
    return number


def _load(session: Any, value: str, *, for_update: bool = False) -> Contact:
    """The contact a path names, else the 404 page (``for_update``: locked for a change)."""
    try:
        return contact_service.contact_by_id(session, _contact_id(value), for_update=for_update)
    except NotFound:
        raise HTTPException(404) from None


def _contact_path(contact_id: int) -> str:
    return f"{CONTACTS}/{contact_id}"


def _choices(session: Any) -> dict[str, Any]:
    """The filters' options: lists, tags in use, statuses and saved segments."""
    return {"list_options": [("", "Any list")] + [(m.slug, m.name) for m in all_lists(session)],
            "tag_options": [("", "Any tag")] + [(t, t) for t in all_tags(session)],
            "status_options": [("", "Any status")] + [(s, s) for s in STATUS_FILTERS],
            "segment_options": [("", "No segment")] + [(s.name, s.name) for s in list_segments(session)]}


def _cursor(value: str) -> int | None:
    return url_id(value) if value else None


# The list and the search -----------------------------------------------------------------------------


def _list_page(request: Request, staff: Staff, query: ContactQuery, before: int | None, *,
               searched: bool) -> Response:
    errors: dict[str, str] = {}
    with request.app.state.db.session() as session:
        choices = _choices(session)
        try:
            listing = search_contacts(session, query, before=before)
        except (InputError, NotFound) as exc:
            listing = None
            errors["q" if searched and query.term else "filters"] = sentence(str(exc))
    return page(request, staff, "staff/contacts/list.html", 400 if errors else 200, query=query, listing=listing,
                errors=errors, searched=searched, first_page=_filtered_path(query), **choices)


def _filtered_path(query: ContactQuery) -> str:
    """The list's address with the query's filters (never its search text)."""
    filters = {"list": query.list_slug, "tag": query.tag, "status": query.status, "segment": query.segment}
    given = urlencode({key: value for key, value in filters.items() if value})
    return f"{CONTACTS}?{given}" if given else CONTACTS


@router.get(CONTACTS)
def contacts_list(request: Request, list_slug: str = Query("", alias="list"), tag: str = Query(""),
                  status: str = Query(""), segment: str = Query(""), before: str = Query(""),
                  staff: Staff = Depends(audience)) -> Response:
    query = ContactQuery(list_slug=list_slug, tag=tag, status=status, segment=segment)
    return _list_page(request, staff, query, _cursor(before), searched=False)


@router.post(SEARCH)
def contacts_search(request: Request, q: str = Form(""), list_slug: str = Form("", alias="list"),
                    tag: str = Form(""), status: str = Form(""), segment: str = Form(""),
                    before: str = Form(""), staff: Staff = Depends(audience)) -> Response:
    """The search: a POST, so the text (an address, a name) stays out of URLs, logs and history.
    Its next pages are POSTs too, carrying the text in the form body."""
    query = ContactQuery(term=q.strip(), list_slug=list_slug, tag=tag, status=status, segment=segment)
    if not query.term:  # filters only: their page has an address of its own
        return redirect(request, _filtered_path(query))
    return _list_page(request, staff, query, _cursor(before), searched=True)


# Adding a contact -------------------------------------------------------------------------------------


def _new_page(request: Request, staff: Staff, status: int = 200, values: dict[str, Any] | None = None,
              errors: dict[str, str] | None = None) -> Response:
    settings = request.app.state.settings
    with request.app.state.db.session() as session:
        lists = [(m.slug, m.name, m.double_opt_in) for m in all_lists(session)]
    values = values or {"email": "", "name": "", "timezone": settings.default_timezone, "tags": "", "fields": "",
                        "lists": [settings.default_list], "confirmed": False, "consent_note": "", "language": ""}
    return page(request, staff, "staff/contacts/new.html", status, values=values, errors=errors or {},
                languages=_language_options(settings),
                lists=lists, default_list=settings.default_list, newsletter_name=settings.newsletter_name)


def _language_options(settings: Any) -> list[tuple[str, str]]:
    """The language select's options: "" (the newsletter's, which follows it if it changes) first."""
    return [("", f"The newsletter's language ({settings.language})"), *LANGUAGES.items()]


def _tags_and_fields(values: dict[str, Any], errors: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The tags and custom fields typed in a form; a problem goes into ``errors`` beside its field."""
    parsed: dict[str, Any] = {}
    for key, parse in (("tags", contact_service.parse_tags), ("fields", contact_service.parse_fields)):
        try:
            parsed[key] = parse(values[key])
        except InputError as exc:
            errors[key] = sentence(str(exc))
    return parsed.get("tags", []), parsed.get("fields", {})


@router.get(NEW)
def new_contact_page(request: Request, staff: Staff = Depends(audience)) -> Response:
    return _new_page(request, staff)


OUTCOME_WORDS = {
    SubscribeOutcome.PENDING: "waits for the person to confirm (a confirmation email is on its way)",
    SubscribeOutcome.CONFIRMED: "subscribed",
    SubscribeOutcome.ALREADY: "already subscribed",
    SubscribeOutcome.WITHDRAWN: "not subscribed: they unsubscribed earlier",
}


@router.post(NEW)
async def add_contact(request: Request, staff: Staff = Depends(audience)) -> Response:
    form = await request.form()
    values: dict[str, Any] = {key: str(form.get(key, "")).strip() for key in
                              ("email", "name", "timezone", "tags", "fields", "consent_note", "language")}
    values["lists"] = [str(v) for v in form.getlist("lists")]
    values["confirmed"] = form.get("confirmed") == "yes"
    errors: dict[str, str] = {}
    tags, fields = _tags_and_fields(values, errors)
    if not values["email"]:
        errors["email"] = "Enter the person's email address."
    if not values["lists"]:
        errors["lists"] = "Choose at least one list."
    if values["confirmed"] and not values["consent_note"]:
        errors["consent_note"] = "Say how this person agreed: it is kept as the proof of their consent."
    if values["timezone"]:
        try:
            contact_service.check_timezone(values["timezone"])
        except InputError as exc:
            errors["timezone"] = sentence(str(exc))
    if values["language"]:
        try:
            check_language(values["language"])
        except InputError as exc:
            errors["language"] = sentence(str(exc))
    if errors:
        return _new_page(request, staff, 400, values, errors)
    settings = request.app.state.settings
    try:
        with request.app.state.db.session() as session:
            chosen = [optin.newsletter_list(session, settings) if slug == settings.default_list
                      else get_list(session, slug) for slug in values["lists"]]
            results = optin.add_by_staff(
                session, settings, values["email"], lists=chosen, added_by=f"staff user {staff.user.id}",
                name=values["name"] or None, confirmed=values["confirmed"], consent_note=values["consent_note"],
                tags=tags, timezone=values["timezone"] or None, custom_fields=fields,
                language=values["language"] or None)
            if results[0][1].state == SubscribeOutcome.SUPPRESSED:
                raise InputError("This address is on the suppression list: nothing was added. Lift the "
                                 "suppression first")
            contact = contact_service.get_contact(session, values["email"])
            audit.record(session, staff.user, AuditAction.CONTACT_ADDED, contact_records.contact_target(contact.id),
                         f"subscribed to {len(chosen)} list(s)" + (" as confirmed" if values["confirmed"] else ""))
            contact_id = contact.id
            summary = "; ".join(f"{m.name}: {OUTCOME_WORDS.get(r.state, r.state)}" for m, r in results)
    except NotFound as exc:
        return _new_page(request, staff, 400, values, {"lists": sentence(str(exc))})
    except InputError as exc:
        return _new_page(request, staff, 400, values, {"email": sentence(str(exc))})
    return redirect(request, _contact_path(contact_id), f"Contact saved. {summary}.")


# CSV export --------------------------------------------------------------------------------------------


def _export_page(request: Request, staff: Staff, status: int = 200, values: dict[str, Any] | None = None,
                 errors: dict[str, str] | None = None) -> Response:
    with request.app.state.db.session() as session:
        choices = _choices(session)
    return page(request, staff, "staff/contacts/export.html", status,
                values=values or {"list": request.app.state.settings.default_list, "segment": "",
                                  "include_suppressed": False},
                errors=errors or {}, **choices)


@router.get(EXPORT)
def export_page(request: Request, staff: Staff = Depends(audience)) -> Response:
    return _export_page(request, staff)


@router.post(EXPORT)
def export_csv(request: Request, list_slug: str = Form("", alias="list"), segment: str = Form(""),
               include_suppressed: str = Form(""), staff: Staff = Depends(audience)) -> Response:
    """A list's or a segment's contacts as a CSV download (the CLI's ``contacts export``), audited."""
    values = {"list": list_slug, "segment": segment, "include_suppressed": include_suppressed == "yes"}
    if not list_slug and not segment:
        return _export_page(request, staff, 400, values, {"list": "Choose a list or a segment (or both)."})
    errors: dict[str, str] = {}
    with request.app.state.db.session() as session:
        for key, value, find in (("list", list_slug, get_list), ("segment", segment, get_segment)):
            try:
                if value:
                    find(session, value)
            except NotFound as exc:
                errors[key] = sentence(str(exc))
    if errors:
        return _export_page(request, staff, 400, values, errors)
    folder = Path(tempfile.mkdtemp(prefix="contacts-export-"))
    try:
        with request.app.state.db.session() as session:
            summary = contact_records.export_contacts(session, folder / "contacts.csv", staff.user,
                                                      list_slug=list_slug or None, segment=segment or None,
                                                      include_suppressed=values["include_suppressed"])
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    name = "-".join(part for part in (list_slug, segment) if part)
    return FileResponse(summary.path, media_type="text/csv; charset=utf-8", filename=f"contacts-{name}.csv",
                        headers=NO_STORE, background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))


# A contact's page ----------------------------------------------------------------------------------------


def _older(value: str) -> datetime | None:
    if not value:
        return None
    try:  # in UTC now: a moment at the edge of the calendar with an offset has no UTC time (a 404-free None)
        moment = datetime.fromisoformat(value)
        return moment.astimezone(timezone.utc) if moment.tzinfo else None
    except (ValueError, OverflowError):
        return None


def _contact_page(request: Request, staff: Staff, contact_id: str, status: int = 200, *,
                  older: datetime | None = None, given: dict[str, str] | None = None,
                  errors: dict[str, str] | None = None) -> Response:
    """The contact's page; ``given``: values typed in one of its forms (shown again with ``errors``)."""
    with request.app.state.db.session() as session:
        contact = _load(session, contact_id)
        history = timeline(session, contact, at_or_before=older)
        subscriptions = sorted(((s.mailing_list.slug, s.mailing_list.name, s) for s in contact.subscriptions),
                               key=lambda item: item[0])
        suppressed = suppression.reason_for(session, contact.email)
        lead_stage = stage_of_contact(session, contact.id)
        values = {"tags": ", ".join(contact.tag_names), "fields": contact_service.fields_text(contact.custom_fields),
                  "reason": suppression.SuppressionReason.MANUAL.value, "note": "", "language": contact.language or "",
                  **(given or {})}
        return page(request, staff, "staff/contacts/contact.html", status, contact=contact, history=history,
                    subscriptions=subscriptions, suppressed=suppressed, lead_stage=lead_stage,
                    stage_labels=STAGE_LABELS, older=older, values=values,
                    languages=_language_options(request.app.state.settings),
                    errors=errors or {},
                    reasons=[(r.value, r.value.replace("_", " ")) for r in suppression.STAFF_REASONS])


@router.get(CONTACTS + "/{contact_id}")
def contact_page(request: Request, contact_id: str, older: str = Query(""),
                 staff: Staff = Depends(audience)) -> Response:
    return _contact_page(request, staff, contact_id, older=_older(older))


def _change(request: Request, contact_id: str, act: Any) -> tuple[int, Any]:
    """Run ``act(session, contact)`` in one transaction; (contact number, its result). 404 page for a
    contact that does not exist."""
    with request.app.state.db.session() as session:
        contact = _load(session, contact_id, for_update=True)
        return contact.id, act(session, contact)


@router.post(CONTACTS + "/{contact_id}/details")
def edit_details(request: Request, contact_id: str, tags: str = Form(""), fields: str = Form(""),
                 staff: Staff = Depends(audience)) -> Response:
    values = {"tags": tags, "fields": fields}
    errors: dict[str, str] = {}
    new_tags, new_fields = _tags_and_fields(values, errors)
    if errors:
        return _contact_page(request, staff, contact_id, 400, given=values, errors=errors)

    def save(session: Any, contact: Contact) -> bool:
        changed = contact_service.set_tags(session, contact, new_tags)
        changed = contact_service.set_custom_fields(session, contact, new_fields) or changed
        if changed:
            audit.record(session, staff.user, AuditAction.CONTACT_EDITED, contact_records.contact_target(contact.id),
                         "tags and custom fields")
        return changed

    number, changed = _change(request, contact_id, save)
    return redirect(request, _contact_path(number), "Tags and fields saved." if changed else "Nothing changed.")


@router.post(CONTACTS + "/{contact_id}/language")
def edit_language(request: Request, contact_id: str, language: str = Form(""),
                  staff: Staff = Depends(audience)) -> Response:
    if language:
        try:
            check_language(language)
        except InputError as exc:
            return _contact_page(request, staff, contact_id, 400, given={"language": language},
                                 errors={"language": sentence(str(exc))})

    def save(session: Any, contact: Contact) -> bool:
        changed = contact_service.set_language(contact, language or None)
        if changed:
            audit.record(session, staff.user, AuditAction.CONTACT_EDITED, contact_records.contact_target(contact.id),
                         "language")
        return changed

    number, changed = _change(request, contact_id, save)
    return redirect(request, _contact_path(number), "Language saved." if changed else "Nothing changed.")


@router.post(CONTACTS + "/{contact_id}/suppress")
def suppress(request: Request, contact_id: str, reason: str = Form(""), note: str = Form(""),
             staff: Staff = Depends(audience)) -> Response:
    if reason not in set(suppression.STAFF_REASONS):
        return _contact_page(request, staff, contact_id, 400, given={"reason": reason, "note": note},
                             errors={"reason": "Choose a reason from the list."})

    def act(session: Any, contact: Contact) -> None:
        suppression.suppress(session, contact.email, reason, note.strip() or None)
        audit.record(session, staff.user, AuditAction.SUPPRESSED, contact_records.contact_target(contact.id),
                     f"reason {reason}")

    number, _ = _change(request, contact_id, act)
    return redirect(request, _contact_path(number), "Suppressed: no email will be sent to this contact.")


@router.post(CONTACTS + "/{contact_id}/unsuppress")
def unsuppress(request: Request, contact_id: str, staff: Staff = Depends(audience)) -> Response:
    def act(session: Any, contact: Contact) -> str | None:
        try:
            lifted = suppression.lift(session, contact.email)
        except ValueError as exc:
            return str(exc)
        if not lifted:
            return "this contact is not suppressed"
        audit.record(session, staff.user, AuditAction.UNSUPPRESSED, contact_records.contact_target(contact.id))
        return None

    number, problem = _change(request, contact_id, act)
    if problem:
        return redirect(request, _contact_path(number), f"Not lifted: {problem}.", error=True)
    return redirect(request, _contact_path(number), "Suppression lifted. They still have to subscribe again to get "
                    "emails from a list they left.")


@router.post(CONTACTS + "/{contact_id}/export")
def export_one(request: Request, contact_id: str, staff: Staff = Depends(audience)) -> Response:
    """One person's data as a JSON download (the CLI's ``contacts export-one``), audited."""
    number, data = _change(request, contact_id,
                           lambda session, contact: contact_records.export_one(session, contact.email, staff.user,
                                                                               contact.id))
    body = json.dumps(data, indent=2, ensure_ascii=False)
    return Response(body, media_type="application/json", headers={
        **NO_STORE, "Content-Disposition": f'attachment; filename="contact-{number}.json"'})


# Erasure -------------------------------------------------------------------------------------------------


def _erase_page(request: Request, staff: Staff, contact_id: str, status: int = 200, typed: str = "",
                error: str | None = None) -> Response:
    with request.app.state.db.session() as session:
        contact = _load(session, contact_id)
        return page(request, staff, "staff/contacts/erase.html", status, contact=contact, typed=typed, error=error)


@router.get(CONTACTS + "/{contact_id}/erase")
def erase_page(request: Request, contact_id: str, staff: Staff = Depends(audience)) -> Response:
    return _erase_page(request, staff, contact_id)


@router.post(CONTACTS + "/{contact_id}/erase")
def erase(request: Request, contact_id: str, confirm_address: str = Form(""),
          staff: Staff = Depends(audience)) -> Response:
    settings = request.app.state.settings

    def act(session: Any, contact: Contact) -> bool:
        if confirm_address.strip() != contact.email:
            return False
        contact_records.erase(session, settings, contact.email, staff.user, contact.id)
        return True

    _, erased = _change(request, contact_id, act)
    if not erased:
        message = ("Type the contact's address to confirm." if not confirm_address.strip() else
                   "That is not this contact's address: type it exactly as shown. Nothing was erased.")
        return _erase_page(request, staff, contact_id, 400, typed=confirm_address, error=message)
    return redirect(request, CONTACTS, "The contact was erased. Their address stays on the suppression list "
                    "as a hash only, so nothing is ever sent to it again.")
