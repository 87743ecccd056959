"""A process that serves the app moves start-up's objects out of the cyclic collector's view
(``freeze_startup``): a full collection stops the event loop, and walking the whole app took over a
hundred milliseconds, every click redirect in flight waiting. Only a serving process does: one that
builds many apps (this test process) would keep their garbage for good."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from newsletter.config import Settings
from newsletter.database import Database
from tests.liveserver import serving

PROBE = """
import gc, json
from newsletter.web.server import app_from_environment
before = gc.get_freeze_count()
app_from_environment()
print(json.dumps([before, gc.get_freeze_count()]))
"""


def test_a_worker_process_freezes_what_start_up_made(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env["NEWSLETTER_VAR_DIR"] = str(tmp_path / "var")
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == 0
    assert after > 50_000  # the app, its routes, SQLAlchemy's mappers: ~190,000 objects when measured


def test_a_server_started_inside_another_process_freezes_nothing(settings: Settings, db: Database) -> None:
    frozen = gc.get_freeze_count()
    with serving(settings, db) as server:
        assert server.url
    assert gc.get_freeze_count() == frozen
