"""The rendered email: compiled once with placeholders, responsive MJML output, a readable text part."""

from __future__ import annotations

import re

from lxml import html as lxml_html

from newsletter.config import Settings
from newsletter.urls import recipient_values
from newsletter.compose.personalize import LAYOUT_FIELDS, placeholders_in, substitute
from newsletter.compose.render import render_email
from tests.emailkit import content


def test_compiled_once_with_every_placeholder_and_filled_by_substitution(settings: Settings) -> None:
    email = render_email(content(), settings)
    assert placeholders_in(email.html) == set(LAYOUT_FIELDS)
    assert placeholders_in(email.text) == set(LAYOUT_FIELDS)
    values = recipient_values(settings, "tok123", "Dana Smith")
    html = substitute(email.html, values)
    assert placeholders_in(html) == set()
    assert "Hi Dana," in html
    assert f'href="{settings.public_base_url}/u/tok123"' in html
    assert f'href="{settings.public_base_url}/preferences/tok123"' in html
    assert html.count(f"{settings.public_base_url}/v/tok123") == 2  # top and footer


def test_html_structure_language_preheader_and_semantics(settings: Settings) -> None:
    email = render_email(content(), settings)
    doc = lxml_html.document_fromstring(email.html)
    assert doc.get("lang") == "en"
    assert doc.findtext(".//title") == "Small steps for steadier days"
    hidden = [d for d in doc.iter("div") if "display:none" in (d.get("style") or "").replace(" ", "")]
    assert hidden and "A few easy habits" in hidden[0].text_content()
    assert [h.text_content() for h in doc.iter("h1")] == ["Small Steps for Steadier Days"]
    assert "Start with light" in [h.text_content() for h in doc.iter("h2")]
    assert [h.text_content() for h in doc.iter("h3")] == ["Keep it simple"]
    assert doc.find(".//blockquote") is not None
    assert len(doc.findall(".//ol")) == 2  # the numbered list and the references
    assert [li.text_content() for li in doc.find(".//ul").iter("li")] == ["Walk", "Stretch"]
    assert doc.find(".//sup").text_content() == "1"
    image = [i for i in doc.iter("img") if "walk.jpg" in i.get("src", "")][0]
    assert image.get("alt") == "A path through a park"
    assert "3 November 2026 · 3 min read" in doc.text_content()
    assert re.search(r'<meta name="viewport" content="width=device-width, initial-scale=1"', email.html)


def test_bulletproof_button_is_a_styled_link_not_an_image(settings: Settings) -> None:
    doc = lxml_html.document_fromstring(render_email(content(), settings).html)
    buttons = [a for a in doc.iter("a") if a.get("href") == settings.booking_url]
    assert len(buttons) == 1
    button = buttons[0]
    assert button.text_content().strip() == "Book a consultation"
    assert button.find(".//img") is None
    assert "background" in (button.getparent().get("style") or "") + (button.getparent().get("bgcolor") or "")
    assert button.getparent().tag == "td" and button.getparent().getparent().getparent().tag in ("table", "tbody")


def test_footer_says_why_where_and_how_to_leave(settings: Settings) -> None:
    email = render_email(content(), settings)
    for part in (email.html, email.text):
        assert settings.postal_address in part
        assert "You are receiving this because you subscribed to The Limbic Letter" in part
        assert "%%unsubscribe_url%%" in part and "%%preferences_url%%" in part and "%%view_online_url%%" in part


def test_logo_has_alt_text_when_configured(settings: Settings) -> None:
    branded = settings.model_copy(update={"logo_url": "https://cdn.example.org/logo.png"})
    doc = lxml_html.document_fromstring(render_email(content(), branded).html)
    logo = [i for i in doc.iter("img") if i.get("src") == "https://cdn.example.org/logo.png"][0]
    assert logo.get("alt") == branded.org_name


def test_no_scripts_remote_css_or_web_fonts(settings: Settings) -> None:
    html = render_email(content(), settings).html
    assert "<script" not in html.lower()
    assert "<link" not in html.lower() and "@import" not in html
    assert "fonts.googleapis" not in html


def test_content_cannot_impersonate_a_placeholder(settings: Settings) -> None:
    sneaky = content(blocks=[{"type": "paragraph", "html": "Visit %%unsubscribe_url%% now, 100%% sure"}])
    email = render_email(sneaky, settings)
    filled = substitute(email.html, recipient_values(settings, "tok", "A"))
    assert f"{settings.public_base_url}/u/tok now" not in filled
    assert "Visit %\u200b%unsubscribe_url%\u200b% now" in filled


def test_issue_html_is_far_below_gmail_clipping(settings: Settings) -> None:
    assert render_email(content(), settings).html_bytes < 40_000


def test_text_part_reads_on_its_own(settings: Settings) -> None:
    text = render_email(content(), settings).text
    assert text.index("Small Steps for Steadier Days") < text.index("Start with light")
    assert "Start with light\n----------------" in text
    assert "full guide (https://example.org/guide) & share it" in text
    assert "> “Every minute of movement counts.”[2]" in text
    assert "1. Get up at the same time\n2. Eat before noon" in text
    assert "- Walk\n- Stretch" in text
    assert "[Image: A path through a park]" in text
    assert f"Book a consultation: {settings.booking_url}" in text
    assert "References\n----------\n[1] Walker, M." in text
    assert "<" not in text.replace("<https", "")  # no markup leaks into the text part
    for line in text.splitlines():
        assert len(line) <= 72 or "://" in line or "%%" in line, line
