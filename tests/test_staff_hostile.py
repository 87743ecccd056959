"""Hostile requests against the staff pages on a real server, SQLite and PostgreSQL: what an
insider, an outsider or a crafted file can send that a form never would (ids that are not ids, NUL
characters, the last code points, dates at the edge of the calendar, huge bodies, lists and counts,
codecs that are no file's, a Reply-To hiding a second address, numbers past what their use holds),
and a form sent several times at once. Each is answered with a page that says what was wrong (400,
404 or 413), never a 500; nothing is stored twice, lost or half written."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import func, select

from newsletter import stored_settings
from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from newsletter.stored_settings import SettingsRefused
from subscribers.db import _following
from subscribers.suppression import is_suppressed
from tests.contactskit import BACKENDS, seed_person, serve_on
from tests.leadskit import web_lead
from tests.liveserver import LiveServer
from tests.staffkit import Login, csrf_of, make_user, sign_in

NOT_IDS = ["²", "٣", "999999999999", "99999999999999999999", "0", "-1", "1.5", "abc"]


@pytest.fixture(params=BACKENDS)
def any_server(request: pytest.FixtureRequest, settings: Settings) -> Iterator[LiveServer]:
    yield from serve_on(request, settings)


@contextmanager
def signed_in(server: LiveServer, role: Role) -> Iterator[httpx.Client]:
    login: Login = make_user(server.db, f"{role.value}@clinic.example", role)
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as c:
        sign_in(c, login)
        yield c


def test_lead_ids_that_are_not_ids_are_404(any_server: LiveServer) -> None:
    """"²" is a digit to ``str.isdigit`` but not to ``int``; 999999999999 overflows PostgreSQL's integer."""
    web_lead(any_server.db, "lee@example.org", "Lee")
    with signed_in(any_server, Role.CLINIC) as c:
        token = csrf_of(c.get("/staff/leads").text)
        for value in NOT_IDS:
            assert c.get(f"/staff/leads/{value}").status_code == 404, value
            assert c.get("/staff/leads", params={"stage": "new", "after": value}).status_code == 404, value
            for action, data in (("stage", {"stage": "contacted"}), ("bookings", {"date": "2030-01-01", "time": "10:00"})):
                answer = c.post(f"/staff/leads/{value}/{action}", data={**data, "csrf_token": token})
                assert answer.status_code == 404, (value, action)


def test_following_prefix_skips_surrogates_and_the_last_code_point() -> None:
    assert _following("ab") == "ac"
    assert _following("a\ud7ff") == "a\ue000"
    assert _following("a\U0010ffff") == "b"
    assert _following("\U0010ffff\U0010ffff") is None


@pytest.mark.parametrize("term", ["\U0010ffff", "a\ud7ff", "ana\U0010ffff", "%_\\"])
def test_search_by_the_last_code_points(any_server: LiveServer, term: str) -> None:
    seed_person(any_server.db, any_server.settings, "ana@example.org", name="Ana", suppressed=False)
    with signed_in(any_server, Role.MARKETING) as c:
        answer = c.post("/staff/contacts/search", data={"q": term, "csrf_token": csrf_of(c.get("/staff/contacts").text)})
        assert answer.status_code == 200
        assert "ana@example.org" not in answer.text  # nothing starts with these


def test_nul_in_a_filter_or_a_field_is_refused_by_name(any_server: LiveServer) -> None:
    seeded = seed_person(any_server.db, any_server.settings, "ana@example.org", name="Ana", suppressed=False)
    with signed_in(any_server, Role.MARKETING) as c:
        for key in ("list", "tag", "segment"):
            answer = c.get("/staff/contacts", params={key: "a\x00b"})
            assert answer.status_code == 400 and f"“{key}” holds a NUL character" in answer.text
        token = csrf_of(c.get("/staff/contacts").text)
        posts = [("/staff/contacts/search", {"q": "a", "list": "news\x00letter"}, "list"),
                 ("/staff/contacts/new", {"email": "n@example.org", "lists": "news\x00letter"}, "lists"),
                 ("/staff/contacts/export", {"segment": "x\x00"}, "segment"),
                 ("/staff/segments/new", {"name": "vip\x00", "rows": "1", "kind-0": "tag", "op-0": "is",
                                          "value-0": "vip", "action": "save"}, "name"),
                 (f"/staff/contacts/{seeded.contact_id}/suppress", {"reason": "manual", "note": "by\x00phone"}, "note")]
        for path, data, field in posts:
            answer = c.post(path, data={**data, "csrf_token": token})
            assert answer.status_code == 400, (path, answer.status_code)
            assert f"“{field}” holds a NUL character" in answer.text and "Nothing was changed" in answer.text
    with any_server.db.session() as s:
        assert not is_suppressed(s, "ana@example.org")


