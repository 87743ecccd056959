"""newsletter users ...: the first admin is made at the terminal; each change is audited as "cli";
init never makes a user; the demo makes its admin only where no staff user exists."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.demo import DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD, run_demo
from newsletter.staff.models import AuditEntry, StaffUser
from newsletter.staff.users import Attempt, Outcome, authenticate
from newsletter.staff.throttle import Limits
from subscribers.leads import STAGES
from subscribers.models import Contact, Lead, Segment
from tests.leadskit import plain_contact

runner = CliRunner()


def run(*args: str, input: str | None = None, code: int = 0) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, result.output
    return result.output


def audit_of(db: Database) -> list[tuple[str, str, str | None]]:
    with db.session() as s:
        return [(e.actor, e.action, e.target) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def signs_in(db: Database, email: str, password: str) -> bool:
    with db.session() as s:
        attempt = Attempt("203.0.113.5", "k" * 32, Limits(5, 20))
        return authenticate(s, email, password, attempt).outcome is Outcome.SIGNED_IN


def test_users_add_prints_a_strong_password_once_and_it_signs_in(settings: Settings, db: Database) -> None:
    output = run("users", "add", "Ana@Clinic.example", "--role", "admin")
    assert "Added ana@clinic.example with the admin role" in output
    password = output.strip().splitlines()[-1]
    assert len(password) >= 20 and re.fullmatch(r"[A-Za-z0-9_-]+", password)
    assert signs_in(db, "ana@clinic.example", password)
    with db.session() as s:  # only the hash is kept
        stored = s.scalar(select(StaffUser.password_hash))
        assert stored and stored.startswith("$argon2id$") and password not in stored
    assert audit_of(db)[0] == ("cli", "user_added", "user 1")


def test_users_add_reads_a_password_from_stdin(settings: Settings, db: Database) -> None:
    output = run("users", "add", "bo@clinic.example", "--role", "clinic", "--password-stdin",
                 input="a long passphrase of mine\n")
    assert "a long passphrase of mine" not in output
    assert signs_in(db, "bo@clinic.example", "a long passphrase of mine")
    assert "at least 12 characters" in run("users", "add", "cy@clinic.example", "--role", "clinic",
                                           "--password-stdin", input="short\n", code=2)


def test_bad_input_gets_one_line_and_stores_nothing(settings: Settings, db: Database) -> None:
    run("users", "add", "ana@clinic.example", "--role", "admin")
    assert "exists already" in run("users", "add", "ANA@clinic.example", "--role", "clinic", code=2)
    assert "use one of admin, marketing, clinic" in run("users", "add", "x@clinic.example", "--role", "boss", code=2)
    assert "not a valid email address" in run("users", "add", "not-an-address", "--role", "clinic", code=2)
    assert "no staff user" in run("users", "disable", "nobody@clinic.example", code=1)
    assert "only active admin" in run("users", "disable", "ana@clinic.example", code=2)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(StaffUser)) == 1
    assert [a for _, a, _ in audit_of(db)] == ["user_added"]


def test_list_disable_and_reset_password_each_audited_once(settings: Settings, db: Database) -> None:
    run("users", "add", "ana@clinic.example", "--role", "admin")
    run("users", "add", "mo@clinic.example", "--role", "marketing", "--password-stdin", input="first password here\n")
    listed = run("users", "list", "--json")
    assert '"email": "mo@clinic.example"' in listed and '"role": "marketing"' in listed
    assert '"status": "active"' in listed and "password" not in listed
    new = run("users", "reset-password", "mo@clinic.example").strip().splitlines()[-1]
    assert not signs_in(db, "mo@clinic.example", "first password here") and signs_in(db, "mo@clinic.example", new)
    run("users", "disable", "mo@clinic.example")
    assert "disabled already" in run("users", "disable", "mo@clinic.example")
    assert not signs_in(db, "mo@clinic.example", new)
    cli_entries = [(a, t) for actor, a, t in audit_of(db) if actor == "cli"]
    assert cli_entries == [("user_added", "user 1"), ("user_added", "user 2"), ("password_reset", "user 2"),
                           ("user_disabled", "user 2")]
    assert '"status": "disabled"' in run("users", "list", "--json")


def test_init_never_makes_a_user(settings: Settings) -> None:
    run("init")
    run("init")
    assert run("users", "list", "--json").strip() == "[]"


def test_the_demo_makes_its_admin_only_where_no_staff_user_exists(settings: Settings, db: Database,
                                                                   tmp_path) -> None:  # noqa: ANN001
    first = run_demo(settings, db, tmp_path / "out")
    assert first.staff_login and f"{DEMO_STAFF_EMAIL}, password {DEMO_STAFF_PASSWORD}" in first.summary()
    assert "http://127.0.0.1:8000/staff/" in first.summary()
    assert signs_in(db, DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD)
    again = run_demo(settings, db, tmp_path / "out")  # made once
    assert again.staff_login
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(StaffUser)) == 1


def test_the_demo_gives_the_staff_pages_an_audience_once_and_only_in_a_database_without_contacts(
        settings: Settings, db: Database, tmp_path) -> None:  # noqa: ANN001
    def counts() -> tuple[int, set[str], int]:
        with db.session() as s:
            return (s.scalar(select(func.count()).select_from(Contact)) or 0, set(s.scalars(select(Lead.stage))),
                    s.scalar(select(func.count()).select_from(Segment)) or 0)

    first = run_demo(settings, db, tmp_path / "out")
    contacts, stages, segments = counts()
    assert first.audience and "demo contacts, leads and segments" in first.summary()
    assert contacts >= 10 and stages == set(STAGES) and segments == 2  # every stage of the board has someone
    again = run_demo(settings, db, tmp_path / "out")
    assert not again.audience and counts() == (contacts, stages, segments)  # added once


def test_the_demo_adds_nobody_to_a_database_with_contacts(settings: Settings, db: Database,
                                                         tmp_path) -> None:  # noqa: ANN001
    plain_contact(db)
    assert not run_demo(settings, db, tmp_path / "out").audience
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 1


def test_the_demo_leaves_a_real_install_without_a_known_password(settings: Settings, db: Database,
                                                                   tmp_path) -> None:  # noqa: ANN001
    run("users", "add", "ana@clinic.example", "--role", "admin")
    result = run_demo(settings, db, tmp_path / "out")
    assert not result.staff_login and DEMO_STAFF_PASSWORD not in result.summary()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(StaffUser)) == 1


def test_each_sensitive_command_writes_exactly_one_audit_entry_and_no_contact_data(
        settings: Settings, db: Database, tmp_path) -> None:  # noqa: ANN001
    from tests.sendkit import add_audience

    add_audience(db, 2)
    steps: list[tuple[list[str], tuple[str, str | None]]] = [
        (["posts", "import", str(Path(__file__).parents[1] / "newsletter" / "samples" / "demo-post.txt")], ("post_imported", "post 1")),
        (["posts", "edit", "1", "--title", "Small steps"], ("post_edited", "post 1")),
        (["issues", "create", "--post", "1"], ("issue_created", "issue 1")),
        (["issues", "edit", "1", "--intro", "Hello"], ("issue_edited", "issue 1")),
        (["issues", "test", "1", "--to", "editor@clinic.example"], ("send_test", "issue 1")),
        (["issues", "schedule", "1", "--at", "2030-01-01 09:00", "--tz", "UTC"], ("schedule", "issue 1")),
        (["issues", "schedule", "1", "--cancel"], ("cancel", "issue 1")),
        (["issues", "send", "1", "--queue"], ("send", "issue 1")),
        (["issues", "pause", "1"], ("pause", "issue 1")),
        (["issues", "resume", "1"], ("resume", "issue 1")),
        (["contacts", "export", str(tmp_path / "all.csv")], ("export", None)),
        (["contacts", "export-one", "reader0@example.org", "--out", str(tmp_path / "one.json")], ("export", None)),
        (["contacts", "erase", "reader1@example.org", "--yes"], ("erase", None)),
    ]
    csv = tmp_path / "in.csv"
    csv.write_text("email,name\nnew.reader@example.org,New Reader\n", encoding="utf-8")
    steps.append((["contacts", "import", str(csv), "--list", "newsletter"], ("import", "list newsletter")))
    for args, expected in steps:
        before = len(audit_of(db))
        run(*args)
        entries = audit_of(db)
        assert [(actor, action, target) for actor, action, target in entries[before:]] == [("cli", *expected)], args
    with db.session() as s:
        details = " ".join(e.detail or "" for e in s.scalars(select(AuditEntry)))
    assert "@" not in details and "reader" not in details.lower()
