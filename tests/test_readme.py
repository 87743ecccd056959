"""Keep the README true: its configuration table names every setting, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from newsletter.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, re.MULTILINE))
    expected = {str(f.validation_alias or f"NEWSLETTER_{name.upper()}") for name, f in Settings.model_fields.items()}
    assert documented == expected


def test_quick_start_is_two_make_targets_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_nothing_but_ci_reads_the_folder_beside_the_checkout() -> None:
    """Files beside the checkout (SendGrid's API description, the clinic's real post) are third-party
    text that CI has and a clone does not: only .ci/run may name their folder, and tests read them
    through the variables it sets. CI has the folder, so only this test notices a new dependency."""
    needle = "../" + "shared"  # spelled in two parts so this file does not name it
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if tracked.returncode == 0:
        paths = [ROOT / p for p in tracked.stdout.decode().split("\0") if p]
    else:  # not a git checkout (an unpacked archive): every file but the virtualenv's and caches
        paths = [p for p in ROOT.rglob("*") if p.is_file() and not {".venv", ".git", "var"} & set(p.parts)]
    offenders = [str(p.relative_to(ROOT)) for p in paths
                 if p.is_file() and p.relative_to(ROOT).as_posix() != ".ci/run"
                 and needle.encode() in p.read_bytes()]
    assert offenders == [], f"these files name {needle}; read such files through a variable .ci/run sets"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "NEWSLETTER_TEST_SENDGRID_OPENAPI" in ci and "NEWSLETTER_TEST_SEED_POST" in ci
