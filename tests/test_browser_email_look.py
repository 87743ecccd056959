"""The email's look in chromium: the same design when a client drops <head> styles, a designed dark
version (Apple Mail's prefers-color-scheme, Outlook.com's data-ogsc/data-ogsb), screenshots of every
layout at 375, 600 and 800 px in light and dark, and the view-online page (a main landmark, axe clean)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from newsletter.compose.email_look import DARK, LIGHT, contrast
from newsletter.compose.personalize import substitute
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.urls import archive_path, recipient_values
from tests.a11y import SCREENSHOTS, shoot, violations
from tests.archivekit import sent_issue
from tests.liveserver import LiveServer
from tests.lookkit import IMAGE_HOST, LAYOUTS, POSTS, serve_images
from tests.test_web_delivery_links import send_issue

pytestmark = pytest.mark.browser
SHOT_WIDTHS = (375, 600, 800)
PROPS = ("font-size", "font-weight", "font-style", "color", "line-height", "margin-bottom", "border-left-width",
         "border-left-style", "border-left-color", "background-color", "text-decoration-line")
# The elements whose look must survive, found the way a reader sees them (the button by its words).
_LOOK = """props => {
    const first = sel => document.querySelector(sel);
    const byText = (sel, text) => [...document.querySelectorAll(sel)].find(e => e.textContent.trim() === text);
    // The button: the last link with its words (the first is the same link as text near the top).
    const button = [...document.querySelectorAll('a')].filter(e => e.textContent.trim() === 'Book a consultation').pop();
    const found = {
        h1: first('h1'), h2: first('h2'), blockquote: first('blockquote'), paragraph: first('h2 ~ p'),
        item: first('li'), link: byText('a', 'Unsubscribe'), button,
        footer: [...document.querySelectorAll('p')].find(p => p.textContent.includes('You are receiving this')),
    };
    const out = {};
    for (const [name, el] of Object.entries(found)) {
        if (!el) { out[name] = null; continue; }
        const style = getComputedStyle(el);
        out[name] = Object.fromEntries(props.map(p => [p, style.getPropertyValue(p)]));
    }
    return out;
}"""


def email_html(settings: Settings, layout: str, post: str) -> str:
    compiled = LAYOUTS[layout](POSTS[post](), settings)
    return substitute(compiled.html, recipient_values(settings, "tok", "Dana"))


def stripped(html: str) -> str:
    """The email as a client that drops <head> and every <style> shows it."""
    html = re.sub(r"<head>.*?</head>", "<head></head>", html, flags=re.DOTALL)
    return re.sub(r"<style\b[^>]*>.*?</style>", "", html, flags=re.DOTALL)


def _page(browser: Any, width: int, scheme: str = "light") -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    serve_images(page)
    return page


def _rgb(value: str) -> str:
    numbers = [int(float(n)) for n in re.findall(r"[\d.]+", value)[:3]]
    return "#" + "".join(f"{n:02x}" for n in numbers)


@pytest.mark.parametrize("post", sorted(POSTS))
def test_styles_survive_a_client_that_drops_head_styles(browser: Any, settings: Settings, post: str) -> None:
    html = email_html(settings, "full", post)
    looks = {}
    for name, document in (("with head", html), ("without head", stripped(html))):
        page = _page(browser, 600)
        page.set_content(document, wait_until="load")
        looks[name] = page.evaluate(_LOOK, list(PROPS))
        page.close()
    full, bare = looks["with head"], looks["without head"]
    for element in ("h1", "h2", "blockquote", "paragraph", "item", "link", "footer", "button"):
        assert full[element] is not None, f"the sample has no {element}"
        assert bare[element] == full[element], f"{element} changes without <head> styles"
    assert bare["h1"]["font-size"] == "28px"  # not the browser's 32px
    assert bare["blockquote"]["font-style"] == "italic" and bare["blockquote"]["border-left-width"] == "4px"
    assert _rgb(bare["blockquote"]["border-left-color"]) == settings.accent_colour
    assert _rgb(bare["button"]["background-color"]) == settings.accent_colour
    assert _rgb(bare["link"]["color"]) == settings.accent_colour


def _colours(page: Any) -> dict[str, str]:
    return page.evaluate("""() => {
        const c = (el, p) => el ? getComputedStyle(el).getPropertyValue(p) : null;
        const byText = (sel, text) => [...document.querySelectorAll(sel)].find(e => e.textContent.trim() === text);
        const card = document.querySelector('.card');
        const button = [...document.querySelectorAll('a')].filter(e => e.textContent.trim() === 'Book a consultation').pop();
        return {
            page: c(document.body, 'background-color'), card: c(card, 'background-color'),
            h1: c(document.querySelector('h1'), 'color'), h2: c(document.querySelector('h2'), 'color'),
            text: c(document.querySelector('h2 ~ p'), 'color'),
            quote: c(document.querySelector('blockquote'), 'color'),
            quote_border: c(document.querySelector('blockquote'), 'border-left-color'),
            link: c(byText('a', 'Unsubscribe'), 'color'),
            footer: c([...document.querySelectorAll('p')].find(p => p.textContent.includes('You are receiving')), 'color'),
            button: c(button, 'color'),
            button_bg: c(button, 'background-color'),
        };
    }""")


@pytest.mark.parametrize("post", sorted(POSTS))
def test_dark_mode_is_a_designed_readable_version(browser: Any, settings: Settings, post: str) -> None:
    page = _page(browser, 600, "dark")
    page.set_content(email_html(settings, "full", post), wait_until="load")
    seen = {k: _rgb(v) for k, v in _colours(page).items()}
    assert seen["page"] == DARK["page"] and seen["card"] == DARK["card"]
    assert seen["h1"] == seen["h2"] == DARK["heading"] and seen["text"] == DARK["text"]
    for name in ("h1", "text", "quote", "link", "quote_border"):
        assert contrast(seen[name], DARK["card"]) >= 4.5, (name, seen[name])
    assert contrast(seen["footer"], DARK["page"]) >= 4.5
    assert contrast(seen["button"], seen["button_bg"]) >= 4.5
    assert [v for v in violations(page) if v["id"] == "color-contrast"] == []
    page.close()


def test_outlook_com_dark_mode_gets_the_same_colours(browser: Any, settings: Settings) -> None:
    """Outlook.com darkens mail itself and marks what it changed with data-ogsc / data-ogsb."""
    page = _page(browser, 600, "light")
    page.set_content(email_html(settings, "full", "text"), wait_until="load")
    assert _rgb(_colours(page)["h1"]) == LIGHT["heading"]
    page.evaluate("() => { document.documentElement.setAttribute('data-ogsc', ''); "
                  "document.documentElement.setAttribute('data-ogsb', ''); }")
    seen = {k: _rgb(v) for k, v in _colours(page).items()}
    assert seen["card"] == DARK["card"] and seen["h1"] == DARK["heading"] and seen["text"] == DARK["text"]
    page.close()


def test_the_logo_stands_on_a_light_plate_in_dark_mode(browser: Any, settings: Settings) -> None:
    branded = settings.model_copy(update={"logo_url": f"{IMAGE_HOST}/logo.png"})
    html = email_html(branded, "full", "text")
    for scheme, plate in (("light", "rgba(0, 0, 0, 0)"), ("dark", "rgb(255, 255, 255)")):
        page = _page(browser, 600, scheme)
        page.set_content(html, wait_until="load")
        logo = page.get_by_role("img", name=branded.org_name)
        assert logo.evaluate("img => img.complete && img.naturalWidth") == 320
        assert logo.evaluate("img => getComputedStyle(img).backgroundColor") == plate
        page.close()


@pytest.mark.parametrize("post", sorted(POSTS))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_screenshots_light_and_dark(browser: Any, settings: Settings, layout: str, post: str) -> None:
    """Kept as artifacts: test-artifacts/screenshots/email-LAYOUT-POST-SCHEME-WIDTH.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    html = email_html(settings, layout, post)
    for scheme in ("light", "dark"):
        page = _page(browser, SHOT_WIDTHS[0], scheme)
        page.set_content(html, wait_until="load")
        for width in SHOT_WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (scheme, width)
            assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
            path = SCREENSHOTS / f"email-{layout}-{post}-{scheme}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            assert path.stat().st_size > 0
        page.close()


