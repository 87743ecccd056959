"""Hypothesis strategies for hostile post sources: plain text in the shape of a copied blog page,
Markdown with front matter, HTML pages and RSS/Atom feeds.

Each mixes what real sources hold (titles, labels, footnote markers, references, lists, quotes)
with what an attacker or a broken exporter sends on purpose: scripts, event handlers,
``javascript:``/``data:`` links spelled every way browsers accept, raw-text elements, malformed
markup, YAML and XML entity tricks, odd Unicode and cut-off documents. Script and style bodies
carry ``SCRIPT_MARKER`` so a test can check that nothing inside them reaches a post.
"""

from __future__ import annotations

from html import escape

from hypothesis import strategies as st

SCRIPT_MARKER = "SCRIPTBODY"

HOSTILE_URLS = [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "java\nscript:alert(1)", "&#106;avascript:alert(1)", "&#x6A;avascript:alert(1)",
    "javascript&colon;alert(1)", "javascript&#58;alert(1)", "\x01javascript:alert(1)",
    "javascript://%0aalert(1)", "vbscript:msgbox(1)", "livescript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "DATA:image/svg+xml,<svg onload=alert(1)>",
    "data:,x", "\u2028javascript:alert(1)", "javascript\x00:alert(1)", "file:///etc/passwd",
    "//evil.example/x.js", "http://", "https:", "http:///x", "http://[::1", "https://[bad/x",
    "http://exa mple.org/", "https://example.org/a?x=\"onmouseover=alert(1)", "/relative/path", "#frag", "?q=1",
    "mailto:someone@example.org", "tel:+15550100", "https://example.org/ok", "www.example.org/page",
    "https://example.org/%%first_name%%", "https://example.org/\u00e9\u00e8", "ftp://example.org/f",
]
SAFE_URLS = ["https://example.org/a", "http://example.com/b?c=d&e=f", "https://example.org/img.png"]
HOSTILE_SNIPPETS = [
    f"<script>alert('{SCRIPT_MARKER}')</script>",
    f"<SCRIPT SRC=//evil.example/x.js>alert('{SCRIPT_MARKER}')</SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",  # a tag named "scr<script", then text: browsers agree
    f"<style>body{{background:url('{SCRIPT_MARKER}')}}</style>",
    "<img src=x onerror=alert(1)>", "<img src=\"https://example.org/i.png\" onerror=\"alert(1)\" alt=\"i\">",
    "<svg onload=alert(1)><script>alert(2)</script></svg>", "<iframe src=javascript:alert(1)></iframe>",
    "<a href=javascript:alert(1)>click</a>", "<a href=\"  JAVASCRIPT:alert(1)\">click</a>",
    "<a href=\"java&#x09;script:alert(1)\">tab</a>", "<a href=\"&#106;&#97;vascript:alert(1)\">ent</a>",
    "<a href=\"data:text/html,<script>alert(1)</script>\">data</a>",
    "<a href=\"https://example.org/\" onclick=\"alert(1)\" style=\"color:red\">ok</a>",
    "<body onload=alert(1)>", "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
    "<object data=\"javascript:alert(1)\"></object>", "<embed src=\"data:text/html,x\">",
    "<form action=\"javascript:alert(1)\"><button>go</button></form>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<base href=\"javascript:alert(1)//\">", f"<!--<script>alert('{SCRIPT_MARKER}')</script>-->",
    f"<![CDATA[<script>alert('{SCRIPT_MARKER}')</script>]]>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    f"<template><script>alert('{SCRIPT_MARKER}')</script></template>",
    "&lt;script&gt;alert(1)&lt;/script&gt;", "<p style=\"background:url(javascript:alert(1))\">styled</p>",
    "<img srcset=\"javascript:alert(1) 1x\" alt=\"s\">", "<img data-src=\"javascript:alert(1)\" alt=\"d\">",
    "<img src=\"data:image/png;base64,iVBORw0KGgo=\" alt=\"png\">",
    "<sup onmouseover=alert(1)>1</sup>", "<code onclick=alert(1)>x</code>",
    "<blockquote cite=\"javascript:alert(1)\">q<footer onclick=\"x\">\u2014 who</footer></blockquote>",
    "<blockquote>q<footer>w</footer>\x01tail<cite>c</cite>\x1f</blockquote>",  # (atheris found this one)
    "<figure><img src=\"https://example.org/a.png\" alt='\"><b onmouseover=alert(1)>'>"
    "<figcaption onclick=x>cap <i>tion</i></figcaption></figure>",
    "<a href=\"https://example.org/\"><img src=\"https://example.org/b.png\" alt=\"b\" onload=\"x\"></a>",
    "<div onclick=\"alert(1)\">div soup<br><br>more</div>", "<p>%%unsubscribe_url%% %%first_name%%</p>",
    "<mj-raw><script>alert(1)</script></mj-raw>", "</mj-text><mj-raw>x</mj-raw>", "{{ 7*7 }} {% raw %}",
    "<img src=\"https://example.org/p.png\" width=\"1\" height=\"1\">", "<a href=\"#\">\u00b6</a>",
]
TAGS = ["p", "div", "span", "section", "article", "main", "a", "em", "strong", "b", "i", "sup", "sub", "code",
        "br", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li", "dl", "dt", "dd", "table",
        "tr", "td", "th", "figure", "figcaption", "img", "hr", "pre", "header", "nav", "footer", "aside",
        "q", "cite", "small", "font", "center", "details", "summary", "time", "o:p", "custom-el", "picture"]
