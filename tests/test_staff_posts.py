"""The staff posts pages over HTTP against the real app on uvicorn: roles, sign-in, CSRF, each import
(URL, file, paste) with its errors beside the field, the same content twice, a post's page and its
email view, editing, and feeds with their errors; each import, edit and new feed audited once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from newsletter import issues as issue_service
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Feed, Post
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from tests.liveserver import LiveServer, serving
from tests.staffkit import client, csrf_of, Login, make_user, post_form, sign_in, signed_in
from tests.test_staff_posts_services import RSS
from tests.webserver import Site

DEMO = Path(__file__).resolve().parents[1] / "newsletter" / "samples" / "demo-post.txt"
DEMO_TITLE = "Small Steps for Steadier Days"
IMPORT = "/staff/posts/import"



@pytest.fixture
def marketing(db: Database) -> Login:
    return make_user(db, "mia@clinic.example", Role.MARKETING)


@pytest.fixture
def http(live_server: LiveServer, marketing: Login) -> Iterator[httpx.Client]:
    with signed_in(live_server, marketing) as c:
        yield c


def audits(db: Database, action: str) -> list[tuple[str | None, str | None, str]]:
    with db.session() as s:
        rows = s.execute(select(AuditEntry.target, AuditEntry.detail, AuditEntry.actor)
                         .where(AuditEntry.action == action).order_by(AuditEntry.id)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def post_count(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Post)) or 0


def error_of(html: str, field_id: str) -> str:
    """The error shown beside ``field_id``, after checking the field points at it and is marked invalid."""
    tag = re.search(rf'<(?:input|textarea|select)[^>]*\bid="{field_id}"[^>]*>', html, re.S)
    assert tag, f"no field #{field_id}"
    assert 'aria-invalid="true"' in tag.group(0) and f"{field_id}-error" in tag.group(0), tag.group(0)
    found = re.search(rf'<p class="error" id="{field_id}-error">(.*?)</p>', html, re.S)
    assert found, f"no error beside #{field_id}"
    return found.group(1)


def upload(c: httpx.Client, content: bytes, name: str = "demo-post.txt", **data: str) -> httpx.Response:
    token = csrf_of(c.get(IMPORT).text)
    return c.post(IMPORT + "/file", data={"csrf_token": token, "format": "auto", **data},
                  files={"file": (name, content, "text/plain")})


# Access ---------------------------------------------------------------------------------------------

PAGES = ["/staff/posts", IMPORT, "/staff/posts/feeds", "/staff/posts/1", "/staff/posts/1/email"]
FORMS = [IMPORT + "/url", IMPORT + "/file", IMPORT + "/paste", "/staff/posts/1/edit", "/staff/posts/feeds",
         "/staff/posts/feeds/poll", "/staff/posts/feeds/1/poll"]


def test_anonymous_visitors_are_sent_to_sign_in(live_server: LiveServer) -> None:
    with client(live_server) as c:
        for path in PAGES:
            answer = c.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/staff/sign-in?next=/staff/posts")
        for path in FORMS:
            answer = c.post(path, data={"csrf_token": "x", "text": "# T\n\nBody."})
            assert answer.status_code == 303 and answer.headers["location"] == "/staff/sign-in", path
    assert post_count(live_server.db) == 0


def test_clinic_staff_get_403_and_admins_get_in(live_server: LiveServer) -> None:
    clinic = make_user(live_server.db, "cleo@clinic.example", Role.CLINIC)
    admin = make_user(live_server.db, "ada@clinic.example", Role.ADMIN)
    with signed_in(live_server, clinic) as c:
        token = csrf_of(c.get("/staff/account").text)
        assert 'href="/staff/posts"' not in c.get("/staff/").text
        for path in PAGES:
            assert c.get(path).status_code == 403, path
        for path in FORMS:
            answer = c.post(path, data={"csrf_token": token, "text": "# T\n\nBody."})
            assert answer.status_code == 403 and "not for your role" in answer.text, path
    assert post_count(live_server.db) == 0
    with signed_in(live_server, admin) as c:
        assert 'href="/staff/posts"' in c.get("/staff/").text
        assert c.get("/staff/posts").status_code == 200


def test_a_form_without_its_csrf_token_is_refused(live_server: LiveServer, http: httpx.Client) -> None:
    http.get(IMPORT)
    for data in ({}, {"csrf_token": "forged"}):
        answer = http.post(IMPORT + "/paste", data={**data, "text": DEMO.read_text()})
        assert answer.status_code == 403 and "This form was not accepted" in answer.text
        answer = http.post(IMPORT + "/file", data=data, files={"file": ("demo-post.txt", DEMO.read_bytes())})
        assert answer.status_code == 403
        assert http.post("/staff/posts/feeds", data={**data, "url": "https://blog.example/feed"}).status_code == 403
    assert post_count(live_server.db) == 0 and audits(live_server.db, "post_imported") == []


# Imports --------------------------------------------------------------------------------------------


def test_paste_imports_once_and_the_same_content_goes_to_the_post_made_before(live_server: LiveServer,
                                                                              http: httpx.Client) -> None:
    answer = post_form(http, IMPORT, IMPORT + "/paste", {"text": DEMO.read_text(), "format": "text"})
    assert answer.status_code == 303
    post_path = answer.headers["location"]
    post_id = int(post_path.rsplit("/", 1)[1])
    shown = http.get(post_path).text
    assert f"Imported post {post_id}: {DEMO_TITLE}." in shown and f"<h1>{DEMO_TITLE}</h1>" in shown
    again = post_form(http, IMPORT, IMPORT + "/paste", {"text": DEMO.read_text(), "format": "auto"})
    assert again.headers["location"] == post_path
    assert "This content was imported before, as post" in http.get(post_path).text
    assert post_count(live_server.db) == 1
    # One entry: the second time stored nothing (as `posts import` audits it).
    assert audits(live_server.db, "post_imported") == [(f"post {post_id}", "by paste", "mia@clinic.example")]
    listing = http.get("/staff/posts").text
    assert f'href="/staff/posts/{post_id}"' in listing and "file or pasted text" in listing and " min<" in listing


def test_paste_errors_are_beside_their_fields_with_what_was_typed(live_server: LiveServer, http: httpx.Client) -> None:
    empty = post_form(http, IMPORT, IMPORT + "/paste", {"text": "  \n ", "title": "My own title", "format": "html"})
    assert empty.status_code == 400
    assert error_of(empty.text, "text") == "Paste the post&#39;s text here."
    assert 'value="My own title"' in empty.text and '<option value="html" selected>' in empty.text
    bad_format = post_form(http, IMPORT, IMPORT + "/paste", {"text": "Some words.", "format": "pdf"})
    assert bad_format.status_code == 400 and error_of(bad_format.text, "paste-format") == "Choose a format from the list."
    assert ">Some words.</textarea>" in bad_format.text
    long_title = post_form(http, IMPORT, IMPORT + "/paste", {"text": "Some words.", "title": "T" * 501})
    assert long_title.status_code == 400
    assert error_of(long_title.text, "paste-title") == "The title is 501 characters; at most 500 fit."
    no_title = post_form(http, IMPORT, IMPORT + "/paste", {"text": "Just one paragraph of words, no title line.",
                                                           "format": "text"})
    assert no_title.status_code == 400 and "the pasted text" in error_of(no_title.text, "text")
    assert post_count(live_server.db) == 0 and audits(live_server.db, "post_imported") == []


def test_upload_imports_a_file_and_refuses_one_too_large(settings: Settings, db: Database) -> None:
    small = settings.model_copy(update={"max_post_bytes": 1000})
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    with serving(small, db) as server, client(server) as c:
        sign_in(c, login)
        too_big = upload(c, DEMO.read_bytes(), title="Kept title", excerpt="Kept excerpt")
        assert too_big.status_code == 400
        assert error_of(too_big.text, "file") == "demo-post.txt: is larger than the 1.0 kB limit"
        assert 'value="Kept title"' in too_big.text and 'value="Kept excerpt"' in too_big.text
        none_chosen = post_form(c, IMPORT, IMPORT + "/file", {"title": "x"})
        assert none_chosen.status_code == 400 and error_of(none_chosen.text, "file") == "Choose a file to import."
        binary = upload(c, b"\x00\x01\x02 not text", name="photo.txt")
        assert binary.status_code == 400 and "photo.txt: looks like a binary file" in error_of(binary.text, "file")
        assert post_count(db) == 0
    with serving(settings, db) as server, client(server) as c:
        sign_in(c, login)
        done = upload(c, DEMO.read_bytes(), name="../../etc/demo-post.txt", excerpt="Our own excerpt.")
        assert done.status_code == 303
        post_id = int(done.headers["location"].rsplit("/", 1)[1])
        with db.session() as s:
            post = s.get(Post, post_id)
            assert post.title == DEMO_TITLE and post.excerpt == "Our own excerpt." and post.source_format == "text"
    assert audits(db, "post_imported") == [(f"post {post_id}", "by file upload", "mia@clinic.example")]


def test_bad_urls_are_refused_beside_the_field_and_nothing_is_read(live_server: LiveServer, http: httpx.Client) -> None:
    for typed, said in [("", "Enter the address of the post&#39;s page."),
                        (str(DEMO), "URL must start with http:// or https://"),
                        ("ftp://blog.example/post", "URL must start with http:// or https://"),
                        ("http://127.0.0.1:9/post", "127.0.0.1")]:
        answer = post_form(http, IMPORT, IMPORT + "/url", {"url": typed, "title": "Typed title"})
        assert answer.status_code == 400, typed
        message = error_of(answer.text, "url")
        assert said in message and "\n" not in message.strip(), message
        assert f'value="{typed}"' in answer.text and 'value="Typed title"' in answer.text
    assert post_count(live_server.db) == 0


def test_a_url_on_an_allowed_host_is_imported(loopback_allowed: Settings, db: Database, site: Site) -> None:
    url = site.add("/blog/small-steps.txt", DEMO.read_bytes(), "text/plain; charset=utf-8")
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    with serving(loopback_allowed, db) as server, client(server) as c:
        sign_in(c, login)
        answer = post_form(c, IMPORT, IMPORT + "/url", {"url": url})
        assert answer.status_code == 303
        page = c.get(answer.headers["location"]).text
        assert DEMO_TITLE in page and url in page
        missing = post_form(c, IMPORT, IMPORT + "/url", {"url": site.base_url + "/nothing-here"})
        assert missing.status_code == 400 and "404" in error_of(missing.text, "url")
    assert post_count(db) == 1 and [a[1] for a in audits(db, "post_imported")] == ["by URL"]


# A post's page ------------------------------------------------------------------------------------------


def _paste_demo(c: httpx.Client) -> int:
    answer = post_form(c, IMPORT, IMPORT + "/paste", {"text": DEMO.read_text()})
    assert answer.status_code == 303
    return int(answer.headers["location"].rsplit("/", 1)[1])


def test_a_posts_page_frames_its_email_view_without_scripts(live_server: LiveServer, http: httpx.Client) -> None:
    post_id = _paste_demo(http)
    page = http.get(f"/staff/posts/{post_id}").text
    frame = re.search(r"<iframe[^>]*>", page, re.S).group(0)  # type: ignore[union-attr]
    assert f'src="/staff/posts/{post_id}/email"' in frame and 'sandbox="' in frame and "allow-scripts" not in frame
    assert 'title="The post as an email"' in frame
    assert f'href="/staff/issues/new?post={post_id}"' in page and "Make an issue from this post" in page
    email = http.get(f"/staff/posts/{post_id}/email")
    assert email.status_code == 200 and DEMO_TITLE in email.text
    csp = email.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "sandbox" in csp
    assert "frame-ancestors 'self'" in csp
    assert "%%" not in email.text and "<script" not in email.text.lower()
    for missing in ("999", "abc", "0", "1e3"):
        assert http.get(f"/staff/posts/{missing}").status_code == 404
        assert http.get(f"/staff/posts/{missing}/email").status_code == 404
    assert http.get("/staff/posts?page=zzz").status_code == 200


def test_editing_checks_each_field_and_says_how_many_issues_were_compiled_again(live_server: LiveServer,
                                                                               http: httpx.Client) -> None:
    post_id = _paste_demo(http)
    page = f"/staff/posts/{post_id}"
    blank = post_form(http, page, page + "/edit", {"title": "  ", "excerpt": "Typed excerpt"})
    assert blank.status_code == 400 and error_of(blank.text, "title") == "Give the post a title."
    assert ">Typed excerpt</textarea>" in blank.text
    long_excerpt = post_form(http, page, page + "/edit", {"title": "Fine", "excerpt": "x" * 501})
    assert long_excerpt.status_code == 400
    assert error_of(long_excerpt.text, "excerpt") == "The excerpt is 501 characters; at most 500 fit."
    assert 'value="Fine"' in long_excerpt.text
    control = post_form(http, page, page + "/edit", {"title": "Bad\x07title"})
    assert control.status_code == 400 and "control character" in error_of(control.text, "title")
    assert audits(live_server.db, "post_edited") == []
    with live_server.db.session() as s:
        issue_service.create_issue(s, live_server.settings, post_id)
    saved = post_form(http, page, page + "/edit", {"title": "Steadier days, small steps", "excerpt": "New words."})
    assert saved.status_code == 303 and saved.headers["location"] == page
    shown = http.get(page).text
    assert f"Post {post_id} saved. 1 unsent issue made from it was compiled again." in shown
    assert "<h1>Steadier days, small steps</h1>" in shown
    with live_server.db.session() as s:
        issue = issue_service.list_issues(s)[0]
        assert "Steadier days, small steps" in issue.html
    assert audits(live_server.db, "post_edited") == [
        (f"post {post_id}", "title and excerpt; 1 unsent issue(s) compiled again", "mia@clinic.example")]
    assert post_form(http, "/staff/posts", "/staff/posts/999/edit", {"title": "x"}).status_code == 404


# Feeds ------------------------------------------------------------------------------------------------


def test_feeds_are_added_polled_and_their_errors_shown(loopback_allowed: Settings, db: Database, site: Site) -> None:
    login = make_user(db, "mia@clinic.example", Role.MARKETING)
    feed_url = site.add("/feed.xml", RSS, "application/rss+xml")
    with serving(loopback_allowed, db) as server, client(server) as c:
        sign_in(c, login)
        assert "No feeds yet" in c.get("/staff/posts/feeds").text
        for typed, said in [("", "Enter the feed&#39;s address."), ("/etc/passwd", "feed URL must start with http"),
                            (site.add("/page.html", "<html><body><p>A page.</p></body></html>"),
                             "not an RSS or Atom feed")]:
            answer = post_form(c, "/staff/posts/feeds", "/staff/posts/feeds", {"url": typed})
            assert answer.status_code == 400 and said in error_of(answer.text, "url"), typed
            assert f'value="{typed}"' in answer.text
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Feed)) == 0
        added = post_form(c, "/staff/posts/feeds", "/staff/posts/feeds", {"url": feed_url})
        assert added.status_code == 303
        page = c.get("/staff/posts/feeds").text
        assert "is followed: 2 new posts of 2 entries." in page and "Harbor Clinic Blog" in page
        with db.session() as s:
            feed_id = s.scalar(select(Feed.id))
        assert audits(db, "feed_added") == [(f"feed {feed_id}", None, "mia@clinic.example")]
        assert "Feed: Harbor Clinic Blog" in c.get("/staff/posts").text
        site.add("/feed.xml", "gone", "text/plain", status=404)
        polled = post_form(c, "/staff/posts/feeds", f"/staff/posts/feeds/{feed_id}/poll")
        assert polled.status_code == 303
        page = c.get("/staff/posts/feeds").text
        assert f"Feed {feed_id} could not be read:" in page
        shown = re.search(r'<p class="feed-error"><strong>Error:</strong> (.*?)</p>', page, re.S)
        assert shown and "404" in shown.group(1)
        everything = post_form(c, "/staff/posts/feeds", "/staff/posts/feeds/poll")
        assert everything.status_code == 303
        assert "Polled 1 feed: 0 new posts. 1 could not be read" in c.get("/staff/posts/feeds").text
        site.add("/feed.xml", RSS, "application/rss+xml")
        post_form(c, "/staff/posts/feeds", f"/staff/posts/feeds/{feed_id}/poll")
        page = c.get("/staff/posts/feeds").text
        assert f"Feed {feed_id} polled: 0 new posts of 2 entries." in page and "<strong>Error:</strong>" not in page
        assert post_form(c, "/staff/posts/feeds", "/staff/posts/feeds/999/poll").status_code == 404
    assert audits(db, "feed_added") == [(f"feed {feed_id}", None, "mia@clinic.example")]
