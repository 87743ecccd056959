"""API tokens as admins make and revoke them: ``newsletter api-tokens`` at the terminal, and the staff
app's API tokens page over HTTP (admins only, CSRF on every change). The secret is shown once and only
its SHA-256 is stored; each change is audited."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.database import Database
from newsletter.staff.models import ApiToken, AuditEntry
from newsletter.staff.roles import Role
from tests.apikit import API, bearer
from tests.liveserver import LiveServer
from tests.staffkit import client, csrf_of, make_user, post_form, signed_in

runner = CliRunner()
SECRET = re.compile(r"nlt_[A-Za-z0-9_-]{43}")


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_the_cli_makes_lists_and_revokes_tokens(db: Database) -> None:
    made = run("api-tokens", "create", "booking system", "--scope", "bookings:write", "--scope", "leads:write")
    secrets_shown = SECRET.findall(made)
    assert len(secrets_shown) == 1 and "shown this once" in made
    secret = secrets_shown[0]
    with db.session() as s:
        token = s.scalar(select(ApiToken))
        assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert token.scopes == "leads:write bookings:write" and token.created_by == "cli"
        assert secret not in (token.hint + token.name + token.scopes)
        token_id = token.id

    listed = run("api-tokens", "list", "--json")
    assert '"name": "booking system"' in listed and secret not in listed and secret[:8] + "…" in listed

    as_json = json.loads(run("api-tokens", "create", "reports", "--scope", "reports:read", "--json"))
    assert as_json["name"] == "reports" and as_json["scopes"] == ["reports:read"] and SECRET.fullmatch(as_json["secret"])
    assert "does not exist: use contacts:write" in run("api-tokens", "create", "x", "--scope", "contacts:delete", code=2)
    assert "at least one scope" in run("api-tokens", "create", "x", "--scope", " ", code=2)

    assert f"Revoked API token {token_id}." in run("api-tokens", "revoke", str(token_id))
    assert "revoked already" in run("api-tokens", "revoke", str(token_id))
    assert "there is no API token 99" in run("api-tokens", "revoke", "99", code=1)
    with db.session() as s:
        assert [(e.actor, e.action, e.target) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))] == [
            ("cli", "api_token_created", f"api token {token_id}"), ("cli", "api_token_created", f"api token {as_json['id']}"),
            ("cli", "api_token_revoked", f"api token {token_id}")]


@pytest.fixture
def admin_http(live_server: LiveServer) -> Iterator[httpx.Client]:
    admin = make_user(live_server.db, "ada@clinic.example", Role.ADMIN)
    with signed_in(live_server, admin) as c:
        yield c


def test_admins_make_and_revoke_tokens_on_the_staff_page(live_server: LiveServer, admin_http: httpx.Client) -> None:
    page = "/staff/api-tokens"
    refused = post_form(admin_http, page, page, {"name": "", "scopes": []})
    assert refused.status_code == 400
    assert 'id="name-error"' in refused.text and 'id="scopes-error"' in refused.text and "Choose at least one scope" in refused.text

    answer = post_form(admin_http, page, page, {"name": "CRM sync", "scopes": ["contacts:write", "contacts:consent"]})
    assert answer.status_code == 200
    shown = SECRET.findall(answer.text)
    assert len(shown) == 1  # on the answering page, once
    secret = shown[0]
    assert secret not in admin_http.get(page).text  # never again
    with httpx.Client(base_url=live_server.url) as api:
        assert api.post(f"{API}/contacts", json={"email": "ana@example.org"}, headers=bearer(secret)).status_code == 201

    with live_server.db.session() as s:
        token = s.scalar(select(ApiToken))
        assert token.created_by == "ada@clinic.example" and token.scope_list == ["contacts:write", "contacts:consent"]
    confirm = admin_http.get(f"{page}/{token.id}/revoke")
    assert confirm.status_code == 200 and "Revoke “CRM sync”?" in confirm.text
    no_csrf = admin_http.post(f"{page}/{token.id}/revoke")
    assert no_csrf.status_code == 403
    revoked = admin_http.post(f"{page}/{token.id}/revoke", data={"csrf_token": csrf_of(confirm.text)})
    assert revoked.status_code == 303 and revoked.headers["location"] == page
    with httpx.Client(base_url=live_server.url) as api:
        assert api.post(f"{API}/contacts", json={"email": "ben@example.org"}, headers=bearer(secret)).status_code == 401
    assert admin_http.get(f"{page}/999/revoke").status_code == 404
    # The audit log filters by the token: what it did, under its label.
    audit = admin_http.get("/staff/audit", params={"actor": f"api token {token.id}"})
    assert f'value="api token {token.id}" selected' in audit.text and "contact 1" in audit.text
    with live_server.db.session() as s:
        actions = [(e.actor, e.action, e.target) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.action.like("api_token%")).order_by(AuditEntry.id))]
        assert actions == [("ada@clinic.example", "api_token_created", f"api token {token.id}"),
                           ("ada@clinic.example", "api_token_revoked", f"api token {token.id}")]


def test_only_admins_open_the_api_tokens_page(live_server: LiveServer) -> None:
    for role in (Role.MARKETING, Role.CLINIC):
        person = make_user(live_server.db, f"{role.value}@clinic.example", role)
        with signed_in(live_server, person) as c:
            assert c.get("/staff/api-tokens").status_code == 403
            assert "API tokens" not in c.get("/staff/").text
    with client(live_server) as anonymous:
        assert anonymous.get("/staff/api-tokens").status_code in (302, 303)