ATTRIBUTES = ["href", "src", "alt", "title", "class", "id", "style", "hidden", "aria-hidden", "onclick",
              "onerror", "data-src", "srcset", "width", "height", "role", "datetime", "rel", "cite", "lang"]
CLASS_VALUES = ["footnotes", "references", "footnote-backref", "headerlink", "anchor", "x"]

WORDS = ["health", "mood", "Exercise", "ketamine", "walk", "brain", "the", "and", "of", "study", "B12", "mp3",
         "COVID-19", "\u201crunner\u2019s high\u201d", "e.g.", "Dr.", "caf\u00e9", "\u00c9cole", "na\u00efve",
         "\u65e5\u672c\u8a9e", "\u0645\u0631\u062d\u0628\u0627", "\U0001f600", "x\u0301", "\u200bzero",
         "\u00adsoft", "tab\there", "%%first_name%%", "<b>", "&amp;", "&", "<", ">", "\"", "'"]


def _unicode(max_size: int) -> st.SearchStrategy[str]:
    # No surrogates (they cannot come out of decoded bytes); control characters included on purpose.
    return st.text(st.characters(blacklist_categories=("Cs",)), max_size=max_size)


def _words(min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[str]:
    word = st.one_of(st.sampled_from(WORDS), st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True))
    return st.lists(word, min_size=min_size, max_size=max_size).map(" ".join)


# --- plain text in the seed's shape -------------------------------------------------------------

LABEL_LINES = ["Post category", "Publish date", "Published", "Posted on 3 May 2024", "By Jane Doe",
               "Written by Dr. A. Atoian", "Author:", "Tags: mood, exercise", "Category: News | Health",
               "5 min read", "Share this", "Skip to content", "3 May 2024", "May 3rd, 2024",
               "Tuesday, 1 October 2024", "2024-05-03T10:00:00Z", "Updated: 31.12.2099", "Date", "0001-01-01",
               "9999-12-31T23:59:59-14:00", "Published on 31 Feb 2024"]


