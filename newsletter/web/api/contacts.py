"""/contacts: create or update a contact (and subscribe it), subscribe, unsubscribe. Contacts are named
by id in paths; an address only ever travels in a body."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from newsletter import api_actions
from newsletter.api_tokens import Scope
from newsletter.urls import MAX_ID
from newsletter.staff.models import ApiToken
from newsletter.web.api.guard import needs, require_scope
from newsletter.web.api.problems import documented
from newsletter.web.api.schemas import (ConsentIn, ContactIn, ContactOut, SubscribeIn, SubscriptionOut,
                                        UnsubscribeIn, UnsubscribeOut)
from subscribers.leads import FieldError

router = APIRouter(tags=["contacts"])
ContactId = Path(ge=1, le=MAX_ID, description="The contact's id.")


def _proof(token: ApiToken, consent: ConsentIn | None) -> api_actions.ConsentProof | None:
    if consent is None:
        return None
    require_scope(token, Scope.CONTACTS_CONSENT, "subscribing with proof of consent")
    return api_actions.ConsentProof(consent.proof, consent.text, consent.version)


def _subscription(s: api_actions.Subscribed) -> SubscriptionOut:
    return SubscriptionOut(list=s.list_slug, state=s.state, confirmation_queued=s.confirmation_queued)


@router.post("/contacts", status_code=201, response_model=ContactOut,
             responses={200: {"model": ContactOut, "description": "The contact existed: updated."},
                        **documented(400, 401, 403, 413, 422, 429)},
             summary="Create or update a contact, and subscribe it to lists",
             description="Scope `contacts:write` (and `contacts:consent` with `consent`). 201 when the contact "
             "is new, 200 when it existed. With `lists`, each is subscribed: double opt-in (a confirmation "
             "email is queued) unless `consent` carries the caller's proof. A suppressed address that is "
             "not stored already is not stored (`id` null).")
def save_contact(body: ContactIn, request: Request,
                 token: ApiToken = Depends(needs(Scope.CONTACTS_WRITE))) -> JSONResponse:
    proof = _proof(token, body.consent)
    with request.app.state.db.session() as session:
        saved = api_actions.save_contact(session, request.app.state.settings, token, body.email, name=body.name,
                                         timezone=body.timezone, tags=body.tags, custom_fields=body.custom_fields,
                                         lists=body.lists or [], proof=proof, language=body.language)
        out = ContactOut(id=saved.contact.id if saved.contact else None, created=saved.created,
                         suppressed=saved.suppressed, subscriptions=[_subscription(s) for s in saved.subscribed])
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if out.created else 200)


@router.post("/contacts/{contact_id}/subscriptions", response_model=SubscriptionOut,
             responses=documented(400, 401, 403, 404, 413, 422, 429),
             summary="Subscribe a contact to a list",
             description="Scope `contacts:write` (and `contacts:consent` with `consent`). Double opt-in unless "
             "`consent` carries the caller's proof. Asking again changes nothing (`already`).")
def subscribe(body: SubscribeIn, request: Request, contact_id: int = ContactId,
              token: ApiToken = Depends(needs(Scope.CONTACTS_WRITE))) -> SubscriptionOut:
    proof = _proof(token, body.consent)
    with request.app.state.db.session() as session:
        contact = api_actions.contact(session, contact_id)
        return _subscription(api_actions.subscribe(session, request.app.state.settings, token, contact, body.list,
                                                   proof))


@router.post("/contacts/{contact_id}/unsubscribe", response_model=UnsubscribeOut,
             responses=documented(400, 401, 403, 404, 413, 422, 429),
             summary="Unsubscribe a contact from a list, or from every list",
             description="Scope `contacts:write`. Give `list`, or `all_lists: true` (the address is then "
             "suppressed too). Honoured at once; asking again changes nothing.")
def unsubscribe(body: UnsubscribeIn, request: Request, contact_id: int = ContactId,
                token: ApiToken = Depends(needs(Scope.CONTACTS_WRITE))) -> UnsubscribeOut:
    if (body.list is None) == (not body.all_lists):
        raise FieldError("list", "give either list (a slug) or all_lists: true, not both and not neither")
    with request.app.state.db.session() as session:
        contact = api_actions.contact(session, contact_id)
        changed = api_actions.unsubscribe(session, request.app.state.settings, token, contact,
                                          None if body.all_lists else body.list)
        return UnsubscribeOut(id=contact.id, changed=changed)
