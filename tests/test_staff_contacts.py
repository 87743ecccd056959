"""The contacts pages over HTTP on a real server: the search (POST only, its text never in a URL),
filters and keyset pages, a contact's timeline, adding (with the consent evidence the CLI records),
editing tags and fields, suppressing and lifting, erasure with a typed confirmation, the JSON and CSV
downloads, their audit entries, errors beside their fields, the 404 page, and the clinic role kept out."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from html import unescape

import httpx
import pytest
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.models import ConfirmationEmail, Delivery
from newsletter.staff.audit import AuditAction
from newsletter.staff.roles import Role
from newsletter.web.staff.routes import staff_routes
from subscribers.consent import ConsentAction
from subscribers.models import ConsentEvent, Contact, Suppression
from subscribers.contacts import find_contact
from subscribers.segments import save_segment
from subscribers.states import DeliveryStatus, SubscriptionStatus
from subscribers.suppression import is_suppressed
from tests.audience import subscriber
from tests.contactskit import BACKENDS, CLICKED, SUBJECT, seed_person, serve_on
from tests.liveserver import LiveServer
from tests.sendkit import add_audience
from tests.staffkit import Login, csrf_of, make_user, sign_in
from tests.test_staff_issues import audit_rows, field_error

CONTACTS = "/staff/contacts"


@pytest.fixture(params=BACKENDS)
def any_server(request: pytest.FixtureRequest, settings: Settings) -> Iterator[LiveServer]:
    yield from serve_on(request, settings)


@pytest.fixture
def people(any_server: LiveServer) -> dict[Role, Login]:
    return {role: make_user(any_server.db, f"{role.value}@clinic.example", role) for role in Role}


@pytest.fixture
def marketing(any_server: LiveServer, people: dict[Role, Login]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=any_server.url, follow_redirects=False, timeout=30) as c:
        sign_in(c, people[Role.MARKETING])
        yield c


def token(client: httpx.Client, path: str = CONTACTS) -> str:
    return csrf_of(client.get(path).text)


def search(client: httpx.Client, q: str, **data: str) -> httpx.Response:
    return client.post(CONTACTS + "/search", data={"csrf_token": token(client), "q": q, **data})


def found_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<th scope="row" class="address"><a href="/staff/contacts/(\d+)"', html)]


# Access ------------------------------------------------------------------------------------------------


def test_clinic_staff_get_403_on_every_contacts_page(any_server: LiveServer, people: dict[Role, Login]) -> None:
    seeded = seed_person(any_server.db, any_server.settings, suppressed=False)
    routes = [r for r in staff_routes(any_server.app) if r.path.startswith(CONTACTS)]  # type: ignore[arg-type]
    assert len(routes) >= 9
    with httpx.Client(base_url=any_server.url, follow_redirects=False, timeout=30) as c:
        sign_in(c, people[Role.CLINIC])
        form_token = csrf_of(c.get("/staff/account").text)
        for route in routes:
            path = route.path.replace("{contact_id}", str(seeded.contact_id))
            for method in route.methods - {"HEAD"}:
                answer = c.request(method, path, data={"csrf_token": form_token, "q": "rosa",
                                                       "confirm_address": seeded.email, "list": "newsletter"}
                                   if method == "POST" else None)
                assert answer.status_code == 403, (method, path, answer.status_code)
                assert "not for your role" in answer.text
        assert 'href="/staff/contacts"' not in c.get("/staff/").text
    with any_server.db.session() as s:  # nothing the refused role posted did anything
        assert s.get(Contact, seeded.contact_id) is not None and not is_suppressed(s, seeded.email)
    assert not audit_rows(any_server.db, AuditAction.EXPORT) and not audit_rows(any_server.db, AuditAction.ERASE)


def test_admin_and_marketing_see_the_page_in_their_navigation(any_server: LiveServer,
                                                              people: dict[Role, Login]) -> None:
    for role in (Role.ADMIN, Role.MARKETING):
        with httpx.Client(base_url=any_server.url, follow_redirects=False, timeout=30) as c:
            sign_in(c, people[role])
            assert 'href="/staff/contacts"' in c.get("/staff/").text
            assert c.get(CONTACTS).status_code == 200


# Finding contacts ----------------------------------------------------------------------------------------


def test_search_by_address_or_name_is_a_post_and_finds_them(any_server: LiveServer, marketing: httpx.Client) -> None:
    with any_server.db.session() as s:
        ana = subscriber(s, any_server.settings, "Ana.Lopez@Example.org", name="Ana Lopez").id
        anabel = subscriber(s, any_server.settings, "anabel@example.net", name="Anabel Ruiz").id
        other = subscriber(s, any_server.settings, "zed@example.com", name="Zed Ana").id
    assert marketing.get(CONTACTS + "/search?q=ana").status_code == 404  # never a GET: the text stays out of URLs
    exact = search(marketing, "ana.lopez@example.org")  # any case: matched by the address hash
    assert exact.status_code == 200 and found_ids(exact.text) == [ana]
    assert found_ids(search(marketing, "ANA").text) == [anabel, ana]  # the start of an address or a name
    assert found_ids(search(marketing, "anabel r").text) == [anabel]
    assert found_ids(search(marketing, "zed").text) == [other]
    assert found_ids(search(marketing, "example.org").text) == []  # a prefix, not a match inside
    assert "No contact matches." in search(marketing, "nobody-like-this").text
    too_long = search(marketing, "a" * 400)
    assert too_long.status_code == 400 and "too long" in field_error(too_long.text, "q")
    # The text is kept in the form, never put in a link.
    page = search(marketing, "ana").text
    assert 'id="q" name="q" type="search" value="ana"' in page
    assert not [link for link in re.findall(r'(?:href|action)="([^"]*)"', page) if "ana" in link.lower()]


def test_empty_search_goes_to_the_filters_page_and_filters_are_get_parameters(any_server: LiveServer,
                                                                            marketing: httpx.Client) -> None:
    with any_server.db.session() as s:
        a = subscriber(s, any_server.settings, "a@example.org", tags=["vip"]).id
        b = subscriber(s, any_server.settings, "b@example.org", list_slug="clinic-news").id
        c = subscriber(s, any_server.settings, "c@example.org", confirmed=False).id
        save_segment(s, "vips", {"tag": "vip"})
    answer = marketing.post(CONTACTS + "/search", data={"csrf_token": token(marketing), "q": " ", "tag": "vip"})
    assert answer.status_code == 303 and answer.headers["location"] == "/staff/contacts?tag=vip"
    assert found_ids(marketing.get(CONTACTS + "?tag=vip").text) == [a]
    assert found_ids(marketing.get(CONTACTS + "?list=clinic-news").text) == [b]
    assert found_ids(marketing.get(CONTACTS + "?segment=vips").text) == [a]
    assert found_ids(marketing.get(CONTACTS + "?status=active").text) == [c, b, a]
    assert found_ids(search(marketing, "b@", list="clinic-news").text) == [b]
    unknown = marketing.get(CONTACTS + "?list=nope")
    assert unknown.status_code == 400 and "There is no list" in unescape(unknown.text)
    assert marketing.get(CONTACTS + "?status=zzz").status_code == 400


def test_rows_show_address_name_status_lists_tags_and_added(any_server: LiveServer, marketing: httpx.Client) -> None:
    seeded = seed_person(any_server.db, any_server.settings)
    page = marketing.get(CONTACTS).text
    row = page[page.index(f'/staff/contacts/{seeded.contact_id}"'):].split("</tr>")[0]
    for text in (seeded.email, "Rosa Marin", "active", "suppressed", "newsletter: confirmed", "vip",
                 datetime.now(timezone.utc).strftime("%Y-%m-")):
        assert text in row, text


def test_keyset_pages_walk_every_contact_once(any_server: LiveServer, marketing: httpx.Client) -> None:
    add_audience(any_server.db, 120)
    seen: list[int] = []
    path = CONTACTS
    for _ in range(5):
        page = marketing.get(path).text
        seen += found_ids(page)
        more = re.search(r'<a href="([^"]+)" rel="next">Older contacts</a>', page)
        if not more:
            break
        path = unescape(more.group(1))
        assert re.fullmatch(r"/staff/contacts\?before=\d+", path)
    assert len(seen) == 120 == len(set(seen)) and seen == sorted(seen, reverse=True)
    # A search's pages are POSTs that carry the text in the body.
    first = search(marketing, "reader")
    assert "Older contacts" in first.text and 'name="before"' in first.text
    before = re.findall(r'name="before" value="(\d+)"', first.text)[-1]
    second = search(marketing, "reader", before=before)
    assert found_ids(second.text) and max(found_ids(second.text)) < min(found_ids(first.text))


# A contact's page ------------------------------------------------------------------------------------------


def test_the_timeline_shows_consent_deliveries_opens_clicks_bookings_and_suppression(
        any_server: LiveServer, marketing: httpx.Client) -> None:
    seeded = seed_person(any_server.db, any_server.settings)
    page = unescape(marketing.get(f"{CONTACTS}/{seeded.contact_id}").text)
    timeline = page[page.index('id="timeline"'):page.index("Tags and custom fields")]
    expected = ["Suppressed: no email may be sent", "Consultation booked", f"Clicked a link in issue “{SUBJECT}”",
                f"Opened issue “{SUBJECT}”", f"Email: issue “{SUBJECT}”"]
    positions = [timeline.index(text) for text in expected]
    assert positions == sorted(positions)  # newest first (the suppression is now; the email three days ago)
    for text in ("Subscription confirmed (list newsletter)", "Subscribe requested (list newsletter)", "by admin",
                 "note: test", CLICKED, "state: delivered", "reason: manual; note: asked by phone to pause",
                 "Asked for a consultation"):
        assert text in timeline, text
    assert "Lift the suppression" in page and "Rosa Marin" in page
    assert f'<a href="/staff/issues/{seeded.issue_id}">Open the issue</a>' in timeline  # where the email came from


def test_a_long_history_is_paged_newest_first(any_server: LiveServer, marketing: httpx.Client) -> None:
    seeded = seed_person(any_server.db, any_server.settings, suppressed=False)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with any_server.db.session() as s:
        s.add_all(Delivery(issue_id=None, contact_id=seeded.contact_id, status=DeliveryStatus.DELIVERED,
                           due_at=start, created_at=start + timedelta(hours=n)) for n in range(250))
    first = marketing.get(f"{CONTACTS}/{seeded.contact_id}").text
    assert first.count('<li class="') == 200
    older = re.search(r'href="([^"]+)" rel="next">Older entries', first)
    assert older
    second = marketing.get(unescape(older.group(1))).text
    total = 200 + second.count('<li class="')
    with any_server.db.session() as s:
        consent = s.scalar(select(func.count()).select_from(ConsentEvent).where(
            ConsentEvent.contact_id == seeded.contact_id))
    assert total == 250 + consent + 1 + 2 + 1 + 1  # deliveries, consent, the issue, open and click, lead, booking
    assert 'rel="next">Older entries' not in second


def test_unknown_and_mangled_ids_are_the_404_page(marketing: httpx.Client) -> None:
    form_token = token(marketing)
    for path in (f"{CONTACTS}/999", f"{CONTACTS}/abc", f"{CONTACTS}/{'9' * 30}", f"{CONTACTS}/0",
                 f"{CONTACTS}/999/erase"):
        answer = marketing.get(path)
        assert answer.status_code == 404 and "This page does not exist" in answer.text, path
        assert "Back to the staff home" in answer.text, path  # the staff app's own page: a way back
    for action in ("details", "suppress", "unsuppress", "export", "erase"):
        answer = marketing.post(f"{CONTACTS}/999/{action}", data={"csrf_token": form_token, "reason": "manual"})
        assert answer.status_code == 404, action


# Adding and editing ------------------------------------------------------------------------------------------


def test_adding_a_contact_uses_double_opt_in_and_records_the_staff_member(any_server: LiveServer,
                                                                          marketing: httpx.Client,
                                                                          people: dict[Role, Login]) -> None:
    answer = marketing.post(CONTACTS + "/new", data={
        "csrf_token": token(marketing, CONTACTS + "/new"), "email": "  Lena@Example.ORG ", "name": "Lena",
        "lists": "newsletter", "timezone": "Europe/Madrid", "tags": "Spring, vip", "fields": "city: Madrid\nreferrer: Dr. Ruiz"})
    assert answer.status_code == 303, answer.text
    with any_server.db.session() as s:
        contact = find_contact(s, "lena@example.org")
        assert contact is not None and contact.email == "Lena@example.org" and contact.source == "admin"
        assert contact.timezone == "Europe/Madrid" and contact.tag_names == ["spring", "vip"]
        assert contact.custom_fields == {"city": "Madrid", "referrer": "Dr. Ruiz"}
        assert [sub.status for sub in contact.subscriptions] == [SubscriptionStatus.PENDING]
        events = s.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == contact.id)).all()
        assert [(e.action, e.method, e.form_id) for e in events] == [
            (ConsentAction.REQUESTED, "admin", f"staff user {people[Role.MARKETING].user_id}")]
        assert s.scalar(select(func.count()).select_from(ConfirmationEmail)) == 1  # queued for the dispatchers
        contact_id = contact.id
    assert answer.headers["location"] == f"{CONTACTS}/{contact_id}"
    assert "waits for the person to confirm" in unescape(marketing.get(answer.headers["location"]).text)
    [entry] = audit_rows(any_server.db, AuditAction.CONTACT_ADDED)
    assert entry.actor == "marketing@clinic.example" and entry.target == f"contact {contact_id}"
    assert "Lena" not in (entry.detail or "") and "example" not in (entry.detail or "")


def test_adding_as_confirmed_needs_the_proof_and_keeps_it(any_server: LiveServer, marketing: httpx.Client) -> None:
    form = {"csrf_token": token(marketing, CONTACTS + "/new"), "email": "max@example.org", "lists": "newsletter",
            "confirmed": "yes", "timezone": "America/New_York"}
    refused = marketing.post(CONTACTS + "/new", data=form)
    assert refused.status_code == 400 and "kept as the proof" in field_error(refused.text, "consent_note")
    assert 'value="max@example.org"' in refused.text  # what was typed comes back
    added = marketing.post(CONTACTS + "/new", data={**form, "consent_note": "paper form at reception, 2026-11-03"})
    assert added.status_code == 303
    with any_server.db.session() as s:
        contact = find_contact(s, "max@example.org")
        assert contact and [sub.status for sub in contact.subscriptions] == [SubscriptionStatus.CONFIRMED]
        notes = set(s.scalars(select(ConsentEvent.note).where(ConsentEvent.contact_id == contact.id)))
        assert notes == {"paper form at reception, 2026-11-03"}
        assert not s.scalar(select(func.count()).select_from(ConfirmationEmail))


def test_adding_refuses_bad_input_beside_each_field_and_stores_nothing(any_server: LiveServer,
                                                                       marketing: httpx.Client) -> None:
    form_token = token(marketing, CONTACTS + "/new")
    answer = marketing.post(CONTACTS + "/new", data={"csrf_token": form_token, "email": "not an address",
                                                     "timezone": "Mars/Olympus", "fields": "no colon here"})
    assert answer.status_code == 400
    assert "IANA time zone" in field_error(answer.text, "timezone")
    assert "Line 1" in field_error(answer.text, "fields")
    assert "Choose at least one list." in answer.text
    answer = marketing.post(CONTACTS + "/new", data={"csrf_token": form_token, "email": "not an address",
                                                     "lists": "newsletter", "timezone": "UTC"})
    assert answer.status_code == 400 and "not a valid email address" in field_error(answer.text, "email")
    answer = marketing.post(CONTACTS + "/new", data={"csrf_token": form_token, "email": "a@example.org",
                                                     "lists": "no-such-list", "timezone": "UTC"})
    assert answer.status_code == 400 and "no list" in unescape(answer.text)
    with any_server.db.session() as s:
        assert not s.scalar(select(func.count()).select_from(Contact))
        subscriber(s, any_server.settings, "gone@example.org")
        from subscribers.suppression import suppress
        suppress(s, "gone@example.org", "manual")
    answer = marketing.post(CONTACTS + "/new", data={"csrf_token": form_token, "email": "gone@example.org",
                                                     "lists": "newsletter", "timezone": "UTC"})
    assert answer.status_code == 400 and "suppression list" in field_error(answer.text, "email")
    assert not audit_rows(any_server.db, AuditAction.CONTACT_ADDED)


def test_editing_tags_and_fields_replaces_them_once_audited(any_server: LiveServer, marketing: httpx.Client) -> None:
    seeded = seed_person(any_server.db, any_server.settings, suppressed=False)
    page = f"{CONTACTS}/{seeded.contact_id}"
    with any_server.db.session() as s:
        s.get(Contact, seeded.contact_id).custom_fields = {"city": "Oakland", "old": "x"}
    assert "city: Oakland" in marketing.get(page).text
    answer = marketing.post(page + "/details", data={"csrf_token": token(marketing, page), "tags": "new, Other",
                                                      "fields": "city: Berkeley"})
    assert answer.status_code == 303 and answer.headers["location"] == page
    with any_server.db.session() as s:
        contact = s.get(Contact, seeded.contact_id)
        assert contact.tag_names == ["new", "other"] and contact.custom_fields == {"city": "Berkeley"}
    again = marketing.post(page + "/details", data={"csrf_token": token(marketing, page), "tags": "new, other",
                                                     "fields": "city: Berkeley"})
    assert "Nothing changed." in marketing.get(again.headers["location"]).text
    [entry] = audit_rows(any_server.db, AuditAction.CONTACT_EDITED)
    assert entry.target == f"contact {seeded.contact_id}" and "Berkeley" not in (entry.detail or "")
    bad = marketing.post(page + "/details", data={"csrf_token": token(marketing, page), "tags": "x" * 101,
                                                   "fields": "ok: 1\n: no key"})
    assert bad.status_code == 400 and "1 to 100 characters" in field_error(bad.text, "tags")
    assert "Line 2" in field_error(bad.text, "fields") and ": no key" in bad.text


def test_suppress_and_unsuppress_are_audited(any_server: LiveServer, marketing: httpx.Client) -> None:
    seeded = seed_person(any_server.db, any_server.settings, suppressed=False)
    page = f"{CONTACTS}/{seeded.contact_id}"
    bad = marketing.post(page + "/suppress", data={"csrf_token": token(marketing, page), "reason": "erased"})
    assert bad.status_code == 400 and "Choose a reason" in field_error(bad.text, "reason")
    done = marketing.post(page + "/suppress", data={"csrf_token": token(marketing, page), "reason": "spam_complaint",
                                                     "note": "complained by phone"})
    assert done.status_code == 303
    with any_server.db.session() as s:
        row = s.scalar(select(Suppression))
        assert row.reason == "spam_complaint" and row.note == "complained by phone"
    assert "reason: spam complaint; note: complained by phone" in unescape(marketing.get(page).text)
    lifted = marketing.post(page + "/unsuppress", data={"csrf_token": token(marketing, page)})
    assert lifted.status_code == 303
    with any_server.db.session() as s:
        assert not is_suppressed(s, seeded.email)
    again = marketing.post(page + "/unsuppress", data={"csrf_token": token(marketing, page)})
    assert "Not lifted: this contact is not suppressed." in unescape(marketing.get(again.headers["location"]).text)
    [suppressed] = audit_rows(any_server.db, AuditAction.SUPPRESSED)
    [unsuppressed] = audit_rows(any_server.db, AuditAction.UNSUPPRESSED)
    assert suppressed.target == unsuppressed.target == f"contact {seeded.contact_id}"
    assert "phone" not in (suppressed.detail or "")


# Erasure and exports --------------------------------------------------------------------------------------------


def test_erasure_needs_the_address_typed_exactly(any_server: LiveServer, marketing: httpx.Client) -> None:
    seeded = seed_person(any_server.db, any_server.settings)
    page = f"{CONTACTS}/{seeded.contact_id}/erase"
    for typed, message in (("", "Type the contact's address"), ("rosa.marin@example.com", "not this contact's address"),
                           ("ROSA.MARIN@example.org", "not this contact's address")):
        answer = marketing.post(page, data={"csrf_token": token(marketing, page), "confirm_address": typed})
        assert answer.status_code == 400 and message in field_error(answer.text, "confirm_address"), typed
    with any_server.db.session() as s:
        assert s.get(Contact, seeded.contact_id) is not None
    assert not audit_rows(any_server.db, AuditAction.ERASE)
    done = marketing.post(page, data={"csrf_token": token(marketing, page), "confirm_address": seeded.email})
    assert done.status_code == 303 and done.headers["location"] == CONTACTS
    with any_server.db.session() as s:
        assert s.get(Contact, seeded.contact_id) is None and is_suppressed(s, seeded.email)
        assert s.scalar(select(Suppression.email)) is None
    assert found_ids(search(marketing, seeded.email).text) == [] and found_ids(search(marketing, "rosa").text) == []
    assert marketing.get(f"{CONTACTS}/{seeded.contact_id}").status_code == 404
    [entry] = audit_rows(any_server.db, AuditAction.ERASE)
    assert entry.actor == "marketing@clinic.example" and entry.target == f"contact {seeded.contact_id}"
    assert entry.detail == "a contact erased"


def test_one_persons_data_downloads_as_json_audited(any_server: LiveServer, marketing: httpx.Client) -> None:
    seeded = seed_person(any_server.db, any_server.settings)
    page = f"{CONTACTS}/{seeded.contact_id}"
    answer = marketing.post(page + "/export", data={"csrf_token": token(marketing, page)})
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == f'attachment; filename="contact-{seeded.contact_id}.json"'
    assert answer.headers["cache-control"] == "no-store" and answer.headers["content-type"].startswith("application/json")
    data = json.loads(answer.text)
    assert data["contact"]["email"] == seeded.email and data["lead"]["bookings"][0]["external_id"] == f"cal-{seeded.contact_id}"
    assert data["suppression"]["reason"] == "manual"
    [entry] = audit_rows(any_server.db, AuditAction.EXPORT)
    assert entry.target == f"contact {seeded.contact_id}" and "subject access" in (entry.detail or "")
    assert marketing.get(page + "/export").status_code == 405  # a download that is audited is never a GET


def test_a_list_or_segment_downloads_as_csv_audited(any_server: LiveServer, marketing: httpx.Client) -> None:
    with any_server.db.session() as s:
        subscriber(s, any_server.settings, "a@example.org", tags=["vip"], name="Ann")
        subscriber(s, any_server.settings, "b@example.org")
        subscriber(s, any_server.settings, "c@example.org", list_slug="clinic-news", tags=["vip"])
        save_segment(s, "vips", {"tag": "vip"})
    form_token = token(marketing, CONTACTS + "/export")
    missing = marketing.post(CONTACTS + "/export", data={"csrf_token": form_token})
    assert missing.status_code == 400 and "Choose a list or a segment" in field_error(missing.text, "list")
    unknown = marketing.post(CONTACTS + "/export", data={"csrf_token": form_token, "segment": "nope"})
    assert unknown.status_code == 400 and "no segment" in field_error(unknown.text, "segment")
    answer = marketing.post(CONTACTS + "/export", data={"csrf_token": form_token, "list": "newsletter"})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-disposition"] == 'attachment; filename="contacts-newsletter.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [r["email"] for r in rows] == ["a@example.org", "b@example.org"] and rows[0]["subscription_status"] == "confirmed"
    by_segment = marketing.post(CONTACTS + "/export", data={"csrf_token": form_token, "segment": "vips"})
    assert [r["email"] for r in csv.DictReader(io.StringIO(by_segment.content.decode("utf-8-sig")))] == [
        "a@example.org", "c@example.org"]
    entries = audit_rows(any_server.db, AuditAction.EXPORT)
    assert [(e.target, e.detail) for e in entries] == [("list newsletter", "2 contacts to CSV"),
                                                       (None, "2 contacts to CSV, segment vips")]
