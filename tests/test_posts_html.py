"""HTML pages and fragments -> blocks / post (newsletter.posts.html)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.errors import InputError
from newsletter.posts.blocks import Block, ParsedPost, inline_text
from newsletter.posts.html import html_to_blocks, parse_html

PAGE = """<!DOCTYPE html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Walking and Mood | Harbor Clinic</title>
<meta name="description" content="How a daily walk lifts your mood.">
<meta name="author" content="Dr. Jane Roe">
<meta property="article:published_time" content="2024-05-03T09:30:00+02:00">
<meta property="article:tag" content="exercise"><meta property="article:tag" content="mood">
<link rel="canonical" href="https://harbor.example/blog/walking-and-mood">
<link rel="stylesheet" href="/theme.css"><style>p { color: red }</style>
<script>window.tracking = "secret-tracker";</script>
</head><body>
<header class="site"><nav><a href="/">Home</a> <a href="/blog">Blog</a>
  <p>Menu: services, team, booking and a lot of other navigation words in a paragraph.</p></nav></header>
<div class="layout">
<aside><p>Sidebar: subscribe to our newsletter for weekly tips about everything and more words.</p></aside>
<main>
<article>
  <header><h1>Walking and Mood</h1><p class="byline">By Dr. Jane Roe</p></header>
  <p onclick="steal()">A daily walk is <em>good</em> for the <a href="/brain" onmouseover="x()">brain</a>
     &amp; the body.<sup><a href="#fn1" id="r1">1</a></sup></p>
  <script>document.write("injected text")</script>
  <h2 id="why">Why it works <a class="headerlink" href="#why">\u00b6</a></h2>
  <p style="color: red">Blood flow <span class="x">rises</span>, and <a href="javascript:alert(1)">this link</a> is fake.</p>
  <iframe src="https://video.example/embed"></iframe>
  <form><input name="email"><button>Subscribe</button></form>
  <figure><img src="images/walk.jpg" alt="People walking"><figcaption>Morning walk in the park</figcaption></figure>
  <p><img src="/img/no-alt.png"> <img src="data:image/png;base64,AAAA" alt="inline"></p>
  <div hidden><p>Hidden paragraph.</p></div>
  <p aria-hidden="true">Decorative text.</p>
  <blockquote><p>Walking is man's best medicine.</p><footer>\u2014 Hippocrates</footer></blockquote>
  <ul><li>Better sleep<ul><li>deeper</li><li>longer</li></ul></li><li><p>More energy</p></li></ul>
  <h5>A small heading</h5>
  <hr>
  <section class="footnotes"><ol><li id="fn1">Rivera, A. Walking and Mood. 2019.
    <a href="#r1" class="footnote-backref">\u21a9</a></li></ol></section>