def test_a_timeline_cursor_past_the_calendar(any_server: LiveServer) -> None:
    seeded = seed_person(any_server.db, any_server.settings, "ana@example.org", name="Ana")
    with signed_in(any_server, Role.MARKETING) as c:
        for older in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "nonsense"):
            answer = c.get(f"/staff/contacts/{seeded.contact_id}", params={"older": older})
            assert answer.status_code == 200, older


# Bodies and uploads ---------------------------------------------------------------------------------


def _multipart(parts: int, extra: bytes = b"") -> Iterator[bytes]:
    """A multipart body with one file part of ``parts`` MB, sent without a Content-Length."""
    yield extra + b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\nemail\n'
    for _ in range(parts):
        yield b"a" * (1024 * 1024)
    yield b"\r\n--XX--\r\n"


MULTIPART = {"content-type": "multipart/form-data; boundary=XX"}


def test_a_visitor_who_never_signed_in_cannot_make_the_server_store_a_big_body(live_server: LiveServer) -> None:
    """FastAPI reads a route's form before its guard runs, and Starlette spools file parts to disk: a
    stranger's 300 MB used to land in the temp folder before the answer "sign in"."""
    for path in ("/staff/contacts/search", "/staff/posts/import/file", "/staff/sign-in"):
        answer = httpx.post(live_server.url + path, content=_multipart(8), headers=MULTIPART, timeout=30)
        assert answer.status_code == 413, path
        declared = httpx.post(live_server.url + path, content=b"q=" + b"a" * 200_000, timeout=30,
                              headers={"content-type": "application/x-www-form-urlencoded"})
        assert declared.status_code == 413, path


def test_a_signed_in_upload_is_cut_off_past_the_largest_upload(live_server: LiveServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter.staff import contact_imports as jobs
    from newsletter.web.staff import body_limit
    monkeypatch.setattr(jobs, "MAX_UPLOAD_BYTES", 1024 * 1024)
    monkeypatch.setattr(live_server.settings, "max_post_bytes", 1024 * 1024)
    assert body_limit.signed_in_bytes(live_server.settings) == 1024 * 1024 + body_limit.FORM_SLACK
    with signed_in(live_server, Role.MARKETING) as c:
        token = csrf_of(c.get("/staff/contacts/import").text)
        field = f'--XX\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'.encode()
        answer = c.post("/staff/contacts/import", content=_multipart(3, field), headers=MULTIPART)
        assert answer.status_code == 413
        small = c.post("/staff/contacts/import", data={"csrf_token": token},
                       files={"file": ("a.csv", b"email\nana@example.org\n", "text/csv")})
        assert small.status_code == 303  # under the bound: the page goes on as before
        assert c.get("/staff/").status_code == 200


def test_a_file_of_too_many_columns_is_refused_at_upload(live_server: LiveServer) -> None:
    """A file of 20,000 columns drew a 20 MB mapping page in 9 s, whose form could not be posted."""
    from newsletter.staff.contact_imports import MAX_COLUMNS
    wide = ("email," + ",".join(f"c{n}" for n in range(MAX_COLUMNS)) + "\nana@example.org\n").encode()
    with signed_in(live_server, Role.MARKETING) as c:
        token = csrf_of(c.get("/staff/contacts/import").text)
        answer = c.post("/staff/contacts/import", data={"csrf_token": token}, files={"file": ("a.csv", wide, "text/csv")})
        assert answer.status_code == 400
        assert f"has {MAX_COLUMNS + 1} columns, more than the {MAX_COLUMNS} this page can map" in answer.text


def test_one_person_may_have_only_a_few_imports_open(live_server: LiveServer) -> None:
    from newsletter.staff.contact_imports import MAX_OPEN_JOBS
    with signed_in(live_server, Role.MARKETING) as c:
        token = csrf_of(c.get("/staff/contacts/import").text)

        def upload() -> httpx.Response:
            return c.post("/staff/contacts/import", data={"csrf_token": token},
                          files={"file": ("a.csv", b"email\nana@example.org\n", "text/csv")})

        jobs = [upload().headers["location"] for _ in range(MAX_OPEN_JOBS)]
        refused = upload()
        assert refused.status_code == 400 and f"you have {MAX_OPEN_JOBS} imports waiting" in refused.text.replace("You", "you")
        assert c.post(jobs[0] + "/discard", data={"csrf_token": token}).status_code == 303
        assert upload().status_code == 303  # one discarded: room for one more


# Settings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ['"x\r\nBcc: e@x.example" <a@clinic.example>', "a@clinic.example, e@x.example",
                                   "a@clinic.example\r\nBcc: e@x.example"])
