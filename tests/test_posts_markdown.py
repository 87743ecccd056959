"""Markdown with optional front matter -> post (newsletter.posts.markdown)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsletter.errors import InputError
from newsletter.posts.blocks import ParsedPost
from newsletter.posts.markdown import parse_markdown
from newsletter.compose.plaintext import block_to_text

WITH_FRONT_MATTER = """---
title: Walking and Mood
date: 2024-05-03
author: Dr. Jane Roe
tags: [exercise, mood]
description: Why a daily walk helps.
canonical_url: https://harbor.example/blog/walking/
---

# Walking and Mood

A daily walk helps your *mood* and [sleep](https://harbor.example/sleep) & more.

## What the research says

- better sleep
- more energy

1. first
2. second

> Walking is man's best medicine.

![People walking](images/walk.jpg)

![](https://cdn.example/no-alt.png)

---

Thanks for reading.
"""


def dump(post: ParsedPost) -> str:
    return repr([b.to_dict() for b in post.blocks])


def test_front_matter_metadata() -> None:
    post = parse_markdown(WITH_FRONT_MATTER, source_name="walking.md")
    assert post.title == "Walking and Mood"
    assert post.published_at == datetime(2024, 5, 3, tzinfo=UTC)
    assert post.author == "Dr. Jane Roe"
    assert post.tags == ["exercise", "mood"]
    assert post.excerpt == "Why a daily walk helps."
    assert post.canonical_url == "https://harbor.example/blog/walking/"
    assert post.source_format == "markdown"


def test_front_matter_body_blocks() -> None:
    post = parse_markdown(WITH_FRONT_MATTER, source_name="walking.md")
    assert [b.type for b in post.blocks] == [
        "paragraph", "heading", "list", "list", "quote", "image", "image", "divider", "paragraph"]
    assert post.blocks[0].html == (
        'A daily walk helps your <em>mood</em> and <a href="https://harbor.example/sleep">sleep</a> &amp; more.')
    assert post.blocks[1].html == "What the research says" and post.blocks[1].level == 2
    assert post.blocks[2].items == ["better sleep", "more energy"] and post.blocks[2].ordered is False
    assert post.blocks[3].items == ["first", "second"] and post.blocks[3].ordered is True
    # relative image resolved against the canonical URL; empty alt kept for the preflight
    assert post.blocks[5].src == "https://harbor.example/blog/walking/images/walk.jpg"
    assert post.blocks[5].alt == "People walking"
    assert post.blocks[6].alt == ""


def test_title_from_first_h1_without_front_matter() -> None:
    post = parse_markdown("Intro line before.\n\n# Walking Helps\n\nBody *text*.\n\n# Another Top Heading\n")
    assert post.title == "Walking Helps"
    assert [(b.type, b.html) for b in post.blocks] == [
        ("paragraph", "Intro line before."), ("paragraph", "Body <em>text</em>."),
        ("heading", "Another Top Heading")]
    assert post.published_at is None and post.tags == [] and post.excerpt == "Intro line before."


def test_front_matter_title_wins_and_different_h1_stays() -> None:
    post = parse_markdown("---\ntitle: From Front Matter\ntags: a, b ,a\n---\n# Different\n\nText.")
    assert post.title == "From Front Matter"
    assert post.tags == ["a", "b"]
    assert post.blocks[0].type == "heading" and post.blocks[0].html == "Different"


def test_bad_front_matter_names_the_line() -> None:
    with pytest.raises(InputError, match=r"post\.md: invalid front matter at line 3: mapping values"):
        parse_markdown("---\ntitle: ok\nauthor: a: b\n---\nText", source_name="post.md")


def test_unclosed_and_non_mapping_front_matter() -> None:
    with pytest.raises(InputError, match=r"post\.md: the front matter opened by --- on line 1 is never closed"):
        parse_markdown("---\ntitle: x\n\nBody text", source_name="post.md")
    with pytest.raises(InputError, match=r"must be `key: value` lines \(found a list\)"):
        parse_markdown("---\n- a\n- b\n---\n# T\n\nText", source_name="post.md")
    with pytest.raises(InputError, match=r"`date: someday` is not a date"):
        parse_markdown("---\ntitle: T\ndate: someday\n---\nText", source_name="post.md")


def test_footnotes_become_markers_and_references() -> None:
    post = parse_markdown(
        "# Walking\n\nWalking lifts mood[^mood] and sleep[^sleep]. Again[^mood].\n\n"
        "[^mood]: Rivera, A. *Walking and Mood*, 2019.\n[^sleep]: Chen, L. Sleep, 2020.\n"
    )
    assert [b.type for b in post.blocks] == ["paragraph", "references"]
    assert post.blocks[0].html == "Walking lifts mood<sup>1</sup> and sleep<sup>2</sup>. Again<sup>1</sup>."
    assert post.blocks[1].items == ["Rivera, A. <em>Walking and Mood</em>, 2019.", "Chen, L. Sleep, 2020."]
    assert "\u21a9" not in dump(post) and "fnref" not in dump(post)


def test_raw_html_is_sanitised() -> None:
    post = parse_markdown(
        "# Walking\n\n<script>\nalert('block script')\n</script>\n\n"
        "Inline <script>alert('inline')</script> text <span onclick=\"x()\">here</span>.\n\n"
        "<style>p { color: red }</style>\n\n<iframe src=\"https://evil.example\"></iframe>\n\n"
        "[click](javascript:alert(1)) and <a href=\"javascript:alert(2)\">raw</a>\n"
    )
    assert [b.html for b in post.blocks] == ["Inline text here.", "click and raw"]
    # both javascript: links (Markdown's and the raw <a>) lose their href, keep their text, and are reported
    assert "href" not in dump(post) and "<a" not in dump(post)
    assert [w.split(" (")[0] for w in post.warnings] == ["<markdown>: removed a javascript: link"] * 2
    text = repr([b.to_dict() for b in post.blocks])
    for bad in ("alert", "script", "onclick", "color", "iframe", "evil"):
        assert bad not in text, bad


def test_bom_and_crlf() -> None:
    post = parse_markdown("\ufeff---\r\ntitle: Walking\r\n---\r\nFirst line\r\nsame paragraph.\r\n")
    assert post.title == "Walking"
    assert post.blocks[0].html == "First line same paragraph."


def test_no_title_or_no_body_is_an_error() -> None:
    with pytest.raises(InputError, match=r"notes\.md: no title found"):
        parse_markdown("Just a paragraph.\n\n## Not a title\n", source_name="notes.md")
    with pytest.raises(InputError, match=r"notes\.md: no text after the title \u201cOnly\u201d"):
        parse_markdown("# Only\n", source_name="notes.md")


def test_front_matter_aliases_are_refused_not_expanded() -> None:
    """Found by fuzzing: nine lines of anchors and aliases stand for 9**6 values, and turning the
    title into text expanded them all (minutes, gigabytes at a few more lines)."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 6)]
    text = "---\n" + "\n".join(lines) + "\ntitle: *a5\n---\nThe body.\n"
    with pytest.raises(InputError, match=r"^bomb\.md: invalid front matter at line 3: aliases \(\*name\)"):
        parse_markdown(text, source_name="bomb.md")


def test_deeply_nested_front_matter_is_a_clear_error() -> None:
    """Found by fuzzing: a thousand brackets in a value overflowed the YAML composer's recursion."""
    text = "---\ntitle: " + "[" * 1000 + "]" * 1000 + "\n---\nThe body.\n"
    with pytest.raises(InputError, match=r"^deep\.md: invalid front matter at line 2: nested more than 50 levels"):
        parse_markdown(text, source_name="deep.md")


def test_control_characters_never_reach_a_block() -> None:
    """Found by fuzzing: a control character in the source stayed in the block's html, and compiling
    the issue failed in lxml ("All strings must be XML compatible") with a traceback."""
    post = parse_markdown("health\n\n# health\n\n![](\x01javascript:alert(1))")
    assert [b.html for b in post.blocks] == ["health", "![](javascript:alert(1))"]
    assert [block_to_text(b.to_dict()) for b in post.blocks] == ["health", "![](javascript:alert(1))"]


def test_front_matter_fields_fit_where_they_are_stored() -> None:
    """Found by fuzzing: a front-matter title longer than the 500-character column, escapes that put
    NUL characters in text (PostgreSQL refuses them), and a canonical URL that was any text at all."""
    with pytest.raises(InputError, match=r"^long\.md: the title is 600 characters \(at most 500\)"):
        parse_markdown(f"---\ntitle: {'x' * 600}\n---\nBody.\n", source_name="long.md")
    post = parse_markdown('---\ntitle: "T\\0itle"\nauthor: "Dr.\\0 Roe"\ntags: ["a\\0b"]\n'
                          "canonical_url: javascript:alert(1)\n---\nBody.\n")
    assert (post.title, post.author, post.tags, post.canonical_url) == ("Title", "Dr. Roe", ["ab"], None)


@pytest.mark.parametrize("value", ["!!timestamp 2024-13-45", "!!float abc", "!!bool maybe"])
def test_a_front_matter_value_its_tag_cannot_build_is_a_clear_error(value: str) -> None:
    """Found by the longer fuzz run (NEWSLETTER_FUZZ_EXAMPLES=2000): "!!timestamp 2024-13-45" made
    PyYAML raise ValueError ("month must be in 1..12"), not a YAML error, so it escaped as a traceback."""
    with pytest.raises(InputError, match=r"^post\.md: invalid front matter at line 2: cannot read this value"):
        parse_markdown(f"---\ntitle: {value}\n---\n", source_name="post.md")
