"""Server time per staff page at 100,000 contacts and 1,000,000 deliveries (median and p95), next to a
floor measured in the same run.

Fills a fresh database with ``bench.staff_data.fill`` (SQLite in a temp folder; PostgreSQL in a schema
of its own with --postgres), signs an admin in, then GETs every staff page --repeat times through the
real ASGI app in this process (Starlette's TestClient: no network, so the time is the server's:
routing, the queries, the template). The history ends at the current minute. Pages with an id in
their path are asked for with the newest issue or post, the newest lead's contact, the saved
segment, or the consultation follow-up sequence (every lead enrolled, with its step deliveries) and
its first step. The newest issue is asked for (a scheduled one in this data) and the newest sent
one's overview and results. The floor is ``/healthz``, the cheapest answer the app gives. Nothing
here is a test: timings depend on the machine; the target is every page under 300 ms.

    .venv/bin/python bench/staff_pages.py [--repeat 20] [--postgres URL] [--skip-sqlite] [--sqlite-path FILE --reuse]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.common import postgres_database
from bench.staff_data import Size, fill
from bench.summary import Row, add_summary_argument, slowest, write_summary
from newsletter import api_tokens
from newsletter.config import Settings
from newsletter.database import Database, upgrade
from newsletter.automations import configure as automation_setup
from newsletter import issues as issue_service
from newsletter.models import EmailVersion, Feed, Issue, Post, Sequence, SequenceStep
from newsletter.posts.blocks import Block, ParsedPost
from newsletter.posts import service as post_service
from newsletter.outgoing_webhooks import endpoints as webhook_endpoints
from newsletter.outgoing_webhooks.models import WebhookEndpoint
from newsletter.staff.models import ApiToken
from subscribers import segments
from subscribers.models import Lead, MailingList, Segment
from subscribers.states import IssueStatus
from newsletter.staff.models import StaffUser
from newsletter.staff.roles import Role
from newsletter.staff.users import add_user
from newsletter.web.app import create_app
from newsletter.web.staff.routes import staff_routes

PASSWORD = "bench-password-long-enough-1"
SKIP = re.compile(r"sign-in|sign-out|\.json$|/static/|\{job_id\}")  # forms' targets and machine endpoints, not
# pages; an import job's pages exist only after an upload (tests/test_staff_contact_imports.py)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def pages(app, db: Database) -> list[str]:  # noqa: ANN001
    with db.session() as s:
        if not s.scalar(select(func.count()).select_from(Segment)):  # a typical one: a list and a tag
            lists = s.scalars(select(MailingList.slug).order_by(MailingList.id).limit(1)).all()
            segments.save_segment(s, "bench-list-tag", {"all": [*({"list": slug} for slug in lists), {"tag": "vip"}]})
        if not s.scalar(select(func.count()).select_from(ApiToken)):  # the API tokens page and its revoke page
            api_tokens.create(s, "bench", ["reports:read"], actor="cli")
        ids = {"issue_id": s.scalar(select(func.max(Issue.id))), "post_id": s.scalar(select(func.max(Post.id))),
               "id": s.scalar(select(func.max(Issue.id))), "sequence_id": s.scalar(select(func.max(Sequence.id))),
               "segment_id": s.scalar(select(func.max(Segment.id))),
               "token_id": s.scalar(select(func.max(ApiToken.id))),
               # A lead's contact (a contact too): the Leads pages answer 404 for contacts who are not leads.
               "contact_id": s.scalar(select(Lead.contact_id).order_by(Lead.id.desc()).limit(1))}
        ids["key"] = s.scalar(select(SequenceStep.key).where(SequenceStep.sequence_id == ids["sequence_id"],
                                                             SequenceStep.active.is_(True))
                              .order_by(SequenceStep.position).limit(1))
        # A CRM endpoint for the webhooks pages (its delivery log is empty: the page's cost is its query).
        if not s.scalar(select(func.count()).select_from(WebhookEndpoint)):
            local = app.state.settings.model_copy(update={"webhook_allow_hosts": "127.0.0.1"})
            webhook_endpoints.register(s, local, "https://127.0.0.1/crm", ["lead.created"], actor="bench")
        ids["endpoint_id"] = s.scalar(select(func.max(WebhookEndpoint.id)))
        # A feed with an automation for its automation page (and the feeds page's automation column).
        if not s.scalar(select(func.count()).select_from(Feed)):
            feed, _ = post_service.add_feed(s, "https://clinic.example/feed")
            automation_setup.set_feed_automation(s, app.state.settings, feed.id,
                                                 automation_setup.Wanted(mode="review"), now=datetime.now(UTC))
        ids["feed_id"] = s.scalar(select(func.max(Feed.id)))
        # A Spanish version of the newest issue, for its preview page.
        if not s.scalar(select(func.count()).select_from(EmailVersion)):
            newest = s.get(Issue, ids["issue_id"])
            spanish = post_service.store_post(s, ParsedPost(title="Pasos pequeños", blocks=[
                Block("paragraph", html="Camine un poco cada día.")]), language="es",
                translation_of=newest.post_id).post
            issue_service.add_version(s, app.state.settings, newest, language="es", post_id=spanish.id,
                                      subject="Pasos pequeños para días estables", preheader="Hábitos sencillos "
                                      "para empezar esta semana, paso a paso.")
        ids["language"] = "es"
        # The board's "more" page, deep in the biggest column (a keyset page, never an OFFSET).
        deep = s.scalar(select(Lead.id).where(Lead.stage == "new").order_by(Lead.requested_at).limit(1))
    with db.session() as s:  # the heaviest page: a sent issue's results, computed live
        sent = s.scalar(select(func.max(Issue.id)).where(Issue.status == IssueStatus.SENT))
    found = [f"/staff/issues/{sent}/results", f"/staff/issues/{sent}"] if sent else []
    if deep:
        found.append(f"/staff/leads?stage=new&after={deep}")
    for route in staff_routes(app):
        if "GET" not in route.methods or SKIP.search(route.path):
            continue
        path = route.path
        for name in re.findall(r"{(\w+)}", path):
            value = ids.get(name) or (ids["post_id"] if "post" in path else ids["issue_id"])
            path = path.replace("{" + name + "}", str(value))
        found.append(path)
    return sorted(set(found))


def sign_in(client: TestClient) -> None:
    form = client.get("/staff/sign-in").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    answer = client.post("/staff/sign-in", data={"email": "bench@clinic.example", "password": PASSWORD,
                                                 "csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text[:300]


SUMMARY: list[Row] = []  # the rows for --summary-json
TARGET_MS = 300


def run(db: Database, url: str, backend: str, repeat: int, reuse: bool, size: Size = Size()) -> None:
    upgrade(db.engine)
    if not reuse:
        started = time.perf_counter()
        # History up to this minute: the pages read "this month", the follow-up's last 14 days and
        # the scheduled issue against the real clock.
        counts = fill(db, now=datetime.now(UTC).replace(second=0, microsecond=0), size=size)
        print(f"\n{backend}: {counts['contacts']:,} contacts, {counts['deliveries']:,} deliveries, "
              f"{counts['events']:,} events (built in {time.perf_counter() - started:.0f} s)")
    with db.session() as s:
        if not s.scalar(select(func.count()).select_from(StaffUser)):
            add_user(s, "bench@clinic.example", Role.ADMIN, password=PASSWORD)
    settings = Settings(database_url=url, var_dir=Path(tempfile.mkdtemp(prefix="staff-pages-")),
                        secret_key="b" * 48, public_form_limit_per_hour=10_000)
    app = create_app(settings, db)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        sign_in(client)
        targets = ["/healthz", *pages(app, db)]
        print(f"{backend}; {repeat} requests per page (after one unmeasured)")
        print(f"{'page':<40} {'status':>6} {'median ms':>10} {'p95 ms':>8}  {'x floor':>8}")
        floor = None
        medians: dict[str, float] = {}
        for path in targets:
            timings, status = [], 0
            for n in range(repeat + 1):
                started = time.perf_counter()
                answer = client.get(path, follow_redirects=False)
                elapsed = (time.perf_counter() - started) * 1000
                status = answer.status_code
                if n:
                    timings.append(elapsed)
            median = statistics.median(timings)
            floor = floor or median
            mark = "" if median < TARGET_MS else f"  over {TARGET_MS} ms"
            print(f"{path:<40} {status:>6} {median:>10.1f} {p95(timings):>8.1f}  {median / floor:>8.0f}{mark}")
            if path != "/healthz":
                medians[path] = median
    over = sum(1 for median in medians.values() if median >= TARGET_MS)
    SUMMARY.append(slowest("staff_pages", "pages", medians, f"{backend}; {over} over {TARGET_MS} ms", floor=floor,
                           floor_what="/healthz, same run", target_ms=TARGET_MS, each="page"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--sqlite-path", type=Path)
    parser.add_argument("--reuse", action="store_true", help="with --sqlite-path: time an existing database")
    parser.add_argument("--contacts", type=int, default=Size.contacts, help="history size (deliveries scale with it)")
    add_summary_argument(parser)
    args = parser.parse_args()
    size = Size.scaled(args.contacts)
    print("reproduce: .venv/bin/python bench/staff_pages.py " + " ".join(sys.argv[1:]))
    if not args.skip_sqlite:
        folder = tempfile.TemporaryDirectory(prefix="staff-pages-")
        path = args.sqlite_path or Path(folder.name) / "bench.db"
        reuse = args.reuse and path.exists()
        if path.exists() and not reuse:
            path.unlink()
        url = f"sqlite:///{path}"
        db = Database(url)
        try:
            run(db, url, "SQLite", args.repeat, reuse, size)
        finally:
            db.engine.dispose()
            folder.cleanup()
    if args.postgres:
        with postgres_database(args.postgres, "bench_staff_pages") as db:
            run(db, db.engine.url.render_as_string(hide_password=False), "PostgreSQL", args.repeat, False, size)
    write_summary(args.summary_json, SUMMARY)


if __name__ == "__main__":
    main()