def test_a_reply_to_of_more_than_one_address_is_refused(settings: Settings, typed: str) -> None:
    """``parseaddr`` took the first address it found and the rest was dropped or, quoted, kept: the
    address checked was not the one the header would carry (the quoted CR LF stored the Bcc's)."""
    with pytest.raises(SettingsRefused) as refused:
        stored_settings.check(settings, {"reply_to": typed})
    assert set(refused.value.errors) == {"reply_to"}


@pytest.mark.parametrize(("typed", "stored"), [
    ('"Evil, <x@evil.example>" <a@clinic.example>', '"Evil, <x@evil.example>" <a@clinic.example>'),
    ("Dr. Lee <a@clinic.example>", '"Dr. Lee" <a@clinic.example>'),
    ("José <a@clinic.example>", "José <a@clinic.example>"),
    ("<a@clinic.example>", "a@clinic.example")])
def test_a_reply_to_is_stored_as_the_one_address_the_header_carries(settings: Settings, typed: str,
                                                                     stored: str) -> None:
    value = stored_settings.check(settings, {"reply_to": typed})["reply_to"]
    assert value == stored
    message = EmailMessage(policy=policy.SMTP)
    message["Reply-To"] = value
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["a@clinic.example"]


# Sequences ------------------------------------------------------------------------------------------


def test_a_delay_past_what_a_timedelta_holds_is_an_error_beside_the_field(live_server: LiveServer) -> None:
    from newsletter.sequences.definition import parse_duration
    from tests.test_staff_sequences import install, step_form
    with pytest.raises(ValueError, match="longer than a year"):
        parse_duration("99999999999d")  # timedelta raised OverflowError: a 500 on the step page
    sequence_id = install(live_server)["Welcome"]
    with signed_in(live_server, Role.MARKETING) as c:
        page = c.get(f"/staff/sequences/{sequence_id}")
        key = re.search(rf'href="/staff/sequences/{sequence_id}/steps/([^"/]+)"', page.text).group(1)  # type: ignore[union-attr]
        form = step_form(live_server.db, sequence_id, key, delay="99999999999d")
        answer = c.post(f"/staff/sequences/{sequence_id}/steps/{key}", data={**form, "csrf_token": csrf_of(page.text)})
        assert answer.status_code == 400 and "longer than a year" in answer.text


# Segments -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("definition", [{"tags_all": [f"t{n}" for n in range(30_000)]},
                                        {"tags_any": [f"t{n}" for n in range(201)]},
                                        {"timezone": ["UTC"] * 40_000},
                                        {"all": [{"tag": "a"}, {"source": ["form"] * 200}]}])
def test_each_value_of_a_list_counts_towards_the_conditions(definition: dict) -> None:
    """30,000 tags in tags_all made SQL that SQLite refuses (a 500 after 12 s on the count)."""
    from subscribers.errors import InputError
    from subscribers.segments import MAX_CONDITIONS, validate
    with pytest.raises(InputError, match=f"more than {MAX_CONDITIONS} conditions"):
        validate(definition)
    assert validate({"tags_all": [f"t{n}" for n in range(MAX_CONDITIONS)]})  # the bound itself is fine


