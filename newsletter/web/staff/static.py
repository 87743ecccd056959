"""The staff app's own scripts (``newsletter/web/static/staff/*.js``), served from this app so the
pages' CSP can stay ``script-src 'self'``: no third-party code, no inline script, no build step.
Only signed-in staff get them (the sign-in pages need none)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from newsletter.web.staff.auth import Require, Staff

router = APIRouter()
FOLDER = Path(__file__).resolve().parents[1] / "static" / "staff"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\.js")


@cache
def _script(name: str) -> bytes | None:
    path = FOLDER / name
    return path.read_bytes() if path.is_file() else None


@router.get("/staff/static/{name}")
def script(name: str, staff: Staff = Depends(Require(None))) -> Response:
    body = _script(name) if NAME.fullmatch(name) else None
    if body is None:
        raise HTTPException(404)
    # The app's default header says no-store; a script may be kept an hour (it changes with a release).
    return Response(body, media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "private, max-age=3600"})
