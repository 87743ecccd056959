"""Plain text copied off a web page -> post (newsletter.posts.text)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.errors import InputError
from newsletter.posts.blocks import Block, ParsedPost, excerpt_from, inline_text, reading_minutes
from newsletter.posts.text import parse_date, parse_text

from tests.conftest import SAMPLE_POST, SEED_POST_VARIABLE, outside_file

WALKING = Path(__file__).parent / "fixtures/posts/walking-post.txt"


def of_type(post: ParsedPost, kind: str) -> list[Block]:
    return [b for b in post.blocks if b.type == kind]


def texts(blocks: list[Block]) -> list[str]:
    return [inline_text(b.html) for b in blocks]


def all_html(post: ParsedPost) -> str:
    return "\n".join([b.html for b in post.blocks] + [i for b in post.blocks for i in (b.items or [])])


# --- the seed post ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed() -> ParsedPost:
    """The clinic's real post, when NEWSLETTER_TEST_SEED_POST names it (third-party text, never committed)."""
    path = outside_file(SEED_POST_VARIABLE)
    return parse_text(path.read_text(encoding="utf-8"), source_name="seed-post.txt")


def test_seed_title_skips_site_name_and_labels(seed: ParsedPost) -> None:
    assert seed.title == "The Benefits of Ketamine and Exercise"
    html = all_html(seed)
    assert "Post category" not in html and "Publish date" not in html
    assert inline_text(seed.blocks[0].html).startswith("\u201cTake a walk\u201d is essentially")
    assert seed.source_format == "text"


def test_seed_has_exactly_the_five_headings(seed: ParsedPost) -> None:
    headings = of_type(seed, "heading")
    assert texts(headings) == [
        "Mental Health Benefits of Exercise",
        "Mental Health Benefits of Ketamine",
        "How Ketamine Works In the Brain",
        "Ketamine and Exercise: A Powerful Combination",
        "A Whole-Body Approach to Depression Management",
    ]
    assert {h.level for h in headings} == {2}


def test_seed_quote_keeps_its_footnote_marker(seed: ParsedPost) -> None:
    quotes = of_type(seed, "quote")
    assert len(quotes) == 1
    assert quotes[0].html.startswith("These [studies] have shown that exercise alleviates")
    assert quotes[0].html.endswith("post-exercise cessation<sup>2</sup>")


def test_seed_references_are_one_block_in_order(seed: ParsedPost) -> None:
    refs = of_type(seed, "references")
    assert len(refs) == 1 and seed.blocks[-1] is refs[0]
    items = refs[0].items or []
    assert len(items) == 3
    assert items[0].startswith("McGonigal, Kelly.")
    assert items[1].startswith("Basso, Julia C.")
    assert items[2].startswith("Makin, Simon.") and items[2].endswith("12 April 2019")
    assert not of_type(seed, "list")  # the reference list is not also a list block


def test_seed_markers_only_for_real_references(seed: ParsedPost) -> None:
    html = all_html(seed)
    markers = re.findall(r"<sup>(.*?)</sup>", html)
    assert set(markers) == {"1", "2", "3"}
    assert markers.count("1") == 3 and markers.count("3") == 2
    assert "exercise.<sup>1</sup>" in html and "hours.<sup>3</sup>" in html
    assert "short 20-minute exercise" in html  # a number in text, not a marker
    assert "(within the last 20 years)" in html
    assert "2019" in html and "<sup>20" not in html


def test_seed_excerpt_and_reading_time(seed: ParsedPost) -> None:
    assert seed.excerpt.startswith("\u201cTake a walk\u201d is essentially what physicians")
    assert len(seed.excerpt) <= 201
    assert 3 <= reading_minutes(seed.blocks) <= 6  # about a thousand words


# --- the project's own post in the seed's shape (always runs) ---------------------------------------


@pytest.fixture(scope="module")
def sample() -> ParsedPost:
    return parse_text(SAMPLE_POST.read_text(encoding="utf-8"), source_name="clinic-post.txt")


def test_sample_title_skips_site_name_and_labels(sample: ParsedPost) -> None:
    assert sample.title == "Ketamine Therapy and a Good Night\u2019s Sleep"
    html = all_html(sample)
    assert "Harbor Wellness Clinic" not in html
    assert "Post category" not in html and "Publish date" not in html
    assert inline_text(sample.blocks[0].html).startswith("\u201cSleep on it\u201d is advice")
    assert sample.source_format == "text"