def test_a_count_of_a_huge_list_is_an_error_not_a_500(any_server: LiveServer) -> None:
    with signed_in(any_server, Role.MARKETING) as c:
        token = csrf_of(c.get("/staff/segments/new").text)
        text = '{"tags_all": [' + ", ".join(f'"t{n}"' for n in range(30_000)) + "]}"
        answer = c.post("/staff/segments/count.json", data={"csrf_token": token, "mode": "text", "definition": text})
        assert answer.status_code == 400 and "conditions" in answer.json()["error"]


@pytest.mark.parametrize("typed", ["inf", "1e309", "-inf", "nan"])
def test_a_rate_must_be_a_finite_number(settings: Settings, typed: str) -> None:
    with pytest.raises(SettingsRefused) as refused:
        stored_settings.check(settings, {"rate_per_second": typed})
    assert set(refused.value.errors) == {"rate_per_second"}


def test_an_infinite_rate_is_refused_beside_the_field_on_either_database(any_server: LiveServer) -> None:
    """PostgreSQL's JSONB refuses Infinity: saving "inf" was a 500 there (SQLite stored it)."""
    admin = make_user(any_server.db, "admin@clinic.example", Role.ADMIN, with_totp=True)
    with httpx.Client(base_url=any_server.url, follow_redirects=False, timeout=30) as c:
        sign_in(c, admin)
        token = csrf_of(c.get("/staff/settings").text)
        answer = c.post("/staff/settings/limits", data={"rate_per_second": "inf", "rate_per_day": "0",
                                                        "frequency_cap_hours": "0", "test_send_limit": "5",
                                                        "csrf_token": token})
        assert answer.status_code == 400
        assert re.search(r'id="rate_per_second-error">Give a number', answer.text)


def test_a_rate_near_zero_is_refused(settings: Settings) -> None:
    """1e-10 emails a second paced a batch of 1,000 10^13 s on: past what a wait can take (OverflowError)."""
    with pytest.raises(SettingsRefused) as refused:
        stored_settings.check(settings, {"rate_per_second": "0.0000000001"})
    assert "at least 0.0003" in refused.value.errors["rate_per_second"]
    assert stored_settings.check(settings, {"rate_per_second": "0"}) == {"rate_per_second": 0}
    assert stored_settings.check(settings, {"rate_per_second": "0.0003"}) == {"rate_per_second": 0.0003}


@pytest.mark.parametrize(("name", "most"), [("frequency_cap_hours", "8760"), ("rate_per_day", "1000000000")])
def test_whole_number_settings_have_an_upper_bound(settings: Settings, name: str, most: str) -> None:
    """10^20 hours was saved, and the sequence engine's timedelta(hours=...) raised every round."""
    with pytest.raises(SettingsRefused) as refused:
        stored_settings.check(settings, {name: "99999999999999999999"})
    assert refused.value.errors[name] == f"Give a number of {most} or less."
    assert stored_settings.check(settings, {name: most}) == {name: int(most)}


# Contacts -------------------------------------------------------------------------------------------


def test_typed_tags_and_fields_are_bounded_and_a_long_tag_is_not_echoed_whole(any_server: LiveServer) -> None:
    """50,000 tags were saved on one contact (then drawn on every page that shows it)."""
    from subscribers.contacts import MAX_TYPED_FIELDS, MAX_TYPED_TAGS
    seeded = seed_person(any_server.db, any_server.settings, "ana@example.org", name="Ana", suppressed=False)
    path = f"/staff/contacts/{seeded.contact_id}/details"
    with signed_in(any_server, Role.MARKETING) as c:
        token = csrf_of(c.get("/staff/contacts").text)
        many_tags = ",".join(f"t{n}" for n in range(MAX_TYPED_TAGS + 1))
        answer = c.post(path, data={"csrf_token": token, "tags": many_tags, "fields": ""})
        assert answer.status_code == 400 and f"a contact has at most {MAX_TYPED_TAGS}" in answer.text
        many_fields = "\n".join(f"k{n}: v" for n in range(MAX_TYPED_FIELDS + 1))
        answer = c.post(path, data={"csrf_token": token, "tags": "vip", "fields": many_fields})
        assert answer.status_code == 400 and f"at most {MAX_TYPED_FIELDS} custom fields" in answer.text
        answer = c.post(path, data={"csrf_token": token, "tags": "a" * 100_000, "fields": ""})
        error = re.search(r'id="tags-error">(.*?)</p>', answer.text, re.S)
        assert answer.status_code == 400 and error and len(error.group(1)) < 200  # the field keeps it; the error does not
        fine = ",".join(f"t{n}" for n in range(MAX_TYPED_TAGS))
        assert c.post(path, data={"csrf_token": token, "tags": fine, "fields": "k: v"}).status_code == 303


