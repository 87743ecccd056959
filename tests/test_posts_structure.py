"""Structure kept from posts, through the real importers (text, Markdown, HTML, feeds): FAQ questions
become headings over their answers, a heading repeating the title is dropped, footnote markers link
to their reference in the email, and unsafe links are removed with their text kept and reported."""

from __future__ import annotations

import re

from lxml import html as lxml_html

from newsletter.compose.render import EmailContent, render_email
from newsletter.config import Settings
from newsletter.posts.blocks import Block, ParsedPost, inline_text
from newsletter.posts.feed import parse_feed
from newsletter.posts.html import parse_html
from newsletter.posts.markdown import parse_markdown
from newsletter.posts.text import parse_text
from tests.conftest import FIXTURES, SAMPLE_POST

FAQ_POST = FIXTURES / "posts" / "faq-post.txt"


def shape(post: ParsedPost) -> list[tuple[str, int | None, str]]:
    """Each block as (type, heading level, text), for comparing structure at a glance."""
    return [(b.type, b.level, inline_text(b.html, markers=False)) for b in post.blocks if b.type != "references"]


def email_of(post: ParsedPost, settings: Settings) -> str:
    content = EmailContent(subject="Your first visit", preheader="Answers to what people ask us before a visit.",
                           title=post.title, blocks=[b.to_dict() for b in post.blocks])
    return render_email(content, settings).html


# FAQ pages ------------------------------------------------------------------------------------------


def test_a_text_faq_in_the_seed_shape_becomes_question_headings_with_their_answers() -> None:
    post = parse_text(FAQ_POST.read_text(encoding="utf-8"), source_name="faq-post.txt")
    assert post.title == "Your First Visit: Questions and Answers"
    assert shape(post) == [
        # the title printed again in capitals and other punctuation is not a heading of its own
        ("paragraph", None, "A first visit raises questions, and most people ask us the same few. "
                            "Here are our answers, in the order people usually ask them."),
        ("heading", 2, "Before You Come"),
        ("heading", 3, "How long does a first visit take?"),  # one level under its section
        ("paragraph", None, "About two hours, including time to rest before you go home."),
        ("heading", 3, "Can I drive myself home?"),
        ("paragraph", None, "No. Please arrange for someone to take you home after each visit."),
        ("paragraph", None, "Most people bring a friend, or book a taxi for the time we give them."),
        ("heading", 3, "Do I need to stop eating beforehand?"),  # "Question:" / "Answer:"
        ("paragraph", None, "Eat a light meal at least four hours before, and drink water as usual."),
        ("heading", 2, "After Your Visit"),
        ("heading", 3, "When will I hear from the team?"),  # "Q." / "A."
        ("paragraph", None, "Within two working days, by phone or by email, whichever you prefer."),
    ]
    answer = post.blocks[3]
    assert answer.html.endswith("go home.<sup>1</sup>")  # the answer keeps its footnote marker
    assert len(post.blocks[-1].items or []) == 2


def test_a_markdown_faq_with_bold_labels_and_no_section_heading() -> None:
    post = parse_markdown(
        "---\ntitle: Visiting the clinic\n---\n\n## Visiting the Clinic\n\n"
        "A few answers before you come.\n\n"
        "**Q:** How long does it take?\n\n**A:** About two hours.\n\n"
        "**Q. Is there *parking* nearby?**\n\nYes, on [Elm Street](https://example.org/parking).\n",
        source_name="visit.md")
    assert shape(post) == [
        ("paragraph", None, "A few answers before you come."),  # the "## Visiting the Clinic" repeat is gone
        ("heading", 2, "How long does it take?"),  # no section heading above: h2, under the email's h1
        ("paragraph", None, "About two hours."),
        ("heading", 2, "Is there parking nearby?"),
        ("paragraph", None, "Yes, on Elm Street."),
    ]
    assert post.blocks[3].html == "Is there <em>parking</em> nearby?"  # the bold goes, the emphasis stays
    assert post.blocks[4].html == 'Yes, on <a href="https://example.org/parking">Elm Street</a>.'


