"""Accessibility checks and screenshots for browser tests.

- ``assert_accessible(page)``: runs axe-core in the page against WCAG 2.0 and 2.1, levels A and AA,
  and fails listing every serious or critical violation (rule id, impact, the elements). axe-core is
  test-only third-party code, never committed: ``scripts/fetch-axe`` (run by ``make test``) puts the
  pinned, sha512-verified release in ``.cache/axe-core/axe.min.js``. It is evaluated through the
  DevTools protocol rather than added as a ``<script>``, so the pages' own CSP (``script-src 'self'``)
  stays as it is in production and still applies to everything the page itself loads.
- ``shoot(page, name)``: full-page screenshots at a phone's and a desktop's width, kept as test
  artifacts in ``test-artifacts/screenshots/NAME-390.png`` and ``NAME-1280.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
AXE = ROOT / ".cache" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
WIDTHS = (390, 1280)
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")

_RUN = """async ([context, tags]) => {
    const result = await axe.run(context || document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
    return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                        targets: v.nodes.map(n => n.target.join(' '))}));
}"""


def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(f"{AXE.relative_to(ROOT)} is missing: run 'python3 scripts/fetch-axe' (make test runs it)")
    return AXE.read_text(encoding="utf-8")


def violations(page: Any, context: str | None = None) -> list[dict[str, Any]]:
    """Every WCAG 2.0/2.1 A and AA violation axe finds in ``page`` (or in the ``context`` selector)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    return page.evaluate(_RUN, [context, TAGS])


def assert_accessible(page: Any, context: str | None = None) -> None:
    """Fail when axe finds a serious or critical violation, naming each rule and element."""
    found = [v for v in violations(page, context) if v["impact"] in BLOCKING]
    if found:
        lines = [f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(v['targets'])}" for v in found]
        pytest.fail(f"axe found {len(found)} serious or critical violation(s) on {page.url}:\n  " + "\n  ".join(lines))


def shoot(page: Any, name: str) -> list[Path]:
    """Full-page screenshots at 390 and 1280 px wide; the viewport is put back as it was."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    paths = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": size["height"] if size else 900})
        path = SCREENSHOTS / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    if size:
        page.set_viewport_size(size)
    return paths