def test_the_audit_log_until_the_last_day_of_the_calendar(live_server: LiveServer) -> None:
    admin = make_user(live_server.db, "admin@clinic.example", Role.ADMIN, with_totp=True)
    with httpx.Client(base_url=live_server.url, follow_redirects=False, timeout=30) as c:
        sign_in(c, admin)
        answer = c.get("/staff/audit", params={"until": "9999-12-31"})
        assert answer.status_code == 400 and "Give a date before 9999-12-31." in answer.text
        assert c.get("/staff/audit", params={"until": "9999-12-30", "since": "0001-01-01"}).status_code == 200


@pytest.mark.parametrize(("encoding", "said"), [("utf-16", "cannot be read as UTF-16"), ("punycode", "nknown encoding"),
                                                ("undefined", "nknown encoding"), ("unicode_escape", "nknown encoding")])
def test_an_encoding_that_is_no_file_encoding_is_an_error_beside_the_field(live_server: LiveServer, encoding: str,
                                                                          said: str) -> None:
    """They raised UnicodeError, not a decoding error: a 500 on upload."""
    with signed_in(live_server, Role.MARKETING) as c:
        token = csrf_of(c.get("/staff/contacts/import").text)
        answer = c.post("/staff/contacts/import", data={"csrf_token": token, "encoding": encoding},
                        files={"file": ("a.csv", b"email\nana@example.org\n", "text/csv")})
        assert answer.status_code == 400 and said in answer.text


def test_two_requests_to_run_one_import_run_it_once(live_server: LiveServer) -> None:
    """A double click (or a replayed form) on "Import" read the job as waiting in both requests and
    started two threads importing the same file: two audit entries, one saying nothing was added."""

    from newsletter.staff import contact_imports as jobs
    from newsletter.staff.users import get
    settings = live_server.settings
    make_user(live_server.db, "mia@clinic.example", Role.MARKETING)
    with live_server.db.session() as s:
        user = get(s, "mia@clinic.example")
        s.expunge(user)
    rows = ("email\n" + "".join(f"p{n}@example.org\n" for n in range(50))).encode()
    job, _ = jobs.save_upload(settings, user, io.BytesIO(rows))
    first, second = jobs.find_job(settings, job.id, user), jobs.find_job(settings, job.id, user)  # both read "mapping"
    assert first is not None and second is not None
    options = jobs.RunOptions(list_slug="newsletter", confirmed=False, consent_note="", tags=[],
                              mapping={"email": "email"})
    finished = threading.Event()
    jobs.start(live_server.db, settings, first, user, options, on_done=lambda _: finished.set())
    with pytest.raises(InputError, match="already started"):
        jobs.start(live_server.db, settings, second, user, options)
    assert finished.wait(30)
    with live_server.db.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "import")) == 1


# A form sent several times at once ------------------------------------------------------------------