def test_sample_short_lines_are_its_headings(sample: ParsedPost) -> None:
    headings = of_type(sample, "heading")
    assert texts(headings) == ["Why Sleep Matters", "What Treatment Can Change", "A Plan That Fits Your Week"]
    assert {h.level for h in headings} == {2}


def test_sample_quote_keeps_its_footnote_marker(sample: ParsedPost) -> None:
    (quote,) = of_type(sample, "quote")
    assert quote.html.startswith("Participants who kept a fixed wake time")
    assert quote.html.endswith("whatever time they went to bed<sup>2</sup>")


def test_sample_references_are_one_block_in_order(sample: ParsedPost) -> None:
    refs = of_type(sample, "references")
    assert len(refs) == 1 and sample.blocks[-1] is refs[0]
    items = refs[0].items or []
    assert [i.split(".")[0] for i in items] == ["Okafor, Grace", "Lindqvist, Erik, and Maya Brandt", "Tan, Wei"]
    assert items[2].endswith("9 September 2020")
    assert not of_type(sample, "list")


def test_sample_markers_only_for_real_references(sample: ParsedPost) -> None:
    html = all_html(sample)
    markers = re.findall(r"<sup>(.*?)</sup>", html)
    assert sorted(markers) == ["1", "2", "2", "3"]
    assert "next day.<sup>1</sup>" in html and "than weeks.<sup>3</sup>" in html
    assert "a 20-minute wind-down" in html  # a number in text, not a marker
    assert "(within the last 20 years the evidence" in html
    assert "2019" in html and "<sup>20" not in html


def test_sample_excerpt_and_reading_time(sample: ParsedPost) -> None:
    assert sample.excerpt == ("\u201cSleep on it\u201d is advice most of us heard as children. It turns out to "
                              "be good advice for adults in care, too.")
    assert reading_minutes(sample.blocks) >= 1


# --- a post in the same shape, written for these tests -----------------------------------------------


@pytest.fixture(scope="module")
def walking() -> ParsedPost:
    return parse_text(WALKING.read_text(encoding="utf-8"), source_name="walking-post.txt")


def test_fixture_structure(walking: ParsedPost) -> None:
    assert walking.title == "Why a Daily Walk Helps Your Mood"
    assert [b.type for b in walking.blocks] == [
        "paragraph", "paragraph", "heading", "paragraph", "quote", "heading", "paragraph", "list",
        "heading", "list", "paragraph", "references",
    ]
    assert texts(of_type(walking, "heading"))[1] == "Walking and Therapy: Better Together"


def test_fixture_lists(walking: ParsedPost) -> None:
    bullets, steps = of_type(walking, "list")
    assert bullets.ordered is False and bullets.items == ["better sleep", "more energy", "a calmer mind"]
    assert steps.ordered is True and steps.items == [
        "Pick a fixed time of day.", "Start with ten minutes.", "Add five minutes each week."]


def test_fixture_markers_links_and_numbers(walking: ParsedPost) -> None:
    html = all_html(walking)
    assert "sleep.<sup>1</sup>" in html and "mood.<sup>2</sup> The effect" in html
    assert of_type(walking, "quote")[0].html.endswith("studied<sup>3</sup>")
    assert "A 30-minute walk" in html and "last 10 years" in html and "in 2021 as well" in html
    assert '<a href="mailto:hello@harbor.example">hello@harbor.example</a>' in html
    assert '<a href="https://harbor.example/contact">https://harbor.example/contact</a>.' in html
    assert len(of_type(walking, "references")[0].items or []) == 3


# --- title, site name, labels ---------------------------------------------------------------------


def test_single_short_first_line_is_the_title() -> None:
    post = parse_text("Walking Helps\n\nA short walk every day improves mood and sleep.")
    assert post.title == "Walking Helps"
    assert texts(post.blocks) == ["A short walk every day improves mood and sleep."]


def test_title_followed_by_a_shorter_subheading_is_not_a_site_name() -> None:
    post = parse_text("How Ketamine Therapy Works\n\nOverview\n\nKetamine acts on glutamate.\n")
    assert post.title == "How Ketamine Therapy Works"
    assert [b.type for b in post.blocks] == ["heading", "paragraph"]


def test_site_name_line_before_title_is_skipped() -> None:
    post = parse_text("Harbor Clinic\n\nSleep, Stress and Recovery Explained\n\nBody text here.")
    assert post.title == "Sleep, Stress and Recovery Explained"
    assert "Harbor Clinic" not in all_html(post)


