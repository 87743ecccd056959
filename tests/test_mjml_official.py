"""mjml-python's HTML against the official MJML compiler's, for every layout and sample post, when
``NEWSLETTER_TEST_MJML`` names the official command line (``node_modules/.bin/mjml`` of the npm package
``mjml``; third-party code, never installed by the project). Unset, the test is skipped.

Compared as documents: every element with its attributes (order, whitespace and class order aside) and
text. Outlook's conditional comments are left out: the official compiler merges neighbouring ones,
mjml-python does not, and only Outlook for Windows reads them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import mjml
import pytest
from lxml import etree
from lxml import html as lxml_html

from newsletter.config import Settings
from tests.lookkit import IMAGE_HOST, LAYOUTS, POSTS

# mjml-python writes vertical-align="middle" on the button's outer cell; the official compiler does not.
# Every client places the button the same either way.
KNOWN = {("td", "vertical-align", "middle")}


def _canon(html: str) -> list[tuple[Any, ...]]:
    def squeeze(text: str | None) -> str:
        return re.sub(r"\s+", "", text or "")

    nodes: list[tuple[Any, ...]] = []
    for el in lxml_html.document_fromstring(html).iter():
        if isinstance(el, etree._Comment):
            continue
        attrs = tuple(sorted((k, " ".join(sorted(v.split())) if k == "class" else squeeze(v))
                             for k, v in el.attrib.items() if (el.tag, k, v) not in KNOWN))
        nodes.append((el.tag, attrs, squeeze(el.text), squeeze(el.tail)))
    return nodes


@pytest.mark.parametrize("post", sorted(POSTS))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_same_document_as_the_official_compiler(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                layout: str, post: str) -> None:
    official = os.environ.get("NEWSLETTER_TEST_MJML", "").strip()
    if not official:
        pytest.skip("NEWSLETTER_TEST_MJML is not set (the path of the official compiler's mjml command)")
    sources: list[str] = []
    compile_mjml = mjml.mjml2html

    def keep_source(source: str, **options: Any) -> str:
        sources.append(source)
        return compile_mjml(source, **options)

    monkeypatch.setattr(mjml, "mjml2html", keep_source)
    branded = settings.model_copy(update={"logo_url": f"{IMAGE_HOST}/logo.png"})
    ours = LAYOUTS[layout](POSTS[post](), branded).html
    assert len(sources) == 1
    done = subprocess.run([official, "-i", "-s", "--config.keepComments", "false", "--config.fonts",
                           json.dumps({}), "--config.validationLevel", "strict"],
                          input=sources[0].encode(), capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    theirs = done.stdout.decode()
    mine, reference = _canon(ours), _canon(theirs)
    differences = [(a, b) for a, b in zip(mine, reference) if a != b]
    assert len(mine) == len(reference) and differences == [], differences[:3]
