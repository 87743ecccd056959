"""Words in the reader's language: the catalogues, the emails' own words, and the public pages in
Spanish over real HTTP (sign-up, check inbox, confirm, confirmed, preferences, unsubscribe, link
problems, consultation), with English staying the default."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from lxml import html as lxml_html
from sqlalchemy import select

from newsletter.compose.layouts import Card, DIGEST, TEASER
from newsletter.compose.personalize import substitute
from newsletter.compose.render import render_email
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.i18n import asked_language, long_date, translations
from newsletter.urls import recipient_values
from subscribers.models import ConsentEvent, ConsentText, Contact, Lead
from subscribers.languages import LANGUAGES
from tests.emailkit import content
from tests.liveserver import LiveServer

ROOT = Path(__file__).resolve().parents[1]
SPANISH_PO = ROOT / "newsletter" / "locale" / "es" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def wording(session, digest: str | None) -> tuple[str, str]:  # noqa: ANN001
    """The consent text and version stored under ``digest``."""
    stored = session.get(ConsentText, digest)
    return stored.text, stored.version


def visible(response: httpx.Response) -> str:
    return " ".join(lxml_html.document_fromstring(response.text).text_content().split())


def lang_of(response: httpx.Response) -> str | None:
    return lxml_html.document_fromstring(response.text).get("lang")


def link_in(message, path: str) -> str:  # noqa: ANN001
    match = re.search(rf"https?://\S+/{path}/\S+", message.get_body(("plain",)).get_content())
    assert match
    return match.group(0)


# The catalogues ---------------------------------------------------------------------------------


def used_msgids() -> set[str]:
    """Every msgid the code and templates use, extracted as ``pybabel extract -F babel.cfg`` does."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(ROOT, method_map, options_map):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_word_the_code_uses_has_a_spanish_translation_with_the_same_placeholders() -> None:
    with SPANISH_PO.open("rb") as source:
        catalogue = read_po(source, locale="es")
    used = used_msgids()
    assert len(used) > 100  # the pages, the consultation form and the emails' own words
    for msgid in used:
        message = catalogue.get(msgid)
        assert message is not None, f"{msgid!r} is not in {SPANISH_PO.name}: run the update command in the README"
        assert "fuzzy" not in message.flags, msgid
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        assert all(strings), f"{msgid!r} has no Spanish translation"
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(ids[0])), msgid
    obsolete = {m.id if isinstance(m.id, str) else m.id[0] for m in catalogue if m.id} - used
    assert not obsolete, f"translations no code uses any more: {sorted(obsolete)}"


def test_the_catalogues_compile_from_po_with_python_alone() -> None:
    spanish = translations("es")
    assert spanish.gettext("Unsubscribe") == "Darse de baja"
    assert spanish.ngettext("%(num)d min read", "%(num)d min read", 5) == "%(num)d min de lectura"
    assert translations("en").gettext("Unsubscribe") == "Unsubscribe"  # English is the source: no catalogue
    assert translations("fr").gettext("Unsubscribe") == "Unsubscribe"  # not ours: English, never a crash


@pytest.mark.parametrize(("query", "header", "chosen"), [
    ("es", None, "es"), (None, "es-MX,es;q=0.9,en;q=0.5", "es"), (None, "fr-FR, en;q=0.8", "en"),
    (None, "fr, de;q=0.5", None), (None, None, None), ("zz", "es", "es"), (None, "en;q=0.2, es;q=0.9", "es"),
    (None, "es;q=0, en", "en"), (None, "es;q=abc", None),
])
def test_a_visitors_language_is_the_query_then_the_browsers_best_we_speak(query: str | None, header: str | None,
                                                                          chosen: str | None) -> None:
    assert asked_language(query, header) == chosen


def test_dates_are_written_as_each_language_writes_them() -> None:
    from datetime import date

    assert long_date(date(2026, 12, 7), "en") == "7 December 2026"
    assert long_date(date(2026, 12, 7), "es") == "7 de diciembre de 2026"


# The emails' own words --------------------------------------------------------------------------


def test_an_email_compiled_in_spanish_has_its_own_words_in_spanish_and_the_post_as_written(settings: Settings) -> None:
    email = render_email(content(), settings, language="es")
    html = substitute(email.html, recipient_values(settings, "tok", "Ana"))
    doc = lxml_html.document_fromstring(html)
    text = " ".join(doc.text_content().split())
    assert doc.get("lang") == "es"
    for words in ("Ver en el navegador", "Hola Ana,", "3 de noviembre de 2026 · 3 min de lectura", "Referencias",
                  "Actualizar sus preferencias", "Darse de baja", "Reserve una consulta",
                  "Recibe este correo porque se suscribió a"):
        assert words in text, words
    assert "Small Steps for Steadier Days" in text  # the post's words are the post's: not translated here
    for english in ("View in your browser", "Unsubscribe", "min read", "References", "Hi Ana"):
        assert english not in text, english
    plain = substitute(email.text, recipient_values(settings, "tok", "Ana"))
    assert "Ver en el navegador:" in plain and "Darse de baja:" in plain and "Referencias\n-----------" in plain


