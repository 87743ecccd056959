"""/leads and /bookings: consultation requests, their stage, and bookings (idempotent by external id).
A lead is named by its contact's id, as in the staff app (/staff/leads/{id})."""

from __future__ import annotations

from datetime import UTC

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from newsletter import api_actions
from newsletter.api_tokens import Scope
from newsletter.urls import MAX_ID
from newsletter.staff.models import ApiToken
from newsletter.web.api.guard import needs
from newsletter.web.api.problems import documented
from newsletter.web.api.schemas import BookingIn, BookingOut, LeadIn, LeadOut, StageIn, StageOut

router = APIRouter()


@router.post("/leads", status_code=201, response_model=LeadOut, tags=["leads"],
             responses={200: {"model": LeadOut, "description": "The lead existed: updated."},
                        **documented(400, 401, 403, 413, 422, 429)},
             summary="Create or update a lead (a consultation request)",
             description="Scope `leads:write`. The caller says the person agreed to be contacted about the "
             "consultation (kept as consent method `api`); this never subscribes anyone to a list. 201 for "
             "a new lead (or a lost one enquiring again: `reopened`), 200 for an update.")
def save_lead(body: LeadIn, request: Request, token: ApiToken = Depends(needs(Scope.LEADS_WRITE))) -> JSONResponse:
    with request.app.state.db.session() as session:
        result = api_actions.save_lead(
            session, request.app.state.settings, token, body.email, source=body.source, name=body.name,
            phone=body.phone, preferred_contact=body.preferred_contact, requested_time=body.requested_time,
            utm=body.utm.model_dump() if body.utm else None, timezone=body.timezone, language=body.language)
        out = LeadOut(id=result.lead.contact_id, stage=result.lead.stage, created=result.created,
                      reopened=result.reopened)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if out.created or out.reopened else 200)


@router.put("/leads/{lead_id}/stage", response_model=StageOut, tags=["leads"],
            responses=documented(400, 401, 403, 404, 413, 422, 429),
            summary="Move a lead to a stage",
            description="Scope `leads:write`. Any stage may follow any other; the lead's history records "
            "the move as made by the API. Asking for the stage it is in changes nothing.")
def move_stage(body: StageIn, request: Request, lead_id: int = Path(ge=1, le=MAX_ID),
               token: ApiToken = Depends(needs(Scope.LEADS_WRITE))) -> StageOut:
    with request.app.state.db.session() as session:
        lead, changed = api_actions.move_lead(session, token, lead_id, body.stage)
        return StageOut(id=lead.contact_id, stage=lead.stage, changed=changed)


@router.post("/bookings", status_code=201, response_model=BookingOut, tags=["bookings"],
             responses={200: {"model": BookingOut, "description": "Recorded before (the same external id): "
                              "the same booking, nothing changed."},
                        **documented(400, 401, 403, 404, 413, 422, 429)},
             summary="Record a booking",
             description="Scope `bookings:write`. Idempotent by `external_id`: the first call answers 201, the "
             "same id again 200 with the same booking. The lead moves to booked, its nurture sequences end, "
             "and the booking is credited to the email that brought it. Name the lead by `lead_id` or `email`.")
def book(body: BookingIn, request: Request, token: ApiToken = Depends(needs(Scope.BOOKINGS_WRITE))) -> JSONResponse:
    with request.app.state.db.session() as session:
        result = api_actions.book(session, request.app.state.settings, token, lead_id=body.lead_id,
                                  email=body.email, external_id=body.external_id, booked_for=body.booked_for)
        out = BookingOut(id=result.booking.id, lead_id=result.lead.contact_id if result.lead else None,
                         booked_for=result.booking.booked_for.astimezone(UTC) if result.booking.booked_for else None,
                         created=result.created)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if out.created else 200)