</article>
</main>
</div>
<footer><p>Copyright Harbor Clinic, all rights reserved, privacy policy and terms of use.</p></footer>
</body></html>
"""


@pytest.fixture(scope="module")
def page() -> ParsedPost:
    return parse_html(PAGE, source_name="walking.html", base_url="https://harbor.example/blog/walking-and-mood")


def dump(post: ParsedPost | list[Block]) -> str:
    blocks = post.blocks if isinstance(post, ParsedPost) else post
    return repr([b.to_dict() for b in blocks])


def test_article_is_extracted_without_page_noise(page: ParsedPost) -> None:
    text = dump(page)
    for noise in ("Menu:", "Sidebar", "Copyright", "Home", "Hidden paragraph", "Decorative", "By Dr."):
        assert noise not in text
    assert page.title == "Walking and Mood"
    assert not any(b.type == "heading" and inline_text(b.html) == "Walking and Mood" for b in page.blocks)
    assert page.source_format == "html"


def test_metadata(page: ParsedPost) -> None:
    assert page.author == "Dr. Jane Roe"
    assert page.published_at == datetime(2024, 5, 3, 7, 30, tzinfo=UTC)
    assert page.canonical_url == "https://harbor.example/blog/walking-and-mood"
    assert page.source_url == "https://harbor.example/blog/walking-and-mood"
    assert page.tags == ["exercise", "mood"]
    assert page.excerpt == "How a daily walk lifts your mood."


def test_dangerous_markup_is_gone(page: ParsedPost) -> None:
    text = dump(page)
    for bad in ("<script", "injected text", "secret-tracker", "onclick", "steal", "onmouseover",
                "javascript:", "alert", "iframe", "video.example", "style", "color", "theme.css",
                "<form", "Subscribe", "class="):
        assert bad not in text, bad
    assert page.blocks[0].html == (
        'A daily walk is <em>good</em> for the <a href="https://harbor.example/brain">brain</a> '
        "&amp; the body.<sup>1</sup>"
    )
    assert page.blocks[2].html == "Blood flow rises, and this link is fake."


def test_block_types_in_order(page: ParsedPost) -> None:
    assert [b.type for b in page.blocks] == [
        "paragraph", "heading", "paragraph", "image", "image", "quote", "list", "heading", "references",
    ]
    assert page.blocks[1].html == "Why it works" and page.blocks[1].level == 2
    assert page.blocks[7].level == 4  # h5 clamped


def test_images_resolved_and_missing_alt_kept(page: ParsedPost) -> None:
    figure, no_alt = [b for b in page.blocks if b.type == "image"]
    assert figure.src == "https://harbor.example/blog/images/walk.jpg"
    assert figure.alt == "People walking" and figure.caption == "Morning walk in the park"
    assert no_alt.src == "https://harbor.example/img/no-alt.png"
    assert no_alt.alt == ""  # kept so the preflight can flag it
    assert "data:" not in dump(page)


def test_quote_list_and_references(page: ParsedPost) -> None:
    quote = next(b for b in page.blocks if b.type == "quote")
    assert quote.html == "Walking is man's best medicine." and quote.cite == "Hippocrates"
    lst = next(b for b in page.blocks if b.type == "list")
    assert lst.ordered is False
    assert lst.items == ["Better sleep<br>\u2013 deeper<br>\u2013 longer", "More energy"]
    refs = page.blocks[-1]
    assert refs.items == ["Rivera, A. Walking and Mood. 2019."]  # back-link arrow removed


def test_without_article_the_densest_element_wins() -> None:
    html = """<html><body><div id="menu"><p>Home</p><p>About</p></div>
    <div id="content"><h2>Inside</h2><p>First long paragraph with plenty of words in it for scoring.</p>
    <p>Second long paragraph, also with enough words to count for something.</p></div>
    <div id="links"><p>Links</p></div></body></html>"""
    post = parse_html(html, source_name="x.html")
    assert post.title == "Inside"  # no h1/og/title: the first heading
    assert [inline_text(b.html) for b in post.blocks] == [
        "First long paragraph with plenty of words in it for scoring.",
        "Second long paragraph, also with enough words to count for something.",
    ]


def test_title_fallbacks() -> None:
    og = '<html><head><meta property="og:title" content="OG Title"><title>T | Site</title></head><body><p>Text.</p></body></html>'
    assert parse_html(og).title == "OG Title"
    title = "<html><head><title>Walking and Mood - Harbor Clinic</title></head><body><p>Text.</p></body></html>"
    assert parse_html(title).title == "Walking and Mood"
    keep = "<html><head><title>Q&amp;A: Ketamine - What to Expect</title></head><body><p>Text.</p></body></html>"
    assert parse_html(keep).title == "Q&A: Ketamine - What to Expect"  # part of the title, kept


def test_base_href_and_canonical_resolve_relative_urls() -> None:
    html = """<html><head><base href="https://cdn.example/assets/"><title>X</title></head>
    <body><p>Text <a href="page.html">link</a></p><img src="a.png" alt="A"></body></html>"""
    blocks = parse_html(html).blocks
    assert blocks[0].html == 'Text <a href="https://cdn.example/assets/page.html">link</a>'
    assert blocks[1].src == "https://cdn.example/assets/a.png"
    canon = """<html><head><link rel="canonical" href="https://harbor.example/post/"><title>X</title></head>
    <body><p>Text</p><img src="pic.png" alt=""></body></html>"""
    assert parse_html(canon).blocks[1].src == "https://harbor.example/post/pic.png"
    no_base = "<html><body><h1>X</h1><p>Text <a href='/rel'>rel</a></p><img src='rel.png' alt=''></body></html>"
    post = parse_html(no_base)
    assert [b.type for b in post.blocks] == ["paragraph"] and post.blocks[0].html == "Text rel"


def test_broken_html_still_parses() -> None:
    html = "<html><body><h1>Broken<p>First <b>bold <i>both</b> after<p>Second para<ul><li>one<li>two</ul><div>Loose"
    post = parse_html(html, source_name="broken.html")
    assert post.title == "Broken"
    assert [b.type for b in post.blocks] == ["paragraph", "paragraph", "list", "paragraph"]
    assert post.blocks[2].items == ["one", "two"]
    assert inline_text(post.blocks[0].html) == "First bold both after"


def test_references_from_heading_and_list() -> None:
    blocks = html_to_blocks("<p>Claim.<sup>1</sup></p><h2>Sources</h2><ol><li>One</li><li>Two</li></ol>")
    assert [b.type for b in blocks] == ["paragraph", "references"]
    assert blocks[1].items == ["One", "Two"]


def test_fragment_blocks() -> None:
    blocks = html_to_blocks(
        "Loose text<br><br>second part<pre>line 1\nline &lt;2&gt;</pre><hr><h1>Big</h1>"
        "<table><tr><th>Dose</th><td>0.5 mg</td></tr></table><p><sup>[2]</sup> and <q>hi</q></p>"
        "<a href='https://x.example/'><img src='https://x.example/i.png' alt='i'></a>"
    )
    assert [b.type for b in blocks] == [
        "paragraph", "paragraph", "paragraph", "divider", "heading", "paragraph", "paragraph", "image"]
    assert blocks[2].html == "<code>line 1<br>line &lt;2&gt;</code>"
    assert blocks[4].level == 2
    assert blocks[5].html == "Dose | 0.5 mg"
    assert blocks[6].html == "<sup>2</sup> and \u201chi\u201d"
    assert blocks[7].href == "https://x.example/"
    assert html_to_blocks("") == [] and html_to_blocks("   ") == []


def test_empty_documents_are_errors() -> None:
    with pytest.raises(InputError, match=r"empty\.html: the HTML is empty"):
        parse_html("  \n", source_name="empty.html")
    with pytest.raises(InputError, match=r"blank\.html: the HTML has no text"):
        parse_html("<html><head></head><body>  </body></html>", source_name="blank.html")
    with pytest.raises(InputError, match=r"scripts\.html: the HTML has no text"):
        parse_html("<html><body><script>alert('only')</script><style>p{}</style></body></html>",
                   source_name="scripts.html")


def test_text_without_any_title_is_an_error() -> None:
    with pytest.raises(InputError, match=r"snippet\.html: no title found \(no <h1>, og:title or <title>; give it with --title\)"):
        parse_html("<html><body><p>Text without a title.</p></body></html>", source_name="snippet.html")


# Found by fuzzing (tests/test_fuzz_posts.py) -------------------------------------------------------


def test_script_text_never_becomes_the_title() -> None:
    """The title was the h1's whole text content, script included: "alert('SCRIPTBODY')health"."""
    found = "<h1><script>alert('SCRIPTBODY')</script>health</h1>"
    with pytest.raises(InputError, match="no article text found"):
        parse_html(found)  # only a title: the script's text is no article
    post = parse_html(found + "<p>Body text.</p>")
    assert post.title == "health" and "SCRIPTBODY" not in str(post.to_dict())