def test_repeated_title_line_counts_once() -> None:
    post = parse_text("Walking Helps\nWalking Helps\n\nBody text here.")
    assert post.title == "Walking Helps"
    assert texts(post.blocks) == ["Body text here."]
    post = parse_text("Harbor\n\nWalking Helps\n\nWalking Helps\n\nBody text here.")
    assert post.title == "Walking Helps" and texts(post.blocks) == ["Body text here."]


def test_labels_with_values_fill_metadata() -> None:
    text = ("Walking Helps\n\nPublish date: 3 May 2024\nAuthor: Dr. Jane Roe\nTags: mood, sleep\n"
            "Share\n\nBody text here.")
    post = parse_text(text)
    assert post.published_at == datetime(2024, 5, 3, tzinfo=UTC)
    assert post.author == "Dr. Jane Roe"
    assert post.tags == ["mood", "sleep"]
    assert texts(post.blocks) == ["Body text here."]


def test_label_with_value_on_next_line_and_bare_labels() -> None:
    post = parse_text("Walking Helps\n\nPosted on\n\nMay 3rd, 2024\n\nCategory\n\nTags\n\nBody text.")
    assert post.published_at == datetime(2024, 5, 3, tzinfo=UTC)
    assert texts(post.blocks) == ["Body text."]


def test_label_not_glued_to_a_short_line_keeps_the_heading() -> None:
    post = parse_text("Walking Helps\n\nPost category\n\nFirst Steps\n\nBody text here.")
    assert post.tags == []
    assert texts(of_type(post, "heading")) == ["First Steps"]


def test_crlf_bom_tabs_and_nbsp_are_normalised() -> None:
    post = parse_text("\ufeffWalking Helps\r\n\r\nSteps\tand\u00a0more  steps.\r\n\r\nSecond one.\r\n")
    assert post.title == "Walking Helps"
    assert texts(post.blocks) == ["Steps and more steps.", "Second one."]


def test_text_is_escaped_not_interpreted() -> None:
    post = parse_text("Walking Helps\n\nTom & Jerry <script>alert(1)</script> <b>bold</b> walk.")
    html = post.blocks[0].html
    assert "&amp;" in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html
    assert "<script" not in html and "<b>" not in html


# --- blocks ---------------------------------------------------------------------------------------


def test_markers_need_a_reference_list() -> None:
    post = parse_text("Walking Helps\n\nWalking improves mood.1 It helps sleep.2")
    assert "<sup>" not in all_html(post)
    assert "mood.1 It" in post.blocks[0].html


def test_numbered_list_at_end_without_citations_stays_a_list() -> None:
    post = parse_text("Walking Helps\n\nTry this:\n\n1. Walk daily\n\n2. Stretch\n\n3. Rest well")
    assert [b.type for b in post.blocks] == ["paragraph", "list"]
    assert post.blocks[1].ordered is True and post.blocks[1].items == ["Walk daily", "Stretch", "Rest well"]


def test_references_heading_is_folded_into_the_block() -> None:
    post = parse_text("Walking Helps\n\nWalking lifts mood.1\n\nReferences\n\n1. Smith, A. Walking. 2020")
    assert [b.type for b in post.blocks] == ["paragraph", "references"]
    assert post.blocks[1].items == ["Smith, A. Walking. 2020"]
    assert "mood.<sup>1</sup>" in post.blocks[0].html


def test_quote_lines_bullets_and_wrapped_paragraphs() -> None:
    text = ("Walking Helps\n\n> Walking is man's best medicine.\n> So said Hippocrates.\n\n"
            "\u2022 first point\n\u2022 second point\n\n"
            "This paragraph was wrapped by an email client so that\nits lines break in the middle\n"
            "of sentences.\n\nThe End Heading")
    post = parse_text(text)
    assert [b.type for b in post.blocks] == ["quote", "list", "paragraph", "paragraph"]
    assert post.blocks[0].html == "Walking is man's best medicine. So said Hippocrates."
    assert post.blocks[1].items == ["first point", "second point"]
    assert inline_text(post.blocks[2].html).endswith("break in the middle of sentences.")
    assert texts(post.blocks)[3] == "The End Heading"  # a heading needs something after it