def test_english_stays_the_default_and_a_clinics_own_button_wording_is_kept(settings: Settings) -> None:
    assert render_email(content(), settings).html == render_email(content(), settings, language="en").html
    settings.cta_label = "Talk to our team"  # the clinic's own words: not in the catalogue, kept as written
    doc = lxml_html.document_fromstring(render_email(content(), settings, language="es").html)
    assert "Talk to our team" in doc.text_content()


def test_compile_email_passes_the_language_on(settings: Settings) -> None:
    from newsletter.compose.compile import compile_email

    assert 'lang="es"' in compile_email(content(), settings, language="es").html


def test_teaser_and_digest_links_follow_the_language(settings: Settings) -> None:
    teaser = render_email(content(layout=TEASER, read_url="https://clinic.example/post"), settings, language="es")
    assert "Siga leyendo en nuestro sitio" in teaser.html and "Siga leyendo en nuestro sitio:" in teaser.text
    cards = [Card(title=f"Post {n}", url=f"https://clinic.example/{n}", excerpt="Un resumen.", image=None)
             for n in range(3)]
    digest = render_email(content(layout=DIGEST, cards=cards), settings, language="es")
    assert digest.html.count(">Leer más<") == 3 and 'aria-label="Leer más: Post 0"' in digest.html
    assert "Leer más: https://clinic.example/0" in digest.text


# The public pages over HTTP ---------------------------------------------------------------------


def test_the_spanish_sign_up_stores_the_pages_language_and_the_spanish_consent(live_server: LiveServer,
                                                                              db: Database) -> None:
    settings = live_server.settings
    with httpx.Client(base_url=live_server.url) as client:
        page = client.get("/subscribe?lang=es")
        assert page.status_code == 200 and lang_of(page) == "es"
        assert "Suscríbase a" in visible(page) and settings.consent_text_es in visible(page)
        assert settings.consent_text not in visible(page)
        assert '<input type="hidden" name="lang" value="es">' in page.text

        bad = client.post("/subscribe", data={"email": "nope", "lang": "es"})
        assert bad.status_code == 400 and lang_of(bad) == "es"
        assert "Escriba una dirección de correo" in visible(bad) and "Marque la casilla" in visible(bad)

        done = client.post("/subscribe", data={"email": "ana@example.org", "consent": "yes", "lang": "es"})
        assert done.status_code == 200 and lang_of(done) == "es" and "Revise su bandeja de entrada" in visible(done)
        assert live_server.send_queued().one_offs == 1
        (confirmation,) = live_server.emails()
        assert confirmation["Subject"].startswith("Confirme su suscripción a")
        body = confirmation.get_body(("html",)).get_content()
        assert 'lang="es"' in body and "Sí, suscribirme" in body and "Hola a usted," in body

        link = link_in(confirmation, "confirm")
        confirm = client.get(link)
        assert lang_of(confirm) == "es" and "Confirme su suscripción" in visible(confirm)
        confirmed = client.post(link)
        assert lang_of(confirmed) == "es" and "Ya está suscrito" in visible(confirmed)
        prefs_url = re.search(r'href="(http[^"]+/preferences/[^"]+)"', confirmed.text).group(1)
        prefs = client.get(prefs_url)
        assert lang_of(prefs) == "es" and "Sus preferencias de correo" in visible(prefs)
        assert "Cada número" in visible(prefs) and settings.consent_text_es in visible(prefs)
        unsubscribe_url = re.search(r'action="(/u/[^"]+)"', prefs.text).group(1)
        unsubscribe = client.get(unsubscribe_url)
        assert lang_of(unsubscribe) == "es" and "Pulse el botón para dejar de recibir" in visible(unsubscribe)
        gone = client.post(unsubscribe_url)
        assert lang_of(gone) == "es" and "Se ha dado de baja" in visible(gone)
    with db.session() as s:
        assert s.scalar(select(Contact.language)) == "es"
        first = s.scalar(select(ConsentEvent).order_by(ConsentEvent.id))
        assert wording(s, first.consent_text_hash) == (settings.consent_text_es, settings.consent_version_es)


