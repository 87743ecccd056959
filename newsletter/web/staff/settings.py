"""The settings page (admins): organisation, sender, postal address, brand, tracking and send limits,
each with the value in use and where it comes from. A section is saved by its own form; the service
(``newsletter.stored_settings``) checks, stores, audits and recompiles unsent issues on a brand change."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from newsletter import stored_settings
from newsletter.config import Settings
from newsletter.staff.audit import AuditAction
from newsletter.staff.roles import Area
from newsletter.web import embed
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from subscribers.errors import InputError

router = APIRouter()
SETTINGS = "/staff/settings"
admin = Require(Area.SETTINGS)


def _settings_page(request: Request, staff: Staff, status: int = 200, *, typed: dict[str, str] | None = None,
                   errors: dict[str, str] | None = None, flash: str | None = None) -> Response:
    settings = request.app.state.live_settings.base
    with request.app.state.db.session() as session:
        states = stored_settings.field_states(session, settings)
    values = {name: state.text for name, state in states.items()}
    # A logo is shown only when it is on this app's own host: no staff page asks another site for anything.
    logo = states["logo_url"].text
    own = str(request.base_url).rstrip("/") + "/"
    values.update(typed or {})
    return page(request, staff, "staff/settings/settings.html", status, sections=stored_settings.SECTIONS,
                states=states, values=values, errors=errors or {}, flash=flash, flash_error=bool(flash),
                wins={n: stored_settings.environment_wins(n, s.value) for n, s in states.items()
                      if s.source == "environment"},
                audit_link=f"/staff/audit?action={AuditAction.SETTINGS_CHANGED.value}",
                snippets=embed.snippets(settings_in_use(request)), public_base_url=settings_in_use(request).public_base_url,
                logo_on_this_host=bool(logo) and logo.startswith(own))


def settings_in_use(request: Request) -> Settings:
    return request.app.state.live_settings.current()


@router.get(SETTINGS)
def settings_page(request: Request, staff: Staff = Depends(admin)) -> Response:
    return _settings_page(request, staff)


@router.post(SETTINGS + "/{section}")
async def save_section(section: str, request: Request, staff: Staff = Depends(admin)) -> Response:
    part = stored_settings.SECTION_OF.get(section)
    if part is None:
        raise HTTPException(404)
    form = await request.form()
    typed = {f.name: str(form.get(f.name, "")) for f in part.fields}
    if "accent_colour" in typed:
        typed["accent_colour"] = stored_settings.chosen_colour(
            typed["accent_colour"], str(form.get("accent_colour_picker", "")), settings_in_use(request).accent_colour)
    return await _save(request, staff, part.slug, typed)


async def _save(request: Request, staff: Staff, slug: str, typed: dict[str, str]) -> Response:
    def store() -> stored_settings.Saved:
        live = request.app.state.live_settings
        with request.app.state.db.session() as session:
            saved = stored_settings.save(session, live.base, staff.user, typed)
        request.app.state.settings = live.refresh()  # the admin sees the change at once
        return saved

    try:
        saved = await run_in_threadpool(store)
    except stored_settings.SettingsRefused as exc:
        return _settings_page(request, staff, 400, typed=typed, errors=exc.errors,
                              flash="Nothing was saved: correct the fields marked below.")
    except InputError as exc:
        return _settings_page(request, staff, 400, typed=typed, flash=str(exc))
    return redirect(request, f"{SETTINGS}#{slug}", saved.message())
