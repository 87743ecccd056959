"""An installed (non-editable) copy finds its templates, migrations and sample post."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, tempfile
import newsletter
assert newsletter.__file__.startswith(sys.argv[1]), newsletter.__file__
from newsletter.config import Settings
from newsletter.database import Database, upgrade
from newsletter.demo import run_demo
from pathlib import Path
folder = Path(tempfile.mkdtemp())
settings = Settings(var_dir=folder / "var")
db = Database.from_settings(settings)
upgrade(db.engine)
result = run_demo(settings, db, folder / "out")
from newsletter.i18n import translations
assert translations("es").gettext("Unsubscribe") == "Darse de baja"  # the shipped catalogue compiles
print(result.files.html.stat().st_size, result.post_title)
"""


def test_wheel_ships_templates_and_runs_from_an_installed_copy(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True, timeout=300,
    )
    (wheel,) = wheels.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "newsletter/templates/email/issue.mjml.j2",
        "newsletter/templates/email/issue.txt.j2",
        "newsletter/templates/web/archive/issue.html",
        "newsletter/templates/web/archive/list.html",
        "newsletter/migrations/env.py",
        "newsletter/migrations/script.py.mako",
        "newsletter/samples/demo-post.txt",
        "newsletter/locale/es/LC_MESSAGES/messages.po",
        "newsletter/sequences/library/welcome.yaml",
        "newsletter/sequences/library/consultation-follow-up.yaml",
        "subscribers/db.py",
        "scheduler.py",
    ):
        assert required in names, required
    assert not any(n.startswith("tests/") for n in names)
    for package in ROOT.glob("*/**/__init__.py"):  # every package of ours is shipped
        relative = package.relative_to(ROOT).as_posix()
        if relative.startswith(("newsletter/", "subscribers/")):
            assert relative in names, f"{relative} is missing from the wheel: list its package in pyproject.toml"

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True, timeout=300,
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(target)],
        cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    size, title = result.stdout.split(" ", 1)
    assert int(size) > 5000 and title.strip() == "Small Steps for Steadier Days"
