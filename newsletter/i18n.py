"""Words in the reader's language: the message catalogues (gettext, through Babel) for the public
pages and the emails' own words, and dates written the way the language writes them.

Only the ``.po`` catalogues are in git (newsletter/locale/<lang>/LC_MESSAGES/messages.po); each is
compiled in memory with ``babel.messages`` the first time it is needed, so a fresh clone runs with
Python alone and a compiled file can never be older than its source. English is the source language:
its words are the msgids, so an English catalogue is only needed once a wording changes.

Which languages exist is subscribers.languages' (LANGUAGES); this module only speaks them.
"""

from __future__ import annotations

import gettext as gettext_module
from datetime import date, datetime
from functools import lru_cache
from importlib import resources
from io import BytesIO
from typing import Any, Callable

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from subscribers.errors import InputError
from subscribers.languages import LANGUAGES, check_language

DOMAIN = "messages"
# How a long date reads in each language; a language not listed uses Babel's own long form.
DATE_PATTERNS = {"en": "d MMMM y"}  # "7 December 2026", the house style in English


@lru_cache(maxsize=len(LANGUAGES) + 1)
def translations(language: str) -> gettext_module.NullTranslations:
    """The catalogue of ``language``; words it lacks (and languages without one) stay in English."""
    if language not in LANGUAGES:  # only ours: never a path made of what a visitor sent
        return gettext_module.NullTranslations()
    path = resources.files("newsletter") / "locale" / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():  # English, the source language, needs none
        return gettext_module.NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries left out: a doubtful translation shows the English
    compiled.seek(0)
    return gettext_module.GNUTranslations(compiled)


def spoken(language: str | None, default: str) -> str:
    """The language to use: ``language`` when we speak it, else ``default`` (the newsletter's)."""
    for tag in (language, default):
        if tag:
            try:
                return check_language(tag)
            except InputError:
                continue
    return "en"


def gettext_for(language: str) -> Callable[[str], str]:
    """``_`` for Python code: the translation of a msgid in ``language``."""
    return translations(language).gettext


def ngettext_for(language: str) -> Callable[[str, str, int], str]:
    return translations(language).ngettext


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "extract, translate later"
    """Marks a word for extraction where it is defined (a label table); it is translated where shown."""
    return message


def long_date(when: date | datetime, language: str) -> str:
    """A date as the language writes it in prose ("7 December 2026", "7 de diciembre de 2026")."""
    return format_date(when, DATE_PATTERNS.get(language, "long"), locale=language)


def asked_language(query: str | None, accept_language: str | None) -> str | None:
    """The language a visitor asked for: ``?lang=`` first, then the best of their browser's
    Accept-Language that we speak. None when neither names one (the newsletter's is used then)."""
    if query:
        try:
            return check_language(query)
        except InputError:
            pass
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and weight > 0:
            ranked.append((-weight, position, tag))
    for _weight, _position, tag in sorted(ranked):
        try:
            return check_language(tag)
        except InputError:
            continue
    return None


# Jinja2 -----------------------------------------------------------------------------------------
# Templates use the i18n extension ({% trans %}, _()) with new-style gettext (variables are
# escaped and filled in by the call). The environment's own callables speak English; a render
# passes ``template_words(language)`` in its context, which takes precedence, so one environment
# serves every language (an issue compiled once per language, a page per request).


def _jinja_callables(language: str) -> dict[str, Any]:
    catalogue = translations(language)

    @pass_context
    def gettext(context: Context, message: str, **variables: Any) -> str:
        text = catalogue.gettext(message)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % variables

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        text = catalogue.ngettext(singular, plural, num)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % variables

    # ``translated``: the translation of a msgid held in a variable (a label, a message's title), as
    # plain text: no %-formatting, so a value that is not a msgid and holds a % is shown as it is.
    return {"gettext": gettext, "_": gettext, "ngettext": ngettext, "translated": catalogue.gettext}


def template_words(language: str) -> dict[str, Any]:
    """What a template's context needs to speak ``language``: gettext callables and the tag."""
    return {**_jinja_callables(language), "language": language}


def add_i18n(env: Environment) -> Environment:
    """Give an environment the i18n extension, speaking English unless a render says otherwise."""
    env.add_extension("jinja2.ext.i18n")
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(_jinja_callables("en"))
    return env
