"""/issues and /reports: the issues, an issue's results, the lead funnel and the follow-up list. The
figures are the reports' own (``newsletter.reports``), exactly as ``newsletter report … --json`` gives them."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from newsletter.api_tokens import Scope
from newsletter.urls import MAX_ID
from newsletter.issues import issues_page
from newsletter.paging import Cursor, seal, unseal
from newsletter.issues import get_issue
from newsletter.reports.by_language import issue_by_language
from newsletter.reports.email_stats import issue_report
from newsletter.versions import issue_language
from newsletter.reports.follow_up import DEFAULT_DAYS, follow_up_report
from newsletter.reports.funnel import funnel_report
from newsletter.sending.progress import issue_states
from newsletter.staff.models import ApiToken
from newsletter.web.api.guard import needs
from newsletter.web.api.problems import documented
from newsletter.web.api.schemas import FollowUpOut, FunnelReportOut, IssueOut, IssuePage, IssueResultsOut, Moment, Source
from subscribers.db import utcnow
from subscribers.leads import FieldError

router = APIRouter()
CursorQuery = Query(None, max_length=200, description="The `next` of the previous page, as it was given.")
LimitQuery = Query(50, ge=1, le=200, description="How many to give at most.")


def _position(kind: str, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    position = unseal(kind, cursor)
    if position is None:
        raise FieldError("cursor", "this cursor is not one this list gave: pass the `next` of the previous page "
                         "as it was, or leave it out for the first page")
    return position


@router.get("/issues", response_model=IssuePage, tags=["issues"], responses=documented(401, 403, 413, 422, 429),
            summary="List issues, newest first",
            description="Scope `issues:read`. Paged by cursor: pass `next` as `cursor` for the next page.")
def list_issues(request: Request, cursor: str | None = CursorQuery, limit: int = LimitQuery,
                token: ApiToken = Depends(needs(Scope.ISSUES_READ))) -> IssuePage:
    position = _position("issues", cursor)
    if position is not None and not position.isdigit():
        raise FieldError("cursor", "this cursor is not one this list gave")
    with request.app.state.db.session() as session:
        issues, more = issues_page(session, before=int(position) if position else None, limit=limit)
        states = issue_states(session, issues)
        return IssuePage(issues=[IssueOut(id=i.id, subject=i.subject, created_at=i.created_at,
                                          **states[i.id].as_dict()) for i in issues],
                         next=seal("issues", str(more)) if more is not None else None)


@router.get("/issues/{issue_id}/results", response_model=IssueResultsOut, tags=["reports"],
            responses=documented(401, 403, 404, 413, 422, 429),
            summary="An issue's results",
            description="Scope `reports:read`. Sent, delivered, bounced; opens and clicks by people (machine ones "
            "apart); unsubscribes, complaints, attributed bookings and the top links; and the same figures "
            "per language version. Computed live.")
def issue_results(request: Request, issue_id: int = Path(ge=1, le=MAX_ID),
                  token: ApiToken = Depends(needs(Scope.REPORTS_READ))) -> IssueResultsOut:
    with request.app.state.db.session() as session:
        report = issue_report(session, issue_id)
        own = issue_language(get_issue(session, issue_id), request.app.state.settings)
        languages = [row.as_dict() for row in issue_by_language(session, issue_id, own)]
        return IssueResultsOut(**report.as_dict(), by_language=languages)


@router.get("/reports/funnel", response_model=FunnelReportOut, tags=["reports"],
            responses=documented(401, 403, 413, 422, 429),
            summary="The lead funnel",
            description="Scope `reports:read`. Leads created in [since, until) → emailed → engaged → booked → "
            "attended, in all, by source, month and sequence, and the bookings credited to each email.")
def funnel(request: Request,
           since: Moment | None = Query(None, description="Leads created from (date-time with offset)."),
           until: Moment | None = Query(None, description="Leads created before (date-time with offset)."),
           source: Source | None = Query(None, description="Only leads of this source."),  # type: ignore[valid-type]
           token: ApiToken = Depends(needs(Scope.REPORTS_READ))) -> FunnelReportOut:
    with request.app.state.db.session() as session:
        return FunnelReportOut(**funnel_report(session, since=since, until=until, source=source).as_dict())


@router.get("/reports/follow-up", response_model=FollowUpOut, tags=["reports"],
            responses=documented(401, 403, 413, 422, 429),
            summary="The follow-up list: warm leads to call",
            description="Scope `reports:read`. Leads who have not booked and whom a person (never a machine) "
            "opened or clicked one of our emails for in the last `days`, most recent activity first, each "
            "with why. Holds names, addresses and phone numbers. Paged by cursor.")
def follow_up(request: Request, days: int = Query(DEFAULT_DAYS, ge=1, le=3650), cursor: str | None = CursorQuery,
              limit: int = LimitQuery, token: ApiToken = Depends(needs(Scope.REPORTS_READ))) -> FollowUpOut:
    position = _position("follow-up", cursor)
    after = Cursor.parse(position) if position is not None else None
    if position is not None and after is None:
        raise FieldError("cursor", "this cursor is not one this list gave")
    with request.app.state.db.session() as session:
        report = follow_up_report(session, now=utcnow(), days=days, limit=limit, after=after)
        data = report.as_dict()
    return FollowUpOut(**data, next=seal("follow-up", str(report.more)) if report.more else None)