@st.composite
def _sentence(draw: st.DrawFn, refs: int) -> str:
    text = draw(_words(3, 25))
    end = draw(st.sampled_from([".", "!", "?", ":", "", "\u2026", ".\u201d"]))
    marker = ""
    if refs and draw(st.booleans()):
        marker = draw(st.sampled_from(["{n}", "[{n}]", "{n},{m}", "[{n}, {m}]"])).format(
            n=draw(st.integers(1, refs + 1)), m=draw(st.integers(1, refs + 1)))
    extra = draw(st.sampled_from(["", "", "", " see https://example.org/x.", " mail info@example.org",
                                  " www.example.org/page)", " (https://example.org/a_(b))",
                                  " javascript:alert(1)", " <script>alert(1)</script>",
                                  " " + draw(st.sampled_from(HOSTILE_URLS)),
                                  " " + draw(st.sampled_from(HOSTILE_SNIPPETS))]))
    return text + end + marker + extra


@st.composite
def _text_block(draw: st.DrawFn, refs: int) -> str:
    kind = draw(st.sampled_from(["para", "para", "para", "heading", "quote", "quoted", "list", "olist",
                                 "label", "wrapped", "unicode", "short"]))
    if kind == "para":
        return " ".join(draw(st.lists(_sentence(refs), min_size=1, max_size=4)))
    if kind == "heading":
        return draw(_words(1, 8)).title()
    if kind == "quote":
        return "\n".join("> " + s for s in draw(st.lists(_sentence(refs), min_size=1, max_size=3)))
    if kind == "quoted":
        inner = draw(_sentence(0))
        n = draw(st.sampled_from(["", "1", "2", "99"]))
        cite = draw(st.sampled_from(["", " \u2014 Hippocrates", " - Someone", " \u2013 <b>x</b>"]))
        return draw(st.sampled_from(["\u201c{}\u201d{}{}", "\"{}\"{}{}"])).format(inner, n, cite)
    if kind in ("list", "olist"):
        items = draw(st.lists(_sentence(refs), min_size=1, max_size=5))
        bullet = draw(st.sampled_from(["-", "*", "\u2022", "\u2013"]))
        return "\n".join((f"{n}. " if kind == "olist" else f"{bullet} ") + t for n, t in enumerate(items, 1))
    if kind == "label":
        return draw(st.sampled_from(LABEL_LINES))
    if kind == "wrapped":
        words = draw(_words(10, 60)).split()
        width = draw(st.integers(3, 12))
        return "\n".join(" ".join(words[i:i + width]) for i in range(0, len(words), width))
    if kind == "unicode":
        return draw(_unicode(200))
    return draw(st.sampled_from(["1.", "-", "\u201c", "\"\"", ">", "2)", "[1]", "\u00a0", "\t", "References",
                                 "12", "x" * 300, "#", "\ufeff", "\r", "\x0b\x0c"]))


@st.composite
def seed_shaped_text(draw: st.DrawFn) -> str:
    """Text copied off a blog page: site name, title, labels, body, then a numbered reference list."""
    refs = draw(st.integers(0, 4))
    parts: list[str] = []
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["Limbic Medical", "example.org", "Clinic | Blog", ""])))
    parts.append(draw(st.one_of(_words(1, 10).map(str.title), _unicode(60), st.sampled_from(LABEL_LINES))))
    parts += draw(st.lists(st.sampled_from(LABEL_LINES), max_size=4))
    parts += draw(st.lists(_text_block(refs), max_size=10))
    if refs:
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(["References", "Sources:", "Notes"])))
        for n in range(1, refs + 1):
            shape = draw(st.sampled_from(["{n}. {a}. \u201c{t}.\u201d Site, 6 January 2020", "[{n}] {a} {u}",
                                          "{n}) {a}, et al. ({y}) doi:10.1/x", "{n}. {a}\n{t}"]))
            parts.append(shape.format(n=n, a=draw(_words(1, 4)), t=draw(_words(1, 8)),
                                      u=draw(st.sampled_from(HOSTILE_URLS)), y=draw(st.integers(1900, 2100))))
    seps = draw(st.lists(st.sampled_from(["\n\n", "\n", "\n\n\n", "\r\n\r\n", "\r", "\n \n"]),
                         min_size=len(parts), max_size=len(parts)))
    text = "".join(p + s for p, s in zip(parts, seps))
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # cut off mid-way
    return text