def test_an_html_faq_with_question_headings_and_answers_on_the_same_paragraph() -> None:
    post = parse_html(
        "<html><body><article><h1>Our FAQ</h1><h2>OUR FAQ!</h2><p>What people ask us most.</p>"
        "<h2>Before your visit</h2>"
        "<p><strong>Question:</strong> What should I bring?<br><strong>Answer:</strong> Your ID and "
        "a list of the medicines you take.</p>"
        "<h3>Q: Can I eat before?</h3><p>A: A light meal is fine.</p>"
        "</article></body></html>", source_name="faq.html")
    assert post.title == "Our FAQ"
    assert shape(post) == [
        ("paragraph", None, "What people ask us most."),
        ("heading", 2, "Before your visit"),
        ("heading", 3, "What should I bring?"),
        ("paragraph", None, "Your ID and a list of the medicines you take."),
        ("heading", 3, "Can I eat before?"),  # already a heading: its level kept, its label gone
        ("paragraph", None, "A light meal is fine."),
    ]


def test_a_feed_entry_faq_and_its_repeated_title() -> None:
    rss = """<?xml version="1.0"?><rss version="2.0"><channel><title>Clinic blog</title>
      <link>https://clinic.example/blog</link>
      <item><title>Questions About Sleep</title><link>https://clinic.example/blog/sleep-faq</link>
        <guid>sleep-faq</guid>
        <description><![CDATA[<h2>Questions about sleep</h2><p>Q: How many hours do I need?</p>
          <p>A: Most adults need seven to nine.</p><p>Q: Are naps good?</p><p>Short ones, yes.</p>]]></description>
      </item></channel></rss>"""
    _, entries = parse_feed(rss.encode(), source_name="blog.rss")
    assert shape(entries[0].post) == [
        ("heading", 2, "How many hours do I need?"),
        ("paragraph", None, "Most adults need seven to nine."),
        ("heading", 2, "Are naps good?"),  # two questions make an FAQ even where an answer has no "A:"
        ("paragraph", None, "Short ones, yes."),
    ]


def test_a_stray_q_or_a_label_is_left_alone() -> None:
    post = parse_markdown(
        "# Reading list\n\nA. Smith wrote the best book on it.\n\n"
        "Q. Why read at night? Because it helps some people settle.\n\nMore on that next week.\n")
    # One question label with no "A:" after it is not an FAQ, and an "A." that answers nothing is a name.
    assert [b.type for b in post.blocks] == ["paragraph", "paragraph", "paragraph"]
    assert post.blocks[0].html.startswith("A. Smith") and post.blocks[1].html.startswith("Q. Why read")


# A heading that repeats the title ------------------------------------------------------------------


def test_a_heading_repeating_the_title_right_under_it_is_dropped_in_every_format() -> None:
    title = "Morning Walks, Explained"
    text = parse_text(f"{title}\n\nMORNING WALKS \u2014 EXPLAINED\n\nA walk before work sets the tone for the day.\n\n"
                      "Why Mornings\n\nLight early in the day helps sleep later on.\n")
    markdown = parse_markdown(f"---\ntitle: {title}\n---\n\n## morning walks: explained!\n\n"
                              "A walk before work sets the tone for the day.\n")
    page = parse_html(f"<html><body><article><h1>{title}</h1><p>By the team</p><h2>Morning walks explained</h2>"
                      "<p>A walk before work sets the tone for the day.</p></article></body></html>")
    for post in (text, markdown):
        assert post.title == title
        assert shape(post)[0] == ("paragraph", None, "A walk before work sets the tone for the day.")
    # Only a heading right under the title goes: a later one with the same words is the author's choice.
    assert [b.type for b in page.blocks] == ["paragraph", "heading", "paragraph"]
    assert ("heading", 2, "Why Mornings") in shape(text)


# Footnotes link to their reference ------------------------------------------------------------------


def test_footnote_markers_link_to_their_reference_in_the_email(settings: Settings) -> None:
    post = parse_text(SAMPLE_POST.read_text(encoding="utf-8"), source_name="clinic-post.txt")
    doc = lxml_html.document_fromstring(email_of(post, settings))
    links = [a for sup in doc.iter("sup") for a in sup.iter("a")]
    assert links and {a.text for a in links} == {"1", "2", "3"}
    ids = {li.get("id") for li in doc.iter("li") if li.get("id")}
    assert ids == {"ref-1", "ref-2", "ref-3"}  # the sample's three references
    for a in links:
        assert a.get("href") == f"#ref-{a.text}"
        target = doc.get_element_by_id(a.get("href")[1:])
        assert target.tag == "li" and target.getparent().tag == "ol"


