"""How the email looks, checked in its HTML: the preheader and its filler, inline styles, dark mode."""

from __future__ import annotations

import email
import re
from email import policy

import pytest
from lxml import html as lxml_html

from newsletter.compose.email_look import DARK, FILLER_UNITS, LIGHT, contrast, email_look, readable_on
from newsletter.compose.mime import build_message
from newsletter.compose.render import render_email
from newsletter.config import Settings
from newsletter.urls import recipient_values, unsubscribe_mailto
from tests.emailkit import content
from newsletter.compose.layouts import DIGEST, FULL, TEASER
from tests.lookkit import LAYOUTS, html_post, text_post

INVISIBLE = set("\u034f\u200c\u00a0")


def _style(el: lxml_html.HtmlElement) -> dict[str, str]:
    pairs = (d.split(":", 1) for d in (el.get("style") or "").split(";") if ":" in d)
    return {k.strip(): v.strip() for k, v in pairs}


def _preheader_div(doc: lxml_html.HtmlElement, text: str) -> lxml_html.HtmlElement:
    return next(d for d in doc.iter("div") if (d.text or "").startswith(text))


def test_preheader_is_hidden_without_colour_tricks(settings: Settings) -> None:
    doc = lxml_html.document_fromstring(render_email(content(), settings).html)
    style = _preheader_div(doc, content().preheader)
    declared = _style(style)
    assert declared["display"] == "none" and declared["max-height"] == "0"
    assert declared["overflow"] == "hidden" and declared["mso-hide"] == "all"
    # Spam filters score text the colour of its background (HTML_FONT_LOW_CONTRAST): no colour, no opacity.
    assert not {"color", "opacity", "font-size"} & set(declared)


def test_preview_stops_after_the_preheader(settings: Settings) -> None:
    """What an inbox previews is the body's text from the top: the preheader, then only invisible
    filler for longer than any preview, never "View in your browser" or the clinic's name."""
    doc = lxml_html.document_fromstring(render_email(content(), settings).html)
    body_text = doc.find("body").text_content().lstrip()
    preheader = content().preheader
    assert body_text.startswith(preheader)
    after = body_text[len(preheader):]
    filler = len(after) - len(after.lstrip("".join(INVISIBLE)))
    assert filler == FILLER_UNITS * 3 >= 250
    assert after[filler:].lstrip().startswith("View in your browser")


def test_no_preheader_means_no_hidden_block(settings: Settings) -> None:
    html = render_email(content(preheader=""), settings).html
    assert "mso-hide:all" not in html and "&zwnj;" not in html


def test_text_part_has_no_filler(settings: Settings) -> None:
    rendered = render_email(content(), settings)
    values = recipient_values(settings, "tok", "Dana")
    built = build_message(rendered, to_email="dana@example.org", to_name="Dana", values=values,
                          unsubscribe_mailto=unsubscribe_mailto(settings, "tok"), settings=settings)
    parsed = email.message_from_bytes(built.as_bytes(), policy=policy.default)
    text = parsed.get_body(("plain",)).get_content()
    assert not INVISIBLE & set(text) and "&zwnj;" not in text and "&#847;" not in text
    html = parsed.get_body(("html",)).get_content()
    assert html.count("&#847;&zwnj;&nbsp;") == FILLER_UNITS


def _all_inline(doc: lxml_html.HtmlElement) -> None:
    for tag in ("h1", "h2", "p", "blockquote", "ul", "ol", "li", "a", "sup"):
        for el in doc.iter(tag):
            if tag == "p" and el.getparent().tag == "td":  # MJML's own divider line
                continue
            if tag == "a" and not (el.text or "").strip() and [c.tag for c in el] == ["img"]:
                continue  # a linked image: nothing of it is text to colour
            assert el.get("style"), f"<{tag}> without an inline style: {lxml_html.tostring(el)[:120]!r}"