# --- HTML -----------------------------------------------------------------------------------------


@st.composite
def _attribute(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(ATTRIBUTES))
    if name in ("href", "src", "data-src", "cite"):
        value = draw(st.sampled_from(HOSTILE_URLS + SAFE_URLS))
    elif name == "srcset":
        value = draw(st.sampled_from(HOSTILE_URLS + SAFE_URLS)) + " 2x, https://example.org/s.png 1x"
    elif name == "class":
        value = draw(st.sampled_from(CLASS_VALUES))
    elif name == "style":
        value = draw(st.sampled_from(["display:none", "visibility: hidden", "color:red",
                                      "background:url(javascript:alert(1))"]))
    elif name in ("width", "height"):
        value = draw(st.sampled_from(["1", "100", "-5", "x"]))
    else:
        value = draw(st.one_of(_words(0, 3), st.sampled_from(["alert(1)", "true", "\"><script>alert(1)</script>"])))
    quote = draw(st.sampled_from(["\"", "'", ""]))
    if not quote:
        value = value.replace(" ", "")
    return f" {name}={quote}{escape(value, quote=True) if quote else value}{quote}" if value or quote else f" {name}"


def _html_node(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    @st.composite
    def element(draw: st.DrawFn) -> str:
        tag = draw(st.sampled_from(TAGS))
        attrs = "".join(draw(st.lists(_attribute(), max_size=3)))
        inner = "".join(draw(st.lists(children, max_size=4)))
        close = draw(st.sampled_from([f"</{tag}>", f"</{tag}>", f"</{tag}>", "", f"</{tag.upper()}>"]))
        return f"<{tag}{attrs}>{inner}{close}"

    return element()


_html_leaf = st.one_of(
    _words(1, 10).map(lambda s: escape(s, quote=False)),
    st.sampled_from(HOSTILE_SNIPPETS),
    _unicode(40),
    st.sampled_from(["&nbsp;", "&amp;", "&#0;", "&#x110000;", "&bogus;", "<", "</", "<!", "<?php x ?>", "]]>",
                     "<br/>", "<hr>", "<p>", "</p>", "</div>", "\u2028", "<o:p></o:p>", "<!DOCTYPE html>"]),
)
html_fragment = st.recursive(_html_leaf, _html_node, max_leaves=40).map(str)


@st.composite
def html_page(draw: st.DrawFn) -> str:
    """A whole page (head with meta tags, body with an article) or a bare fragment."""
    body = "".join(draw(st.lists(html_fragment, min_size=0, max_size=8)))
    if draw(st.integers(0, 9)) == 0:  # deep nesting (libxml2 keeps up to 256 levels)
        opening = draw(st.sampled_from(["<blockquote>", "<ul><li>", "<div>", "<b>", "<table><tr><td>"]))
        body = opening * draw(st.integers(60, 300)) + body
    if draw(st.integers(0, 4)) == 0:
        return body
    metas = draw(st.lists(st.sampled_from([
        "<meta property=\"og:title\" content=\"OG <b>title</b>\">", "<meta name=\"description\" content=\"d\">",
        "<meta property=\"article:published_time\" content=\"2024-05-03T10:00:00Z\">",
        "<meta name=\"date\" content=\"99999-01-01\">", "<meta name=\"author\" content=\"By Jane\">",
        "<meta property=\"article:tag\" content=\"a, b,,c\">", "<link rel=\"canonical\" href=\"{u}\">",
        "<meta property=\"og:url\" content=\"{u}\">", "<base href=\"{u}\">", "<title>{t}</title>",
        "<meta property=\"og:site_name\" content=\"Site\">",
    ]), max_size=6))
    url = draw(st.sampled_from(HOSTILE_URLS + SAFE_URLS))
    title = escape(draw(_words(1, 6)), quote=False) + draw(st.sampled_from(["", " | Site", " - Blog"]))
    head = "".join(m.format(u=escape(url), t=title) for m in metas)
    h1 = draw(st.sampled_from(["", f"<h1>{title}</h1>", "<h1><script>x</script></h1>", "<h1>" + "long " * 120 + "</h1>",
                               "<title>x</title><h1 class=\"unclosed>"]))
    wrapper = draw(st.sampled_from(["<article>{}</article>", "<main>{}</main>", "<div role=\"main\">{}</div>",
                                    "{}", "<nav>{}</nav><article>{}</article>"]))
    page = (draw(st.sampled_from(["<!DOCTYPE html>", "<?xml version=\"1.0\"?>", ""]))
            + f"<html><head>{head}</head><body>{h1}{wrapper.format(body, body)}</body></html>")
    if draw(st.integers(0, 9)) == 0:
        page = page[: draw(st.integers(0, len(page)))]
    return page


# --- Markdown -------------------------------------------------------------------------------------


def _yaml_bomb(levels: int) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]")
    return "\n".join(lines) + f"\ntitle: *a{levels - 1}\ntags: *a{levels - 1}\nauthor: *a{levels - 1}\n"


