"""The online copy of a sent issue (newsletter/view_online.py), the service behind ``GET /v/TOKEN``."""

from __future__ import annotations

import re

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Issue
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.transports import MemoryTransport
from newsletter.view_online import online_copy
from subscribers.db import utcnow
from tests.sendkit import add_audience, make_issue


def test_the_online_copy_is_what_that_recipient_received(db: Database, settings: Settings) -> None:
    issue_id = make_issue(db, settings)
    add_audience(db, 2)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), utcnow())
    transport = MemoryTransport(settings)
    Dispatcher(settings, db, transport).run_until_idle()
    copies = []
    for message in transport.sent:
        html = message.get_body(("html",)).get_content()
        token = re.search(r'href="http[^"]+/v/([^"]+)"', html).group(1)
        with db.session() as s:
            copy = online_copy(s, settings, token)
        assert copy is not None and "%%" not in copy and "Hi Reader," in copy
        assert f"/v/{token}" in copy  # the recipient's own links, filled in
        copies.append(copy)
    assert len(copies) == 2 and copies[0] != copies[1]
    with db.session() as s:
        assert online_copy(s, settings, token[:-4] + "AAAA") is None  # tampered
        assert online_copy(s, settings, "not-a-token") is None
