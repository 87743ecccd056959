"""Structure kept from a post's source, whatever importer read it (text, Markdown, HTML, feeds).

Importers turn markup into blocks; this module then fixes what the markup alone does not say:

- a heading right under the title that only repeats it (in any case or punctuation) is dropped, so
  the email does not show the title twice;
- an FAQ written as "Q: ..." / "A: ..." paragraphs ("Question:"/"Answer:", bold "Q." and the like)
  becomes a question heading followed by its answer, so readers (and screen readers) can skim it.
"""

from __future__ import annotations

import re
import unicodedata

from newsletter.posts.blocks import Block, clean_inline, inline_text

# Inline tags that may wrap a "Q:" label ("<strong>Q:</strong> ..." or "<strong>Q: ...?</strong>").
_WRAP = r"(?:<(?:strong|b|em|i)>\s*)*"
_UNWRAP = r"(?:</(?:strong|b|em|i)>\s*)*"
# The label, an optional number ("Q1", "Question 2") and its punctuation, or the end of its wrapping tag.
_LABEL = r"(?:\s*\d{1,3})?(?:\s*[:.)\u2013\u2014-]|(?=\s*</))"
_QUESTION_RE = re.compile(rf"^\s*(?P<open>{_WRAP})(?:Q|Question|QUESTION){_LABEL}\s*(?P<close>{_UNWRAP})(?P<rest>.*)$", re.S)
_ANSWER_RE = re.compile(rf"^\s*(?P<open>{_WRAP})(?:A|Answer|ANSWER){_LABEL}\s*(?P<close>{_UNWRAP})(?P<rest>.*)$", re.S)
_BR_RE = re.compile(r"<br\s*/?>", re.I)
_WHOLLY_BOLD_RE = re.compile(r"^<(strong|b)>(?P<inner>(?:(?!</?(?:strong|b)>).)*)</\1>$", re.S)


def title_key(text: str) -> str:
    """``text`` as compared with a title: case, punctuation, symbols and spacing left out."""
    kept = "".join(" " if unicodedata.category(c)[0] in "PSZ" else c for c in text.casefold())
    return " ".join(kept.split())


def same_title(text: str, title: str) -> bool:
    """Does ``text`` repeat ``title`` ("THE BENEFITS OF EXERCISE!" repeats "The benefits of exercise")?"""
    key = title_key(text)
    return bool(key) and key == title_key(title)


def drop_repeated_title(title: str, blocks: list[Block]) -> list[Block]:
    """``blocks`` without a first heading that repeats ``title`` (pages print it as h1 and h2 alike)."""
    if blocks and blocks[0].type == "heading" and same_title(inline_text(blocks[0].html, markers=False), title):
        return blocks[1:]
    return blocks


def _labelled(pattern: re.Pattern[str], html: str) -> str | None:
    """The inline html after a "Q:"/"A:" label (wrapping bold kept balanced), or None without one."""
    m = pattern.match(html)
    if m is None:
        return None
    rest = m.group("rest")
    if m.group("open") and not m.group("close"):
        rest = m.group("open") + rest  # "<strong>Q: Why?</strong>": the bold wraps the question too
    rest = clean_inline(rest.lstrip(":.)\u2013\u2014- "))  # "<b>Q</b>. Why?": the label's own dot
    return rest if inline_text(rest) else None


def _unbold(html: str) -> str:
    """A question wholly in bold loses the bold: a heading is bold already."""
    m = _WHOLLY_BOLD_RE.match(html)
    return m.group("inner").strip() if m else html


def _split_question(block: Block) -> tuple[str, str | None] | None:
    """(question html, answer html on the same paragraph or None) when ``block`` asks a labelled question."""
    if block.type not in {"paragraph", "heading"}:
        return None
    lines = _BR_RE.split(block.html)
    for n in range(1, len(lines)):  # "Q: Why?<br>A: Because." in one paragraph
        answer = _labelled(_ANSWER_RE, lines[n])
        if answer is not None:
            question = _labelled(_QUESTION_RE, "<br>".join(lines[:n]))
            if question is None:
                return None
            rest = "<br>".join([answer, *lines[n + 1:]])
            return _unbold(question), clean_inline(rest)
    question = _labelled(_QUESTION_RE, block.html)
    return (_unbold(question), None) if question is not None else None


def _answer(block: Block) -> str | None:
    return _labelled(_ANSWER_RE, block.html) if block.type == "paragraph" else None


def faq_blocks(blocks: list[Block]) -> list[Block]:
    """Questions labelled "Q:" (and their variants) as headings, their answers as paragraphs.

    A labelled question counts only when a paragraph answers it; and the page must look like an FAQ:
    an explicit "A:" answer somewhere, or at least two questions (one stray "Q." is left as it is).
    A question heading sits one level under the heading before it (h2 when there is none).
    """
    found: dict[int, tuple[str, str | None]] = {}
    explicit_answer = False
    for n, block in enumerate(blocks):
        split = _split_question(block)
        if split is None:
            continue
        if split[1] is not None:
            found[n] = split
            explicit_answer = True
        elif n + 1 < len(blocks) and blocks[n + 1].type == "paragraph" and _split_question(blocks[n + 1]) is None:
            found[n] = split
            explicit_answer = explicit_answer or _answer(blocks[n + 1]) is not None
    if not found or not (explicit_answer or len(found) >= 2):
        return blocks
    out: list[Block] = []
    section_level = 1  # the level of the last heading that is not a question
    for n, block in enumerate(blocks):
        if n in found:
            question, same_line_answer = found[n]
            level = block.level if block.type == "heading" and block.level else min(section_level + 1, 4)
            out.append(Block(type="heading", level=level, html=question))
            if same_line_answer:
                out.append(Block(type="paragraph", html=same_line_answer))
            continue
        if block.type == "heading":
            section_level = block.level or 2
        elif n - 1 in found and found[n - 1][1] is None and (answer := _answer(block)) is not None:
            block = Block(type="paragraph", html=answer)  # the answer's own "A:" label goes
        out.append(block)
    return out


def shape(title: str, blocks: list[Block]) -> list[Block]:
    """Every structure rule of this module, in order: what each importer calls on its blocks."""
    return faq_blocks(drop_repeated_title(title, blocks))