FRONT_MATTER_VALUES = [
    "Plain title", "\"Quoted: title\"", "[a, b, {name: c}]", "{name: Jane}", "{name: {deep: x}}", "123",
    "1e400", "-.inf", ".nan", "true", "null", "~", "2024-05-03", "2024-05-03 10:00:00", "2024-05-03T10:00:00+14:00",
    "9999-12-31 23:59:59 -12:00", "0001-01-01 00:00:00 +01:00", "0001-01-01", "\"31 February 2024\"",
    "!!binary aGVsbG8=", "!!set {a, b}", "!!python/object/apply:os.system [\"true\"]", "&x [*x]", "*undefined",
    "\"<script>alert(1)</script>\"", "\"javascript:alert(1)\"", "|\n  multi\n  line", "[[[[[[[[[]]]]]]]]]",
    "!!timestamp 2024-13-45", "!!int 99999999999999999999999", "{? [a, b] : c}", "'%%first_name%%'",
    "x" * 600, "\"a\\0b\\x01c\"", "[\"a\\0\", b]",
]
FRONT_MATTER_KEYS = ["title", "Title", "date", "published", "tags", "author", "canonical_url", "canonical",
                     "excerpt", "description", "summary", "1", "? complex", "<<"]


@st.composite
def front_matter(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["none", "none", "fields", "fields", "fields", "broken", "unclosed", "bomb",
                                 "deep", "scalar", "empty"]))
    if kind == "none":
        return ""
    if kind == "fields":
        keys = draw(st.lists(st.sampled_from(FRONT_MATTER_KEYS), max_size=6))
        lines = []
        for key in keys:
            value = draw(st.one_of(st.sampled_from(FRONT_MATTER_VALUES), st.sampled_from(HOSTILE_URLS).map(repr),
                                   _words(1, 6)))
            lines.append(f"{key}: {value}")
        return "---\n" + "\n".join(lines) + "\n" + draw(st.sampled_from(["---", "...", "---  "])) + "\n"
    if kind == "broken":
        return "---\n" + draw(st.sampled_from(["title: [unclosed", "a: b: c", "\tx: y", "title: \"x", "- a\nb: c",
                                               "%YAML 9.9\n---", "title: *nope", "!!str"])) + "\n---\n"
    if kind == "unclosed":
        return "---\ntitle: Never closed\n"
    if kind == "bomb":
        return "---\n" + _yaml_bomb(draw(st.integers(3, 9))) + "---\n"
    if kind == "deep":
        depth = draw(st.integers(50, 3000))
        return "---\ntitle: " + "[" * depth + "]" * depth + "\n---\n"
    if kind == "scalar":
        return "---\n" + draw(st.sampled_from(["just text", "- a\n- b", "42", "[1, 2]"])) + "\n---\n"
    return "---\n---\n"


