"""RSS / Atom feeds -> entries (newsletter.posts.feed)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.errors import InputError
from newsletter.posts.feed import parse_feed

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>Harbor Clinic Blog</title>
  <link>https://harbor.example/blog/</link>
  <description>News</description>
  <item>
    <title>Sleep and Recovery</title>
    <link>https://harbor.example/blog/sleep</link>
    <guid isPermaLink="false">post-42</guid>
    <pubDate>Tue, 07 May 2024 10:00:00 +0200</pubDate>
    <dc:creator>Dr. Jane Roe</dc:creator>
    <category>sleep</category><category>recovery</category>
    <description>Short summary of the sleep post.</description>
    <content:encoded><![CDATA[<p>Full <b>sleep</b> text.<script>alert('x')</script></p>
      <img src="/img/sleep.png" alt="Bed"><p onclick="x()">Second paragraph.</p>]]></content:encoded>
  </item>
  <item>
    <title>Walking &amp; Mood</title>
    <link>https://harbor.example/blog/walking</link>
    <pubDate>Fri, 03 May 2024 08:00:00 GMT</pubDate>
    <description>&lt;p&gt;Only a description with a &lt;a href="/more"&gt;link&lt;/a&gt;.&lt;/p&gt;</description>
  </item>
</channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Harbor Atom</title>
  <id>urn:uuid:feed</id>
  <updated>2024-05-10T00:00:00Z</updated>
  <entry>
    <title>First Atom Post</title>
    <id>urn:uuid:one</id>
    <link rel="alternate" href="https://harbor.example/atom/one"/>
    <updated>2024-04-01T12:00:00Z</updated>
    <author><name>Dr. Omar Haddad</name></author>
    <content type="html">&lt;h2&gt;Part&lt;/h2&gt;&lt;p&gt;Atom body one.&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>Second Atom Post</title>
    <id>urn:uuid:two</id>
    <link rel="alternate" href="https://harbor.example/atom/two"/>
    <published>2024-05-02T12:00:00+02:00</published>
    <updated>2024-05-09T12:00:00Z</updated>
    <summary type="text">Plain summary text.

Second plain paragraph.</summary>
  </entry>
</feed>
"""


def test_rss_entries_oldest_first_with_metadata() -> None:
    title, entries = parse_feed(RSS, source_name="blog.rss", url="https://harbor.example/feed.xml")
    assert title == "Harbor Clinic Blog"
    assert [e.post.title for e in entries] == ["Walking & Mood", "Sleep and Recovery"]
    walking, sleep = entries
    assert walking.key == "https://harbor.example/blog/walking"  # no guid: the link
    assert sleep.key == "post-42"
    assert sleep.post.published_at == datetime(2024, 5, 7, 8, 0, tzinfo=UTC)
    assert sleep.post.author == "Dr. Jane Roe"
    assert sleep.post.tags == ["sleep", "recovery"]
    assert sleep.post.source_url == sleep.post.canonical_url == "https://harbor.example/blog/sleep"
    assert sleep.post.source_format == "feed"


def test_rss_content_is_preferred_and_sanitised() -> None:
    _, (walking, sleep) = parse_feed(RSS, source_name="blog.rss")
    assert [b.type for b in sleep.post.blocks] == ["paragraph", "image", "paragraph"]
    assert sleep.post.blocks[0].html == "Full <b>sleep</b> text."
    assert sleep.post.blocks[1].src == "https://harbor.example/img/sleep.png"
    assert "alert" not in repr(sleep.post.to_dict()) and "onclick" not in repr(sleep.post.to_dict())
    assert sleep.post.excerpt == "Short summary of the sleep post."
    assert walking.post.blocks[0].html == (
        'Only a description with a <a href="https://harbor.example/more">link</a>.')


def test_atom_entries() -> None:
    title, entries = parse_feed(ATOM, source_name="blog.atom")
    assert title == "Harbor Atom"
    assert [e.key for e in entries] == ["urn:uuid:one", "urn:uuid:two"]
    one, two = entries
    assert one.post.author == "Dr. Omar Haddad"
    assert one.post.published_at == datetime(2024, 4, 1, 12, 0, tzinfo=UTC)  # updated, no published
    assert [(b.type, b.html) for b in one.post.blocks] == [("heading", "Part"), ("paragraph", "Atom body one.")]
    assert two.post.published_at == datetime(2024, 5, 2, 10, 0, tzinfo=UTC)
    assert [b.html for b in two.post.blocks] == ["Plain summary text.", "Second plain paragraph."]
    assert two.post.canonical_url == "https://harbor.example/atom/two"


def test_feed_without_entries_is_empty_not_an_error() -> None:
    empty = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet Blog</title></channel></rss>'
    assert parse_feed(empty, source_name="quiet.rss") == ("Quiet Blog", [])


