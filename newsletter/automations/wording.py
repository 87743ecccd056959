"""An automation's subject and preheader: from the post (its title and excerpt, or the safe
suggestion when they name a condition), or from a template set on the automation such as
"New this week: {title}". Templates take a small set of placeholders and nothing else (no
attribute, index or format spec): a template is checked when it is set, never at send time."""

from __future__ import annotations

from string import Formatter

from newsletter.compose.preflight import health_terms_in
from newsletter.compose.suggestions import suggested_preheader, suggested_subject
from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.models import Post

PLACEHOLDERS = {
    "title": "the post's title (of a digest: its first post's)",
    "excerpt": "the post's excerpt",
    "newsletter": "the newsletter's name",
    "count": "how many posts the issue holds (1 unless a digest)",
}
MAX_TEMPLATE = 300


def check_template(value: str | None, what: str) -> str | None:
    """A template as stored (None: none set), or a one-line error naming ``what`` and the problem."""
    value = " ".join((value or "").split())
    if not value:
        return None
    if len(value) > MAX_TEMPLATE:
        raise InputError(f"the {what} is {len(value)} characters; keep it under {MAX_TEMPLATE}")
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise InputError(f"the {what} holds a control character; give plain text")
    try:
        fields = list(Formatter().parse(value))
    except ValueError as exc:
        raise InputError(f"the {what} {value!r} has a stray brace ({exc}); write {{{{ or }}}} for a brace itself") from None
    known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise InputError(f"the {what} uses {shown}; the placeholders are {known}")
    return value


def _fill(template: str, post: Post, settings: Settings, count: int) -> str:
    values = {"title": post.title, "excerpt": post.excerpt or "", "newsletter": settings.newsletter_name,
              "count": str(count)}
    return " ".join(template.format_map(values).split())


def subject_for(template: str | None, post: Post, settings: Settings, count: int = 1) -> str:
    """The template filled; but when that (or no template) would name a condition, the safe
    suggestion: subjects show on lock screens."""
    if template:
        filled = _fill(template, post, settings, count)[:MAX_TEMPLATE]
        if filled and not health_terms_in(filled):
            return filled
    return suggested_subject(post.title, settings)


def preheader_for(template: str | None, post: Post, settings: Settings, count: int = 1) -> str:
    if template:
        filled = _fill(template, post, settings, count)[:200]
        if filled and not health_terms_in(filled):
            return filled
    return suggested_preheader(post, settings)