def test_english_pages_stay_english_and_store_no_language_unless_asked(live_server: LiveServer, db: Database) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        page = client.get("/subscribe")
        assert lang_of(page) == "en" and "Subscribe to" in visible(page) and 'name="lang"' not in page.text
        client.post("/subscribe", data={"email": "bo@example.org", "consent": "yes"})
        by_browser = client.get("/subscribe", headers={"Accept-Language": "es-ES,es;q=0.9"})
        assert lang_of(by_browser) == "es"  # no contact yet: the browser's language picks the page's
    with db.session() as s:
        assert s.scalar(select(Contact.language)) is None  # never said: follows the newsletter's language
        event = s.scalar(select(ConsentEvent))
        settings = live_server.settings
        assert wording(s, event.consent_text_hash) == (settings.consent_text, settings.consent_version)


def test_pages_reached_from_an_email_speak_the_contacts_language_whatever_the_browser(live_server: LiveServer,
                                                                                       db: Database) -> None:
    with httpx.Client(base_url=live_server.url, headers={"Accept-Language": "en-US"}) as client:
        client.post("/subscribe", data={"email": "ana@example.org", "consent": "yes", "lang": "es"})
        live_server.send_queued()
        page = client.get(link_in(live_server.emails()[0], "confirm"))
    assert lang_of(page) == "es" and "Sí, suscribirme" in visible(page)


def test_link_problem_and_check_inbox_pages_in_spanish(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        broken = client.get("/confirm/not-a-token?lang=es")
        assert broken.status_code == 404 and lang_of(broken) == "es"
        assert "Este enlace no funciona" in visible(broken) and "Envíenme un enlace nuevo" in visible(broken)
        resent = client.post("/confirm/resend", data={"email": "x@example.org", "lang": "es"})
        assert lang_of(resent) == "es" and "Si esa dirección está pendiente de confirmación" in visible(resent)


def test_the_consultation_form_in_spanish(live_server: LiveServer, db: Database) -> None:
    settings = live_server.settings
    with httpx.Client(base_url=live_server.url) as client:
        page = client.get("/consultation?lang=es")
        assert lang_of(page) == "es" and "Solicite una consulta" in visible(page)
        assert "Llamada telefónica" in visible(page) and "Mañanas entre semana" in visible(page)
        assert settings.consultation_consent_text_es in visible(page) and settings.consent_text_es in visible(page)
        bad = client.post("/consultation", data={"lang": "es", "email": "ana@example.org"})
        assert bad.status_code == 400 and lang_of(bad) == "es"
        assert "Revise los campos marcados abajo." in visible(bad) and "Díganos su nombre" in visible(bad)
        call = client.post("/consultation", data={"lang": "es", "preferred_contact": "phone"})
        assert "Indíquenos un número de teléfono, para poder llamarle." in visible(call)
        sent = client.post("/consultation", data={
            "lang": "es", "name": "Ana", "email": "ana@example.org", "preferred_contact": "email",
            "requested_time": "weekday_mornings", "timezone": "Europe/Madrid", "consent_contact": "yes"})
        assert sent.status_code == 200 and lang_of(sent) == "es"
        assert "Gracias, hemos recibido su solicitud" in visible(sent)
    live_server.send_queued()
    (acknowledgement,) = live_server.emails()
    assert acknowledgement["Subject"] == "Gracias por escribirnos"
    body = acknowledgement.get_body(("plain",)).get_content()
    assert "por correo electrónico, mañanas entre semana si es posible." in " ".join(body.split())
    with db.session() as s:
        assert s.scalar(select(Contact.language)) == "es"
        lead = s.scalar(select(Lead))
        assert wording(s, lead.contact_consent_text_hash) == (settings.consultation_consent_text_es,
                                                              settings.consultation_consent_version_es)


def test_every_public_page_says_which_language_it_is_in(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        for language in LANGUAGES:
            for path in ("/subscribe", "/consultation", "/confirm/bad"):
                assert lang_of(client.get(f"{path}?lang={language}")) == language, path


def test_pages_not_translated_stay_in_the_newsletters_language_for_a_spanish_browser(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, headers={"Accept-Language": "es"}) as client:
        archive = client.get("/archive")
    assert archive.status_code == 200 and lang_of(archive) == "en"  # its issues are in the newsletter's language


def test_a_message_page_shows_a_title_that_is_not_a_msgid_as_given(live_server: LiveServer) -> None:
    from starlette.requests import Request

    from newsletter.web.pages import message

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b"",
             "app": live_server.app}
    page = message(Request(scope), "100% of 5", "Save 50% off", 200, lang="es")
    assert page.status_code == 200 and b"100% of 5" in page.body and b"Save 50% off" in page.body
