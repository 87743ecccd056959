"""Helpers for archive tests: an issue that went out (published or not), and what an archive copy must
never hold."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from newsletter import archive
from newsletter import issues as issue_service
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Issue
from newsletter.sending import schedule
from tests.sendkit import make_issue

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
WALK, SLEEP, BOOK = "https://example.org/walk", "https://example.org/sleep", "https://example.com/book"


def sent_issue(db: Database, settings: Settings, subject: str, *, tracking: str | None = None,
               at: datetime = NOW, publish: bool = True) -> int:
    """An issue that went out at ``at`` (still sending when there are subscribers, sent at once when
    there are none), published in the archive unless told otherwise."""
    issue_id = make_issue(db, settings, subject)
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        if tracking:
            issue_service.set_tracking(s, settings, issue, tracking)
        schedule.start_now(s, settings, issue, at)
        if publish:
            archive.publish(issue, at + timedelta(hours=1))
    return issue_id


def no_reader_in(html: str) -> None:
    """What an archive copy must never hold: a placeholder, a reader's link, tracking, an address."""
    assert "%%" not in html and "{{" not in html
    assert "/c/" not in html and "/o/" not in html and ".gif" not in html  # click redirects, open pixel
    for path in ("/u/", "/preferences/", "/v/", "/confirm/"):
        assert path not in html
    assert "Unsubscribe" not in html and "View in your browser" not in html and "preferences" not in html
    assert "mailto:" not in html and not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", html)
    assert "You are receiving this" not in html