def test_script_and_style_text_stays_out_of_captions_quotes_and_code() -> None:
    post = parse_html("<h1>T</h1><figure><img src='https://example.org/a.png' alt='a'><figcaption>Cap"
                      "<script>alert('x')</script></figcaption></figure><blockquote>Q<footer>Who"
                      "<style>p{}</style></footer></blockquote><pre>code<script>alert('y')</script></pre>")
    assert [(b.caption, b.cite, b.html) for b in post.blocks] == [
        ("Cap", None, ""), (None, "Who", "Q"), (None, None, "<code>code</code>")]


def test_a_control_character_is_no_article_text() -> None:
    """A lone ESC character became a paragraph, and compiling the issue failed in lxml."""
    with pytest.raises(InputError, match="no article text found"):
        parse_html("<!DOCTYPE html><html><head></head><body><h1>health</h1><article>\x1b</article></body></html>")


@pytest.mark.parametrize("url", ["http://[::1", "https://[bad/x"])
def test_urls_that_do_not_parse_are_dropped(url: str) -> None:
    """urlsplit raised ValueError ("Invalid IPv6 URL") out of the importer."""
    post = parse_html(f'<html><head><link rel="canonical" href="{url}"></head><body><h1>T</h1>'
                      f'<p>x <a href="{url}">y</a></p><img src="{url}" alt="i"></body></html>')
    assert post.canonical_url is None and [b.html for b in post.blocks] == ["x y"]


def test_deeply_nested_quotes_keep_their_text() -> None:
    """250 nested blockquotes exhausted Python's stack (RecursionError) in the block walk."""
    blocks = html_to_blocks("<blockquote>" * 250 + "deep words")
    assert [b.type for b in blocks] == ["quote"] and inline_text(blocks[0].html) == "deep words"


