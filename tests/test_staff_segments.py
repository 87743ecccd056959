"""The staff segments pages over HTTP against the real app on uvicorn: the list with counts (one
statement for all), the builder's rows turned into the definition language and back, Count without
JavaScript and the JSON count, errors beside the condition they concern, the advanced text, save,
edit and delete (audited), and the clinic role kept out."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from newsletter.database import Database
from newsletter.staff import segment_builder as builder
from newsletter.staff import segment_counts
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from subscribers import segments
from subscribers.contacts import upsert_contact
from subscribers.lists import ensure_list
from subscribers.models import ContactTag, Segment, Subscription
from subscribers.states import SubscriptionStatus
from tests.liveserver import LiveServer
from tests.staffkit import csrf_of, Login, make_user, signed_in

SEGMENTS = "/staff/segments"


def audience(db: Database) -> None:
    """Six contacts: four on the newsletter (three confirmed), two tagged vip, custom field clinic."""
    with db.session() as s:
        news = ensure_list(s, "newsletter")
        for i, (clinic, vip, state) in enumerate([("LA", True, "confirmed"), ("LA", False, "confirmed"),
                                                  ("SF", True, "confirmed"), ("LA", True, "pending"),
                                                  ("LA", True, None), ("NYC", False, None)]):
            contact = upsert_contact(s, f"p{i}@example.com", default_timezone="UTC", source="import",
                                     name=f"Person {i}", custom_fields={"clinic": clinic}).contact
            if vip:
                s.add(ContactTag(contact_id=contact.id, tag="vip"))
            if state:
                s.add(Subscription(contact_id=contact.id, list_id=news.id, status=SubscriptionStatus(state),
                                   frequency="every", confirmation_sends=0))
        s.flush()


@pytest.fixture
def marketing(db: Database) -> Login:
    audience(db)
    return make_user(db, "mia@clinic.example", Role.MARKETING)


@pytest.fixture
def http(live_server: LiveServer, marketing: Login) -> Iterator[httpx.Client]:
    with signed_in(live_server, marketing) as c:
        yield c


def rows_form(token: str, *rows: tuple[str, str, str, str], match: str = "all", **extra: str) -> dict[str, str]:
    form = {"csrf_token": token, "match": match, "mode": "rows", "rows": str(len(rows)), **extra}
    for i, (kind, op, key, value) in enumerate(rows):
        form.update({f"kind-{i}": kind, f"op-{i}": op, f"key-{i}": key, f"value-{i}": value})
    return form


VIP_LA = (("list", "confirmed", "", "newsletter"), ("field", "eq", "clinic", "LA"))


def test_rows_make_the_definition_language_and_come_back() -> None:
    definition = builder.definition_of("all", [builder.Row(*row) for row in (
        *VIP_LA, ("tag", "is_not", "", "vip, events"), ("engaged", "within_days", "", "30"),
        ("field", "gte", "age", "65"), ("never_opened", "is", "", ""), ("status", "is", "", "active"))])
    assert definition == {"all": [{"list": "newsletter", "status": "confirmed"},
                                  {"field": "clinic", "op": "eq", "value": "LA"},
                                  {"not": {"tags_any": ["vip", "events"]}}, {"engaged": {"within_days": 30}},
                                  {"field": "age", "op": "gte", "value": 65}, {"never_opened": True},
                                  {"status": "active"}]}
    assert segments.validate(definition)
    match, rows = builder.rows_of(definition)  # type: ignore[misc]
    assert match == "all" and builder.definition_of(match, rows) == definition
    assert builder.rows_of({"all": [{"any": [{"tag": "a"}, {"tag": "b"}]}]}) is None  # nesting: the text
    assert builder.row_of("segment 'x': any[3].field: op 'like' is not one of eq") == (3, "field: op 'like' is not one of eq")
    assert builder.row_of("all[0].not.tag: bad") == (0, "tag: bad")


def test_count_without_javascript_then_save_edit_and_delete(live_server: LiveServer, http: httpx.Client,
                                                             marketing: Login) -> None:
    empty = http.get(SEGMENTS)
    assert empty.status_code == 200 and "No segments yet" in empty.text
    new = http.get(SEGMENTS + "/new")
    token = csrf_of(new.text)
    counted = http.post(SEGMENTS + "/new", data=rows_form(token, *VIP_LA, action="count"))
    assert counted.status_code == 200
    assert '<span id="segment-count">2 mailable contacts</span>' in counted.text
    assert "p0@example.com" in counted.text and "Person 1" in counted.text and "p2@example.com" not in counted.text
    assert "status: confirmed" in counted.text  # the advanced text, to go on from

    # "Add a condition" and "Remove" work without JavaScript too.
    added = http.post(SEGMENTS + "/new", data=rows_form(token, *VIP_LA, action="add"))
    assert 'name="rows" value="3"' in added.text
    removed = http.post(SEGMENTS + "/new", data=rows_form(token, *VIP_LA, action="remove-0"))
    assert 'name="rows" value="1"' in removed.text and 'value="clinic"' in removed.text

    # The JSON count takes the token in a header, as the page's script sends it.
    answer = http.post(SEGMENTS + "/count.json", data=rows_form("", *VIP_LA, match="any"),
                       headers={"X-CSRF-Token": token})
    assert answer.status_code == 200
    body = answer.json()
    assert body["count"] == 5 and [c["email"] for c in body["sample"]] == [f"p{i}@example.com" for i in range(5)]
    assert http.post(SEGMENTS + "/count.json", data=rows_form("", *VIP_LA)).status_code == 403  # no token

    saved = http.post(SEGMENTS + "/new", data=rows_form(token, *VIP_LA, action="save", name="la-confirmed",
                                                        description="Confirmed, LA clinic"))
    assert saved.status_code == 303 and saved.headers["location"] == SEGMENTS
    listing = http.get(SEGMENTS).text  # drawn at once; the count comes from counts.json
    assert re.search(r'la-confirmed</a></th>\s*<td class="count" data-segment="\d+">counting…</td>', listing)
    assert "/staff/static/segment-counts.js" in listing and "/staff/segments?counts=now" in listing
    counts = http.get(SEGMENTS + "/counts.json").json()
    assert list(counts.values()) == [{"count": 2, "text": "2"}]
    listing = http.get(SEGMENTS).text  # now known: no script needed
    assert re.search(r'la-confirmed</a></th>\s*<td class="count" data-segment="\d+">2</td>', listing)
    assert "segment-counts.js" not in listing
    assert 'href="/staff/contacts?segment=la-confirmed"' in listing  # its contacts, one link away
    with live_server.db.session() as s:
        segment = s.scalar(select(Segment).where(Segment.name == "la-confirmed"))
        assert segment is not None and segment.definition == {"all": [{"list": "newsletter", "status": "confirmed"},
                                                                     {"field": "clinic", "op": "eq", "value": "LA"}]}
        segment_id = segment.id

    # A second segment by the same name is refused beside the name.
    again = http.post(SEGMENTS + "/new", data=rows_form(token, *VIP_LA, action="save", name="la-confirmed"))
    assert again.status_code == 400 and "already" in again.text

    # Edit: the rows come back, with the count; change to "any" and save.
    edit = http.get(f"{SEGMENTS}/{segment_id}")
    assert edit.status_code == 200 and 'value="clinic"' in edit.text and "2 mailable contacts" in edit.text
    changed = http.post(f"{SEGMENTS}/{segment_id}", data=rows_form(token, *VIP_LA, match="any", action="save"))
    assert changed.status_code == 303
    # Without JavaScript: the link counts them all before the page is drawn (the changed one anew).
    assert re.search(r'la-confirmed</a></th>\s*<td class="count" data-segment="\d+">5</td>',
                     http.get(SEGMENTS + "?counts=now").text)

    # The advanced text: a nested definition the rows cannot hold, then it opens as text.
    text = "any:\n  - all: [{tag: vip}, {field: clinic, value: SF}]\n  - {lead_stage: booked}\n"
    advanced = http.post(f"{SEGMENTS}/{segment_id}", data={"csrf_token": token, "mode": "text", "definition": text,
                                                            "rows": "0", "action": "save"})
    assert advanced.status_code == 303
    reopened = http.get(f"{SEGMENTS}/{segment_id}").text
    # Saved anew, it has no kept count: the page is drawn without counting (its script, or Count, does).
    assert 'id="mode-text" name="mode" value="text" checked' in reopened and "Not counted in the last" in reopened
    assert "data-count-on-load" in reopened
    http.get(SEGMENTS + "?counts=now")  # counted (and kept) for the list: the segment's page shows it
    assert "1 mailable contact<" in http.get(f"{SEGMENTS}/{segment_id}").text

    deleted = http.post(f"{SEGMENTS}/{segment_id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303 and "No segments yet" in http.get(SEGMENTS).text
    with live_server.db.session() as s:
        entries = s.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.target, AuditEntry.detail)
                            .where(AuditEntry.action.like("segment%")).order_by(AuditEntry.id)).all()
    target = f"segment {segment_id}"
    assert [tuple(e) for e in entries] == [(marketing.email, "segment_saved", target, "created"),
                                           (marketing.email, "segment_saved", target, "changed"),
                                           (marketing.email, "segment_saved", target, "changed"),
                                           (marketing.email, "segment_deleted", target, None)]


@pytest.mark.parametrize(("form", "where", "expected"), [
    ({"rows": [("field", "gt", "age", "old")]}, "condition-0", "compares numbers"),
    ({"rows": [("list", "is", "", "newsletter"), ("status", "is", "", "sleeping")]}, "condition-1",
     "status: 'sleeping' is not one of"),
    ({"rows": [("list", "is", "", "newsletter"), ("field", "eq", "bad\"key", "x")]}, "condition-1", "field name"),
    ({"rows": [("tag", "within_days", "", "3")]}, "condition-0", "does not go with"),
    ({"rows": [("engaged", "within_days", "", "soon")]}, "condition-0", "number of days"),
    ({"mode": "text", "definition": "all: [{tag: vip}, {colour: red}]"}, "definition", "unknown condition 'colour'"),
    ({"mode": "text", "definition": "all: [unclosed"}, "definition", "not valid YAML at line 1"),
    ({"mode": "text", "definition": ""}, "definition", "write the definition"),
])
def test_a_bad_definition_is_shown_beside_its_condition(live_server: LiveServer, http: httpx.Client,
                                                        form: dict[str, object], where: str, expected: str) -> None:
    token = csrf_of(http.get(SEGMENTS + "/new").text)
    rows = form.get("rows", [])
    data = rows_form(token, *rows, action="save", name="broken")  # type: ignore[arg-type]
    data.update({k: str(v) for k, v in form.items() if k != "rows"})
    answer = http.post(SEGMENTS + "/new", data=data)
    assert answer.status_code == 400 and "Traceback" not in answer.text
    match = re.search(rf'<p class="error" id="{where}-error">([^<]*)</p>', answer.text)
    assert match and expected.lower() in html.unescape(match.group(1)).lower(), match and match.group(1)
    assert f'aria-describedby="{where}-error"' in answer.text or f"{where}-error\"" in answer.text
    counted = http.post(SEGMENTS + "/count.json", data={**data, "action": "count"}, headers={"X-CSRF-Token": token})
    assert counted.status_code == 400 and expected.lower() in str(counted.json()).lower()
    with live_server.db.session() as s:
        assert s.scalar(select(Segment)) is None


def test_a_list_that_does_not_exist_is_refused_on_save(live_server: LiveServer, http: httpx.Client) -> None:
    token = csrf_of(http.get(SEGMENTS + "/new").text)
    answer = http.post(SEGMENTS + "/new", data=rows_form(token, ("tag", "is", "", "vip"), ("list", "is", "", "nope"),
                                                         action="save", name="typo"))
    assert answer.status_code == 400
    assert re.search(r'id="condition-1-error">[^<]*there is no list &#39;nope&#39;', answer.text)


def test_clinic_staff_cannot_open_segments(live_server: LiveServer, db: Database, marketing: Login) -> None:
    clinic = make_user(db, "cal@clinic.example", Role.CLINIC)
    with signed_in(live_server, clinic) as c:
        for path in (SEGMENTS, SEGMENTS + "/new", SEGMENTS + "/1"):
            assert c.get(path).status_code == 403, path
        token = csrf_of(c.get("/staff/account").text)
        answer = c.post(SEGMENTS + "/count.json", data=rows_form(token, *VIP_LA))
        assert answer.status_code == 403 and "p0@example.com" not in answer.text


def test_list_counts_are_kept_until_the_segment_changes(db: Database) -> None:
    audience(db)
    with db.session() as s:
        vip = segments.save_segment(s, "vip", {"tag": "vip"})
        assert segment_counts.known([vip]) == {}
        assert segment_counts.count_all(s, [vip]) == {vip.id: 4}
        s.add(ContactTag(contact_id=6, tag="vip"))  # a fifth: the kept count stays until FRESH has passed
        s.flush()
        assert segment_counts.known([vip]) == {vip.id: 4} and segment_counts.count_all(s, [vip]) == {vip.id: 4}
        vip = segments.save_segment(s, "vip", {"tags_any": ["vip"]})  # a new definition: counted anew
        s.flush()
        assert segment_counts.known([vip]) == {} and segment_counts.count_all(s, [vip]) == {vip.id: 5}
