"""The sequences commands as staff use them, with the two sequences the product ships."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_shipped_sequences_install_paused_and_export_load_round_trip(settings: Settings, tmp_path: Path) -> None:
    assert "Installed the ready-made sequences 'Welcome', 'Consultation follow-up', paused" in run("init")
    listed = {s["name"]: s for s in json.loads(run("sequences", "list", "--json"))}
    assert set(listed) == {"Welcome", "Consultation follow-up"}
    assert all(s["status"] == "paused" for s in listed.values())
    assert len(listed["Welcome"]["steps"]) == 3 and len(listed["Consultation follow-up"]["steps"]) == 5
    exported = run("sequences", "export", "welcome")
    data = yaml.safe_load(exported)
    assert data["name"] == "Welcome" and data["trigger"] == {"type": "list_confirmed", "list": "newsletter"}
    data["steps"].append({"key": "extra", "delay": "3d", "subject": "One more idea for your week",
                          "body": "A short note."})
    changed = tmp_path / "welcome.yaml"
    changed.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert "sequence 'Welcome' updated (paused); steps added ['extra']" in run("sequences", "load", str(changed))
    assert "is up to date" in run("init")  # a second init changes nothing, re-adds nothing
    assert len(json.loads(run("sequences", "show", "Welcome", "--json"))["steps"]) == 4


def test_bad_files_are_refused_with_the_place_named(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: X\ntrigger: {type: manual}\nsteps:\n  - delay: -1d\n    subject: Hi\n    body: x\n"
                   "    colour: red\n", encoding="utf-8")
    result = runner.invoke(app, ["sequences", "load", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml: steps[0].delay" in result.stderr and "steps[0].colour" in result.stderr
    assert "X" not in [s["name"] for s in json.loads(run("sequences", "list", "--json"))]  # nothing half-loaded


def test_resume_enroll_and_tick_send_a_step(settings: Settings) -> None:
    run("init")
    run("contacts", "add", "ana@example.org", "--name", "Ana", "--confirmed", "--consent-note", "signed up at reception")
    assert "already" in runner.invoke(app, ["sequences", "pause", "welcome"]).output
    run("sequences", "resume", "welcome")
    run("sequences", "enroll", "welcome", "ana@example.org")
    assert runner.invoke(app, ["sequences", "enroll", "welcome", "ana@example.org"]).exit_code == 2  # once only
    later = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    ticked = run("tick", "--at", later)
    assert "steps queued 1" in ticked and "submitted 1" in ticked
    outbox = list((settings.outbox_dir).glob("*.eml"))
    assert len(outbox) == 1
    shown = json.loads(run("sequences", "show", "welcome", "--json"))
    assert shown["steps"][0]["deliveries"] == {"submitted": 1} and shown["enrollments"]["active"] == 1