@pytest.mark.parametrize("layout", [TEASER, DIGEST])
def test_the_teaser_and_digest_parts_carry_their_styles_inline(settings: Settings, layout: str) -> None:
    _all_inline(lxml_html.document_fromstring(LAYOUTS[layout](html_post(), settings).html))


@pytest.mark.parametrize("make", [text_post, html_post], ids=["text post", "html post"])
def test_every_element_carries_its_style_inline(settings: Settings, make) -> None:
    """Clients that drop <head> styles still draw headings, quotes, lists, links and the button."""
    doc = lxml_html.document_fromstring(LAYOUTS[FULL](make(), settings).html)
    accent = settings.accent_colour
    _all_inline(doc)
    h1 = _style(next(doc.iter("h1")))
    assert h1["font-size"] == "28px" and h1["color"] == LIGHT["heading"]
    quotes = list(doc.iter("blockquote"))
    assert quotes, "both samples hold a quote"
    quote = _style(quotes[0])
    assert quote["border-left"] == f"4px solid {accent}" and quote["font-style"] == "italic"
    colours = {a.text_content().strip(): _style(a).get("color") for a in doc.iter("a") if a.text_content().strip()}
    assert set(colours.values()) <= {accent, LIGHT["muted"], LIGHT["on_accent"]}, colours
    assert colours["Unsubscribe"] == accent and colours["View in your browser"] in (accent, LIGHT["muted"])
    if make is html_post:
        assert colours["winter guide"] == accent
    # The button (the same link also stands as text near the top: the last one is the button).
    button = [a for a in doc.iter("a") if a.text_content().strip() == "Book a consultation"][-1]
    assert "background" in _style(button) and _style(button)["color"] == LIGHT["on_accent"]


def test_head_keeps_only_what_cannot_be_inline(settings: Settings) -> None:
    html = render_email(content(), settings).html
    head = html[:html.index("</head>")]
    own = head[head.index(":root"):]  # our stylesheet (MJML's own resets and column widths come before it)
    assert ".content h1 {" not in own and ".content blockquote {" not in own.split("@media")[0]
    assert '<meta name="color-scheme" content="light dark"' in head
    assert '<meta name="supported-color-schemes" content="light dark"' in head
    assert ":root { color-scheme: light dark;" in head
    assert "@media (prefers-color-scheme: dark)" in head
    assert "[data-ogsc] .page .content h1" in head and "[data-ogsb] .page .card" in head


@pytest.mark.parametrize("accent", ["#2f6f6a", "#000000", "#1d4ed8", "#b91c1c", "#9ae6b4", "#ffffff"])
def test_dark_accent_reads_on_the_dark_card(accent: str) -> None:
    dark = readable_on(accent, DARK["card"])
    assert contrast(dark, DARK["card"]) >= 4.5 and contrast(dark, DARK["page"]) >= 4.5
    if contrast(accent, DARK["card"]) >= 4.5:
        assert dark == accent  # already readable: the brand's colour as it is


def test_palettes_are_readable() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    for name in ("text", "heading", "muted", "quote"):
        assert contrast(LIGHT[name], LIGHT["card"]) >= 4.5, name
        assert contrast(DARK[name], DARK["card"]) >= 4.5, name
        assert contrast(DARK[name], DARK["page"]) >= 4.5, name
    assert contrast(LIGHT["muted"], LIGHT["page"]) >= 4.5  # the footer sits on the page colour


def test_dark_design_follows_the_brand_colour(settings: Settings) -> None:
    branded = settings.model_copy(update={"accent_colour": "#1d4ed8"})
    html = render_email(content(), branded).html
    dark_accent = email_look("#1d4ed8").dark["accent"]
    assert dark_accent != "#1d4ed8"
    assert re.search(r"\.page a, \.page \.brand div \{ color: " + dark_accent + " !important; \\}", html)
    assert 'border-left:4px solid #1d4ed8' in html