def test_entry_without_id_or_link_gets_a_hash_key_and_undated_order_is_reversed() -> None:
    rss = b"""<rss version="2.0"><channel><title>T</title>
      <item><title>Newest</title><description>B</description></item>
      <item><title>Oldest</title><description>A</description></item>
      <item><description></description></item>
    </channel></rss>"""
    _, entries = parse_feed(rss, source_name="t.rss")
    assert [e.post.title for e in entries] == ["Oldest", "Newest"]  # the empty item is skipped
    assert entries[0].key == "sha256:" + hashlib.sha256(b"Oldest\n").hexdigest()
    assert parse_feed(rss, source_name="t.rss")[1][0].key == entries[0].key  # stable


@pytest.mark.parametrize("data, reason", [
    (b"<html><body><p>Just a web page.</p></body></html>", r"no <rss>, <feed> or <rdf:RDF> element"),
    (b"<rss><channel><title>Broken</wrong>", r"mismatched tag"),
    (b"/etc/passwd", r"not well-formed"),  # never opened as a file path
])
def test_non_feeds_are_errors(data: bytes, reason: str) -> None:
    with pytest.raises(InputError, match=rf"page\.xml: not an RSS or Atom feed \(.*{reason}"):
        parse_feed(data, source_name="page.xml")


def test_titles_keep_plain_text_and_strip_html_titles() -> None:
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>
      <entry><id>1</id><title type="text">Use &lt;br&gt; &amp; more</title><updated>2024-01-01T00:00:00Z</updated>
        <content type="html">&lt;p&gt;x&lt;/p&gt;</content></entry>
      <entry><id>2</id><title type="html">&lt;em&gt;Bold&lt;/em&gt; claim</title><updated>2024-01-02T00:00:00Z</updated>
        <content type="html">&lt;p&gt;y&lt;/p&gt;</content></entry></feed>"""
    _, entries = parse_feed(atom, source_name="a.atom")
    assert [e.post.title for e in entries] == ["Use <br> & more", "Bold claim"]


# Found by fuzzing (tests/test_fuzz_posts.py); the feeds are the exact inputs it found. --------------

FOUND = Path(__file__).parent / "fixtures" / "feeds"


def test_entities_defined_through_entities_are_refused() -> None:
    """Ten entities of ten references each ("billion laughs"): expat expanded megabytes of them,
    one Python callback per "lol", for seconds per feed before giving up."""
    with pytest.raises(InputError, match=r"^nested\.rss: not a usable feed \(it defines XML entities through "
                                         r"other entities"):
        parse_feed((FOUND / "nested-entities.rss").read_bytes(), source_name="nested.rss")


def test_plain_entities_still_work() -> None:
    data = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY nbsp "&#160;"><!ENTITY co "Harbor &amp; Co">]>'
            b'<rss version="2.0"><channel><title>A&nbsp;&co;</title><item><guid>1</guid><title>T</title>'
            b"<description>x</description></item></channel></rss>")
    title, entries = parse_feed(data)
    assert title == "A Harbor & Co" and len(entries) == 1


def test_a_date_past_the_year_9999_is_no_date() -> None:
    """"9999-12-31T23:59:59-14:00" is in the year 10000 in UTC: datetime() raised ValueError."""
    _, entries = parse_feed((FOUND / "year-10000.atom").read_bytes(), source_name="year.atom")
    assert [e.post.published_at for e in entries][-1:] == [None]


def test_entry_fields_fit_where_they_are_stored() -> None:
    """Found by fuzzing: entry titles past the 500-character column, ids past the 2000-character key
    column and NUL characters (PostgreSQL refuses them) went straight to the database."""
    rss = (b'<rss version="2.0"><channel><title>F&#0;eed</title><item><guid>' + b"g" * 2500 + b"</guid><title>"
           + b"word " * 200 + b"</title><author>Dr.&#0; Roe</author><category>a&#0;b</category>"
           b"<description>Body.</description></item></channel></rss>")
    title, entries = parse_feed(rss)
    post = entries[0].post
    assert title == "Feed" and len(post.title) <= 500 and post.title.endswith("\u2026")
    assert (post.author, post.tags) == ("Dr. Roe", ["ab"])
    assert entries[0].key.startswith("sha256:") and len(entries[0].key) == 71


@pytest.mark.parametrize("link", [b"javascript:alert(1)", b"file:///etc/passwd", b"javascript\x00:alert(1)"])
def test_an_entry_link_that_is_no_web_address_is_not_kept(link: bytes) -> None:
    """Found by fuzzing (these feeds exactly): the entry's <link> became the post's source and canonical
    URL whatever its scheme, NUL included."""
    rss = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/'
           b'modules/content/"><channel><title></title><link>https://example.org/</link><item><title></title>'
           b"<link>" + link + b"</link><guid></guid><pubDate>Fri, 03 May 2024 10:00:00 GMT</pubDate>"
           b"<description>health</description><author></author></item></channel></rss>")
    post = parse_feed(rss)[1][0].post
    assert (post.source_url, post.canonical_url) == (None, None)
