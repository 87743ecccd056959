"""Issue layouts (full, teaser, digest), the hero image, the links near the top and the post's address:
made with the services and the CLI, compiled by mjml, checked by preflight, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from newsletter import issues as issue_service
from newsletter.cli import app
from newsletter.compose.compile import compiled_of, posts_of
from newsletter.compose.layouts import TEASER_PARAGRAPHS, TEASER_WORDS, teaser_blocks
from newsletter.compose.preflight import GMAIL_CLIP_BYTES, sent_html_bytes
from newsletter.config import Settings
from newsletter.database import Database, alembic_config, upgrade
from newsletter.errors import InputError
from newsletter.models import Issue, IssuePost, Post
from newsletter.posts.blocks import inline_text
from newsletter.posts.service import given_bytes, import_post
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from tests.conftest import FIXTURES, SAMPLE_POST
from tests.liveserver import LiveServer
from tests.staffkit import make_user, post_form, signed_in

runner = CliRunner()
GARDEN = FIXTURES / "posts" / "garden-post.html"  # an HTML post with two images and a canonical address
WALKING = FIXTURES / "posts" / "walking-post.txt"
GARDEN_URL = "https://clinic.example/blog/a-garden-walk-before-work"
CLINIC_URL = "https://clinic.example/blog/sleep"
WALKING_URL = "https://clinic.example/blog/walking"
# Neutral subject lines and preheaders (no health words), at least 40 characters of preheader.
SUBJECT, PREHEADER = "Something for your mornings", "Ten quiet minutes outside, and what our team noticed after a month"


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def _import(db: Database, settings: Settings, path: Path, url: str | None = None) -> int:
    with db.session() as s:
        return import_post(s, given_bytes(path.name, path.read_bytes(), settings), url=url).post.id


@pytest.fixture
def posts(db: Database, settings: Settings) -> dict[str, int]:
    return {"garden": _import(db, settings, GARDEN), "clinic": _import(db, settings, SAMPLE_POST, CLINIC_URL),
            "walking": _import(db, settings, WALKING, WALKING_URL)}


def _make(db: Database, settings: Settings, post_ids: list[int], layout: str, **kw: object) -> int:
    with db.session() as s:
        issue = issue_service.create_issue(s, settings, post_ids[0], SUBJECT, PREHEADER, "full", layout=layout,
                                           more_posts=post_ids[1:], **kw)
        return issue.id


def _findings(db: Database, settings: Settings, issue_id: int) -> list[tuple[str, str]]:
    with db.session() as s:
        return [(f.level, f.code) for f in issue_service.preflight(s.get(Issue, issue_id), settings)]


def _stored(db: Database, issue_id: int) -> tuple[str, str]:
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        return issue.html, issue.text


def _visible_text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<(style|head)\b.*?</\1>", " ", html, flags=re.S)).split())


# Each layout, for a text post, an HTML post with images and a digest of three --------------------------


@pytest.mark.parametrize("layout", ["full", "teaser"])
@pytest.mark.parametrize("which", ["clinic", "garden"])
def test_each_layout_compiles_and_passes_preflight(db: Database, settings: Settings, posts: dict[str, int],
                                                   layout: str, which: str) -> None:
    issue_id = _make(db, settings, [posts[which]], layout)
    assert _findings(db, settings, issue_id) == []
    html, text = _stored(db, issue_id)
    url = GARDEN_URL if which == "garden" else CLINIC_URL
    assert html.startswith("<!doctype html>") and "<mj-" not in html  # compiled by mjml
    # The button near the top as a text link as well as after the post; the post on the site.
    assert html.count(">Book a consultation<") == 2 and "Read on our site" in html
    assert f"Read on our site: {url}" in text and f"Book a consultation: {settings.booking_url}" in text
    top, rest = text.split("Hi %%first_name%%", 1)
    assert "Book a consultation:" in top and "Book a consultation:" in rest
    with db.session() as s:
        post = s.get(Post, posts[which])
        last_paragraph = inline_text([b for b in post.blocks if b["type"] == "paragraph"][-1]["html"], markers=False)
    if layout == "teaser":
        assert "Continue reading on our site" in html and f"Continue reading on our site: {url}" in text
        assert last_paragraph[:60] not in _visible_text(html)  # only the first paragraphs
    else:
        assert "Continue reading" not in html and last_paragraph[:60] in _visible_text(html)


def test_a_digest_of_three_posts_shows_each_as_a_card_under_gmails_limit(db: Database, settings: Settings,
                                                                          posts: dict[str, int]) -> None:
    order = [posts["walking"], posts["garden"], posts["clinic"]]
    issue_id = _make(db, settings, order, "digest")
    assert _findings(db, settings, issue_id) == []
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        assert issue.post_id == order[0]  # the lead post: everything that reads an issue's post keeps working
        assert [p.id for p in posts_of(issue)] == order
        titles = [p.title for p in posts_of(issue)]
        size = sent_html_bytes(compiled_of(issue), settings)
    assert size < GMAIL_CLIP_BYTES
    html, text = _stored(db, issue_id)
    shown = _visible_text(html)
    assert [shown.index(t) for t in titles] == sorted(shown.index(t) for t in titles)  # in the chosen order
    assert shown.count("Read more") == 3 and 'aria-label="Read more: ' in html
    assert "garden-path.jpg" in html  # a card shows its post's first image
    for title, url in zip(titles, (WALKING_URL, GARDEN_URL, CLINIC_URL)):
        assert f"{title}\n" in text and f"Read more: {url}" in text
    assert text.count("Book a consultation:") == 2
    assert "%%unsubscribe_url%%" in html and settings.postal_address in text  # the same footer


# The hero image -----------------------------------------------------------------------------------------


def test_the_hero_is_the_posts_first_image_or_the_one_chosen_or_none(db: Database, settings: Settings,
                                                                     posts: dict[str, int]) -> None:
    first, second = "https://clinic.example/images/garden-path.jpg", "https://clinic.example/images/bench.jpg"
    default = _make(db, settings, [posts["garden"]], "full")
    html, _ = _stored(db, default)
    assert html.count(first) == 1  # shown once, as the hero above the title, not again in the body
    assert html.index(first) < html.index("A Garden Walk Before Work</h1>")
    with db.session() as s:
        issue = s.get(Issue, default)
        issue_service.edit_layout(s, settings, issue, hero=second, hero_alt="A bench in the clinic garden")
    html, _ = _stored(db, default)
    assert html.index(second) < html.index("</h1>") < html.index(first)
    assert 'alt="A bench in the clinic garden"' in html
    with db.session() as s:
        issue_service.edit_layout(s, settings, s.get(Issue, default), hero="none")
    html, _ = _stored(db, default)
    assert html.index("</h1>") < html.index(first) and html.index("</h1>") < html.index(second)
    with db.session() as s, pytest.raises(InputError, match="one of the post's images"):
        issue_service.edit_layout(s, settings, s.get(Issue, default), hero="https://elsewhere.example/x.png")


def test_a_hero_without_alt_text_is_a_preflight_error_until_staff_give_one(db: Database, settings: Settings) -> None:
    page = GARDEN.read_text().replace('alt="A gravel path between low hedges in early light"', 'alt=""')
    with db.session() as s:
        post_id = import_post(s, given_bytes("nameless.html", page.encode(), settings)).post.id
    issue_id = _make(db, settings, [post_id], "teaser")
    assert ("error", "image-alt-missing") in _findings(db, settings, issue_id)
    with db.session() as s:
        assert any("hero image" in f.message for f in issue_service.preflight(s.get(Issue, issue_id), settings))
        issue_service.edit_layout(s, settings, s.get(Issue, issue_id), hero_alt="A garden path in the morning")
    assert _findings(db, settings, issue_id) == []


def test_the_logo_has_its_size_and_alt_text(db: Database, settings: Settings, posts: dict[str, int]) -> None:
    branded = settings.model_copy(update={"logo_url": "https://clinic.example/logo.png", "logo_width": 120,
                                          "logo_height": 40, "logo_alt": "Harbor Wellness"})
    html, _ = _stored(db, _make(db, branded, [posts["clinic"]], "teaser"))
    logo = re.search(r'<img[^>]+src="https://clinic.example/logo.png"[^>]*>', html).group(0)
    assert 'alt="Harbor Wellness"' in logo and 'width="120"' in logo and 'height="40"' in logo
    plain = settings.model_copy(update={"logo_url": "https://clinic.example/logo.png"})
    html, _ = _stored(db, _make(db, plain, [posts["clinic"]], "full"))
    assert f'alt="{settings.org_name}"' in re.search(r'<img[^>]+logo.png"[^>]*>', html).group(0)


# The teaser ------------------------------------------------------------------------------------------------


def test_a_teaser_keeps_whole_paragraphs_and_never_a_list_or_quote(db: Database, posts: dict[str, int]) -> None:
    with db.session() as s:
        for post in s.scalars(select(Post)):
            kept = teaser_blocks(post)
            paragraphs = [b["html"] for b in post.blocks if b["type"] == "paragraph"]
            assert 1 <= len(kept) <= TEASER_PARAGRAPHS and all(b["type"] == "paragraph" for b in kept)
            assert all("<sup>" not in b["html"] for b in kept)  # the references are on the site
            words = sum(len(inline_text(b["html"]).split()) for b in kept)
            assert len(kept) == 1 or words <= TEASER_WORDS
            assert inline_text(kept[0]["html"], markers=False) == inline_text(paragraphs[0], markers=False)

    class Listy:
        title, excerpt, canonical_url, source_url = "A list first", "What to pack.", None, None
        blocks = [{"type": "heading", "level": 2, "html": "Pack"}, {"type": "list", "items": ["Water", "Hat"]}]

    assert teaser_blocks(Listy()) == [{"type": "paragraph", "html": "What to pack."}]  # the excerpt, never a cut list


def test_a_teaser_without_an_address_is_a_preflight_error_until_the_post_has_one(db: Database,
                                                                                settings: Settings) -> None:
    with db.session() as s:
        post_id = import_post(s, given_bytes("clinic-post.txt", SAMPLE_POST.read_bytes(), settings)).post.id
    issue_id = _make(db, settings, [post_id], "teaser")
    assert _findings(db, settings, issue_id) == [("error", "read-url-missing")]
    html, text = _stored(db, issue_id)
    assert "Continue reading" not in html and "Read on our site" not in html
    with db.session() as s:
        recompiled = issue_service.edit_post(s, settings, post_id, url=CLINIC_URL)
        assert [i.id for i in recompiled] == [issue_id]
    assert _findings(db, settings, issue_id) == []
    assert f"Continue reading on our site: {CLINIC_URL}" in _stored(db, issue_id)[1]


# Digests: posts in order, changed one at a time --------------------------------------------------------


def test_staff_add_move_and_remove_a_digests_posts(db: Database, settings: Settings, posts: dict[str, int]) -> None:
    issue_id = _make(db, settings, [posts["garden"]], "full")
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        issue_service.edit_digest(s, settings, issue, "add", posts["walking"])
        assert issue.layout == "digest"
        issue_service.edit_digest(s, settings, issue, "add", posts["clinic"])
        issue_service.edit_digest(s, settings, issue, "up", posts["clinic"])
        assert [p.id for p in posts_of(issue)] == [posts["garden"], posts["clinic"], posts["walking"]]
        issue_service.edit_digest(s, settings, issue, "up", posts["clinic"])
        assert issue.post_id == posts["clinic"]  # the new lead post
        issue_service.edit_digest(s, settings, issue, "remove", posts["garden"])
        with pytest.raises(InputError, match="already"):
            issue_service.edit_digest(s, settings, issue, "add", posts["walking"])
    with db.session() as s:
        rows = s.scalars(select(IssuePost).where(IssuePost.issue_id == issue_id).order_by(IssuePost.position)).all()
        assert [(r.position, r.post_id) for r in rows] == [(0, posts["clinic"]), (1, posts["walking"])]
    html, _ = _stored(db, issue_id)
    assert "A Garden Walk Before Work" not in html
    with db.session() as s:  # back to one post: the rows go, the lead post stays
        issue_service.edit_layout(s, settings, s.get(Issue, issue_id), layout="teaser")
        assert s.scalars(select(IssuePost).where(IssuePost.issue_id == issue_id)).all() == []
        assert s.get(Issue, issue_id).post_id == posts["clinic"]
    assert "Why a Daily Walk" not in _stored(db, issue_id)[0]
    with db.session() as s, pytest.raises(InputError, match="only a digest"):
        issue_service.edit_layout(s, settings, s.get(Issue, issue_id), post_ids=[posts["clinic"], posts["garden"]])


def test_editing_a_post_compiles_the_digests_it_is_in_again(db: Database, settings: Settings,
                                                           posts: dict[str, int]) -> None:
    issue_id = _make(db, settings, [posts["garden"], posts["walking"]], "digest")
    with db.session() as s:
        assert [i.id for i in issue_service.edit_post(s, settings, posts["walking"], title="Walking, again")] == [issue_id]
    assert "Walking, again" in _stored(db, issue_id)[0]


def test_bad_layout_choices_are_refused_and_nothing_is_stored(db: Database, settings: Settings,
                                                              posts: dict[str, int]) -> None:
    with db.session() as s:
        with pytest.raises(InputError, match="layout must be one of full, teaser, digest"):
            issue_service.create_issue(s, settings, posts["garden"], layout="magazine")
        with pytest.raises(InputError, match="twice"):
            issue_service.create_issue(s, settings, posts["garden"], layout="digest", more_posts=[posts["garden"]])
        with pytest.raises(InputError, match="only a digest"):
            issue_service.create_issue(s, settings, posts["garden"], layout="teaser", more_posts=[posts["clinic"]])
    with db.session() as s:
        assert s.scalars(select(Issue)).all() == []


def test_a_digest_of_one_post_is_a_warning(db: Database, settings: Settings, posts: dict[str, int]) -> None:
    assert _findings(db, settings, _make(db, settings, [posts["garden"]], "digest")) == [("warning", "digest-one-post")]


# The staff app (the browser walk is in test_browser_layouts.py) ----------------------------------------------


def test_staff_give_a_post_its_address_and_a_bad_layout_form_keeps_what_was_typed(live_server: LiveServer) -> None:
    db, settings = live_server.db, live_server.settings
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    with db.session() as s:
        post_id = import_post(s, given_bytes("clinic-post.txt", SAMPLE_POST.read_bytes(), settings)).post.id
        issue_id = issue_service.create_issue(s, settings, post_id, SUBJECT, PREHEADER, layout="teaser").id
    page, post_page = f"/staff/issues/{issue_id}", f"/staff/posts/{post_id}"
    with signed_in(live_server, login) as c:
        assert "Every teaser and digest card links to its post on the site" in c.get(page).text
        title = "Ketamine Therapy and a Good Night’s Sleep"
        bad = post_form(c, post_page, post_page + "/edit", {"title": title, "excerpt": "", "url": "clinic.example/sleep"})
        assert bad.status_code == 400 and 'id="url-error"' in bad.text and 'value="clinic.example/sleep"' in bad.text
        good = post_form(c, post_page, post_page + "/edit", {"title": title, "excerpt": "", "url": CLINIC_URL})
        assert good.status_code == 303
        assert _findings(db, settings, issue_id) == []  # its teaser issue was compiled again with somewhere to go

        refused = post_form(c, page, page + "/layout", {"layout": "poster", "hero": "nothing.png", "hero_alt": "Calm"})
        assert refused.status_code == 400
        assert 'id="layout-error"' in refused.text and 'id="hero-error"' in refused.text
        assert 'value="Calm"' in refused.text  # what was typed is kept
        assert post_form(c, page, page + "/layout", {"layout": "full", "hero": "none", "hero_alt": ""}).status_code == 303
        no_token = c.post(page + "/layout", data={"layout": "teaser", "hero": "first", "hero_alt": ""})
        assert no_token.status_code == 403
        unknown = post_form(c, page, page + "/digest", {"action": "add", "digest_post": "999"})
        assert unknown.status_code == 400 and "There is no post 999" in unknown.text
    with db.session() as s:
        issue = s.get(Issue, issue_id)
        assert (issue.layout, issue.hero) == ("full", "none")
        details = s.scalars(select(AuditEntry.detail).where(AuditEntry.target == f"issue {issue_id}")).all()
        assert details == ["layout full"]
        assert s.get(Post, post_id).canonical_url == CLINIC_URL


# The CLI ------------------------------------------------------------------------------------------------------


def test_the_cli_imports_with_an_address_and_makes_each_layout(settings: Settings, db: Database) -> None:
    assert run("posts", "import", str(SAMPLE_POST), "--url", "ftp://clinic.example/x", code=2).count("--url") >= 1
    assert "absolute http(s)" in run("posts", "import", str(SAMPLE_POST), "--url", "clinic.example/x", code=2)
    text_id = run("posts", "import", str(SAMPLE_POST), "--url", CLINIC_URL).strip()
    garden_id = run("posts", "import", str(GARDEN)).strip()
    walking_id = run("posts", "import", str(WALKING)).strip()  # no address yet

    teaser = run("issues", "create", "--post", text_id, "--layout", "teaser", "--subject", SUBJECT,
                 "--preheader", PREHEADER).splitlines()
    assert teaser[1:] == ["Goes out through the outbox folder (development) under the minimal health-information policy.",
                          "Preflight: all checks pass."]
    out = run("issues", "create", "--layout", "digest", "--post", garden_id, "--post", walking_id, "--post", text_id,
              "--subject", SUBJECT, "--preheader", PREHEADER)
    digest_id = out.splitlines()[0]
    assert "read-url-missing" in out and "take it out of the digest" in out
    assert "read-url-missing" in run("issues", "preflight", digest_id, code=1)
    run("posts", "edit", walking_id, "--url", WALKING_URL)
    assert "all checks pass" in run("issues", "preflight", digest_id)
    assert "only a digest" in run("issues", "create", "--post", text_id, "--post", garden_id, code=2)
    assert "layout must be one of" in run("issues", "create", "--post", text_id, "--layout", "poster", code=2)

    full_id = run("issues", "create", "--post", garden_id, "--subject", SUBJECT, "--preheader", PREHEADER).splitlines()[0]
    run("issues", "edit", full_id, "--layout", "teaser", "--hero", "none")
    shown = run("issues", "show", full_id, "--json")
    assert '"layout": "teaser"' in shown and '"hero": null' in shown
    assert "one of the post's images" in run("issues", "edit", full_id, "--hero", "https://x.example/a.png", code=2)
    run("issues", "edit", digest_id, "--post", text_id, "--post", garden_id)
    assert f'"posts": [\n    {text_id},\n    {garden_id}\n  ]' in run("issues", "show", digest_id, "--json")
    with db.session() as s:
        edits = s.scalars(select(AuditEntry).where(AuditEntry.action == "issue_edited")).all()
        assert {e.target for e in edits} == {f"issue {full_id}", f"issue {digest_id}"}


# The migration -----------------------------------------------------------------------------------------------


def _down_and_up(database: Database) -> None:
    upgrade(database.engine)
    command.downgrade(alembic_config(database.engine), "0021")
    assert "layout" not in {c["name"] for c in inspect(database.engine).get_columns("issues")}
    assert "issue_posts" not in inspect(database.engine).get_table_names()
    upgrade(database.engine)
    assert {"layout", "hero", "hero_alt"} <= {c["name"] for c in inspect(database.engine).get_columns("issues")}
    assert "issue_posts" in inspect(database.engine).get_table_names()


def test_the_migration_goes_down_and_up_on_sqlite(db: Database, settings: Settings, posts: dict[str, int]) -> None:
    issue_id = _make(db, settings, [posts["garden"]], "teaser")
    command.downgrade(alembic_config(db.engine), "0021")
    upgrade(db.engine)  # an issue made before layouts reads as the full layout
    with db.session() as s:
        assert s.get(Issue, issue_id).layout == "full"
    _down_and_up(db)


@pytest.mark.postgres
def test_the_migration_goes_down_and_up_on_postgres(postgres_db: Database, settings: Settings) -> None:
    _down_and_up(postgres_db)


@pytest.mark.postgres
def test_a_digest_on_postgres(postgres_db: Database, settings: Settings) -> None:
    ids = [_import(postgres_db, settings, GARDEN), _import(postgres_db, settings, SAMPLE_POST, CLINIC_URL),
           _import(postgres_db, settings, WALKING, WALKING_URL)]
    issue_id = _make(postgres_db, settings, ids, "digest")
    with postgres_db.session() as s:
        issue_service.edit_digest(s, settings, s.get(Issue, issue_id), "down", ids[0])
    with postgres_db.session() as s:
        assert [p.id for p in posts_of(s.get(Issue, issue_id))] == [ids[1], ids[0], ids[2]]
    assert _findings(postgres_db, settings, issue_id) == []
