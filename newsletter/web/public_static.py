"""The public pages' own scripts (``newsletter/web/static/public/*.js``), served from this app so the
pages' CSP can stay ``script-src 'self'``: no third-party code, no inline script, no build step. Every
page works without them."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

router = APIRouter()
FOLDER = Path(__file__).resolve().parent / "static" / "public"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\.js")


@cache
def _script(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def script_response(folder: Path, name: str, *, cache_control: str) -> Response:
    """A first-party script of ``folder`` by its plain name (nothing else is served: 404). The app's
    default header says no-store; a script may be kept an hour (it changes with a release)."""
    body = _script(folder / name) if NAME.fullmatch(name) else None
    if body is None:
        raise HTTPException(404)
    return Response(body, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": cache_control})


@router.get("/static/{name}")
def script(name: str) -> Response:
    return script_response(FOLDER, name, cache_control="public, max-age=3600")
