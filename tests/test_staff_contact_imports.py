"""The staff CSV import pages over HTTP against the real app on uvicorn: upload, the mapping step
(the importer's guess, a changed mapping), the run in the background with its progress, the report
on the page and as the CLI's CSV file, the audit entry; bad uploads (binary, empty, too big, no
file) refused beside the field with nothing stored; a job that stopped mid-way (the process died)
said so and resumed; another user and the clinic role cannot open it."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from newsletter.database import Database
from newsletter.staff import contact_imports as jobs
from newsletter.staff.models import AuditEntry
from newsletter.staff.roles import Role
from subscribers.csv_import import import_csv, preview_csv
from subscribers.models import Contact
from tests.liveserver import LiveServer
from tests.staffkit import csrf_of, Login, make_user, signed_in

IMPORT = "/staff/contacts/import"
# A messy file: a BOM, semicolons, mixed-case duplicates, an invalid address, a blank line, a row
# with an extra value, and a header the importer does not know ("E-post" is Norwegian for email).
MESSY = ("\ufeffE-post;First name;Surname;Clinic;Notes\r\n"
         "ana@example.com;Ana;Lopez;LA;first visit\r\n"
         "ANA@Example.com;Ana;López;LA;\r\n"
         "not-an-address;Bo;Berg;SF;\r\n"
         "\r\n"
         "cy@example.com;Cy;Chan;NYC;note;extra\r\n"
         "dee@example.com;Dee;Diaz;London;\r\n")


@pytest.fixture
def marketing(db: Database) -> Login:
    return make_user(db, "mia@clinic.example", Role.MARKETING)


@pytest.fixture
def http(live_server: LiveServer, marketing: Login) -> Iterator[httpx.Client]:
    with signed_in(live_server, marketing) as c:
        yield c


def upload(http: httpx.Client, data: bytes, name: str = "contacts.csv", encoding: str = "") -> httpx.Response:
    token = csrf_of(http.get(IMPORT).text)
    return http.post(IMPORT, data={"csrf_token": token, "encoding": encoding},
                     files={"file": (name, data, "text/csv")})


def error_of(html: str, field_id: str) -> str:
    match = re.search(rf'<p class="error" id="{field_id}-error">([^<]*)</p>', html)
    assert match, f"no error beside #{field_id}"
    return match.group(1)


def wait_done(http: httpx.Client, job_url: str) -> dict[str, object]:
    for _ in range(200):
        state = http.get(job_url + "/progress.json").json()
        if state["done"]:
            return state
        time.sleep(0.05)
    raise AssertionError("the import did not finish")


def import_folders(live_server: LiveServer) -> list[Path]:
    root = jobs.imports_dir(live_server.settings)
    return sorted(root.iterdir()) if root.exists() else []


def contacts(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Contact)) or 0


def test_upload_map_run_and_read_the_report(live_server: LiveServer, http: httpx.Client, marketing: Login) -> None:
    answer = upload(http, MESSY.encode("utf-8"), name="../../etc/passwd.csv")
    assert answer.status_code == 303
    job_url = answer.headers["location"]
    assert re.fullmatch(rf"{IMPORT}/[A-Za-z0-9_-]{{32}}", job_url)
    folder, = import_folders(live_server)  # a random name; the person's file name is in no path
    assert folder.name == job_url.rsplit("/", 1)[1] and sorted(p.name for p in folder.iterdir()) == ["job.json",
                                                                                                      "upload.csv"]
    assert folder.stat().st_mode & 0o077 == 0 and (folder / "upload.csv").stat().st_mode & 0o077 == 0

    step = http.get(job_url)
    assert step.status_code == 200 and "Check the columns" in step.text
    assert "5 rows of contacts" in step.text and "semicolon" in step.text and "read as UTF-8" in step.text
    assert "ana@example.com" in step.text  # the sample
    guessed = dict(re.findall(r'<select id="column-(\d)"[^>]*>.*?<option value="([^"]+)" selected', step.text, re.S))
    assert guessed == {"0": "custom", "1": "first_name", "2": "last_name", "3": "custom", "4": "custom"}
    assert contacts(live_server.db) == 0  # nothing stored yet

    # Without an email column the importer refuses: the message sits beside the mapping.
    form = {"csrf_token": csrf_of(step.text), "column-0": "custom", "column-1": "first_name", "column-2": "last_name",
            "column-3": "custom", "column-4": "ignore", "list": "newsletter", "consent": "double_opt_in"}
    refused = http.post(job_url, data=form)
    assert refused.status_code == 400 and "no email column" in error_of(refused.text, "mapping")
    # A confirmed import needs its note, as the CLI's --confirmed needs --consent-note.
    refused = http.post(job_url, data={**form, "column-0": "email", "consent": "confirmed"})
    assert refused.status_code == 400 and "consent note" in error_of(refused.text, "consent_note")
    refused = http.post(job_url, data={**form, "column-0": "email", "list": "Spring News"})
    assert refused.status_code == 400 and "lower-case letters" in error_of(refused.text, "list")
    refused = http.post(job_url, data={**form, "column-0": "email", "tags": "ok, " + "x" * 101})
    assert refused.status_code == 400 and "1 to 100 characters" in error_of(refused.text, "tags")
    assert 'value="Spring News"' not in refused.text and 'id="column-4" name="column-4"' in refused.text
    assert contacts(live_server.db) == 0

    started = http.post(job_url, data={**form, "column-0": "email", "tags": "spring-open-day"})
    assert started.status_code == 303 and started.headers["location"] == job_url
    state = wait_done(http, job_url)
    assert state == {"state": "finished", "rows_done": 5, "rows_total": 5, "last_line": 7, "percent": 100,
                     "done": True}
    done = http.get(job_url).text
    assert "Import report" in done and "Finished" in done
    figures = dict(re.findall(r"<dt>([^<]+)</dt><dd>(\d+)</dd>", done))
    assert figures == {"Rows read": "5", "Added": "2", "Updated": "0", "Unchanged": "0", "Rejected": "2",
                       "Repeated rows, merged": "1", "Suppressed: skipped": "0",
                       "Left this list earlier: skipped": "0"}
    assert "not-an-address" in done and "the row has 6 cells, the header 5" in done
    assert "Columns not imported: Notes." in done
    assert not (Path(import_folders(live_server)[0]) / "upload.csv").exists()  # removed once done

    report = http.get(job_url + "/report.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert 'filename="import-report.csv"' in report.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert rows[0] == ["line", "column", "value", "reason"]
    assert [r[0] for r in rows[1:-1]] == ["4", "6"] and rows[-1][3].startswith("finished: 5 rows up to line 7")

    with live_server.db.session() as s:
        ana = s.scalar(select(Contact).where(Contact.email == "ana@example.com"))
        assert ana is not None and ana.name == "Ana López" and ana.custom_fields == {"Clinic": "LA"}
        entries = s.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.target, AuditEntry.detail)
                            .where(AuditEntry.action == "import")).all()
    assert [tuple(e) for e in entries] == [(marketing.email, "import", "list newsletter",
                                            "5 CSV rows: 2 added, 0 updated, 2 rejected")]
    assert "@example.com" not in json.dumps([tuple(e) for e in entries])

    # The report can be removed, and the job is gone.
    token = csrf_of(done)
    assert http.post(job_url + "/discard", data={"csrf_token": token}).status_code == 303
    assert http.get(job_url).status_code == 404 and import_folders(live_server) == []


def test_a_changed_mapping_is_the_importers_mapping(tmp_path: Path, db: Database) -> None:
    path = tmp_path / "c.csv"
    path.write_text("E-post,Nom,Ville\nzed@example.com,Zed,Oslo\n", encoding="utf-8")
    assert preview_csv(path, need_email=False).fields == ["custom", "custom", "custom"]
    mapping = {"E-post": "email", "Nom": "name", "Ville": "custom:city"}
    assert preview_csv(path, mapping=mapping).fields == ["email", "name", "custom:city"]
    summary = import_csv(db.engine, path, list_slug="news", default_timezone="UTC", mapping=mapping)
    assert summary.added == 1
    with db.session() as s:
        zed = s.scalar(select(Contact).where(Contact.email == "zed@example.com"))
        assert zed is not None and zed.name == "Zed" and zed.custom_fields == {"city": "Oslo"}


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "The file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
    (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)) * 4, "binary"),
    (b"email,name\n", "there is no row after the header line"),
    (b'email,name\n"a@example.com,Ana\nb@example.com,Bo\n', "a quote opens this value and is never closed"),
])
def test_bad_uploads_are_refused_beside_the_field(live_server: LiveServer, http: httpx.Client, data: bytes,
                                                  expected: str) -> None:
    answer = upload(http, data)
    assert answer.status_code == 400, answer.text[:300]
    assert expected.lower() in error_of(answer.text, "file").lower()
    assert 'aria-invalid="true"' in answer.text and "Traceback" not in answer.text
    assert import_folders(live_server) == [] and contacts(live_server.db) == 0


def test_no_file_and_a_too_big_file(live_server: LiveServer, http: httpx.Client,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    token = csrf_of(http.get(IMPORT).text)
    answer = http.post(IMPORT, data={"csrf_token": token}, files={"file": ("", b"", "text/csv")})
    assert answer.status_code == 400 and error_of(answer.text, "file") == "Choose a CSV file to upload."
    monkeypatch.setattr(jobs, "MAX_UPLOAD_BYTES", 1000)
    # Just over the limit: received, and refused while it is copied.
    big = ("email\n" + "".join(f"c{i}@example.com\n" for i in range(80))).encode()
    answer = upload(http, big)
    assert answer.status_code == 400 and "larger than" in error_of(answer.text, "file")
    # Far over it: refused from its Content-Length, before the body is read.
    huge = big * 200
    answer = upload(http, huge)
    assert answer.status_code == 413 and "larger than" in error_of(answer.text, "file")
    assert import_folders(live_server) == []
    # The CSRF rule still holds for a too-big upload: nothing is done, whatever it carries.
    assert contacts(live_server.db) == 0


def test_a_job_whose_process_died_says_what_was_stored_and_resumes(live_server: LiveServer, http: httpx.Client,
                                                                   ) -> None:
    data = ("email,name\n" + "".join(f"p{i}@example.com,P {i}\n" for i in range(30))).encode()
    job_url = upload(http, data).headers["location"]
    job_id = job_url.rsplit("/", 1)[1]
    settings = live_server.settings
    # As if the web process died once the first batch (lines 2 to 11) was committed: the rows are
    # stored, the state still says running, and no thread of any process runs it.
    job = jobs._read_state(settings, job_id)
    assert job is not None

    def die(step: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_csv(live_server.db.engine, jobs.upload_path(settings, job), list_slug="newsletter",
                   default_timezone="UTC", batch_size=10, report_path=jobs.report_path(settings, job), progress=die)
    assert contacts(live_server.db) == 10
    job.state, job.list_slug, job.pid, job.rows_done, job.last_line, job.heartbeat = "running", "newsletter", 0, 10, 11, 0
    jobs._write_state(settings, job)
    page = http.get(job_url).text
    assert "The import stopped before it finished" in page and "up to line 11 (10 rows)" in page
    assert http.get(job_url + "/progress.json").json()["state"] == "stopped"
    resumed = http.post(job_url + "/resume", data={"csrf_token": csrf_of(page)})
    assert resumed.status_code == 303
    assert wait_done(http, job_url)["state"] == "finished"
    assert "resumed after line 11" in http.get(job_url).text
    assert contacts(live_server.db) == 30  # lines 12 to 31 added after the 10 stored before


def test_only_the_uploader_sees_the_job_and_clinic_staff_see_nothing(live_server: LiveServer, http: httpx.Client,
                                                                     db: Database) -> None:
    job_url = upload(http, b"email\nx@example.com\n").headers["location"]
    other = make_user(db, "ola@clinic.example", Role.ADMIN)
    clinic = make_user(db, "cal@clinic.example", Role.CLINIC)
    with signed_in(live_server, other) as c:
        assert c.get(job_url).status_code == 404 and c.get(job_url + "/progress.json").status_code == 404
        assert c.get(IMPORT).status_code == 200
    with signed_in(live_server, clinic) as c:
        for path in (IMPORT, job_url, job_url + "/progress.json", job_url + "/report.csv"):
            answer = c.get(path)
            assert answer.status_code == 403 and "not for your role" in answer.text, path
        token = csrf_of(c.get("/staff/account").text)
        assert c.post(IMPORT, data={"csrf_token": token}, files={"file": ("a.csv", b"email\na@b.example\n")}
                      ).status_code == 403
        assert c.post(job_url, data={"csrf_token": token, "column-0": "email", "list": "x",
                                     "consent": "double_opt_in"}).status_code == 403
    assert contacts(live_server.db) == 0


def test_the_cli_takes_the_same_mapping(settings: object, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from newsletter.cli import app
    from newsletter.database import Database as Db

    path = tmp_path / "c.csv"
    path.write_text("E-post,Nom,Ville,Notes\nzed@example.com,Zed,Oslo,x\n", encoding="utf-8")
    runner = CliRunner()
    refused = runner.invoke(app, ["contacts", "import", str(path), "--list", "news", "--map", "E-post=mail"])
    assert refused.exit_code == 2 and "'mail' is not a field" in refused.output
    refused = runner.invoke(app, ["contacts", "import", str(path), "--list", "news", "--map", "email"])
    assert refused.exit_code == 2 and "write HEADER=FIELD" in refused.output
    done = runner.invoke(app, ["contacts", "import", str(path), "--list", "news", "--map", "E-post=email",
                               "--map", "Nom=name", "--map", "Ville=custom:city", "--map", "Notes=ignore"])
    assert done.exit_code == 0, done.output
    assert "Ignored columns: Notes." in done.output
    with Db.from_settings(settings).session() as s:  # type: ignore[arg-type]
        zed = s.scalar(select(Contact).where(Contact.email == "zed@example.com"))
        assert zed is not None and zed.name == "Zed" and zed.custom_fields == {"city": "Oslo"}
