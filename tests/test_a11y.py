"""axe-core on the public pages, at a phone's and a desktop's width; and proof that the check fails
on a page with a known serious violation, so it cannot pass by checking nothing."""

from __future__ import annotations

import re
import struct

import pytest
from sqlalchemy import select

from newsletter.urls import unsubscribe_token, unsubscribe_url
from subscribers.contacts import find_contact
from subscribers.models import MailingList
from tests.a11y import assert_accessible, shoot, violations
from tests.liveserver import LiveServer

pytestmark = pytest.mark.browser


def png_width(path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]


def check(page, name: str) -> None:
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        assert_accessible(page)
    paths = shoot(page, name)
    assert [png_width(p) for p in paths] == [390, 1280]


def test_public_pages_have_no_serious_violation(browser, live_server: LiveServer) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.goto(f"{live_server.url}/subscribe")
    check(page, "public-subscribe")
    page.get_by_label("Email address").fill("a11y.reader@example.org")
    page.get_by_role("button", name="Subscribe").click()  # consent left unticked: the error state
    page.locator("#consent-error").wait_for()
    check(page, "public-subscribe-error")
    page.get_by_label(live_server.settings.consent_text).check()
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    check(page, "public-check-inbox")

    live_server.send_queued()
    text = live_server.emails()[0].get_body(("plain",)).get_content()
    page.goto(re.search(r"http\S+/confirm/\S+", text).group(0))
    page.get_by_role("button", name="Yes, subscribe me").wait_for()
    check(page, "public-confirm")
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.get_by_role("heading", name="You're subscribed").wait_for()
    check(page, "public-subscribed")

    page.get_by_role("link", name="your preferences page").click()
    page.get_by_role("heading", name="Your email preferences").wait_for()
    check(page, "public-preferences")

    with live_server.db.session() as s:
        contact = find_contact(s, "a11y.reader@example.org")
        newsletter = s.scalar(select(MailingList).where(MailingList.slug == live_server.settings.default_list))
        link = unsubscribe_url(live_server.settings, unsubscribe_token(live_server.settings, contact, newsletter))
    page.goto(link)
    check(page, "public-unsubscribe")
    page.get_by_role("button", name=re.compile("Unsubscribe")).first.click()
    page.get_by_role("heading", name="You're unsubscribed").wait_for()
    check(page, "public-unsubscribed")
    page.close()


def test_the_check_fails_on_a_known_serious_violation(browser) -> None:
    """An image without alt text (critical) and a field without a label (critical) on a tiny local
    page: axe must report both and assert_accessible must fail naming them."""
    page = browser.new_page()
    page.set_content('<!doctype html><html lang="en"><head><title>Broken</title></head><body><main>'
                     '<h1>Broken on purpose</h1><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
                     '<input type="text" name="q"></main></body></html>')
    found = {v["id"]: v for v in violations(page)}
    assert found["image-alt"]["impact"] == "critical" and found["image-alt"]["targets"] == ["img"]
    assert "label" in found
    with pytest.raises(pytest.fail.Exception) as failure:
        assert_accessible(page)
    assert "image-alt (critical)" in str(failure.value) and "label (critical)" in str(failure.value)
    page.close()
