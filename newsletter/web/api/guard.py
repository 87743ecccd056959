"""Who may call: every operation needs ``Authorization: Bearer <token>`` of an active token with the
operation's scope (``newsletter.api_tokens``), and each token is held to
``NEWSLETTER_API_RATE_PER_MINUTE`` calls a minute. Answers follow RFC 6750: 401 with
``WWW-Authenticate: Bearer`` (and ``error="invalid_token"`` for a token that is unknown or revoked),
403 with ``error="insufficient_scope"`` and the scope needed."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from newsletter import api_tokens
from newsletter.api_tokens import Scope
from newsletter.staff.models import ApiToken
from newsletter.web.api.problems import ApiProblem

REALM = 'Bearer realm="api"'
bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="An API token made by an admin (`newsletter api-tokens create`, or the staff app's "
                    "API tokens page): `Authorization: Bearer nlt_…`.")


def needs(scope: Scope) -> Callable[..., ApiToken]:
    """The dependency of an operation that needs ``scope``: the calling token, or a problem."""

    def guard(request: Request,
              credentials: HTTPAuthorizationCredentials | None = Security(bearer, scopes=[scope.value])) -> ApiToken:
        if credentials is None:
            raise ApiProblem(401, "missing_token", "send an API token as 'Authorization: Bearer <token>' "
                             "(an admin makes one with 'newsletter api-tokens create')", headers={"WWW-Authenticate": REALM})
        with request.app.state.db.session() as session:  # its own short transaction: the use is noted at once
            token = api_tokens.authenticate(session, credentials.credentials)
            if token is not None:
                session.expunge(token)
        if token is None:
            raise ApiProblem(401, "invalid_token", "this API token is unknown or was revoked: ask an admin for "
                             "a new one", headers={"WWW-Authenticate": REALM + ', error="invalid_token"'})
        limiter = request.app.state.api_limiter
        if not limiter.allow("api-token", str(token.id)):
            wait = limiter.retry_after("api-token", str(token.id))
            raise ApiProblem(429, "rate_limited", f"this token made more than {limiter.limit} calls in a minute: "
                             f"try again in {wait} s", headers={"Retry-After": str(wait)})
        if scope.value not in token.scope_list:
            raise ApiProblem(403, "insufficient_scope", f"this call needs the {scope.value} scope, which this token "
                             "does not have: an admin can make a token with it",
                             headers={"WWW-Authenticate": REALM + f', error="insufficient_scope", scope="{scope.value}"'})
        return token

    return guard


def require_scope(token: ApiToken, scope: Scope, why: str) -> None:
    """A scope a part of a request needs (the consent proof needs ``contacts:consent``)."""
    if scope.value not in token.scope_list:
        raise ApiProblem(403, "insufficient_scope", f"{why} needs the {scope.value} scope, which this token does not "
                         "have: leave it out for double opt-in, or use a token with that scope",
                         headers={"WWW-Authenticate": REALM + f', error="insufficient_scope", scope="{scope.value}"'})
