"""Staff pages for posts (marketing and admin): the list, imports by URL, file or paste, a post's
page with its email view and its title and excerpt, and the feeds.

Routes only read forms and call services (``newsletter.posts.service``, ``newsletter.issues``,
``newsletter.compose.post_view``). A URL is fetched before any transaction opens, so a slow site never
holds the database; every import, edit and new feed is audited in the transaction that stores it.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import PurePath
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from newsletter import issues as issue_service
from newsletter.automations import status as automation_status
from newsletter.compose.post_view import post_email_html
from newsletter.errors import InputError, NotFound
from newsletter.models import Feed, Post
from newsletter.posts import service as post_service
from newsletter.posts.blocks import MAX_TITLE_CHARS
from newsletter.posts.limits import read_capped, size_text
from newsletter.posts.source import RawSource
from newsletter.staff import audit
from newsletter.staff.audit import AuditAction
from newsletter.staff.roles import Area
from newsletter.urls import url_id
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import page, redirect
from subscribers.db import utcnow

router = APIRouter()
POSTS = "/staff/posts"
IMPORT = POSTS + "/import"
FEEDS = POSTS + "/feeds"
marketing = Require(Area.POSTS)

FORMAT_OPTIONS = [("auto", "Tell from the content"), ("text", "Plain text"), ("markdown", "Markdown"),
                  ("html", "HTML")]
FORMATS = frozenset(value for value, _ in FORMAT_OPTIONS)
PASTED = "the pasted text"
# The email view is a document of its own in a sandboxed frame: no script, no form, nothing from
# another host (the page's images that live elsewhere show their alt text), framed only by us.
EMAIL_VIEW_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'none'; "
                  "frame-ancestors 'self'; base-uri 'none'; sandbox allow-popups allow-popups-to-escape-sandbox")


def _post_id(value: str) -> int:
    number = url_id(value)
    if number is None:
        raise HTTPException(404)
    return number


def _loaded_post(request: Request, value: str) -> tuple[Post, str | None]:
    """The post a path names (else the 404 page) and the name of the feed it came from, if any."""
    try:
        with request.app.state.db.session() as session:
            post = post_service.get_post(session, _post_id(value))
            return post, (post.feed.title or post.feed.url) if post.feed else None
    except NotFound:
        raise HTTPException(404) from None


# The list ------------------------------------------------------------------------------------------


@router.get(POSTS)
def posts_list(request: Request, page_number: str = Query("1", alias="page"),
               staff: Staff = Depends(marketing)) -> Response:
    number = int(page_number) if page_number.isdigit() and len(page_number) < 7 else 1
    with request.app.state.db.session() as session:
        listing = post_service.posts_page(session, number)
        rows = [(post, (post.feed.title or post.feed.url) if post.feed else None) for post in listing.posts]
    return page(request, staff, "staff/posts/list.html", listing=listing, rows=rows)


# Imports ---------------------------------------------------------------------------------------------


def _blank_values() -> dict[str, dict[str, str]]:
    return {"url": {"url": "", "title": "", "excerpt": ""},
            "file": {"format": "auto", "title": "", "excerpt": ""},
            "paste": {"text": "", "format": "auto", "title": "", "excerpt": ""}}


def _import_page(request: Request, staff: Staff, status: int = 200, form: str | None = None,
                 values: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> Response:
    all_values = _blank_values()
    if form and values is not None:
        all_values[form] = values
    return page(request, staff, "staff/posts/import.html", status, values=all_values, form=form,
                errors=errors or {}, format_options=FORMAT_OPTIONS,
                max_size=size_text(request.app.state.settings.max_post_bytes))


@router.get(IMPORT)
def import_page(request: Request, staff: Staff = Depends(marketing)) -> Response:
    return _import_page(request, staff)


def _own_words(title: str, excerpt: str, errors: dict[str, str]) -> tuple[str | None, str | None]:
    """Staff's optional title and excerpt, checked by the service's rule; an error beside its field."""
    given: list[str | None] = []
    for name, value, label, limit in (("title", title, "The title", MAX_TITLE_CHARS),
                                      ("excerpt", excerpt, "The excerpt", post_service.MAX_EXCERPT_CHARS)):
        try:
            given.append(post_service.given_text(value, label, limit) if value.strip() else None)
        except InputError as exc:
            errors[name] = f"{exc}."
            given.append(None)
    return given[0], given[1]


def _import(request: Request, staff: Staff, form: str, values: dict[str, str], source_field: str,
            how: str, obtain: Callable[[], RawSource], fmt: str = "auto") -> Response:
    """Check the form, obtain the source (a fetch, outside any transaction), then store and audit it."""
    errors: dict[str, str] = {}
    title, excerpt = _own_words(values["title"], values["excerpt"], errors)
    if fmt not in FORMATS:
        errors["format"] = "Choose a format from the list."
    raw = None
    if not errors:
        try:
            raw = obtain()
        except InputError as exc:
            errors[source_field] = str(exc)
    if raw is not None:
        try:
            with request.app.state.db.session() as session:
                result = post_service.import_post(session, raw, fmt, title=title, excerpt=excerpt)
                post = result.post
                if result.created:  # as `posts import` audits: content seen before imports nothing
                    audit.record(session, staff.user, AuditAction.POST_IMPORTED, target=f"post {post.id}",
                                 detail=f"by {how}")
        except InputError as exc:
            errors[source_field] = str(exc)
    if errors:
        return _import_page(request, staff, 400, form, values, errors)
    if result.created:
        message = f"Imported post {post.id}: {post.title}."
    else:
        message = f"This content was imported before, as post {post.id}: {post.title}. Nothing new was stored."
    message += "".join(f" Warning: {w}." for w in result.warnings)  # what the import removed
    return redirect(request, f"{POSTS}/{post.id}", message)


@router.post(IMPORT + "/url")
def import_url(request: Request, url: str = Form(""), title: str = Form(""), excerpt: str = Form(""),
               staff: Staff = Depends(marketing)) -> Response:
    values = {"url": url.strip(), "title": title, "excerpt": excerpt}
    if not values["url"]:
        return _import_page(request, staff, 400, "url", values, {"url": "Enter the address of the post's page."})
    settings = request.app.state.settings
    return _import(request, staff, "url", values, "url", "URL", lambda: post_service.read_url(values["url"], settings))


def _uploaded(upload: UploadFile, settings: Any) -> RawSource:
    # Read under the cap as it streams (a huge upload is never held whole), then the same checks as
    # any content handed over whole.
    name = PurePath(upload.filename or "the file").name or "the file"
    data = read_capped(upload.file.read, name, settings.max_post_bytes)
    return post_service.given_bytes(name, data, settings)


@router.post(IMPORT + "/file")
def import_file(request: Request, file: UploadFile | None = File(None), format: str = Form("auto"),
                title: str = Form(""), excerpt: str = Form(""), staff: Staff = Depends(marketing)) -> Response:
    values = {"format": format, "title": title, "excerpt": excerpt}
    if file is None or not file.filename:
        return _import_page(request, staff, 400, "file", values, {"file": "Choose a file to import."})
    settings = request.app.state.settings
    return _import(request, staff, "file", values, "file", "file upload", lambda: _uploaded(file, settings), format)


@router.post(IMPORT + "/paste")
def import_paste(request: Request, text: str = Form(""), format: str = Form("auto"), title: str = Form(""),
                 excerpt: str = Form(""), staff: Staff = Depends(marketing)) -> Response:
    values = {"text": text, "format": format, "title": title, "excerpt": excerpt}
    if not text.strip():
        return _import_page(request, staff, 400, "paste", values, {"text": "Paste the post's text here."})
    settings = request.app.state.settings
    return _import(request, staff, "paste", values, "text", "paste",
                   lambda: post_service.given_bytes(PASTED, text.encode("utf-8"), settings), format)


# Feeds -----------------------------------------------------------------------------------------------


def _feeds_page(request: Request, staff: Staff, status: int = 200, url: str = "",
                error: str | None = None) -> Response:
    with request.app.state.db.session() as session:
        feeds = automation_status.feed_states(session, utcnow())
        digests = automation_status.digest_states(session, utcnow())
        return page(request, staff, "staff/posts/feeds.html", status, feeds=feeds, digests=digests, url=url,
                    error=error)


@router.get(FEEDS)
def feeds_page(request: Request, staff: Staff = Depends(marketing)) -> Response:
    return _feeds_page(request, staff)


@router.post(FEEDS)
def add_feed(request: Request, url: str = Form(""), staff: Staff = Depends(marketing)) -> Response:
    url = url.strip()
    if not url:
        return _feeds_page(request, staff, 400, url, "Enter the feed's address.")

    def audited(session: Any, feed: Feed) -> None:
        audit.record(session, staff.user, AuditAction.FEED_ADDED, target=f"feed {feed.id}")

    try:
        result = post_service.add_feed_polled(request.app.state.db, request.app.state.settings, url, audited)
    except InputError as exc:
        return _feeds_page(request, staff, 400, url, str(exc))
    return redirect(request, FEEDS, f"Feed {result.feed.id} is followed: {_counted(result)}")


def _counted(result: post_service.PollResult) -> str:
    posts = len(result.new_posts)
    return f"{posts} new post{'' if posts == 1 else 's'} of {result.seen} entr{'y' if result.seen == 1 else 'ies'}."


@router.post(FEEDS + "/poll")
def poll_all(request: Request, staff: Staff = Depends(marketing)) -> Response:
    results = post_service.poll_all(request.app.state.db, request.app.state.settings)
    if not results:
        return redirect(request, FEEDS, "There are no feeds to poll yet.")
    failed = sum(1 for r in results if r.error)
    new = sum(len(r.new_posts) for r in results)
    message = (f"Polled {len(results)} feed{'' if len(results) == 1 else 's'}: {new} new "
               f"post{'' if new == 1 else 's'}.")
    if failed:
        message += f" {failed} could not be read: see the errors below."
    return redirect(request, FEEDS, message, error=bool(failed))


@router.post(FEEDS + "/{feed_id}/poll")
def poll_one(request: Request, feed_id: str, staff: Staff = Depends(marketing)) -> Response:
    number = url_id(feed_id)
    result = post_service.poll_one(request.app.state.db, request.app.state.settings, number) if number else None
    if result is None:
        raise HTTPException(404)
    if result.error:
        return redirect(request, FEEDS, f"Feed {result.feed.id} could not be read: {result.error}", error=True)
    return redirect(request, FEEDS, f"Feed {result.feed.id} polled: {_counted(result)}")


# One post ------------------------------------------------------------------------------------------


def _post_page(request: Request, staff: Staff, loaded: tuple[Post, str | None], status: int = 200,
               values: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> Response:
    post, feed_name = loaded
    shown = values or {"title": post.title, "excerpt": post.excerpt, "url": post.canonical_url or ""}
    return page(request, staff, "staff/posts/post.html", status, post=post, values=shown, errors=errors or {},
                feed_name=feed_name)


@router.get(POSTS + "/{post_id}")
def post_page(request: Request, post_id: str, staff: Staff = Depends(marketing)) -> Response:
    return _post_page(request, staff, _loaded_post(request, post_id))


@router.get(POSTS + "/{post_id}/email")
def post_email(request: Request, post_id: str, staff: Staff = Depends(marketing)) -> Response:
    post, _ = _loaded_post(request, post_id)
    try:
        html = post_email_html(post, request.app.state.settings)
    except InputError as exc:  # a template that does not compile: say so inside the frame
        html = f"<!doctype html><title>Not rendered</title><p>{escape(str(exc))}</p>"
    return HTMLResponse(html, headers={"Content-Security-Policy": EMAIL_VIEW_CSP})


@router.post(POSTS + "/{post_id}/edit")
def edit_post(request: Request, post_id: str, title: str = Form(""), excerpt: str = Form(""), url: str = Form(""),
              staff: Staff = Depends(marketing)) -> Response:
    loaded = _loaded_post(request, post_id)
    post = loaded[0]
    values = {"title": title, "excerpt": excerpt, "url": url}
    errors: dict[str, str] = {}
    if not title.strip():
        errors["title"] = "Give the post a title."
    else:
        _own_words(title, excerpt, errors)
    if url.strip():
        try:
            post_service.given_url(url, "The address")
        except InputError as exc:
            errors["url"] = str(exc)[:1].upper() + str(exc)[1:] + "."
    if not errors:
        try:
            with request.app.state.db.session() as session:
                what = "title and excerpt" if (url.strip() or None) == post.canonical_url else "title, excerpt and address"
                drafts = issue_service.edit_post(session, request.app.state.settings, post.id, title=title,
                                                 excerpt=excerpt, labels=("The title", "The excerpt"), url=url)
                audit.record(session, staff.user, AuditAction.POST_EDITED, target=f"post {post.id}",
                             detail=f"{what}; {len(drafts)} unsent issue(s) compiled again")
        except InputError as exc:
            errors["title"] = str(exc)
    if errors:
        return _post_page(request, staff, loaded, 400, values, errors)
    again = {0: "No unsent issue uses it.", 1: "1 unsent issue made from it was compiled again."}.get(
        len(drafts), f"{len(drafts)} unsent issues made from it were compiled again.")
    return redirect(request, f"{POSTS}/{post.id}", f"Post {post.id} saved. {again}")
