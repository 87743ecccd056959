"""The public archive's pages, its Atom feed and robots.txt (the rules are in ``newsletter.archive``).

The archive carries no token and is the same for everyone; whether search engines may index it is the
clinic's choice (``NEWSLETTER_ARCHIVE_INDEXABLE``), said in the X-Robots-Tag header and the robots meta
tag alike. Every other answer of the app is noindex (``security_headers``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from newsletter import archive
from newsletter.archive_feed import atom_feed
from newsletter.config import Settings
from newsletter.errors import NotFound
from newsletter.paging import Cursor
from newsletter.urls import ARCHIVE, ARCHIVE_FEED, archive_id, archive_path
from newsletter.web.pages import message, render

router = APIRouter()


def _robots(settings: Settings) -> dict[str, str]:
    return {"X-Robots-Tag": archive.robots(settings)}


def _missing(request: Request) -> HTMLResponse:
    return message(request, "This issue is not in the archive", "It may have been taken out of it, or the "
                   "link may be incomplete.", 404, link=(ARCHIVE, "See every issue in the archive"))


@router.get(ARCHIVE, response_class=HTMLResponse)
def archive_list(request: Request, after: str = "") -> HTMLResponse:
    settings: Settings = request.app.state.settings
    cursor = Cursor.parse(after) if after else None  # a mangled cursor shows the newest page
    with request.app.state.db.session() as session:
        found = archive.archive_page(session, cursor)
        items = [(archive_path(i.id, i.subject), i) for i in found.issues]
    response = render(request, "archive/list.html", items=items, next_cursor=found.next_cursor,
                      first_page=cursor is None, robots=archive.robots(settings), feed_path=ARCHIVE_FEED)
    response.headers.update(_robots(settings))
    return response


@router.get(ARCHIVE_FEED)
def archive_feed(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    with request.app.state.db.session() as session:
        body = atom_feed(session, settings)
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers=_robots(settings))


@router.get(ARCHIVE + "/{ref}", response_class=HTMLResponse)
def archive_issue(request: Request, ref: str) -> Response:
    settings: Settings = request.app.state.settings
    issue_id = archive_id(ref)
    if issue_id is None:
        return _missing(request)
    with request.app.state.db.session() as session:
        try:
            issue = archive.published_issue(session, issue_id)
        except NotFound:
            return _missing(request)
        canonical = archive_path(issue.id, issue.subject)
        if request.url.path != canonical:  # an old or shortened link: one address per issue
            return RedirectResponse(canonical, status_code=301)
        parts = archive.web_parts(archive.clean_copy(session, issue))
        subject, sent_at = issue.subject, issue.enqueued_at
    response = render(request, "archive/issue.html", subject=subject, sent_at=sent_at, parts=parts,
                      robots=archive.robots(settings), feed_path=ARCHIVE_FEED)
    response.headers.update(_robots(settings))
    return response


@router.get("/robots.txt", response_class=PlainTextResponse)
def robots_txt(request: Request) -> PlainTextResponse:
    return PlainTextResponse(archive.robots_txt(request.app.state.settings))
