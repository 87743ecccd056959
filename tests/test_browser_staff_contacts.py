"""The contacts flows in chromium on a real uvicorn server, as marketing staff walk them: find a
contact by the start of their name and read their timeline (consent, the email, its open and click,
the booking, the suppression); erase a contact by typing their address (a mistyped one first), then
search for them and find nothing. Every page visited is checked with axe and kept as screenshots at
390 and 1280 px; no request leaves for another host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newsletter.config import Settings
from newsletter.staff.roles import Role
from tests.contactskit import BACKENDS, CLICKED, SUBJECT, seed_person, serve_on
from tests.liveserver import LiveServer
from tests.staffkit import make_user, signed_in_page, visited

pytestmark = pytest.mark.browser


@pytest.fixture(params=BACKENDS)
def any_server(request: pytest.FixtureRequest, settings: Settings) -> Iterator[LiveServer]:
    yield from serve_on(request, settings)



def _open(browser, server: LiveServer):  # noqa: ANN001, ANN202
    login = make_user(server.db, "mia@clinic.example", Role.MARKETING)
    context, page, elsewhere = signed_in_page(browser, server.url, login, next_path="/staff/contacts")
    return context, page, elsewhere


def _search(page, text: str) -> None:  # noqa: ANN001
    page.get_by_label("Address or name").fill(text)
    page.get_by_label("Address or name").press("Enter")  # submits the search from the keyboard
    page.wait_for_load_state()


def test_find_a_contact_and_read_their_timeline(browser, any_server: LiveServer) -> None:  # noqa: ANN001
    seeded = seed_person(any_server.db, any_server.settings)
    seed_person(any_server.db, any_server.settings, "rob@example.net", name="Rob Stone", suppressed=False)
    context, page, elsewhere = _open(browser, any_server)
    assert page.get_by_role("heading", name="Contacts", exact=True).is_visible()
    visited(page, "staff-contacts")

    _search(page, "Rosa")
    assert page.url == any_server.url + "/staff/contacts/search"  # the text is in no URL
    rows = page.get_by_role("region", name="Contacts found").locator("tbody tr")
    assert rows.count() == 1
    assert "suppressed" in rows.first.inner_text() and "newsletter: confirmed" in rows.first.inner_text()
    assert page.get_by_label("Address or name").input_value() == "Rosa"
    visited(page, "staff-contacts-search")

    page.get_by_role("link", name=seeded.email).click()
    page.wait_for_url(f"{any_server.url}/staff/contacts/{seeded.contact_id}")
    assert page.get_by_role("heading", level=1).inner_text() == "Rosa Marin"
    timeline = page.get_by_role("list", name="Timeline")
    entries = timeline.locator("li .what").all_inner_texts()
    assert entries[0] == "Suppressed: no email may be sent"
    for text in ("Consultation booked", f"Clicked a link in issue “{SUBJECT}”", f"Opened issue “{SUBJECT}”",
                 f"Email: issue “{SUBJECT}”", "Subscription confirmed (list newsletter)", "Asked for a consultation"):
        assert text in entries, text
    assert entries.index("Consultation booked") < entries.index(f"Opened issue “{SUBJECT}”")  # newest first
    assert timeline.get_by_text(CLICKED).is_visible()
    assert timeline.get_by_text("reason: manual; note: asked by phone to pause").is_visible()
    visited(page, "staff-contact-timeline")

    # Filters are plain links: the list of one tag.
    page.goto(any_server.url + "/staff/contacts?tag=vip&status=suppressed")
    assert page.get_by_role("region", name="Contacts found").locator("tbody tr").count() == 1
    assert elsewhere == []
    context.close()


def test_erase_a_contact_then_find_nothing_of_them(browser, any_server: LiveServer) -> None:  # noqa: ANN001
    seeded = seed_person(any_server.db, any_server.settings)
    context, page, elsewhere = _open(browser, any_server)
    page.goto(f"{any_server.url}/staff/contacts/{seeded.contact_id}")
    page.get_by_role("link", name="Erase this contact…").click()
    page.wait_for_url(f"{any_server.url}/staff/contacts/{seeded.contact_id}/erase")
    visited(page, "staff-contact-erase")

    field = page.get_by_label("Type the contact's address to confirm")
    field.fill("rosa.marin@example.com")
    page.get_by_role("button", name="Erase for good").click()
    page.wait_for_load_state()
    assert "not this contact's address" in page.locator("#confirm_address-error").inner_text()
    assert field.get_attribute("aria-invalid") == "true"
    assert field.input_value() == "rosa.marin@example.com"  # kept, to correct
    visited(page, "staff-contact-erase-error")

    field.fill(seeded.email)
    field.press("Enter")
    page.wait_for_url(any_server.url + "/staff/contacts")
    assert "The contact was erased." in page.get_by_role("status").inner_text()
    visited(page, "staff-contacts-after-erasure")

    for text in (seeded.email, "Rosa", "rosa.marin@"):
        _search(page, text)
        assert page.get_by_text("No contact matches.").is_visible(), text
    assert seeded.email not in page.content().replace(f'value="{seeded.email}"', "")
    visited(page, "staff-contacts-nothing-found")
    page.goto(f"{any_server.url}/staff/contacts/{seeded.contact_id}")
    assert page.get_by_role("heading", name="This page does not exist").is_visible()
    assert elsewhere == []
    context.close()
