"""Click redirects per second: GET /c/<delivery token>/<link id> against the real app on loopback.

A fresh SQLite database gets an issue sent (outbox transport) to N contacts; uvicorn serves the app in
a subprocess; client threads follow random recipients' tracked links for a fixed number of requests,
without following the redirect. Every answer must be a 302 to the stored target, and every click a row.

    .venv/bin/python bench/click_redirects.py [--contacts 2000] [--requests 5000] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("reproduce: .venv/bin/python bench/click_redirects.py " + " ".join(sys.argv[1:]))

    folder = tempfile.mkdtemp(prefix="clicks-")
    port = 18000 + random.randrange(1000)
    os.environ.update({"NEWSLETTER_VAR_DIR": folder, "NEWSLETTER_TRANSPORT": "outbox",
                       "NEWSLETTER_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"})
    import httpx
    from sqlalchemy import func, select, update

    from newsletter.config import get_settings
    from newsletter.database import Database, upgrade
    from newsletter.urls import delivery_token
    from newsletter.models import Delivery, Event, Issue, Link
    from newsletter.sending import schedule
    from newsletter.sending.dispatch import Dispatcher
    from newsletter.transports import get_transport
    from subscribers.db import utcnow
    from tests.sendkit import add_audience, make_issue

    settings = get_settings()
    db = Database.from_settings(settings)
    upgrade(db.engine)
    add_audience(db, args.contacts)
    issue_id = make_issue(db, settings)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), utcnow())
    Dispatcher(settings, db, get_transport(settings)).run_until_idle()
    with db.session() as s:
        s.execute(update(Delivery).values(submitted_at=utcnow().replace(year=2000)))  # read long after sending
        links = [(link.id, link.url) for link in s.scalars(select(Link).where(Link.issue_id == issue_id))]
        urls = [(f"http://127.0.0.1:{port}/c/{delivery_token(settings, d)}/{link_id}", target)
                for d in s.scalars(select(Delivery.id)) for link_id, target in links]

    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bench.click_redirects:app_factory", "--port", str(port),
         "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=os.environ.copy())
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        rates = []
        for _ in range(args.repeat):
            rates.append(run(urls, args.requests, args.clients))
            print(f"  {rates[-1]:,.0f} redirects/s")
        with db.session() as s:
            clicks = s.scalar(select(func.count()).select_from(Event).where(Event.type == "click"))
        print(f"\nclick redirects: median {statistics.median(rates):,.0f}/s over {args.repeat} runs of "
              f"{args.requests:,} requests from {args.clients} client threads; {clicks:,} click events stored")
    finally:
        server.terminate()
        server.wait(timeout=10)


def run(urls: list[tuple[str, str]], requests: int, clients: int) -> float:
    import httpx

    per_client = requests // clients
    failures: list[str] = []

    def worker() -> None:
        with httpx.Client(headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"}) as client:
            for url, target in random.choices(urls, k=per_client):
                answer = client.get(url, follow_redirects=False)
                if answer.status_code != 302 or answer.headers["location"] != target:
                    failures.append(f"{answer.status_code} {answer.headers.get('location')}")

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} bad answers, e.g. {failures[0]}")
    return per_client * clients / elapsed


def app_factory():  # noqa: ANN201 - for uvicorn --factory
    from newsletter.config import get_settings
    from newsletter.database import Database
    from newsletter.web.app import create_app

    settings = get_settings()
    return create_app(settings, Database.from_settings(settings))


if __name__ == "__main__":
    main()
