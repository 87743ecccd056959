"""Text no page can store: a NUL character in a form field or a query parameter.

No one types a NUL, but a crafted request (or a value pasted from a binary file) can carry one, and
PostgreSQL refuses it in any text column or comparison, so a lookup by name (a list, a segment, a
tag) or a save raised a database error: a 500 on PostgreSQL while SQLite went on. Every staff request
is checked once here, before its route runs, and refused with a page that names the field; nothing
is read or changed. (An uploaded file is the importer's to judge: it names the line with a NUL.)
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

NUL = "\x00"


class NulInField(Exception):
    def __init__(self, field: str, staff: Any) -> None:
        self.field = field
        self.staff = staff


async def refuse_nul(request: Request, staff: Any) -> None:
    """Raise ``NulInField`` naming the first query parameter or form field that holds a NUL."""
    for key, value in request.query_params.multi_items():
        if NUL in key or NUL in value:
            raise NulInField(key.replace(NUL, ""), staff)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return
    form = await request.form()  # cached on the request: the route reads the same form
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            continue
        if NUL in key or NUL in value:
            raise NulInField(key.replace(NUL, ""), staff)
