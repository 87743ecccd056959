"""The preflight refuses what must not go out and warns about what should not."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.compose import templating
from newsletter.config import Settings
from newsletter.compose.preflight import GMAIL_CLIP_BYTES, blocking, check_email
from newsletter.compose.render import RenderError, render_email
from tests.emailkit import content


def codes(findings) -> set[str]:
    return {f.code for f in findings}


def test_a_good_email_passes(settings: Settings) -> None:
    assert check_email(render_email(content(), settings), settings) == []


def test_missing_subject_is_an_error(settings: Settings) -> None:
    findings = check_email(render_email(content(subject="  "), settings), settings)
    assert "subject-missing" in codes(blocking(findings))


def test_missing_postal_address_is_an_error(settings: Settings) -> None:
    no_address = settings.model_copy(update={"postal_address": ""})
    findings = check_email(render_email(content(), no_address), no_address)
    assert "postal-address-missing" in codes(blocking(findings))


def test_image_without_alt_is_an_error(settings: Settings) -> None:
    blocks = [{"type": "image", "src": "https://example.org/a.png", "alt": ""}, {"type": "paragraph", "html": "x"}]
    findings = check_email(render_email(content(blocks=blocks), settings), settings)
    assert [f.message for f in blocking(findings)] == ["Image 1 (https://example.org/a.png) has no alt text."]


def test_html_over_the_clipping_limit_is_an_error(settings: Settings) -> None:
    long_blocks = [{"type": "paragraph", "html": f"Paragraph {n} " + "words " * 200} for n in range(120)]
    email = render_email(content(blocks=long_blocks), settings)
    assert email.html_bytes > GMAIL_CLIP_BYTES
    assert "html-too-large" in codes(blocking(check_email(email, settings)))


def test_health_words_in_subject_or_preheader_warn(settings: Settings) -> None:
    email = render_email(
        content(subject="Ketamine and exercise", preheader="New hope for treatment-resistant depression"), settings
    )
    findings = check_email(email, settings)
    assert blocking(findings) == []
    by_code = {f.code: f for f in findings}
    assert "'ketamine'" in by_code["health-words-in-subject"].message
    assert "'depression'" in by_code["health-words-in-preheader"].message
    assert "'treatment'" in by_code["health-words-in-preheader"].message


def test_missing_preheader_warns(settings: Settings) -> None:
    findings = check_email(render_email(content(preheader=""), settings), settings)
    assert codes(findings) == {"preheader-missing"}


@pytest.fixture
def custom_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped templates that a test may break."""
    import shutil

    folder = tmp_path / "templates"
    shutil.copytree(templating.templates_dir(), folder)
    monkeypatch.setattr(templating, "templates_dir", lambda: str(folder))
    templating.email_env.cache_clear()
    yield folder
    templating.email_env.cache_clear()


def test_a_broken_template_is_reported_not_sent(settings: Settings, custom_templates: Path) -> None:
    layout = custom_templates / "email" / "issue.mjml.j2"
    layout.write_text(layout.read_text().replace("</mj-body>", ""), encoding="utf-8")
    with pytest.raises(RenderError, match="MJML compile"):
        render_email(content(), settings)


def test_a_template_without_unsubscribe_is_an_error(settings: Settings, custom_templates: Path) -> None:
    layout = custom_templates / "email" / "issue.mjml.j2"
    layout.write_text(layout.read_text().replace("{{ ph.unsubscribe_url }}", "https://example.org"), encoding="utf-8")
    findings = check_email(render_email(content(), settings), settings)
    assert [f.message for f in blocking(findings)] == ["The HTML part has no unsubscribe link."]


def test_an_image_over_plain_http_warns_with_what_to_do(settings: Settings) -> None:
    blocks = [{"type": "paragraph", "html": "A walk."},
              {"type": "image", "src": "http://images.example.org/walk.jpg?w=600&h=400", "alt": "A path"},
              {"type": "image", "src": "https://images.example.org/park.jpg", "alt": "A park"}]
    findings = check_email(render_email(content(blocks=blocks), settings), settings)
    assert blocking(findings) == []  # a warning: most clients still show it, and its alt text stands in
    (finding,) = [f for f in findings if f.code == "image-http"]
    assert finding.level == "warning"
    assert finding.message.startswith("The image http://images.example.org/walk.jpg?w=600&h=400 is loaded over http://")
    assert "Give it its https:// address" in finding.message


def test_the_logo_over_plain_http_warns_too(settings: Settings) -> None:
    logo = settings.model_copy(update={"logo_url": "http://clinic.example/logo.png"})
    findings = check_email(render_email(content(), logo), logo)
    assert [f.message.split(" is ")[0] for f in findings if f.code == "image-http"] == [
        "The image http://clinic.example/logo.png"]


def test_a_preheader_under_40_characters_warns_and_40_passes(settings: Settings) -> None:
    short = "A few easy habits to start this week...."[:39]
    findings = check_email(render_email(content(preheader=short), settings), settings)
    assert codes(findings) == {"preheader-short"}
    (finding,) = findings
    assert finding.level == "warning" and finding.message.startswith("The preheader is 39 characters;")
    assert "Write at least 40 characters" in finding.message
    enough = check_email(render_email(content(preheader=short + "!"), settings), settings)
    assert enough == []