@st.composite
def _markdown_block(draw: st.DrawFn) -> str:
    url = draw(st.sampled_from(HOSTILE_URLS + SAFE_URLS))
    kind = draw(st.sampled_from(["para", "para", "heading", "h1", "link", "image", "autolink", "reflink", "raw",
                                 "raw", "list", "quote", "fence", "footnote", "table", "hr", "unicode", "setext"]))
    words = draw(_words(1, 15))
    if kind == "para":
        return words + draw(st.sampled_from(["", " *em*", " **strong**", " `code <script>`", " \\<script>",
                                             "[^1]", "[^note]", " <span onclick=x>s</span>", "  \nbreak"]))
    if kind == "heading":
        return "#" * draw(st.integers(2, 7)) + " " + words
    if kind == "h1":
        return "# " + draw(st.sampled_from([words, "<script>alert(1)</script>", "", "[l](javascript:alert(1))"]))
    if kind == "link":
        return f"{words} [{draw(_words(1, 3))}]({url} \"t\") and [x](<{url}>)"
    if kind == "image":
        return f"![{draw(_words(0, 3))}]({url})"
    if kind == "autolink":
        return f"<{url}> and {url}"
    if kind == "reflink":
        return f"[{words}][r]\n\n[r]: {url}"
    if kind == "raw":
        return draw(st.one_of(st.sampled_from(HOSTILE_SNIPPETS), html_fragment))
    if kind == "list":
        items = draw(st.lists(_words(1, 6), min_size=1, max_size=5))
        mark = draw(st.sampled_from(["-", "*", "1.", "2)"]))
        nested = draw(st.sampled_from(["", "\n    - nested", "\n  1. deep\n     - deeper"]))
        return "\n".join(f"{mark} {i}" for i in items) + nested
    if kind == "quote":
        return "> " + words + "\n> > nested " + draw(st.sampled_from(HOSTILE_SNIPPETS))
    if kind == "fence":
        return "```" + draw(st.sampled_from(["", "html", "js"])) + "\n" + draw(st.sampled_from(HOSTILE_SNIPPETS)) + \
            draw(st.sampled_from(["\n```", ""]))
    if kind == "footnote":
        return f"[^{draw(st.sampled_from(['1', 'note', 'x y']))}]: {words} {url}"
    if kind == "table":
        return f"| a | b |\n|---|---|\n| {words} | <script>alert(1)</script> |"
    if kind == "hr":
        return draw(st.sampled_from(["---", "***", "___"]))
    if kind == "setext":
        return words + "\n" + draw(st.sampled_from(["===", "---"]))
    return draw(_unicode(100))


@st.composite
def markdown_document(draw: st.DrawFn) -> str:
    text = draw(front_matter()) + "\n\n".join(draw(st.lists(_markdown_block(), max_size=10)))
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


# --- feeds ----------------------------------------------------------------------------------------


def _xml_text(value: str, cdata: bool) -> str:
    if cdata:
        return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"
    return escape(value, quote=False)


FEED_DATES = ["Fri, 03 May 2024 10:00:00 GMT", "2024-05-03T10:00:00Z", "2024-05-03", "not a date",
              "Mon, 31 Feb 2024 25:61:61 +9999", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00",
              "99999-01-01T00:00:00Z", "", "1970-01-01T00:00:00Z", "2024-W18-5"]


