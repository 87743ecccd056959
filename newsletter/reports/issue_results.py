"""An issue's results as the staff Results page shows them: the report (``email_stats.issue_report``),
whether anonymous counts belong on it, and the batches held as unknown that wait to be settled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from newsletter.models import EmailVersion, Issue
from newsletter.reports.by_language import LanguageStats, issue_by_language
from newsletter.reports.email_stats import IssueReport, issue_report
from newsletter.sending import ledger
from newsletter.sending.progress import batch_record

ANONYMOUS = "anonymous"  # the tracking mode whose opens and clicks keep no person (compose.compile.TRACKING_MODES)


@dataclass(frozen=True)
class IssueResults:
    report: IssueReport
    tracking: str
    held: list[dict[str, Any]]  # ``progress.batch_record`` of each batch held as unknown, oldest first
    languages: list[LanguageStats] = field(default_factory=list)  # per language version (by_language)

    @property
    def split_by_language(self) -> bool:
        """Worth a table: more than one language version went out."""
        return len(self.languages) > 1

    @property
    def show_anonymous(self) -> bool:
        """Anonymous counts are shown when tracking was anonymous (or some were recorded anyway, e.g.
        before tracking was changed): otherwise they would only be a column of zeros."""
        stats = self.report.stats
        return self.tracking == ANONYMOUS or bool(stats.anonymous_opens or stats.anonymous_clicks)


def issue_results(session: Session, issue: Issue, *, default_language: str | None = None) -> IssueResults:
    """The page's figures; with ``default_language`` (the issue's own version's), also per language
    version when the issue has versions (one language: its totals are the page's own figures, and the
    split reads every delivery: 9 s for a million in bench/staff_pages.py)."""
    versioned = default_language and session.scalar(select(exists().where(EmailVersion.issue_id == issue.id)))
    languages = issue_by_language(session, issue.id, default_language) if versioned else []
    return IssueResults(issue_report(session, issue.id), issue.tracking,
                        [batch_record(held) for held in ledger.unknown_batches(session, issue.id)], languages)