def test_a_marker_without_its_reference_or_inside_a_link_stays_as_it_is(settings: Settings) -> None:
    post = ParsedPost(title="Notes", blocks=[
        Block(type="paragraph", html='Rest helps.<sup>1,2</sup> See <a href="https://example.org/a">this<sup>1</sup></a>'
                                     " and note<sup>7</sup>."),
        Block(type="references", items=["First source", "Second source"]),
    ])
    html = re.sub(r' style="[^"]*"', "", email_of(post, settings))  # the markup, whatever its inline look
    assert '<sup><a href="#ref-1">1</a>,<a href="#ref-2">2</a></sup>' in html
    assert "this<sup>1</sup></a>" in html and "note<sup>7</sup>" in html
    assert re.findall(r'<li id="(ref-\d+)">', html) == ["ref-1", "ref-2"]


# Unsafe links ------------------------------------------------------------------------------------


def test_markdown_script_and_data_links_go_with_their_text_kept_and_are_reported() -> None:
    post = parse_markdown(
        "---\ntitle: Links\n---\n\n"
        "Read [our guide](javascript:alert(document.cookie)), [this page](data:text/html;base64,PHNjcmlwdD4=), "
        "[a macro](VBScript:msgbox(1)), [a file](file:///etc/passwd) and [the map](https://example.org/map).\n\n"
        "![A walk](data:image/png;base64,iVBORw0KGgo=)\n", source_name="links.md")
    (para,) = post.blocks
    assert para.html == ('Read our guide, this page, a macro, a file and '
                         '<a href="https://example.org/map">the map</a>.')  # no literal "[x](javascript:...)"
    assert post.warnings == [
        "links.md: removed a javascript: link (its text \u201cour guide\u201d is kept as plain text); "
        "only http(s), mailto and tel links are kept",
        "links.md: removed a data: link (its text \u201cthis page\u201d is kept as plain text); "
        "only http(s), mailto and tel links are kept",
        "links.md: removed a vbscript: link (its text \u201ca macro\u201d is kept as plain text); "
        "only http(s), mailto and tel links are kept",
        "links.md: removed a file: link (its text \u201ca file\u201d is kept as plain text); "
        "only http(s), mailto and tel links are kept",
        "links.md: removed an image with a data: address (alt text \u201cA walk\u201d); "
        "give it an https:// address to keep it",
    ]
    for warning in post.warnings:  # the address itself (a script, a whole file) is never repeated
        assert "alert" not in warning and "base64" not in warning and "passwd" not in warning


def test_an_html_page_reports_its_script_links_too() -> None:
    post = parse_html('<html><body><article><h1>Page</h1><p>Try <a href=" java\tscript:go()">this</a>, '
                      '<a href="#top">the top</a> and <a href="/relative">a page</a>.</p></article></body></html>',
                      source_name="page.html")
    assert post.blocks[0].html == "Try this, the top and a page."
    # Only the script link is reported: an in-page anchor or a relative link is no danger, just unusable.
    assert [w.split(" (")[0] for w in post.warnings] == ["page.html: removed a javascript: link"]


def test_many_removed_links_are_summed_up_after_five() -> None:
    links = " ".join(f"[link {n}](javascript:x{n}())" for n in range(8))
    post = parse_markdown(f"# Many\n\n{links}\n", source_name="many.md")
    assert len(post.warnings) == 6 and post.warnings[-1] == "many.md: removed 3 more such link(s) or image(s)"
    assert post.blocks[0].html == " ".join(f"link {n}" for n in range(8))



def test_label_variants_all_make_questions() -> None:
    html = ("<html><body><article><h1>Help</h1>"
            "<p>Q1: Is there a lift?</p><p>A1: Yes, by the main door.</p>"
            "<p>Question 2 \u2013 Where do I wait?</p><p>Answer 2 \u2013 In the quiet room.</p>"
            "<p><b>Q</b>. Can I bring a friend?</p><p><b>A</b>. Of course.</p>"
            "<p>QUESTION: Is it open on Sundays?</p><p>ANSWER: No.</p></article></body></html>")
    post = parse_html(html, source_name="help.html")
    assert shape(post) == [
        ("heading", 2, "Is there a lift?"), ("paragraph", None, "Yes, by the main door."),
        ("heading", 2, "Where do I wait?"), ("paragraph", None, "In the quiet room."),
        ("heading", 2, "Can I bring a friend?"), ("paragraph", None, "Of course."),
        ("heading", 2, "Is it open on Sundays?"), ("paragraph", None, "No."),
    ]
