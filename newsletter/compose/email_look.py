"""How an email looks, in one place: its colours (light and dark), each element's inline style, the
dark-mode stylesheet and the preheader's filler.

Styles are written inline on the elements because Gmail (for non-Google accounts), several Outlooks and
many webmail clients drop ``<head>`` styles: a quote would lose its border and italics, an ``h1`` grow to
the browser's 32 px. The ``<head>`` keeps only what cannot be inline: the dark-mode media query and
Outlook.com's ``[data-ogsc]``/``[data-ogsb]`` rules. Dark rules use ``!important`` because they must beat
the inline colours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markupsafe import Markup, escape

# Light design (what every client shows first). The accent colour comes from the settings.
LIGHT = {
    "page": "#f3f4f1",  # around the card
    "card": "#ffffff",
    "text": "#1f2933",
    "heading": "#111827",
    "muted": "#4b5563",  # meta line, captions, footer, "View in your browser"
    "quote": "#374151",
    "rule": "#e5e7eb",
    "on_accent": "#ffffff",  # the button's text
}
# Dark design: Apple Mail, iOS Mail, Outlook (macOS, iOS, Android, Outlook.com) apply it when the reader's
# system is dark. Not pure black (halation) and not pure white text; every pair is at least 4.5:1.
DARK = {
    "page": "#121416",
    "card": "#1c2024",
    "text": "#e3e6ea",
    "heading": "#f5f6f7",
    "muted": "#b3bac2",
    "quote": "#d0d5db",
    "rule": "#3a4047",
    "logo_plate": "#ffffff",  # a light plate behind the logo, so a dark logo on a transparent image still shows
}
MONO = "Menlo, Consolas, 'Courier New', monospace"
MIN_CONTRAST = 4.5  # WCAG AA for body text

# The preheader's filler: after the preheader, inbox previews would run on into the email's first
# visible text ("View in your browser …"). Pairs of invisible characters (combining grapheme joiner,
# zero-width non-joiner, non-breaking space) fill the preview instead. 90 of them: about 270
# characters, more than any inbox shows.
FILLER_UNIT = "&#847;&zwnj;&nbsp;"
FILLER_UNITS = 90
PREHEADER_STYLE = "display:none;max-height:0;max-width:0;overflow:hidden;mso-hide:all;"
# The email is 640 px wide with 28 px gutters. An image in a padded column is given its width
# (640 - 2 × 28): mjml-python would size it to the whole 640 px where the official compiler takes the
# padding off, and both must draw the same email.
BODY_WIDTH, GUTTER = 640, 28
IMAGE_WIDTH = f"{BODY_WIDTH - 2 * GUTTER}px"

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def _channels(colour: str) -> tuple[int, int, int]:
    if not _HEX.match(colour):
        raise ValueError(f"a colour must look like #2f6f6a, not {colour!r}")
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a #rrggbb colour."""
    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = map(linear, _channels(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio between two #rrggbb colours (1 to 21)."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _mix(colour: str, toward: str, share: float) -> str:
    pairs = zip(_channels(colour), _channels(toward))
    return "#" + "".join(f"{round(c + (t - c) * share):02x}" for c, t in pairs)


def readable_on(accent: str, background: str, minimum: float = MIN_CONTRAST) -> str:
    """``accent`` lightened just enough (mixed toward white in 5% steps) to read on a dark
    ``background``: links and the quote's border keep the brand's hue in dark mode."""
    for step in range(21):
        candidate = _mix(accent, "#ffffff", step / 20)
        if contrast(candidate, background) >= minimum:
            return candidate
    return "#ffffff"


@dataclass(frozen=True)
class EmailLook:
    """What the templates need to draw an email: ``css`` holds each element's inline style,
    ``light``/``dark`` the palettes, ``head_css`` and ``outlook_css`` the dark-mode stylesheets,
    ``filler`` the preheader's."""

    accent: str
    light: dict[str, str]
    dark: dict[str, str]
    css: dict[str, str] = field(default_factory=dict)
    head_css: Markup = Markup("")
    outlook_css: Markup = Markup("")
    filler: Markup = Markup("")
    preheader_style: str = PREHEADER_STYLE
    image_width: str = IMAGE_WIDTH


def _inline_css(accent: str) -> dict[str, str]:
    c = LIGHT
    heading = f"font-weight:700;color:{c['heading']};"
    return {
        "h1": f"margin:0 0 8px;font-size:28px;line-height:1.25;{heading}",
        "h2": f"margin:32px 0 8px;font-size:22px;line-height:1.3;{heading}",
        "h3": f"margin:24px 0 6px;font-size:19px;line-height:1.35;{heading}",
        "h4": f"margin:24px 0 6px;font-size:19px;line-height:1.35;{heading}",
        "p": "margin:0 0 16px;",
        "meta": f"margin:0 0 16px;font-size:15px;color:{c['muted']};",
        "list": "margin:0 0 16px;padding-left:24px;",
        "li": "margin:0 0 6px;",
        "blockquote": (f"margin:8px 0 20px;padding:4px 0 4px 18px;border-left:4px solid {accent};"
                       f"color:{c['quote']};font-style:italic;"),
        "a": f"color:{accent};text-decoration:underline;",
        "sup": "font-size:12px;line-height:0;",
        "code": f"font-family:{MONO};font-size:15px;",
        "hr": f"border:0;border-top:1px solid {c['rule']};margin:24px 0;",
        "references_h2": f"margin:0 0 10px;font-size:16px;line-height:1.35;{heading}",
        "references_list": "margin:0;padding-left:22px;",
        "references_li": "margin:0 0 8px;word-break:break-word;",
        "footer_p": "margin:0 0 10px;",
        "footer_a": f"color:{accent};text-decoration:underline;",
        "muted_a": f"color:{c['muted']};text-decoration:underline;",
    }


def _dark_rules(accent_dark: str) -> list[tuple[str, dict[str, str]]]:
    """(selector, declarations) of the dark design. Selectors start at the body's ``.page`` class so
    they outrank the broad text rule; the layout puts the classes on its MJML elements."""
    d = DARK
    return [
        ("body, .page", {"background-color": d["page"]}),
        (".page .card, .page .card > table", {"background": d["card"], "background-color": d["card"]}),
        (".page td > div", {"color": d["text"]}),  # every mj-text, whatever layout it is in
        (".page .content h1, .page .content h2, .page .content h3, .page .content h4, "
         ".page .references h2", {"color": d["heading"]}),
        (".page .content blockquote", {"color": d["quote"], "border-left-color": accent_dark}),
        (".page .content hr", {"border-top-color": d["rule"]}),
        (".page .rule p", {"border-top-color": d["rule"]}),
        (".page .meta, .page .muted div, .page .footer div, .page .footer p", {"color": d["muted"]}),
        (".page a, .page .brand div", {"color": accent_dark}),
        (".page .muted a", {"color": d["muted"]}),
        (".page .button a", {"color": LIGHT["on_accent"]}),
        (".page .logo img", {"background-color": d["logo_plate"], "padding": "6px", "border-radius": "6px"}),
    ]


def _block(selector: str, declarations: dict[str, str]) -> str:
    body = " ".join(f"{k}: {v} !important;" for k, v in declarations.items())
    return f"{selector} {{ {body} }}"


def _prefixed(selector: str, prefix: str) -> str:
    return ", ".join(f"{prefix} {part.strip()}" for part in selector.split(","))


def head_css(accent_dark: str) -> str:
    """The colour-scheme declaration and the dark design for clients that honour
    ``prefers-color-scheme`` (Apple Mail, iOS Mail, Outlook for macOS, iOS and Android)."""
    lines = [":root { color-scheme: light dark; supported-color-schemes: light dark; }",
             "@media (prefers-color-scheme: dark) {"]
    lines += ["  " + _block(selector, declarations) for selector, declarations in _dark_rules(accent_dark)]
    lines.append("}")
    return "\n".join(lines)


def outlook_css(accent_dark: str) -> str:
    """The same colours for Outlook.com, which darkens mail itself and marks what it changed with
    ``data-ogsc`` (text colour) and ``data-ogsb`` (background). A stylesheet of its own: a client that
    rejects attribute selectors drops this one and keeps the other."""
    lines = []
    for selector, declarations in _dark_rules(accent_dark):
        colours = {k: v for k, v in declarations.items() if k in ("color", "border-left-color", "border-top-color")}
        backgrounds = {k: v for k, v in declarations.items() if k.startswith("background")}
        if colours:
            lines.append(_block(_prefixed(selector, "[data-ogsc]"), colours))
        if backgrounds:
            lines.append(_block(_prefixed(selector, "[data-ogsb]"), backgrounds))
    return "\n".join(lines)


def email_look(accent: str) -> EmailLook:
    """The look of every email for the brand's ``accent`` colour (#rrggbb)."""
    accent_dark = readable_on(accent, DARK["card"])
    return EmailLook(
        accent=accent,
        light=dict(LIGHT),
        dark={**DARK, "accent": accent_dark},
        css=_inline_css(accent),
        head_css=Markup(head_css(accent_dark)),  # built here from checked colours only
        outlook_css=Markup(outlook_css(accent_dark)),
        filler=Markup(FILLER_UNIT * FILLER_UNITS),
    )


_A = re.compile(r"<a\b(?![^>]*\bstyle=)")
_SIMPLE = {name: re.compile(rf"<{name}>") for name in ("sup", "code")}


def styled(html: str, look: EmailLook) -> Markup:
    """Sanitised inline HTML (a block's ``html``, a reference) with the look's inline style on its
    links, footnote markers and code: the only tags it may hold that need one (see ``INLINE_TAGS``)."""
    text = str(html)
    text = _A.sub(f'<a style="{escape(look.css["a"])}"', text)
    for name, pattern in _SIMPLE.items():
        text = pattern.sub(f'<{name} style="{escape(look.css[name])}">', text)
    return Markup(text)