def test_links_too_long_to_track_stay_text() -> None:
    url = "https://example.org/?q=" + "x" * 2000
    assert html_to_blocks(f'<p>see <a href="{url}">this</a></p>')[0].html == "see this"


def test_flattened_deep_nesting_drops_control_characters() -> None:
    """Found by fuzzing the flattening above: lxml parses a backspace but refuses to set it as text."""
    assert html_to_blocks("<ul><li>" * 60 + "\x08") == []
    blocks = html_to_blocks("<ul><li>" * 60 + "deep\x08 words")
    items = [inline_text(i) for b in blocks for i in (b.items or [])]
    assert len(items) == 1 and items[0].endswith("\u2013 deep words")  # nested lists fold into one item


def test_a_title_too_long_to_store_is_a_clear_error() -> None:
    """Found by atheris (tests/fuzz/importers.py; the fixture is its input): an attribute left open
    swallowed the page into a 973-character title, with control characters, that PostgreSQL's
    500-character column refused with a traceback at `posts import`."""
    page = (Path(__file__).parent / "fixtures/posts/atheris-unclosed-attribute.html").read_bytes()
    with pytest.raises(InputError, match=r"^page\.html: the title is 973 characters \(at most 500\)"):
        parse_html(page.decode("utf-8", errors="replace"), source_name="page.html")


def test_control_characters_stay_out_of_titles_and_plain_fields() -> None:
    post = parse_html('<html><head><meta name="author" content="Dr.\x01 Roe"><title>A\x01B</title></head><body>'
                      '<figure><img src="https://example.org/a.png" alt="a\x02lt"><figcaption>c\x03ap'
                      "</figcaption></figure><blockquote>q<footer>w\x04ho</footer></blockquote></body></html>")
    assert (post.title, post.author) == ("AB", "Dr. Roe")
    assert [(b.alt, b.caption, b.cite) for b in post.blocks] == [("alt", "cap", None), (None, None, "who")]


def test_dropping_a_script_keeps_a_tail_with_control_characters() -> None:
    """Found by fuzzing: the script's tail ("\\x1f") was set back as text when the script was taken
    out of a flattened quote, and lxml refused it (ValueError)."""
    with pytest.raises(InputError, match="the HTML has no text"):
        parse_html("<blockquote>" * 60 + "<script>alert('SCRIPTBODY')</script>\x1f")
    post = parse_html("<h1>T</h1>" + "<blockquote>" * 60 + "<script>alert('x')</script>\x1fwords")
    assert [b.html for b in post.blocks] == ["words"]


def test_only_a_web_address_is_kept_as_the_source_url() -> None:
    """Found by fuzzing: the base URL given was stored as the post's source whatever its scheme."""
    page = ('<!DOCTYPE html><html><head><meta property="og:title" content="OG <b>title</b>"></head><body>'
            "<article>" + "<blockquote>" * 60 + "health</article></body></html>")
    assert parse_html(page, base_url="javascript:alert(1)").source_url is None
    assert parse_html(page, base_url="https://example.org/p").source_url == "https://example.org/p"


@pytest.mark.parametrize("html", ["<h1>T</h1><blockquote><footer>w</footer>\x01q</blockquote>",
                                  "<h1>T</h1><blockquote>q<b>x</b><cite>w</cite>\x02more</blockquote>"])
def test_a_quote_s_cite_with_a_control_character_after_it(html: str) -> None:
    """Found by atheris (tests/fuzz/importers.py), in this shape: taking the <footer>/<cite> out of a
    quote set the text after it back through lxml's Python API, which refused the control character."""
    quote = parse_html(html).blocks[0]
    assert quote.type == "quote" and quote.cite == "w" and inline_text(quote.html) in ("q", "qxmore")


def test_preformatted_text_of_control_characters_is_no_block() -> None:
    """Found by atheris (the fixture is its input): a <pre> holding only control characters became a
    paragraph with an empty <code>, once they were cleaned away."""
    page = (Path(__file__).parent / "fixtures/posts/atheris-empty-pre.html").read_bytes().decode("utf-8", "replace")
    assert all(inline_text(b.html) for b in parse_html(page).blocks if b.type == "paragraph")
    assert [b.html for b in parse_html("<h1>T</h1><p>x</p><pre>\x01\n\x02</pre>").blocks] == ["x"]
