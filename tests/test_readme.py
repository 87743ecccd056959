"""Keep the README true: its configuration table names every setting, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from newsletter.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.MULTILINE))
    expected = {str(f.validation_alias or f"NEWSLETTER_{name.upper()}") for name, f in Settings.model_fields.items()}
    assert documented == expected


def test_quick_start_is_two_make_targets_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
