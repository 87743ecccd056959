"""In chromium on a real server, as marketing staff see it: pasting a Markdown FAQ with a script link
shows what the import removed, the post's email view has the questions as headings, and a footnote
marker takes the reader to its reference. Pages checked with axe and kept as screenshots."""

from __future__ import annotations

import pytest

from newsletter.staff.roles import Role
from tests.liveserver import LiveServer
from tests.staffkit import make_user, signed_in_page, visited

pytestmark = pytest.mark.browser

FAQ = """---
title: Your first visit
---

A first visit raises questions. Here are the answers people ask us for most often.[^1]

**Q:** How long does a first visit take?

**A:** About two hours, with time to rest before you go home.

**Q:** Can I drive myself home?

**A:** No. Please [plan your ride](javascript:alert(1)) and bring someone with you.

""" + "\n\n".join(f"More about the day, part {n}: what to wear, what to bring, where to park." for n in range(12)) + """

[^1]: Harbor Wellness Clinic, patient guide, 2024.
"""


def test_a_pasted_faq_shows_its_warning_its_questions_and_linked_footnotes(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    login = make_user(live_server.db, "mia@clinic.example", Role.MARKETING)
    context, page, elsewhere = signed_in_page(browser, live_server.url, login, next_path="/staff/posts/import")
    page.locator("#text").fill(FAQ)
    page.locator("#paste-format").select_option("markdown")
    page.get_by_role("button", name="Import the pasted text").click()
    page.wait_for_url(f"{live_server.url}/staff/posts/*")
    status = page.get_by_role("status").inner_text()
    assert status.startswith("Imported post") and "Warning: the pasted text: removed a javascript: link" in status
    assert "\u201cplan your ride\u201d is kept as plain text" in status

    frame = page.frame_locator("iframe[title='The post as an email']")
    questions = frame.get_by_role("heading", level=2)
    questions.first.wait_for()
    assert questions.all_inner_texts() == ["How long does a first visit take?", "Can I drive myself home?",
                                           "References"]
    assert frame.get_by_text("Please plan your ride and bring someone with you.").count() == 1
    assert frame.get_by_role("link", name="plan your ride").count() == 0
    page.locator("iframe").scroll_into_view_if_needed()
    visited(page, "staff-post-faq-imported")

    reference = frame.locator("#ref-1")
    assert not reference.evaluate("el => el.getBoundingClientRect().top < window.innerHeight")  # far below
    frame.locator("sup a[href='#ref-1']").click()
    reference.wait_for()
    assert reference.evaluate("el => { const r = el.getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight; }")
    assert reference.inner_text().startswith("Harbor Wellness Clinic, patient guide")
    assert elsewhere == []
    context.close()
