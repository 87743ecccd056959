"""Coverage-guided fuzzing of the text and HTML importers with atheris (libFuzzer for Python).

Not collected by pytest (no ``test_`` name) and not run by CI: call it by hand, for a bounded time::

    .venv/bin/pip install -e '.[fuzz]'          # atheris
    .venv/bin/python tests/fuzz/importers.py text -max_total_time=180 -timeout=5
    .venv/bin/python tests/fuzz/importers.py html -max_total_time=180 -timeout=5 [CORPUS_DIR]

Each input is decoded as UTF-8 (bad bytes replaced), parsed, and its blocks compiled into the email
the way ``issues create`` does. InputError is the importer's clear refusal and passes; any other
exception, or a post that fails the checks of the Hypothesis tests (``tests/test_fuzz_posts.py``:
well-formed blocks, nothing executable, idempotent), stops the run and libFuzzer saves the input as
``crash-<sha1>`` in the current folder; ``-timeout`` reports an input that hangs. Give it a corpus
folder to keep what it learnt between runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere: the checkout's tests/

with atheris.instrument_imports():
    from newsletter.config import Settings
    from newsletter.errors import InputError
    from newsletter.posts.html import parse_html
    from newsletter.posts.text import parse_text
    from newsletter.compose.render import EmailContent, render_email
    from tests.test_fuzz_posts import check_email_html, check_post

PARSERS = {"text": parse_text, "html": parse_html}
SETTINGS = Settings(_env_file=None)


def one_input(parse, data: bytes) -> None:  # type: ignore[no-untyped-def]
    source = data.decode("utf-8", errors="replace")
    try:
        post = parse(source, source_name="fuzzed")
    except InputError as exc:
        assert "\n" not in str(exc), f"a two-line error: {exc}"
        return
    check_post(post)
    assert parse(source, source_name="fuzzed").to_dict() == post.to_dict(), "not idempotent"
    content = EmailContent(subject="Subject", preheader="", title=post.title,
                           blocks=[b.to_dict() for b in post.blocks])
    check_email_html(render_email(content, SETTINGS).html)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in PARSERS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(PARSERS)}}} [libFuzzer options] [CORPUS_DIR]")
    parse = PARSERS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], lambda data: one_input(parse, data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
