"""The public archive: staff publish a sent issue (staff app and CLI, audited); visitors read its copy,
which belongs to no reader (no name, no reader's link, no tracking), in /archive, its page and the
Atom feed; drafts and unpublished issues are not there; search engines are told what the clinic chose."""

from __future__ import annotations

import re
from datetime import timedelta

import feedparser
import httpx
import pytest
from alembic import command
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from newsletter import archive
from newsletter.cli import app as cli
from newsletter.config import Settings
from newsletter.database import Database, alembic_config, upgrade
from newsletter.errors import InputError
from newsletter.models import Issue
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from newsletter.urls import archive_path
from tests.liveserver import LiveServer, serving
from tests.archivekit import BOOK, NOW, SLEEP, WALK, no_reader_in, sent_issue
from tests.sendkit import add_audience, make_issue
from tests.staffkit import make_user, post_form, signed_in

# The archive copy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tracking", ["full", "anonymous", "off"])
def test_the_archive_copy_belongs_to_no_reader_and_links_go_where_they_point(db: Database, settings: Settings,
                                                                            tracking: str) -> None:
    add_audience(db, 2)
    issue_id = sent_issue(db, settings, "Small steps", tracking=tracking)
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        assert issue.status == "sending"
        html = archive.clean_copy(s, issue)
    no_reader_in(html)
    assert "Hi there," in html  # the greeting a reader without a name gets
    for url in (WALK, SLEEP, BOOK):
        assert f'href="{url}"' in html
    assert "reader0@example.org" not in html and "Reader 0" not in html


def test_only_a_sent_or_sending_issue_may_be_published_and_twice_is_harmless(db: Database, settings: Settings) -> None:
    draft = make_issue(db, settings, "Still a draft")
    sent = sent_issue(db, settings, "Went out", publish=False)
    with db.session() as s:
        with pytest.raises(InputError, match="only an issue that has been sent"):
            archive.publish(s.get(Issue, draft))
        issue = s.get(Issue, sent)
        assert issue.status == "sent"
        assert archive.publish(issue, NOW) is True
        assert archive.publish(issue, NOW + timedelta(days=1)) is False  # keeps its first date
        assert issue.archive_published_at == NOW
        assert archive.unpublish(issue) is True and archive.unpublish(issue) is False


def test_the_archive_lists_newest_sent_first_a_page_at_a_time(db: Database, settings: Settings) -> None:
    ids = [sent_issue(db, settings, f"Issue {n}", at=NOW + timedelta(days=n)) for n in range(5)]
    sent_issue(db, settings, "Not published", at=NOW + timedelta(days=9), publish=False)
    with db.session() as s:
        first = archive.archive_page(s, size=2)
        second = archive.archive_page(s, first.next_cursor, size=2)
        third = archive.archive_page(s, second.next_cursor, size=2)
    assert [i.id for i in first.issues + second.issues + third.issues] == ids[::-1]
    assert third.next_cursor is None


# Over HTTP ------------------------------------------------------------------------------------------------


