"""The newsletter command end to end, as marketing staff use it."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from tests.conftest import SAMPLE_POST, SEED_POST_VARIABLE, outside_file
from tests.webserver import Site

runner = CliRunner()


def run(*args: str, input: str | bytes | None = None, code: int = 0) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, result.output
    return result.output


def newsletter_bin() -> str:
    return str(Path(sys.executable).parent / "newsletter")


def test_demo_as_a_newcomer_runs_it(tmp_path: Path, settings: Settings) -> None:
    """The console script itself, in a fresh folder with no configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    first = subprocess.run([newsletter_bin(), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "Imported the sample post as post 1: Small Steps for Steadier Days" in first.stdout
    assert "Preflight: all checks pass" in first.stdout
    html = tmp_path / "var" / "demo" / "issue.html"
    assert str(html) in first.stdout
    assert (tmp_path / "var" / "newsletter.db").exists()
    message = email.message_from_bytes((tmp_path / "var/demo/issue.eml").read_bytes(), policy=policy.default)
    assert message["Subject"] == "Small steps for steadier days"
    again = subprocess.run([newsletter_bin(), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Built issue 1 " in again.stdout  # reuses, never duplicates


def test_init_is_safe_to_run_twice(settings: Settings) -> None:
    assert "upgraded from empty to revision" in run("init")
    assert "is up to date" in run("init")


# What a post in the blog's shape must keep: title, headings, the quote, the references.
SHAPES = {
    "project sample": dict(
        title="Ketamine Therapy and a Good Night\u2019s Sleep",
        headings=["Why Sleep Matters", "What Treatment Can Change", "A Plan That Fits Your Week"],
        quote="Participants who kept a fixed wake time", third_reference="Tan, Wei.", minutes=1,
    ),
    "clinic seed post": dict(
        title="The Benefits of Ketamine and Exercise",
        headings=[
            "Mental Health Benefits of Exercise",
            "Mental Health Benefits of Ketamine",
            "How Ketamine Works In the Brain",
            "Ketamine and Exercise: A Powerful Combination",
            "A Whole-Body Approach to Depression Management",
        ],
        quote="These [studies] have shown", third_reference="Makin, Simon.", minutes=3,
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_blog_post_imports_with_title_headings_quote_and_references(settings: Settings, shape: str) -> None:
    path = SAMPLE_POST if shape == "project sample" else outside_file(SEED_POST_VARIABLE)
    expected = SHAPES[shape]
    post = json.loads(run("posts", "import", str(path), "--json"))
    assert post["title"] == expected["title"]
    headings = [b["html"] for b in post["blocks"] if b["type"] == "heading"]
    assert headings == expected["headings"]
    quotes = [b for b in post["blocks"] if b["type"] == "quote"]
    assert len(quotes) == 1 and quotes[0]["html"].startswith(expected["quote"])
    references = [b for b in post["blocks"] if b["type"] == "references"]
    assert len(references) == 1 and len(references[0]["items"]) == 3
    assert references[0]["items"][2].startswith(expected["third_reference"])
    assert post["created"] is True and post["reading_minutes"] >= expected["minutes"]


def test_a_page_copied_without_its_title_takes_one_from_the_command_line(settings: Settings, tmp_path: Path) -> None:
    page = tmp_path / "untitled.txt"
    body = ("Walking every morning for twenty minutes changed how I sleep, and this first paragraph runs "
            "on long enough that nobody would take it for a title: it talks about the park, the light, "
            "the birds and the way the day feels afterwards, which is why it is worth sharing.")
    page.write_text(f"Post category\n\nPublish date\n\n{body}\n\nWhy it works\n\nLight sets the body clock.1\n\n\n"
                    "1. Okafor, Grace. \u201cLight.\u201d Sleep Review, 2020\n", encoding="utf-8")
    refused = runner.invoke(app, ["posts", "import", str(page)])
    assert refused.exit_code == 2
    assert "untitled.txt: no title found" in refused.stderr and "give it with --title" in refused.stderr
    assert json.loads(run("posts", "list", "--json")) == []

    post = json.loads(run("posts", "import", str(page), "--title", "  Morning   walks ",
                          "--excerpt", "Why a morning walk helps you sleep", "--json"))
    assert post["title"] == "Morning walks" and post["excerpt"] == "Why a morning walk helps you sleep"
    assert [b["type"] for b in post["blocks"]] == ["paragraph", "heading", "paragraph", "references"]
    assert post["blocks"][0]["html"] == body and "clock.<sup>1</sup>" in post["blocks"][2]["html"]

    # A title given for a page that prints it anyway (under its site name): neither is kept as text.
    titled = json.loads(run("posts", "import", str(SAMPLE_POST), "--title", "ketamine therapy and a good night\u2019s  sleep", "--json"))
    assert titled["title"] == "ketamine therapy and a good night\u2019s sleep"
    assert titled["blocks"][0]["html"].startswith("\u201cSleep on it\u201d")
    markdown = json.loads(run("posts", "import", "-", "--format", "markdown", "--title", "Given",
                              "--json", input="# Given\n\nText under it.\n"))
    assert markdown["title"] == "Given" and [b["html"] for b in markdown["blocks"]] == ["Text under it."]


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--title", "   ", "--title is empty"),
    ("--title", "x" * 501, "--title is 501 characters; at most 500 fit"),
    ("--excerpt", "line\x07bell", "--excerpt holds a control character"),
])
def test_a_bad_title_or_excerpt_is_refused_clearly(settings: Settings, option: str, value: str, message: str) -> None:
    result = runner.invoke(app, ["posts", "import", str(SAMPLE_POST), option, value])
    assert result.exit_code == 2 and message in result.stderr
    assert json.loads(run("posts", "list", "--json")) == []


def test_importing_the_same_content_twice_gives_the_same_post(settings: Settings) -> None:
    first = run("posts", "import", str(SAMPLE_POST)).strip()
    second = runner.invoke(app, ["posts", "import", str(SAMPLE_POST)])
    assert second.exit_code == 0 and second.stdout.strip() == first
    assert "already imported as post" in second.stderr
    assert len(json.loads(run("posts", "list", "--json"))) == 1


def test_import_from_stdin_with_markdown(settings: Settings) -> None:
    markdown = "---\ntitle: Sleep, simply\nauthor: Clinic team\ntags: [sleep, habits]\n---\n\nA first paragraph.\n\n## Why it matters\n\nMore text.\n"
    post_id = run("posts", "import", "-", "--format", "markdown", input=markdown).strip()
    shown = json.loads(run("posts", "show", post_id, "--json"))
    assert shown["title"] == "Sleep, simply" and shown["author"] == "Clinic team"
    assert shown["tags"] == ["sleep", "habits"] and shown["source_format"] == "markdown"


def test_import_from_a_url_extracts_the_article(loopback_allowed: Settings, site: Site) -> None:
    url = site.add(
        "/blog/walk",
        "<html><head><title>Walk more | Clinic</title></head><body><nav>Home About</nav>"
        "<article><h1>Walk more</h1><p>Walking helps.</p><script>alert(1)</script></article>"
        "<footer>© Clinic</footer></body></html>",
    )
    post = json.loads(run("posts", "import", url, "--json"))
    assert post["title"] == "Walk more" and post["source_url"] == url
    assert [b["html"] for b in post["blocks"]] == ["Walking helps."]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
    ],
)
def test_bad_files_get_a_clear_error_and_store_nothing(settings: Settings, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    result = runner.invoke(app, ["posts", "import", str(path)])
    assert result.exit_code == 2
    assert "bad.txt" in result.stderr and message in result.stderr
    assert json.loads(run("posts", "list", "--json")) == []


def test_a_huge_file_is_refused(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.txt"
    path.write_text("Title\n\n" + ("A sentence that goes on. " * 250_000), encoding="utf-8")
    result = runner.invoke(app, ["posts", "import", str(path)])
    assert result.exit_code == 2 and "the limit is 5.0 MB" in result.stderr


def test_unknown_ids_and_files_say_what_is_missing(settings: Settings, tmp_path: Path) -> None:
    assert "there is no post 42" in runner.invoke(app, ["posts", "show", "42"]).stderr
    assert "there is no issue 7" in runner.invoke(app, ["issues", "show", "7"]).stderr
    missing = runner.invoke(app, ["posts", "import", str(tmp_path / "nope.txt")])
    assert missing.exit_code == 2 and "nope.txt" in missing.stderr


def test_issue_create_preview_and_preflight(settings: Settings, tmp_path: Path) -> None:
    post_id = run("posts", "import", str(SAMPLE_POST)).strip()
    created = run("issues", "create", "--post", post_id)
    issue_id = created.splitlines()[0]
    # The title names a treatment: the subject left out is a neutral suggestion, not the title.
    assert "health-words-in-subject" not in created
    assert json.loads(run("issues", "show", issue_id, "--json"))["subject"] == "The Limbic Letter: new article"
    calm = run("issues", "create", "--post", post_id, "--subject", "Moving more, feeling better",
               "--preheader", "Why a daily walk pairs well with your care plan").splitlines()[0]
    assert "all checks pass" in run("issues", "preflight", calm)
    out_dir = tmp_path / "preview"
    printed = run("issues", "preview", calm, "--out", str(out_dir))
    for name in ("issue.html", "issue.txt", "issue.eml"):
        assert str(out_dir / name) in printed and (out_dir / name).stat().st_size > 0
    message = email.message_from_bytes((out_dir / "issue.eml").read_bytes(), policy=policy.default)
    assert message["Subject"] == "Moving more, feeling better"
    assert message["To"] == "Alex Sample <alex.sample@example.com>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = (out_dir / "issue.txt").read_text(encoding="utf-8")
    assert "Hi Alex," in text and "[3] Tan, Wei." in text
    listed = json.loads(run("issues", "list", "--json"))
    assert [i["id"] for i in listed] == [int(calm), int(issue_id)]
    shown = json.loads(run("issues", "show", calm, "--json"))
    assert shown["status"] == "draft" and shown["preflight"] == [] and shown["html_bytes"] < 102_000


def test_issues_send_in_the_foreground_mails_each_subscriber_once(settings: Settings) -> None:
    post_id = run("posts", "import", str(SAMPLE_POST)).strip()
    issue_id = run("issues", "create", "--post", post_id, "--subject", "Moving more, feeling better",
                   "--preheader", "Why a daily walk pairs well with your care plan").splitlines()[0]
    for n in range(25):
        run("contacts", "add", f"reader{n}@example.org", "--name", f"Reader {n}", "--confirmed",
            "--consent-note", "asked at the front desk")
    run("contacts", "suppress", "reader3@example.org")
    printed = run("issues", "send", issue_id)
    assert "24 recipient(s) enqueued" in printed and "submitted 24, failed 0, unknown 0" in printed
    sent = [email.message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted(settings.outbox_dir.glob("*.eml"))]
    to = [m["To"].addresses[0].addr_spec for m in sent if m["Subject"] == "Moving more, feeling better"]
    assert len(to) == len(set(to)) == 24 and "reader3@example.org" not in to
    status = json.loads(run("issues", "status", issue_id, "--json"))
    assert status["status"] == "sent" and status["deliveries"]["submitted"] == sum(status["deliveries"].values()) == 24
    again = runner.invoke(app, ["issues", "send", issue_id])  # a second send is refused, not repeated
    assert again.exit_code == 2 and f"issue {issue_id} is sent" in again.stderr
    assert len(list(settings.outbox_dir.glob("*.eml"))) == len(sent)


def test_preflight_exit_code_blocks_on_errors(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    post_id = run("posts", "import", str(SAMPLE_POST)).strip()
    issue_id = run("issues", "create", "--post", post_id, "--subject", "Hello").splitlines()[0]
    monkeypatch.setenv("NEWSLETTER_POSTAL_ADDRESS", "")
    from newsletter.config import get_settings

    get_settings.cache_clear()
    result = runner.invoke(app, ["issues", "preflight", issue_id])
    assert result.exit_code == 1 and "postal-address-missing" in result.output


def test_feeds_add_and_poll_import_only_new_entries(loopback_allowed: Settings, site: Site) -> None:
    def rss(items: list[tuple[str, str]]) -> str:
        body = "".join(
            f"<item><guid>{guid}</guid><title>{title}</title><link>https://clinic.example/{guid}</link>"
            f"<description>&lt;p&gt;{title} body text.&lt;/p&gt;</description></item>"
            for guid, title in items
        )
        return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Clinic blog</title>{body}</channel></rss>'

    url = site.add("/feed.xml", rss([("a", "First post"), ("b", "Second post")]), "application/rss+xml")
    assert "2 new post(s) of 2 entries" in run("feeds", "add", url)
    site.add("/feed.xml", rss([("a", "First post"), ("b", "Second post"), ("c", "Third post")]), "application/rss+xml")
    polled = run("feeds", "poll")
    assert "1 new post(s) of 3 entries" in polled and "Third post" in polled
    assert "0 new post(s) of 3 entries" in run("feeds", "poll")
    assert len(json.loads(run("posts", "list", "--json"))) == 3


def test_a_feed_with_no_entries_and_a_broken_feed(loopback_allowed: Settings, site: Site) -> None:
    empty = site.add("/empty.xml", '<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title></channel></rss>', "application/rss+xml")
    assert "0 new post(s) of 0 entries" in run("feeds", "add", empty)
    broken = site.add("/broken.xml", "this is not a feed at all", "text/plain")
    result = runner.invoke(app, ["feeds", "add", broken])
    assert result.exit_code == 2 and "not an RSS or Atom feed" in result.stderr and "not added" in result.stderr
    assert [f["url"] for f in json.loads(run("feeds", "list", "--json"))] == [empty]
    # A known feed that breaks later is kept, with the error recorded for staff to see.
    site.add("/empty.xml", "<html>maintenance</html>", "text/html")
    assert "not an RSS or Atom feed" in runner.invoke(app, ["feeds", "poll"]).stderr
    (feed,) = json.loads(run("feeds", "list", "--json"))
    assert "not an RSS or Atom feed" in feed["last_error"] and feed["last_polled_at"]
