"""Errors of the API as problem details (RFC 9457, ``application/problem+json``): one shape for every
error, whatever raised it, with a ``detail`` a developer can act on and, for bad input, ``errors``
naming each field. ``type`` is ``about:blank`` (the status says what kind of problem it is) and the
extension member ``code`` is a stable word for programs to branch on. Never a contact's data: the
details name fields and rules, never the values sent."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

MEDIA_TYPE = "application/problem+json"


class FieldProblem(BaseModel):
    field: str = Field(description="Where in the request: a body field as a dotted path (`utm.source`, "
                       "`tags.2`), or a query or path parameter's name.")
    message: str = Field(description="What is wrong with it.")


class Problem(BaseModel):
    """A problem details object (RFC 9457)."""

    type: str = Field("about:blank", description="Always `about:blank`: the status and `code` say what happened.")
    title: str = Field(description="The HTTP status phrase.")
    status: int = Field(description="The HTTP status code of this answer.")
    detail: str = Field(description="One line saying what went wrong and what to do about it.")
    code: str = Field(description="A stable word for programs: missing_token, invalid_token, insufficient_scope, "
                      "rate_limited, malformed_json, validation, not_found, method_not_allowed, too_large, "
                      "server_error, http_error.")
    errors: list[FieldProblem] | None = Field(None, description="With `validation`: each field and its problem.")


class ApiProblem(Exception):
    """Raised by the API's code to answer with a problem (its handler turns it into the response)."""

    def __init__(self, status: int, code: str, detail: str, *, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.errors, self.headers = status, code, detail, errors, headers


def problem(status: int, code: str, detail: str, *, errors: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                            "detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def of(exc: ApiProblem) -> JSONResponse:
    return problem(exc.status, exc.code, exc.detail, errors=exc.errors, headers=exc.headers)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an operation for these error statuses: each a Problem (its media type is
    set to application/problem+json when the description is built, ``api.openapi``)."""
    return {status: {"model": Problem, "description": DESCRIPTIONS[status]} for status in statuses}


DESCRIPTIONS = {
    400: "The body is not JSON (`malformed_json`).",
    401: "No bearer token (`missing_token`), or one that is unknown or revoked (`invalid_token`).",
    403: "The token lacks a scope this call needs (`insufficient_scope`).",
    404: "No such thing: the id in the path names nothing of this kind (`not_found`).",
    413: "The body is larger than the API accepts (`too_large`).",
    422: "A field is missing or not valid (`validation`, with `errors`).",
    429: "Too many calls with this token (`rate_limited`); `Retry-After` says when to try again.",
}
