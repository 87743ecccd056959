"""The links inside a sent issue: view online, preferences, and RFC 8058 one-click unsubscribe."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from newsletter.database import Database
from newsletter.models import Issue
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.transports import OutboxTransport
from subscribers.db import utcnow
from subscribers.models import Subscription
from tests.liveserver import LiveServer
from tests.sendkit import add_audience, make_issue


def send_issue(live_server: LiveServer, db: Database) -> int:
    settings = live_server.settings
    issue_id = make_issue(db, settings)
    add_audience(db, 2)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), utcnow())
    Dispatcher(settings, db, OutboxTransport(live_server.outbox, settings)).run_until_idle()
    return issue_id


def test_links_in_a_sent_issue_work_and_carry_no_address(live_server: LiveServer, db: Database) -> None:
    send_issue(live_server, db)
    message = live_server.emails()[0]
    header = message["List-Unsubscribe"]
    one_click = re.search(r"<(http[^>]+)>", header).group(1)
    assert "@" not in one_click and "reader" not in one_click and "mailto:unsubscribe@" in header
    html = message.get_body(("html",)).get_content()
    view_online = re.search(r'href="(http[^"]+/v/[^"]+)"', html).group(1)
    preferences = re.search(r'href="(http[^"]+/preferences/[^"]+)"', html).group(1)
    with httpx.Client() as client:
        online = client.get(view_online)
        assert online.status_code == 200 and "Small Steps" in online.text and "%%" not in online.text
        assert "Hi Reader," in online.text
        assert client.get(preferences).status_code == 200
        tampered = client.get(view_online[:-4] + "AAAA")
        assert tampered.status_code == 404
        scanner = client.get(one_click)  # a link scanner: a page with a button, nothing changes
        assert scanner.status_code == 200 and "<button" in scanner.text
        with db.session() as s:
            assert s.scalars(select(Subscription.status)).all() == ["confirmed", "confirmed"]
        done = client.post(one_click, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
        assert done.status_code == 200  # answered, not redirected (RFC 8058)
    with db.session() as s:
        assert sorted(s.scalars(select(Subscription.status)).all()) == ["confirmed", "unsubscribed"]
