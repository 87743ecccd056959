"""Jinja2 environments for emails and web pages, loading from the shipped ``templates`` folder."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from newsletter.compose.email_look import styled
from newsletter.compose.personalize import guard_content
from newsletter.compose.plaintext import wrap
from newsletter.i18n import add_i18n


def templates_dir() -> str:
    return str(resources.files("newsletter.templates"))


@lru_cache(maxsize=2)
def email_env(*, text: bool = False) -> Environment:
    """MJML (autoescaped) or plain-text templates. Every printed value passes the content guard."""
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=False if text else select_autoescape(["mjml", "html", "j2"], default=True),
        undefined=StrictUndefined,
        finalize=guard_content,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap
    env.filters["styled"] = styled
    return add_i18n(env)  # the layout's own words; render_email passes the email's language
