"""The API application, mounted at /api/v1 by ``newsletter.web.app``: its routes, its one shape of
error (problem details, ``newsletter.web.api.problems``) for everything under /api/v1, including
paths and methods it does not have, and its OpenAPI description at /api/v1/openapi.json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from sqlalchemy.exc import OperationalError

from newsletter.api_tokens import Scope, SCOPE_ABOUT
from newsletter.web.api import contacts, leads, reads
from newsletter.web.api.body_limit import ApiBodyLimit
from newsletter.web.api.problems import MEDIA_TYPE, ApiProblem, of, problem
from newsletter.web.ratelimit import RateLimiter
from subscribers.errors import InputError, NotFound
from subscribers.leads import ErasedAddress, FieldError

PREFIX = "/api/v1"
log = logging.getLogger("newsletter.api")

CODES = {400: "malformed_json", 401: "missing_token", 403: "insufficient_scope", 404: "not_found",
         405: "method_not_allowed", 413: "too_large", 422: "validation", 429: "rate_limited", 500: "server_error"}


def create_api(state: State, rate_per_minute: int) -> FastAPI:
    """The API, sharing ``state`` (database, settings as staff saved them) with the app that mounts it."""
    api = FastAPI(title="Clinic newsletter API", version="1", openapi_url="/openapi.json", docs_url=None,
                  redoc_url=None, description=_DESCRIPTION, servers=[{"url": PREFIX}])
    api.state = state
    api.state.api_limiter = RateLimiter(rate_per_minute, 60)
    api.add_middleware(ApiBodyLimit)
    for router in (contacts.router, leads.router, reads.router):
        api.include_router(router)
    _answer_problems(api)
    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]
    return api


def _answer_problems(api: FastAPI) -> None:
    @api.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return of(exc)

    @api.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException) -> JSONResponse:
        detail = {404: f"there is nothing at {request.url.path}: see {PREFIX}/openapi.json for the paths there are",
                  405: f"{request.url.path} does not take {request.method}: see {PREFIX}/openapi.json"}.get(
                      exc.status_code, str(exc.detail))
        if exc.status_code == 400:
            detail = "the body could not be read as JSON"
        return problem(exc.status_code, CODES.get(exc.status_code, "http_error"), detail, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if malformed is not None:
            where = malformed.get("ctx", {}).get("error", "")
            return problem(400, "malformed_json", f"the body is not valid JSON ({where}): send a JSON object "
                           "with Content-Type: application/json")
        fields = [{"field": _field(e.get("loc", ())), "message": _message(e)} for e in errors]
        named = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return problem(422, "validation", f"{len(fields)} field{'s' if len(fields) != 1 else ''} "
                       f"not valid: {named}", errors=fields)

    @api.exception_handler(FieldError)
    async def field_error(request: Request, exc: FieldError) -> JSONResponse:
        return problem(422, "validation", f"{exc.field}: {exc}", errors=[{"field": exc.field, "message": str(exc)}])

    @api.exception_handler(ErasedAddress)
    async def erased(request: Request, exc: ErasedAddress) -> JSONResponse:
        return problem(422, "validation", str(exc))

    @api.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return problem(404, "not_found", str(exc))

    @api.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return problem(422, "validation", str(exc))

    @api.exception_handler(OperationalError)
    async def database_busy(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("api: the database could not be used (%s)", type(exc).__name__)  # never the statement or values
        return problem(503, "unavailable", "the database is busy or unavailable: nothing was changed; try again "
                       "shortly", headers={"Retry-After": "5"})

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("api: %s on %s %s", type(exc).__name__, request.method, request.scope.get("route").path
                  if request.scope.get("route") else "?")
        return problem(500, "server_error", "something went wrong on our side; nothing was changed")


def _message(error: Any) -> str:
    """Pydantic's message, without the "Value error, " it puts before our validators' own."""
    return str(error.get("msg", "not valid")).removeprefix("Value error, ")


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """A validation error's place: a body field as a dotted path, or the parameter's name."""
    parts = [str(p) for p in loc]
    return ".".join(parts[1:]) or parts[0] if parts and parts[0] in ("body", "query", "path", "header") else ".".join(parts)


def _openapi(api: FastAPI) -> dict[str, Any]:
    """FastAPI's description, with every error answer as application/problem+json (their media type),
    and 500 and 503, which any operation may answer, documented with them."""
    if api.openapi_schema is None:
        schema = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes,
                             servers=api.servers)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.setdefault("500", {"description": "Something went wrong on our side (`server_error`); "
                                     "nothing was changed.", "content": {"application/json": {
                                         "schema": {"$ref": "#/components/schemas/Problem"}}}})
                responses.setdefault("503", {"description": "The database is busy or unavailable (`unavailable`); "
                                     "nothing was changed.", "content": {"application/json": {
                                         "schema": {"$ref": "#/components/schemas/Problem"}}}})
                for status, answer in responses.items():
                    if int(status) >= 400:
                        content = answer.get("content", {})
                        answer["content"] = {MEDIA_TYPE: content.get("application/json", {
                            "schema": {"$ref": "#/components/schemas/Problem"}})}
                        if int(status) in (401, 403):
                            answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
                        if int(status) in (429, 503):
                            answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        api.openapi_schema = schema
    return api.openapi_schema


_DESCRIPTION = (
    "Send `Authorization: Bearer <token>` with every call: an admin makes a token with "
    "`newsletter api-tokens create NAME --scope …` or on the staff app's API tokens page; it is shown once. "
    "Scopes: " + "; ".join(f"`{scope.value}`: {SCOPE_ABOUT[scope]}" for scope in Scope) + ". "
    "Every error is `application/problem+json` (RFC 9457) with `code` and a `detail` to act on; bad input "
    "also lists `errors` by field. Each token may make `NEWSLETTER_API_RATE_PER_MINUTE` calls a minute "
    "(429 with `Retry-After` above it). Contacts and leads are named by id in paths; addresses travel in "
    "bodies only. Lists are paged by cursor: pass a page's `next` as `cursor`."
)