def test_visitors_read_published_issues_and_nothing_else(live_server: LiveServer) -> None:
    db, settings = live_server.db, live_server.settings
    add_audience(db, 3)
    published = sent_issue(db, settings, "Sleep and mood: seven small habits")
    unpublished = sent_issue(db, settings, "Sent, never published", publish=False)
    draft = make_issue(db, settings, "A draft nobody should see")
    http = httpx.Client(base_url=live_server.url, timeout=30)

    listing = http.get("/archive")
    assert listing.status_code == 200
    path = archive_path(published, "Sleep and mood: seven small habits")
    assert path == f"/archive/{published}-sleep-and-mood-seven-small-habits"
    assert f'href="{path}"' in listing.text
    assert "Sent, never published" not in listing.text and "A draft nobody" not in listing.text
    assert 'href="/subscribe"' in listing.text  # a way to sign up

    page = http.get(path)
    assert page.status_code == 200 and "Sleep and mood" in page.text
    no_reader_in(page.text)
    assert 'href="/subscribe"' in page.text and f'href="{WALK}"' in page.text
    for n in range(3):
        assert f"reader{n}@example.org" not in page.text

    # One address per issue: the bare id and a stale slug lead to it.
    for other in (f"/archive/{published}", f"/archive/{published}-old-words"):
        moved = http.get(other, follow_redirects=False)
        assert moved.status_code == 301 and moved.headers["location"] == path

    for hidden in (unpublished, draft, 999999):
        for url in (f"/archive/{hidden}", archive_path(hidden, "x")):
            answer = http.get(url, follow_redirects=False)
            assert answer.status_code == 404 and "not in the archive" in answer.text
    for bad in ("/archive/abc", "/archive/0", "/archive/99999999999999999999", "/archive?after=garbage"):
        assert http.get(bad).status_code in (200, 404)  # a page a person can read, never a 500

    feed = http.get("/archive/feed.atom")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(feed.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10" and parsed.feed.title == settings.newsletter_name
    assert parsed.feed.id == f"{settings.public_base_url}/archive" and parsed.feed.updated
    assert [e.title for e in parsed.entries] == ["Sleep and mood: seven small habits"]
    entry = parsed.entries[0]
    assert entry.id == f"{settings.public_base_url}/archive/{published}"
    assert entry.link == settings.public_base_url + path and entry.updated
    assert entry.summary == "Habits for the week, one small step at a time"
    assert entry.content[0].type == "text/html"
    no_reader_in(entry.content[0].value)
    assert b"%%" not in feed.content and b"/c/" not in feed.content


def test_the_list_pages_through_older_issues(live_server: LiveServer) -> None:
    db, settings = live_server.db, live_server.settings
    count = archive.PAGE_SIZE + 1
    for n in range(count):
        sent_issue(db, settings, f"Issue number {n}", at=NOW + timedelta(days=n))
    http = httpx.Client(base_url=live_server.url, timeout=30)
    first = http.get("/archive").text
    titles = re.findall(r">Issue number (\d+)</a>", first)
    assert titles == [str(n) for n in range(count - 1, 0, -1)]
    older = re.search(r'href="(\?after=[^"]+)">Older issues</a>', first)
    assert older
    second = http.get("/archive" + older.group(1).replace("&amp;", "&")).text
    assert re.findall(r">Issue number (\d+)</a>", second) == ["0"]
    assert "Older issues" not in second and 'href="/archive">Newest issues</a>' in second
    assert re.findall(r">Issue number (\d+)</a>", http.get("/archive?after=not-a-cursor").text) == titles


def test_a_taken_out_issue_leaves_the_page_the_list_and_the_feed(live_server: LiveServer) -> None:
    db, settings = live_server.db, live_server.settings
    issue_id = sent_issue(db, settings, "Here for a while")
    http = httpx.Client(base_url=live_server.url, timeout=30, follow_redirects=True)
    assert http.get(f"/archive/{issue_id}").status_code == 200
    with db.session() as s:
        archive.unpublish(s.get(Issue, issue_id))
    assert http.get(f"/archive/{issue_id}").status_code == 404
    assert "Here for a while" not in http.get("/archive").text
    assert feedparser.parse(http.get("/archive/feed.atom").content).entries == []


@pytest.mark.parametrize("indexable", [False, True])
def test_search_engines_may_index_the_archive_only_when_the_clinic_says_so(settings: Settings, db: Database,
                                                                          indexable: bool) -> None:
    with serving(settings.model_copy(update={"archive_indexable": indexable}), db) as server:
        issue_id = sent_issue(db, server.settings, "Indexable or not")
        http = httpx.Client(base_url=server.url, timeout=30, follow_redirects=True)
        expected = "all" if indexable else "noindex"
        for url in ("/archive", f"/archive/{issue_id}"):
            answer = http.get(url)
            assert answer.headers["x-robots-tag"] == expected
            assert f'<meta name="robots" content="{expected}">' in answer.text
        assert http.get("/archive/feed.atom").headers["x-robots-tag"] == expected
        # Every other public page carries tokens or forms: never indexed.
        subscribe = http.get("/subscribe")
        assert subscribe.headers["x-robots-tag"] == "noindex"
        assert '<meta name="robots" content="noindex">' in subscribe.text
        assert http.get("/confirm/not-a-token").headers["x-robots-tag"] == "noindex"
        robots = http.get("/robots.txt")
        assert robots.headers["content-type"].startswith("text/plain")
        lines = robots.text.splitlines()
        assert lines[0] == "User-agent: *" and lines[-1] == "Disallow: /"
        assert ("Allow: /archive" in lines) is indexable


# Staff and the CLI -----------------------------------------------------------------------------------------


def _audit(db: Database) -> list[tuple[str, str | None, str | None]]:
    with db.session() as s:
        return [(e.action, e.actor, e.target) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
                if e.action.startswith("archive_")]


def test_marketing_publishes_and_takes_out_an_issue_on_its_page(live_server: LiveServer) -> None:
    db, settings = live_server.db, live_server.settings
    marketing = make_user(db, "mo@clinic.example", Role.MARKETING)
    clinic = make_user(db, "cy@clinic.example", Role.CLINIC)
    issue_id = sent_issue(db, settings, "Published from the staff app", publish=False)
    draft_id = make_issue(db, settings, "Draft on its page")
    page = f"/staff/issues/{issue_id}"
    with signed_in(live_server, marketing) as c:
        overview = c.get(page).text
        assert "Publish in the archive" in overview
        answer = post_form(c, page, f"{page}/archive", {"publish": "yes"})
        assert answer.status_code == 303 and answer.headers["location"] == f"{page}#archive"
        assert post_form(c, page, f"{page}/archive", {"publish": "yes"}).status_code == 303  # a double click
        shown = c.get(page).text
        assert "It is in the public archive now" in shown and "Take it out of the archive" in shown
        assert httpx.get(f"{live_server.url}/archive/{issue_id}", follow_redirects=True).status_code == 200

        assert post_form(c, page, f"{page}/archive", {"publish": "no"}).status_code == 303
        assert httpx.get(f"{live_server.url}/archive/{issue_id}").status_code == 404

        refused = post_form(c, f"/staff/issues/{draft_id}", f"/staff/issues/{draft_id}/archive", {"publish": "yes"})
        assert refused.status_code == 409 and "only an issue that has been sent" in refused.text
        assert post_form(c, page, f"{page}/archive", {"publish": "maybe"}).status_code == 400
        no_token = c.post(f"{page}/archive", data={"publish": "yes"})
        assert no_token.status_code in (400, 403)  # no CSRF token: refused, nothing changed
    with db.session() as s:
        assert s.get(Issue, issue_id).archive_published_at is None
    with signed_in(live_server, clinic) as c:
        assert c.post(f"{page}/archive", data={"publish": "yes", "csrf_token": "x"}).status_code in (403, 404)
    assert _audit(db) == [("archive_published", marketing.email, f"issue {issue_id}"),
                          ("archive_unpublished", marketing.email, f"issue {issue_id}")]


def test_the_cli_publishes_and_unpublishes(db: Database, settings: Settings) -> None:
    runner = CliRunner()
    issue_id = sent_issue(db, settings, "From the terminal", publish=False)
    draft_id = make_issue(db, settings, "Not yet")
    result = runner.invoke(cli, ["issues", "publish", str(issue_id)])
    assert result.exit_code == 0, result.output
    assert f"{settings.public_base_url}/archive/{issue_id}-from-the-terminal" in result.output
    assert runner.invoke(cli, ["issues", "publish", str(issue_id)]).exit_code == 0
    refused = runner.invoke(cli, ["issues", "publish", str(draft_id)])
    assert refused.exit_code != 0 and "only an issue that has been sent" in refused.output
    assert "Traceback" not in refused.output
    missing = runner.invoke(cli, ["issues", "publish", "999"])
    assert missing.exit_code != 0 and "there is no issue 999" in missing.output
    assert runner.invoke(cli, ["issues", "unpublish", str(issue_id)]).exit_code == 0
    with db.session() as s:
        assert s.get(Issue, issue_id).archive_published_at is None
    assert _audit(db) == [("archive_published", "cli", f"issue {issue_id}"),
                          ("archive_unpublished", "cli", f"issue {issue_id}")]


# The migration, both ways, on both databases --------------------------------------------------------------


def _down_and_up(database: Database) -> None:
    upgrade(database.engine)
    config = alembic_config(database.engine)
    command.downgrade(config, "0017")
    assert "archive_published_at" not in {c["name"] for c in inspect(database.engine).get_columns("issues")}
    upgrade(database.engine)
    assert "archive_published_at" in {c["name"] for c in inspect(database.engine).get_columns("issues")}
    assert "ix_issues_archive" in {i["name"] for i in inspect(database.engine).get_indexes("issues")}


def test_the_migration_goes_down_and_up_on_sqlite(db: Database) -> None:
    _down_and_up(db)


@pytest.mark.postgres
def test_the_migration_goes_down_and_up_on_postgres(postgres_db: Database) -> None:
    _down_and_up(postgres_db)


@pytest.mark.postgres
def test_the_archive_on_postgres(postgres_db: Database, settings: Settings) -> None:
    ids = [sent_issue(postgres_db, settings, f"Issue {n}", at=NOW + timedelta(days=n)) for n in range(3)]
    with postgres_db.session() as s:
        first = archive.archive_page(s, size=2)
        rest = archive.archive_page(s, first.next_cursor, size=2)
        assert [i.id for i in first.issues + rest.issues] == ids[::-1]
        no_reader_in(archive.clean_copy(s, s.get(Issue, ids[0])))
