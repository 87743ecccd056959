"""The demo behind the README's first command: a sample post becomes a previewable issue."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import issues as issue_service
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.demo_audience import seed_audience
from newsletter.models import Sequence
from newsletter.posts import service as post_service
from newsletter.posts.source import RawSource
from newsletter.compose.preflight import Finding
from newsletter.staff import users as staff_users
from newsletter.staff.roles import Role
from subscribers.states import SequenceStatus

DEMO_POST = "demo-post.txt"
DEMO_SUBJECT = "Small steps for steadier days"
DEMO_PREHEADER = "A few easy habits our team talks about most, and how to start this week."
# The demo's staff login: fixed and printed, so it is only ever made in a database that has no
# other staff user (a demo run against a real install must not open a door with a known password).
DEMO_STAFF_EMAIL = "demo@clinic.example"
DEMO_STAFF_PASSWORD = "demo-password-not-for-production"
STAFF_URL = "http://127.0.0.1:8000/staff/"


@dataclass
class DemoResult:
    post_id: int
    post_title: str
    issue_id: int
    files: issue_service.PreviewFiles
    findings: list[Finding]
    database: str
    outbox: Path
    staff_login: bool  # whether the demo admin exists (made now or by an earlier run)
    audience: bool = False  # whether the demo contacts, leads and segments were added now

    def summary(self) -> str:
        lines = [
            f"Database: {self.database}",
            f"Imported the sample post as post {self.post_id}: {self.post_title}",
            f"Built issue {self.issue_id} (subject: {DEMO_SUBJECT!r})",
            "Preflight: " + ("all checks pass" if not self.findings else "; ".join(f.message for f in self.findings)),
            "",
            "Look at the email as a subscriber would receive it:",
            f"  {self.files.html.resolve()}   (open in a browser; narrow the window to see the phone layout)",
            f"  {self.files.text.resolve()}    (the plain-text part)",
            f"  {self.files.eml.resolve()}    (the whole MIME message; opens in any mail program)",
            "",
            "Sign up on the public pages once 'newsletter serve' runs (make demo starts it): "
            "http://127.0.0.1:8000/subscribe",
            f"The confirmation email lands in {self.outbox.resolve()}/ as an .eml file; its button confirms you.",
            "",
        ]
        if self.audience:
            lines.append("Added demo contacts, leads and segments (invented people on example.org) for the staff pages.")
        if self.staff_login:
            lines.append(f"Staff app: {STAFF_URL}  (sign in as {DEMO_STAFF_EMAIL}, password {DEMO_STAFF_PASSWORD})")
        else:
            lines.append(f"Staff app: {STAFF_URL}  (this database has staff users of its own, so no demo login "
                         "was made: sign in with yours, or add one with 'newsletter users add EMAIL --role admin')")
        return "\n".join(lines)


def run_demo(settings: Settings, db: Database, out_dir: Path) -> DemoResult:
    data = (resources.files("newsletter") / "samples" / DEMO_POST).read_bytes()
    raw = RawSource(name=DEMO_POST, data=data, content_type="text/plain", url=None)
    with db.session() as session:
        post = post_service.import_post(session, raw, "text").post
        issue = next(
            (i for i in issue_service.list_issues(session) if i.post_id == post.id and i.subject == DEMO_SUBJECT),
            None,
        ) or issue_service.create_issue(session, settings, post.id, DEMO_SUBJECT, DEMO_PREHEADER)
        findings = issue_service.preflight(issue, settings)
        # Let a demo sign-up see the welcome sequence at work (a real install reviews it first).
        welcome = session.scalar(select(Sequence).where(Sequence.name == "Welcome"))
        if welcome is not None:
            welcome.status = SequenceStatus.ACTIVE
        files = issue_service.write_preview(issue, settings, out_dir)
        staff_login = _demo_admin(session)
        audience = seed_audience(session, settings)
        assert settings.outbox_dir is not None
        return DemoResult(
            post.id, post.title, issue.id, files, findings, db.engine.url.render_as_string(hide_password=True),
            settings.outbox_dir, staff_login, audience,
        )


def _demo_admin(session: Session) -> bool:
    """Make the demo admin if missing, and only in a database with no other staff user."""
    if staff_users.find(session, DEMO_STAFF_EMAIL) is not None:
        return True
    if staff_users.list_users(session):
        return False
    staff_users.add_user(session, DEMO_STAFF_EMAIL, Role.ADMIN, DEMO_STAFF_PASSWORD, actor="demo")
    return True
