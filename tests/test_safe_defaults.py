"""Safe defaults and what imports report, through every face: the subject and preheader a new issue
starts from carry no health words (CLI, staff app), and a removed script link is reported by
`posts import` and on the staff app's import. Real importers, a real database, a real server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from newsletter import issues as issue_service
from newsletter.cli import app
from newsletter.compose.preflight import PREHEADER_MIN_CHARS, health_terms_in
from newsletter.compose.suggestions import suggest
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Issue, Post
from newsletter.posts.service import given_bytes, import_post
from newsletter.staff.roles import Role
from tests.conftest import SAMPLE_POST
from tests.liveserver import LiveServer
from tests.staffkit import csrf_of, make_user, post_form, signed_in

runner = CliRunner()
IMPORT = "/staff/posts/import"

# A Markdown post whose title names a treatment and whose first sentence a condition; its second
# sentence is neutral and long enough for a preheader.
HEALTH_POST = (
    "---\ntitle: Ketamine and Exercise\n---\n\n"
    "Ketamine can ease depression within hours. A short walk each morning can lift the rest of the day.\n\n"
    "## Where to start\n\nTen minutes is enough to begin.\n"
)
SCRIPT_LINK_POST = "---\ntitle: Walking routes\n---\n\nSee [our map](javascript:alert(1)) before you set off.\n"


def run(*args: str, input: str | None = None) -> tuple[str, str]:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


def a_post(title: str, excerpt: str, paragraphs: list[str], minutes: int = 4) -> Post:
    return Post(title=title, excerpt=excerpt, reading_minutes=minutes,
                blocks=[{"type": "paragraph", "html": p} for p in paragraphs])


# The suggestion itself --------------------------------------------------------------------------------


@pytest.mark.parametrize("title, subject", [
    ("Morning walks for steadier days", "Morning walks for steadier days"),  # a neutral title is used
    ("Ketamine and Exercise: A Powerful Combination", "New on the blog: A Powerful Combination"),
    ("Is Ketamine Right for You? Five Questions to Ask First", "New on the blog: Five Questions to Ask First"),
    ("The Benefits of Ketamine and Exercise", "The Limbic Letter: new article"),
    ("Depression \u2013 Part 2", "The Limbic Letter: new article"),  # "Part 2" alone says nothing
])
def test_the_suggested_subject_names_no_condition_or_treatment(settings: Settings, title: str, subject: str) -> None:
    suggestion = suggest(a_post(title, "A calm start to the week, one step at a time.", []), settings)
    assert suggestion.subject == subject and not health_terms_in(suggestion.subject)


def test_the_suggested_preheader_is_the_first_neutral_sentence_long_enough_to_fill_a_preview(
        settings: Settings) -> None:
    post = a_post("Sleep and mood", "Poor sleep and anxiety feed each other.",
                  ["Poor sleep and anxiety feed each other. Naps help.",
                   "A regular wake time is the simplest change most people can make this week."])
    assert suggest(post, settings).preheader == (
        "A regular wake time is the simplest change most people can make this week.")  # "Naps help." is too short


def test_with_no_neutral_sentence_the_preheader_is_a_neutral_line_of_its_own(settings: Settings) -> None:
    post = a_post("Ketamine", "Ketamine for depression.", ["Ketamine treatment for depression."], minutes=5)
    preheader = suggest(post, settings).preheader
    assert preheader == "Our latest post, a 5-minute read from the team at Limbic Medical."
    assert len(preheader) >= PREHEADER_MIN_CHARS and not health_terms_in(preheader)


def test_a_neutral_excerpt_is_the_preheader(settings: Settings) -> None:
    post = a_post("Walks", "Ten minutes outside, every morning, and what it changes.", ["Anything."])
    assert suggest(post, settings).preheader == "Ten minutes outside, every morning, and what it changes."


# The CLI ---------------------------------------------------------------------------------------------------


def test_cli_issue_defaults_carry_no_health_words_and_what_staff_type_still_warns(settings: Settings) -> None:
    post_id = run("posts", "import", "-", "--format", "markdown", input=HEALTH_POST)[0].strip()
    created = run("issues", "create", "--post", post_id)[0]
    issue_id = created.splitlines()[0]
    shown = json.loads(run("issues", "show", issue_id, "--json")[0])
    assert shown["subject"] == "The Limbic Letter: new article"
    assert shown["preheader"] == "A short walk each morning can lift the rest of the day."
    assert not [f for f in shown["preflight"] if f["code"].startswith("health-words")]
    typed = run("issues", "create", "--post", post_id, "--subject", "Ketamine and Exercise",
                "--preheader", "How ketamine and a morning walk work together for you")[0]
    assert "health-words-in-subject" in typed and "health-words-in-preheader" in typed


def test_cli_posts_import_prints_what_it_removed(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "routes.md"
    source.write_text(SCRIPT_LINK_POST, encoding="utf-8")
    stdout, stderr = run("posts", "import", str(source))
    assert stdout.strip().isdigit()  # the id alone on stdout, as scripts expect
    assert ("warning: " + str(source) + ": removed a javascript: link (its text \u201cour map\u201d is kept "
            "as plain text); only http(s), mailto and tel links are kept") in " ".join(stderr.split())
    as_json = json.loads(run("posts", "import", str(source), "--json")[0])  # the same content again
    assert as_json["created"] is False and len(as_json["warnings"]) == 1
    assert as_json["blocks"] == [{"type": "paragraph", "html": "See our map before you set off."}]


# The staff app ------------------------------------------------------------------------------------------


@pytest.fixture
def marketing(live_server: LiveServer) -> Iterator[httpx.Client]:
    with signed_in(live_server, make_user(live_server.db, "mia@clinic.example", Role.MARKETING)) as c:
        yield c


def field_value(html: str, name: str) -> str:
    tag = re.search(rf'<(?:input)[^>]*\bname="{name}"[^>]*>', html)
    assert tag, f"no field {name}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return unescape(value.group(1)) if value else ""


def textarea_value(html: str, name: str) -> str:
    found = re.search(rf'<textarea[^>]*\bname="{name}"[^>]*>(.*?)</textarea>', html, re.S)
    assert found, f"no textarea {name}"
    return unescape(found.group(1)).strip()


def value_of(html: str, name: str) -> str:
    return field_value(html, name) if re.search(rf'<input[^>]*\bname="{name}"', html) else textarea_value(html, name)


def test_staff_new_issue_form_starts_from_the_safe_suggestion(live_server: LiveServer, marketing: httpx.Client) -> None:
    with live_server.db.session() as s:
        post_id = import_post(s, given_bytes("sample.txt", SAMPLE_POST.read_bytes(), live_server.settings)).post.id
    form = marketing.get(f"/staff/issues/new?post={post_id}").text
    subject, preheader = value_of(form, "subject"), value_of(form, "preheader")
    assert subject == "The Limbic Letter: new article"  # the title names a treatment
    assert preheader and not health_terms_in(subject + " " + preheader)
    answer = marketing.post("/staff/issues/new", data={"csrf_token": csrf_of(form), "post": str(post_id),
                                                       "subject": "", "preheader": "", "intro": "", "tracking": "off"})
    assert answer.status_code == 303
    with live_server.db.session() as s:
        issue = s.get(Issue, int(answer.headers["location"].rsplit("/", 1)[1]))
        assert (issue.subject, issue.preheader) == (subject, preheader)  # left empty: the same suggestion


def test_staff_import_shows_what_it_removed(live_server: LiveServer, marketing: httpx.Client) -> None:
    answer = post_form(marketing, IMPORT, IMPORT + "/paste", {"text": SCRIPT_LINK_POST, "format": "markdown"})
    assert answer.status_code == 303
    shown = unescape(marketing.get(answer.headers["location"]).text)
    assert ("Warning: the pasted text: removed a javascript: link (its text \u201cour map\u201d is kept as "
            "plain text); only http(s), mailto and tel links are kept.") in shown
    assert "javascript" not in shown.split("Warning:")[0]  # nowhere else on the page


def test_import_result_carries_the_warnings_for_every_face(db: Database, settings: Settings) -> None:
    with db.session() as s:
        result = import_post(s, given_bytes("routes.md", SCRIPT_LINK_POST.encode(), settings), "markdown")
        assert result.created and result.warnings == [
            "routes.md: removed a javascript: link (its text \u201cour map\u201d is kept as plain text); "
            "only http(s), mailto and tel links are kept"]
        assert result.post.blocks == [{"type": "paragraph", "html": "See our map before you set off."}]


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_an_issue_made_without_subject_or_preheader_stores_the_suggestion(
        request: pytest.FixtureRequest, settings: Settings, engine: str) -> None:
    database: Database = request.getfixturevalue("db" if engine == "sqlite" else "postgres_db")
    with database.session() as s:
        post = import_post(s, given_bytes("health.md", HEALTH_POST.encode(), settings), "markdown").post
        issue = issue_service.create_issue(s, settings, post.id)
        issue_id = issue.id
    with database.session() as s:
        stored = s.get(Issue, issue_id)
        assert (stored.subject, stored.preheader) == (
            "The Limbic Letter: new article", "A short walk each morning can lift the rest of the day.")
        assert "Ketamine and Exercise" in stored.html  # the post's own title is still the email's heading
