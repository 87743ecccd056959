"""Staff give an issue its Spanish version in chromium on a real server: the form on the issue's
Overview (errors beside their fields, what was typed kept), the version listed with its own preview,
then the send and the Results page split by language. Every page is checked with axe at 1280 and 390 px."""

from __future__ import annotations

import re

import pytest

from newsletter import issues as issue_service
from newsletter.models import Issue
from newsletter.posts.blocks import Block, ParsedPost
from newsletter.posts.service import store_post
from newsletter.sending import schedule
from newsletter.staff.roles import Role
from subscribers.db import utcnow
from tests.liveserver import LiveServer
from tests.staffkit import make_user, signed_in_page, visited
from tests.test_language_versions import readers_of

pytestmark = pytest.mark.browser


def test_staff_add_a_spanish_version_preview_it_and_read_the_results_by_language(
        browser, live_server: LiveServer) -> None:  # noqa: ANN001
    settings = live_server.settings
    login = make_user(live_server.db, "mia@clinic.example", Role.MARKETING)
    with live_server.db.session() as s:
        english = store_post(s, ParsedPost(title="Small Steps", blocks=[
            Block("paragraph", html='Walk a little every day: <a href="https://example.org/walk">a guide</a>.')])).post
        spanish = store_post(s, ParsedPost(title="Pequeños pasos", blocks=[
            Block("paragraph", html='Camine un poco cada día: <a href="https://example.org/es/caminar">una guía</a>.')]),
            language="es", translation_of=english.id).post
        issue = issue_service.create_issue(s, settings, english.id, "Small steps for steadier days",
                                           "Habits for the week, one small step at a time")
        issue_id, spanish_id = issue.id, spanish.id
    context, page, elsewhere = signed_in_page(browser, live_server.url, login, next_path=f"/staff/issues/{issue_id}")
    assert page.locator("#versions-none").inner_text() == "This issue has only its own version, in en: everyone gets it."
    # The translated post is offered first, saying so; only the other language is offered.
    post_options = page.get_by_label("Translated post").locator("option").all_inner_texts()
    assert post_options[1] == f"Pequeños pasos (post {spanish_id}, es, translates this issue's post)"
    assert page.get_by_label("Language", exact=True).locator("option").all_inner_texts() == [
        "Choose a language", "Español (es)"]

    # A mistake first: nothing chosen; errors beside their fields, the subject typed is kept.
    page.get_by_label("Subject in that language").fill("Pequeños pasos para días más estables")
    page.get_by_role("button", name="Save the version").click()
    page.wait_for_selector("#version_language-error")
    assert page.locator("#version_language-error").inner_text() == "Choose the version's language."
    assert page.locator("#version_post-error").inner_text() == "Choose the translated post the version is made from."
    assert page.get_by_label("Translated post").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Subject in that language").input_value() == "Pequeños pasos para días más estables"
    visited(page, "staff-issue-version-error")

    # Now with the keyboard: choose, type, save.
    page.get_by_label("Language", exact=True).select_option("es")
    page.get_by_label("Translated post").select_option(str(spanish_id))
    page.get_by_label("Preheader in that language").fill("Hábitos para la semana, un pequeño paso a la vez")
    page.get_by_label("Preheader in that language").press("Enter")
    page.wait_for_url(re.compile(rf".*/staff/issues/{issue_id}#versions$"))
    assert page.get_by_role("status").inner_text().strip().startswith("The es version is saved.")
    versions = page.get_by_role("region", name="Versions of this issue")
    assert [r.split("\t")[:2] for r in versions.locator("tbody tr").all_inner_texts()] == [
        ["en (the issue's own)", "Small steps for steadier days"], ["es", "Pequeños pasos para días más estables"]]
    visited(page, "staff-issue-version-saved")

    # Its own preview: the Spanish email, lang="es", sandboxed like the issue's.
    versions.get_by_role("link", name="Preview the es version").click()
    page.wait_for_url(re.compile(r".*/versions/es/preview\.html$"))
    assert page.evaluate("document.documentElement.lang") == "es"
    assert page.get_by_text("Camine un poco cada día").first.is_visible()
    page.go_back()

    # A test of the Spanish version, chosen beside the addresses.
    page.get_by_label("Version to test").select_option("es")
    page.get_by_role("button", name="Send a test").click()
    page.wait_for_url(re.compile(r".*#tests$"))
    live_server.send_queued()
    (test_copy,) = live_server.emails()
    assert test_copy["Subject"] == "[Test] Pequeños pasos para días más estables"
    for path in live_server.outbox.glob("*.eml"):
        path.unlink()

    # Sent to a Spanish reader and two others: the Results page splits the figures by language.
    readers_of(live_server.db, {"lucia@example.org": "es", "sam@example.org": None, "ann@example.org": "en"})
    with live_server.db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), utcnow())
    live_server.send_queued()
    subjects = {m["To"]: m["Subject"] for m in live_server.emails()}
    assert subjects == {"lucia@example.org": "Pequeños pasos para días más estables",
                        "sam@example.org": "Small steps for steadier days", "ann@example.org": "Small steps for steadier days"}
    page.goto(f"{live_server.url}/staff/issues/{issue_id}/results")
    table = page.get_by_role("region", name="By language version")
    rows = table.locator("tbody tr").all_inner_texts()
    assert [r.split("\t")[:2] for r in rows] == [["en (the issue's own)", "2"], ["es", "1"]]
    visited(page, "staff-issue-results-by-language")
    # Sent: the versions can no longer change; the form is gone.
    page.goto(f"{live_server.url}/staff/issues/{issue_id}")
    assert page.get_by_role("button", name="Save the version").count() == 0
    assert elsewhere == []
    context.close()
