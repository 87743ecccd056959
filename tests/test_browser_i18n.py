"""A Spanish-speaking visitor in a real browser: signs up on the Spanish page, confirms from the
Spanish confirmation email in the outbox, receives the Spanish version of an issue whose English
version goes to the others, and every page they reach (confirm, confirmed, and from the issue:
preferences, unsubscribe) is in Spanish; each page axe-clean at 390 and 1280 px, with screenshots."""

from __future__ import annotations

import re

import pytest

from newsletter.database import Database
from newsletter.models import Issue
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.transports import OutboxTransport
from subscribers.db import utcnow
from tests.liveserver import LiveServer
from tests.sendkit import make_issue
from tests.test_language_versions import SPANISH_SUBJECT, add_spanish_version, readers_of
from tests.staffkit import visited

pytestmark = pytest.mark.browser


def in_spanish(page, name: str) -> None:  # noqa: ANN001
    assert page.evaluate("document.documentElement.lang") == "es", name
    visited(page, name)


def test_a_spanish_speaker_signs_up_confirms_and_manages_their_subscription_in_spanish(
        browser, live_server: LiveServer, db: Database) -> None:  # noqa: ANN001
    settings = live_server.settings
    context = browser.new_context(locale="es-ES", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/subscribe?lang=es")
    page.get_by_role("heading", name=f"Suscríbase a {settings.newsletter_name}").wait_for()
    in_spanish(page, "i18n-subscribe-es")
    page.get_by_label("Correo electrónico", exact=True).fill("lucia@example.org")
    page.get_by_label("Nombre (opcional)", exact=True).fill("Lucía")
    page.get_by_role("button", name="Suscribirme").click()
    assert page.locator("#consent-error").inner_text().startswith("Marque la casilla")
    # what was typed is kept
    assert page.get_by_label("Correo electrónico", exact=True).input_value() == "lucia@example.org"
    in_spanish(page, "i18n-subscribe-es-error")
    page.get_by_label(settings.consent_text_es).check()
    page.get_by_role("button", name="Suscribirme").click()
    page.get_by_role("heading", name="Revise su bandeja de entrada").wait_for()
    in_spanish(page, "i18n-check-inbox-es")

    live_server.send_queued()  # what serve's dispatchers do in the background
    (confirmation,) = live_server.emails()
    assert confirmation["Subject"] == f"Confirme su suscripción a {settings.newsletter_name}"
    text = confirmation.get_body(("plain",)).get_content()
    assert "Hola Lucía," in text and "Sí, suscribirme:" in text
    page.goto(re.search(r"http\S+/confirm/\S+", text).group(0))
    page.get_by_role("heading", name="Confirme su suscripción").wait_for()
    in_spanish(page, "i18n-confirm-es")
    page.get_by_role("button", name="Sí, suscribirme").click()
    page.get_by_role("heading", name="Ya está suscrito").wait_for()
    in_spanish(page, "i18n-confirmed-es")

    # An issue with a Spanish version: Lucía gets it in Spanish, an English reader the issue's own.
    issue_id = make_issue(db, settings)
    add_spanish_version(db, settings, issue_id)
    readers_of(db, {"sam@example.org": None})
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), utcnow())
    Dispatcher(settings, db, OutboxTransport(live_server.outbox, settings)).run_until_idle()
    issues = {m["To"].addresses[0].addr_spec: m for m in live_server.emails()[1:]}
    assert set(issues) == {"lucia@example.org", "sam@example.org"}
    assert issues["lucia@example.org"]["Subject"] == SPANISH_SUBJECT
    assert issues["sam@example.org"]["Subject"] == "Small steps for steadier days"
    spanish = issues["lucia@example.org"].get_body(("html",)).get_content()
    assert '<html lang="es"' in spanish and "Hola Lucía," in spanish and "Darse de baja" in spanish
    page.set_content(spanish)  # the email as her mail program shows it, then its links as she follows them
    preferences = page.get_by_role("link", name="Actualizar sus preferencias").get_attribute("href")
    page.goto(preferences)
    page.get_by_role("heading", name="Sus preferencias de correo").wait_for()
    in_spanish(page, "i18n-preferences-es")
    page.get_by_label("Como máximo una vez al mes").check()
    page.get_by_role("button", name="Guardar mis preferencias").click()
    assert page.get_by_role("status").inner_text() == "Sus preferencias se han guardado."
    page.get_by_role("button", name="Darse de baja de todos los correos").click()
    page.get_by_role("heading", name="Se ha dado de baja").wait_for()
    in_spanish(page, "i18n-unsubscribed-es")
    context.close()


def test_the_spanish_consultation_form_in_a_browser(browser, live_server: LiveServer) -> None:  # noqa: ANN001
    context = browser.new_context(locale="es-MX", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/consultation")  # no ?lang: the browser's language picks Spanish
    page.get_by_role("heading", name="Solicite una consulta").wait_for()
    in_spanish(page, "i18n-consultation-es")
    page.get_by_role("button", name="Enviar mi solicitud").click()
    page.get_by_role("alert").wait_for()
    assert "Díganos su nombre" in page.locator("#name-error").inner_text()
    in_spanish(page, "i18n-consultation-es-errors")
    context.close()
