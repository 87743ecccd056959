"""Helpers for tests of the REST API: tokens made through the service, an httpx client of the live app,
and a check of every real answer against the OpenAPI description the app itself serves (JSON Schema
2020-12, which OpenAPI 3.1 schemas are, validated with jsonschema; ``$ref``s resolve inside the
served document)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
from jsonschema import Draft202012Validator, FormatChecker

from newsletter import api_tokens
from newsletter.database import Database

API = "/api/v1"
ALL_SCOPES = [scope.value for scope in api_tokens.Scope]


def make_token(db: Database, scopes: list[str], name: str = "test", *, revoked: bool = False) -> tuple[int, str]:
    """A token with ``scopes`` (made by "cli"): its id and secret."""
    with db.session() as s:
        token, secret = api_tokens.create(s, name, scopes, actor="cli")
        if revoked:
            api_tokens.revoke(s, token, actor="cli")
        return token.id, secret


def bearer(secret: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"} if secret else {}


@dataclass
class Described:
    """The served OpenAPI description, and the check of an answer against it."""

    doc: dict[str, Any]

    def __post_init__(self) -> None:
        self.root = Draft202012Validator(self.doc, format_checker=FormatChecker())
        self.templates = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
                          for path in self.doc["paths"]]

    def _errors(self, schema: dict[str, Any], body: Any) -> list[str]:
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in self.root.evolve(schema=schema).iter_errors(body)]

    def check(self, response: httpx.Response) -> httpx.Response:
        """``response`` (status, media type and body) is one its operation describes; returns it."""
        request = response.request
        path = request.url.path.removeprefix(API)
        media = response.headers.get("content-type", "").split(";")[0]
        operation = next((self.doc["paths"][template].get(request.method.lower())
                          for pattern, template in self.templates if pattern.match(path)), None)
        if operation is None:  # a path or method the API does not have: a problem all the same
            assert response.status_code in (404, 405), (request.method, path, response.status_code)
            return self.check_problem(response)
        answers = operation["responses"]
        assert str(response.status_code) in answers, (
            f"{request.method} {path} answered {response.status_code}, which its description does not list "
            f"({', '.join(answers)}): {response.text[:300]}")
        content = answers[str(response.status_code)]["content"]
        assert media in content, f"{request.method} {path} {response.status_code}: {media} not in {list(content)}"
        errors = self._errors(content[media]["schema"], response.json())
        assert not errors, f"{request.method} {path} {response.status_code}: {errors}"
        return response

    def check_problem(self, response: httpx.Response) -> httpx.Response:
        assert response.headers["content-type"].split(";")[0] == "application/problem+json", response.headers
        errors = self._errors({"$ref": "#/components/schemas/Problem"}, response.json())
        assert not errors, errors
        assert response.json()["status"] == response.status_code
        return response


def described(client: httpx.Client) -> Described:
    answer = client.get(API + "/openapi.json")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    doc = answer.json()
    assert doc["openapi"].startswith("3.1")
    return Described(doc)