def _burst_each(server: LiveServer, client: httpx.Client, path: str, forms: list[dict[str, str]]) -> list[int]:
    """Each of ``forms`` posted to ``path`` at once, each by its own connection with the same session."""
    answers: list[int] = []
    ready = threading.Barrier(len(forms))

    def send(data: dict[str, str]) -> None:
        with httpx.Client(base_url=server.url, cookies=client.cookies, follow_redirects=False, timeout=60) as c:
            ready.wait()
            answers.append(c.post(path, data=data).status_code)

    threads = [threading.Thread(target=send, args=(form,)) for form in forms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(answers)


def test_a_form_sent_several_times_at_once_is_never_a_500(any_server: LiveServer) -> None:
    """On PostgreSQL, two requests inserted the same tag, the same stored setting or the same
    suppression of an erased address: unique violations, 500s (SQLite's writers wait their turn)."""
    seeded = seed_person(any_server.db, any_server.settings, "ana@example.org", name="Ana", suppressed=False)
    admin = make_user(any_server.db, "admin@clinic.example", Role.ADMIN, with_totp=True)
    with httpx.Client(base_url=any_server.url, follow_redirects=False, timeout=30) as c:
        sign_in(c, admin)
        token = csrf_of(c.get("/staff/contacts").text)
        tags = _burst_each(any_server, c, f"/staff/contacts/{seeded.contact_id}/details",
                           [{"csrf_token": token, "tags": "a, b, c", "fields": "k: v"}] * 6)
        assert tags == [303] * 6
        saved = _burst_each(any_server, c, "/staff/settings/organisation",
                            [{"csrf_token": token, "org_name": "Calm Clinic", "newsletter_name": "Calm Notes"}] * 6)
        assert saved == [303] * 6
        erased = _burst_each(any_server, c, f"/staff/contacts/{seeded.contact_id}/erase",
                             [{"csrf_token": token, "confirm_address": "ana@example.org"}] * 6)
        assert erased[0] == 303 and set(erased[1:]) <= {303, 404}  # the others find it gone
    with any_server.db.session() as s:
        changes = s.scalars(select(AuditEntry.target).where(AuditEntry.action.in_(("settings_changed", "erase")))).all()
    assert sorted(changes) == ["contact %d" % seeded.contact_id, "setting newsletter_name", "setting org_name"]


def test_sequence_and_segment_changes_at_once_are_neither_lost_nor_a_500(any_server: LiveServer) -> None:
    """Four steps added at once each read the same definition: all four were told "saved" and audited,
    and only one was kept. An enrolment sent twice and a segment deleted twice were 500s on PostgreSQL."""
    from subscribers.segments import save_segment
    from tests.test_staff_sequences import install
    sequence_id = install(any_server)["Welcome"]
    seed_person(any_server.db, any_server.settings, "ana@example.org", name="Ana", suppressed=False)
    with any_server.db.session() as s:
        segment_id = save_segment(s, "vips", {"tag": "vip"}).id
    with signed_in(any_server, Role.MARKETING) as c:
        token = csrf_of(c.get("/staff/sequences").text)
        added = _burst_each(any_server, c, f"/staff/sequences/{sequence_id}/new-step",
                            [{"csrf_token": token, "key": f"extra-{n}", "where": "", "delay": "1d",
                              "subject": f"Extra {n}", "body": "Hello."} for n in range(4)])
        assert added == [303] * 4
        steps = re.findall(rf'href="/staff/sequences/{sequence_id}/steps/([^"/]+)"', c.get(f"/staff/sequences/{sequence_id}").text)
        assert {f"extra-{n}" for n in range(4)} <= set(steps)
        enrolled = _burst_each(any_server, c, f"/staff/sequences/{sequence_id}/enrol",
                               [{"csrf_token": token, "email": "ana@example.org"}] * 4)
        assert enrolled == [303, 400, 400, 400]
        deleted = _burst_each(any_server, c, f"/staff/segments/{segment_id}/delete", [{"csrf_token": token}] * 4)
        assert deleted == [303, 404, 404, 404]


def test_a_booking_form_sent_several_times_at_once_records_one_booking(any_server: LiveServer) -> None:
    """Without a booking system id, the same lead and time is the same booking: sent four times at
    once on PostgreSQL, each request found none and four bookings were stored."""
    from subscribers.models import Booking
    lead_id = web_lead(any_server.db, "lee@example.org", "Lee")
    with signed_in(any_server, Role.CLINIC) as c:
        token = csrf_of(c.get("/staff/leads").text)
        answers = _burst_each(any_server, c, f"/staff/leads/{lead_id}/bookings",
                              [{"csrf_token": token, "date": "2031-02-01", "time": "10:00"}] * 4)
        assert answers == [303] * 4
    with any_server.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 1