@st.composite
def _feed_entry(draw: st.DrawFn, atom: bool) -> str:
    title = draw(st.one_of(_words(0, 8), st.sampled_from(HOSTILE_SNIPPETS + ["word " * 120]), _unicode(40)))
    body = draw(st.one_of(html_fragment, st.sampled_from(HOSTILE_SNIPPETS), _words(0, 30)))
    link = draw(st.sampled_from(HOSTILE_URLS + SAFE_URLS))
    date = draw(st.sampled_from(FEED_DATES))
    ident = draw(st.sampled_from(["", "id-1", "id-2", "urn:x", link, "g" * 2100, "id&#1;x"]))
    cdata = draw(st.booleans())
    tags = draw(st.lists(_words(0, 2), max_size=3))
    if atom:
        ctype = draw(st.sampled_from(["html", "xhtml", "text", "text/html", "image/png", ""]))
        content = (f"<div xmlns=\"http://www.w3.org/1999/xhtml\">{body}</div>" if ctype == "xhtml"
                   else _xml_text(body, cdata))
        return (f"<entry><title type=\"{draw(st.sampled_from(['html', 'text', '']))}\">{_xml_text(title, cdata)}"
                f"</title><link href=\"{escape(link)}\"/><id>{escape(ident)}</id><updated>{date}</updated>"
                + "".join(f"<category term=\"{escape(t)}\"/>" for t in tags)
                + f"<summary type=\"html\">{_xml_text(body[:80], cdata)}</summary>"
                + (f"<content type=\"{ctype}\">{content}</content>" if draw(st.booleans()) else "")
                + "</entry>")
    return (f"<item><title>{_xml_text(title, cdata)}</title><link>{escape(link)}</link>"
            f"<guid>{escape(ident)}</guid><pubDate>{date}</pubDate>"
            + "".join(f"<category>{escape(t)}</category>" for t in tags)
            + f"<description>{_xml_text(body, cdata)}</description>"
            + (f"<content:encoded>{_xml_text(body, True)}</content:encoded>" if draw(st.booleans()) else "")
            + f"<author>{_xml_text(draw(_words(0, 3)), False)}</author></item>")


def _entity_doctype(kind: str, secret_path: str) -> str:
    if kind == "xxe":
        return f"<!DOCTYPE rss [<!ENTITY xxe SYSTEM \"file://{secret_path}\">]>"
    if kind == "laughs":
        ents = ["<!ENTITY l0 \"lol\">"] + [f"<!ENTITY l{n} \"{('&l' + str(n - 1) + ';') * 10}\">" for n in range(1, 10)]
        return "<!DOCTYPE rss [" + "".join(ents) + "]>"
    return ""


@st.composite
def feed_document(draw: st.DrawFn, secret_path: str = "/nonexistent") -> bytes:
    """RSS 2.0 or Atom bytes; sometimes with entity tricks, a wrong encoding or cut off."""
    atom = draw(st.booleans())
    entries = "".join(draw(st.lists(_feed_entry(atom), max_size=5)))
    trick = draw(st.sampled_from(["", "", "", "xxe", "laughs"]))
    ref = {"xxe": "&xxe;", "laughs": "&l9;"}.get(trick, "")
    title = _xml_text(draw(_words(0, 5)), False) + ref
    declaration = draw(st.sampled_from(["<?xml version=\"1.0\" encoding=\"utf-8\"?>", "",
                                        "<?xml version=\"1.0\" encoding=\"utf-16\"?>",
                                        "<?xml version=\"1.0\" encoding=\"x-bogus\"?>"]))
    doctype = _entity_doctype(trick, secret_path)
    if atom:
        doc = (f"{declaration}{doctype}<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>{title}</title>"
               f"<link href=\"{escape(draw(st.sampled_from(HOSTILE_URLS + SAFE_URLS)))}\"/>{entries}</feed>")
    else:
        doc = (f"{declaration}{doctype}<rss version=\"2.0\" xmlns:content=\"http://purl.org/rss/1.0/modules/"
               f"content/\"><channel><title>{title}</title><link>https://example.org/</link>{entries}"
               "</channel></rss>")
    data = doc.encode(draw(st.sampled_from(["utf-8", "utf-8", "cp1252", "utf-16"])), errors="replace")
    mutation = draw(st.integers(0, 9))
    if mutation == 0:
        data = data[: draw(st.integers(0, len(data)))]
    elif mutation == 1:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=20)) + data[at:]
    return data
