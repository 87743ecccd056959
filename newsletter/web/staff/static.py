"""The staff app's own scripts (``newsletter/web/static/staff/*.js``), served from this app so the
pages' CSP can stay ``script-src 'self'``: no third-party code, no inline script, no build step.
Only signed-in staff get them (the sign-in pages need none)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from newsletter.web.public_static import script_response
from newsletter.web.staff.auth import Require, Staff

router = APIRouter()
FOLDER = Path(__file__).resolve().parents[1] / "static" / "staff"


@router.get("/staff/static/{name}")
def script(name: str, staff: Staff = Depends(Require(None))) -> Response:
    return script_response(FOLDER, name, cache_control="private, max-age=3600")
