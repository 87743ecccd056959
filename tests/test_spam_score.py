"""Every layout, as the whole MIME message a reader receives, scores 0.5 or lower in SpamAssassin.

Debian's package, run offline (``-L``: no DNS or network tests) with its stock rules, as a mailbox
provider's filter would see the message before reputation counts. Skipped only where SpamAssassin is not
installed (``.ci/run`` installs it through ``scripts/ensure-spamassassin``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from newsletter.compose.mime import build_message
from newsletter.config import Settings
from newsletter.urls import recipient_values, unsubscribe_mailto
from tests.lookkit import LAYOUTS, POSTS

MAX_SCORE = 0.5
_STATUS = re.compile(r"^X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+ tests=(.*?)(?:autolearn|version)",
                     re.MULTILINE | re.DOTALL)


def spam_report(message: bytes, home: Path) -> tuple[float, list[str]]:
    """SpamAssassin's score and the rules that fired for ``message``, with its own empty home folder."""
    if shutil.which("spamassassin") is None:
        pytest.skip("SpamAssassin is not installed (.ci/run installs Debian's spamassassin)")
    home.mkdir(exist_ok=True)
    done = subprocess.run(["spamassassin", "-t", "-L"], input=message, capture_output=True, timeout=120,
                          env={**os.environ, "HOME": str(home)}, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    found = _STATUS.search(done.stdout.decode(errors="replace"))
    assert found, f"no X-Spam-Status in SpamAssassin's answer:\n{done.stdout[:2000]!r}"
    rules = [r for r in re.split(r"[\s,]+", found.group(2)) if r]
    return float(found.group(1)), rules


@pytest.mark.parametrize("post", sorted(POSTS))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_scores_at_most_half_a_point(settings: Settings, tmp_path: Path, layout: str, post: str) -> None:
    compiled = LAYOUTS[layout](POSTS[post](), settings)
    message = build_message(compiled, to_email="dana@example.org", to_name="Dana Smith",
                            values=recipient_values(settings, "tokABC123", "Dana Smith"),
                            unsubscribe_mailto=unsubscribe_mailto(settings, "tokABC123"), settings=settings)
    score, rules = spam_report(message.as_bytes(), tmp_path / "home")
    assert score <= MAX_SCORE, f"{layout} layout, {post} post: {score} points from {rules}"
    # The preheader is hidden without colour tricks: nothing is "text the colour of its background".
    assert "HTML_FONT_LOW_CONTRAST" not in rules