def test_view_online_page_has_a_main_landmark_and_no_axe_findings(browser: Any, live_server: LiveServer,
                                                                  db: Database) -> None:
    send_issue(live_server, db)
    html = live_server.emails()[0].get_body(("html",)).get_content()
    view_online = re.search(r'href="(http[^"]+/v/[^"]+)"', html).group(1)
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.emulate_media(color_scheme=scheme)
        assert page.goto(view_online).status == 200
        main = page.locator("main")
        assert main.count() == 1
        assert main.get_by_role("heading", level=1).inner_text() == "Small Steps"
        assert main.get_by_role("link", name="Book a consultation").last.is_visible()
        assert page.title() == "Small steps for steadier days"
        for width in (390, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            found = violations(page)
            assert found == [], f"axe ({scheme}, {width}px): {found}"
        shoot(page, f"view-online-{scheme}")
        page.close()


def test_archive_page_reads_in_dark_mode(browser: Any, live_server: LiveServer, db: Database) -> None:
    """An archive page carries the email's stylesheets, so its own header and sign-up box turn dark too."""
    issue_id = sent_issue(db, live_server.settings, "Small steps for steadier days")
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.emulate_media(color_scheme="dark")
    assert page.goto(live_server.url + archive_path(issue_id, "Small steps for steadier days")).status == 200
    assert _rgb(page.evaluate("getComputedStyle(document.body).backgroundColor")) == DARK["page"]
    assert _rgb(page.locator(".archive-signup").evaluate("e => getComputedStyle(e).backgroundColor")) == DARK["card"]
    assert violations(page) == []
    shoot(page, "archive-issue-dark")
    page.close()
