"""The contacts import in chromium on a real uvicorn server, as marketing staff would walk it:
upload a messy CSV (Windows-1252, semicolons, a mixed-case duplicate address, an invalid address, a
blank line, a row with an extra value, an email column under a header the importer does not know),
change a column's field, start, watch the progress (the first-party script polls and reloads), and
read the report: its counts and the rejected lines with their reasons, and download it. Every page
is checked with axe and kept as screenshots at 390 and 1280 px; no request leaves for another host."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest

from newsletter.staff import contact_imports as jobs
from newsletter.staff.roles import Role
from subscribers.csv_import import import_csv
from tests.liveserver import LiveServer
from tests.staffkit import make_user, signed_in_page, visited

pytestmark = pytest.mark.browser

MESSY = ("E-post;First name;Last name;Clinic;Notes\r\n"
         "jose.munoz@example.com;José;Muñoz;LA;première visite\r\n"
         "zoe@example.com;Zoë;Brontë;SF;\r\n"
         "ZOE@Example.COM;Zoë;Brontë-Smith;SF;\r\n"
         "not an address;Bo;Berg;SF;\r\n"
         "\r\n"
         "cy@example.com;Cy;Chan;NYC;note;extra\r\n"
         "dee@example.com;Dee;Díaz;London;\r\n").encode("cp1252")



@pytest.fixture
def slow_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """One row a batch and a pause after each, so that the progress is there to be seen."""
    def slowly(*args: Any, progress: Any = None, **kwargs: Any) -> Any:
        def step(done: Any) -> None:
            progress(done)
            time.sleep(0.4)
        return import_csv(*args, progress=step, batch_size=1, **kwargs)
    monkeypatch.setattr(jobs, "import_csv", slowly)


def test_import_a_messy_csv_and_read_its_report(browser: Any, live_server: LiveServer, slow_import: None,
                                                 tmp_path: Any) -> None:
    login = make_user(live_server.db, "mia@clinic.example", Role.MARKETING)
    context, page, elsewhere = signed_in_page(browser, live_server.url, login, next_path="/staff/contacts/import", accept_downloads=True)
    assert page.get_by_role("heading", level=1).inner_text() == "Import contacts from a CSV file"
    visited(page, "staff-contacts-import")

    # An empty file first: refused beside the field.
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    page.locator("#file").set_input_files(str(empty))
    page.get_by_role("button", name="Upload and check the columns").click()
    assert "The file is empty" in page.locator("#file-error").inner_text()
    assert page.locator("#file").get_attribute("aria-invalid") == "true"
    visited(page, "staff-contacts-import-error")

    messy = tmp_path / "Patients export (Excel).csv"
    messy.write_bytes(MESSY)
    page.locator("#file").set_input_files(str(messy))
    page.get_by_role("button", name="Upload and check the columns").click()
    page.wait_for_url(f"{live_server.url}/staff/contacts/import/*")
    job_url = page.url
    assert "Patients" not in job_url
    assert page.get_by_role("heading", level=1).inner_text() == "Check the columns"
    facts = page.locator(".facts").inner_text()
    assert "6 rows of contacts" in facts and "Windows-1252" in facts and "semicolon" in facts
    assert page.get_by_role("cell", name="Zoë", exact=True).first.is_visible()  # decoded right: the sample
    assert page.get_by_label("Field for column First name").input_value() == "first_name"
    assert page.get_by_label("Field for column E-post").input_value() == "custom"
    visited(page, "staff-contacts-import-map")

    # Starting as guessed: no email column, said beside the columns; the choices are kept.
    page.get_by_label("Field for column Notes").select_option("ignore")
    page.get_by_role("button", name="Start the import").click()
    assert "no email column" in page.locator("#mapping-error").inner_text()
    assert page.get_by_label("Field for column Notes").input_value() == "ignore"
    visited(page, "staff-contacts-import-map-error")

    # Change one mapping with the keyboard: E-post is the email.
    page.get_by_label("Field for column E-post").focus()
    page.get_by_label("Field for column E-post").select_option("email")
    page.locator("#list").fill("newsletter")
    page.locator("#tags").fill("open-day")
    page.locator("#tags").press("Enter")
    page.wait_for_url(job_url)
    assert "The import has started" in page.get_by_role("status").inner_text()
    assert page.get_by_role("heading", level=1).inner_text() == "Importing contacts"
    rows = page.locator("#import-rows")
    assert rows.inner_text().endswith("of 6 rows done")
    visited(page, "staff-contacts-import-progress")
    # The script moves the bar as batches commit, then loads the report.
    seen = set()
    for _ in range(200):  # (the page's CSP allows no eval, so no wait_for_function)
        if page.locator("#import-rows").count():
            seen.add(page.locator("#import-rows").inner_text())
        if page.get_by_role("heading", name="Import report").count():
            break
        time.sleep(0.05)
    assert any(text not in ("0 of 6 rows done", "6 of 6 rows done") for text in seen), seen  # moved between
    page.get_by_role("heading", name="Import report").wait_for(timeout=20_000)

    assert page.locator("#import-rows").inner_text() == "6 of 6 rows done"
    figures = dict(zip(page.locator("dl.figures dt").all_inner_texts(), page.locator("dl.figures dd").all_inner_texts(),
                       strict=True))
    assert {k: figures[k] for k in ("Rows read", "Added", "Rejected", "Repeated rows, merged")} == {
        "Rows read": "6", "Added": "3", "Rejected": "2", "Repeated rows, merged": "1"}
    report = page.get_by_role("region", name="Rejected rows")
    lines = [row.locator("td").all_inner_texts() for row in report.locator("tbody tr").all()]
    assert [(r[0], r[2]) for r in lines] == [("5", "not an address"), ("7", "")]
    assert "the row has 6 cells, the header 5" in lines[1][3]
    assert lines[0][3]  # a reason, as the importer words it
    visited(page, "staff-contacts-import-report")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the report (CSV)").click()
    saved = download_info.value.path()
    assert saved is not None
    rows_csv = list(csv.reader(io.StringIO(open(saved, encoding="utf-8-sig").read())))
    assert rows_csv[0] == ["line", "column", "value", "reason"] and [r[0] for r in rows_csv[1:3]] == ["5", "7"]

    # After a reload the report is still there (the job's state is on disk, not in the page).
    page.reload()
    assert page.get_by_role("heading", name="Import report").is_visible()
    assert elsewhere == []
    context.close()