def test_quoted_paragraph_with_attribution() -> None:
    post = parse_text("Walking Helps\n\n\u201cWalking is man\u2019s best medicine.\u201d \u2014 Hippocrates\n\nMore.")
    quote = post.blocks[0]
    assert quote.type == "quote" and quote.cite == "Hippocrates"
    assert quote.html == "Walking is man\u2019s best medicine."


def test_two_quoted_phrases_are_a_paragraph() -> None:
    post = parse_text("Walking Helps\n\n\u201cWalk\u201d and \u201crest\u201d are the advice.\u201d\n\nMore text.")
    assert post.blocks[0].type == "paragraph"


def test_long_first_paragraph_excerpt_is_cut_on_a_word() -> None:
    body = "Walking " + "every single day helps " * 30
    post = parse_text(f"Walking Helps\n\n{body.strip()}.")
    assert len(post.excerpt) <= 201 and post.excerpt.endswith("\u2026")
    assert post.excerpt[:-1].split()[-1] in {"every", "single", "day", "helps"}


# --- errors ---------------------------------------------------------------------------------------


def test_empty_text_is_an_error_naming_the_source() -> None:
    with pytest.raises(InputError, match=r"seed\.txt: no title found \(the text has only empty lines\)"):
        parse_text("\n \n\t\n", source_name="seed.txt")


def test_title_without_body_is_an_error() -> None:
    with pytest.raises(InputError, match=r"post\.txt: no text after the title \u201cWalking Helps\u201d"):
        parse_text("Walking Helps\n\n", source_name="post.txt")


def test_paragraph_where_the_title_should_be_is_an_error() -> None:
    with pytest.raises(InputError, match=r"line 3 is a \d+-character paragraph"):
        parse_text("\n\n" + "word " * 60, source_name="post.txt")


# --- helpers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("3 May 2024", datetime(2024, 5, 3, tzinfo=UTC)),
    ("May 3, 2024", datetime(2024, 5, 3, tzinfo=UTC)),
    ("Friday, 3rd May 2024", datetime(2024, 5, 3, tzinfo=UTC)),
    ("Sept 9 2023", datetime(2023, 9, 9, tzinfo=UTC)),
    ("2024-05-03", datetime(2024, 5, 3, tzinfo=UTC)),
    ("2024-05-03T10:30:00Z", datetime(2024, 5, 3, 10, 30, tzinfo=UTC)),
    ("Publish date", None),
    ("1850-01-01", None),
])
def test_parse_date(value: str, expected: datetime | None) -> None:
    assert parse_date(value) == expected


def test_reading_minutes_and_excerpt_helpers() -> None:
    assert reading_minutes([]) == 1
    assert reading_minutes([Block(type="paragraph", html="word " * 690)]) == 3
    assert reading_minutes([Block(type="list", items=["word " * 460])]) == 2
    assert excerpt_from("short text") == "short text"
    assert excerpt_from("alpha beta gamma", limit=11) == "alpha beta\u2026"


def test_marker_lookalikes_stay_text_and_bracket_markers_count() -> None:
    post = parse_text(
        "Walking Helps\n\nVitamin B12, mp3 files, COVID-19 and 1,000 people; exercise1 and studies,2 agree. "
        "Claims.[1] Both[1, 2] but not [2] alone.\n\n1. Smith, A. 2020\n2. Jones, B. 2021"
    )
    html = post.blocks[0].html
    assert "B12, mp3 files, COVID-19 and 1,000 people" in html
    assert "exercise<sup>1</sup> and studies,<sup>2</sup> agree" in html
    assert "Claims.<sup>1</sup> Both<sup>1,2</sup> but not [2] alone." in html


def test_web_addresses_that_lead_nowhere_stay_text() -> None:
    """Found by fuzzing: "http:///x" became a link with no host (and "http://[::1" one that no URL
    parser reads); links longer than the links table holds could not be tracked."""
    found = ("Limbic Medical\n\nHealth\n\nPost category\n\nPost category\n\nPost category\n\nPost category\n\n"
             "health health health health. http:///x\n\nReferences\n\n1. health. \u201chealth.\u201d Site, "
             "6 January 2020\n\n")
    post = parse_text(found)
    assert post.blocks[0].html == "health health health health. http:///x"
    long_url = "https://example.org/?q=" + "x" * 2000
    post = parse_text(f"Title\n\nSee http://[::1 and {long_url} or https://example.org/ok now.\n\nEnd.")
    assert post.blocks[0].html == (f"See http://[::1 and {long_url} or "
                                   '<a href="https://example.org/ok">https://example.org/ok</a> now.')
