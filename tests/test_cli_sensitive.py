"""``newsletter sensitive`` and the policy line of ``newsletter issues preflight``, as an operator types
them: marks listed, made, repeated and taken away, each audited; bad input one clear line; an issue
personalised with a marked field fails its preflight, naming the field; SendGrid with the covered
policy refused before any command runs."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.compose.personalize import custom_field_placeholder
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Issue
from newsletter.staff.models import AuditEntry
from tests.conftest import SAMPLE_POST
from tests.test_health_policy import sendgrid_covered

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def one_line(output: str) -> str:
    return " ".join(output.split())  # rich wraps long lines at the terminal's width


def test_mark_list_and_unmark_fields_tags_and_segments(settings: Settings) -> None:
    run("init")
    assert one_line(run("sensitive", "list")).startswith("Under the minimal health-information policy")
    marked = one_line(run("sensitive", "mark", "field", "diagnosis"))
    assert marked.startswith("Marked: custom field 'diagnosis' is sensitive. Under the minimal health-information "
                             "policy nothing marked is sent to the outbox folder (development)")
    assert "Marked: tag 'ketamine-patient'" in one_line(run("sensitive", "mark", "tag", "Ketamine-Patient"))
    assert "Already marked: tag 'ketamine-patient'" in one_line(run("sensitive", "mark", "tag", "ketamine-patient"))
    run("segments", "save", "treatment-resistant-depression", "--json", '{"source": "import"}')
    run("sensitive", "mark", "segment", "treatment-resistant-depression")
    rows = json.loads(run("sensitive", "list", "--json"))
    assert [(r["kind"], r["name"], r["marked_by"]) for r in rows] == [
        ("field", "diagnosis", "cli"), ("tag", "ketamine-patient", "cli"),
        ("segment", "treatment-resistant-depression", "cli")]
    table = run("sensitive", "list")
    assert "diagnosis" in table and "ketamine-patient" in table
    assert "Unmarked: tag 'ketamine-patient'" in one_line(run("sensitive", "unmark", "tag", "ketamine-patient"))
    db = Database.from_settings(settings)
    with db.session() as s:
        audit = [(e.actor, e.action, e.target) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action.in_(["sensitive_marked", "sensitive_unmarked"])).order_by(AuditEntry.id))]
    assert [a[1] for a in audit] == ["sensitive_marked"] * 3 + ["sensitive_unmarked"]
    assert audit[0] == ("cli", "sensitive_marked", "custom field diagnosis")


def test_bad_input_is_one_clear_line(settings: Settings) -> None:
    run("init")
    assert "error: kind 'colour': choose field, tag or segment" in one_line(
        run("sensitive", "mark", "colour", "red", code=2))
    assert "error: there is no segment 'missing'" in one_line(run("sensitive", "mark", "segment", "missing", code=1))
    assert "error: the custom field 'diagnosis' is not marked sensitive" in one_line(
        run("sensitive", "unmark", "field", "diagnosis", code=1))
    assert "error: a custom field's name has 1 to 100 characters" in one_line(
        run("sensitive", "mark", "field", "x" * 101, code=2))


def test_preflight_names_the_policy_and_refuses_a_marked_field(settings: Settings) -> None:
    run("init")
    post_id = run("posts", "import", str(SAMPLE_POST)).strip()
    issue_id = run("issues", "create", "--post", post_id, "--subject", "Moving more, feeling better",
                   "--preheader", "Why a daily walk pairs well with your care plan").splitlines()[0]
    passing = one_line(run("issues", "preflight", issue_id))
    assert passing.startswith("Goes out through the outbox folder (development) under the minimal "
                              "health-information policy.")
    assert "all checks pass" in passing
    # The stored email personalises with the field (no face writes one yet; see tests/test_health_policy.py).
    with Database.from_settings(settings).session() as s:
        issue = s.get(Issue, int(issue_id))
        issue.text += f"\nNoted: {custom_field_placeholder('diagnosis')}\n"
    assert "sensitive-field" not in run("issues", "preflight", issue_id)
    run("sensitive", "mark", "field", "diagnosis")
    refused = one_line(run("issues", "preflight", issue_id, code=1))
    assert ("error sensitive-field: The email personalises with the custom field “diagnosis”, which staff marked "
            "sensitive") in refused
    shown = json.loads(run("issues", "show", issue_id, "--json"))
    assert shown["sending"] == "Goes out through the outbox folder (development) under the minimal health-information policy"
    assert [f["code"] for f in shown["preflight"] if f["level"] == "error"] == ["sensitive-field"]


def test_sendgrid_with_the_covered_policy_stops_every_command(settings: Settings,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sendgrid_covered(monkeypatch)
    result = runner.invoke(app, ["sensitive", "list"])
    assert result.exit_code == 2
    text = one_line(result.output)
    assert text.startswith("error: NEWSLETTER_HEALTH_INFORMATION_POLICY=covered cannot be used with "
                           "NEWSLETTER_TRANSPORT=sendgrid: SendGrid does not sign a business associate agreement")
    assert "Traceback" not in result.output
