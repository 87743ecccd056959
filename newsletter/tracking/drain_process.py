"""The ``newsletter tracking-drain`` process: the tracking logs' drain (``drain.Drainer``) on its own,
so the web processes spend no time (and no GIL) on the database for a click. ``newsletter serve``
starts one beside its web processes (``Supervisor``), restarts it if it dies, and stops it last, once
the web processes have sealed their segments: it then drains what is left and exits.

A drain killed mid-segment loses nothing and repeats nothing: each batch commits with its segment's
offset, and the next drain resumes there.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.tracking.drain import Drainer

log = logging.getLogger("newsletter.tracking")
COMMAND = [sys.executable, "-c", "from newsletter.cli import app; app()", "tracking-drain"]
RESTART = 1.0  # seconds between a drain process's death and its replacement
STOP_WAIT = 120.0  # seconds the last drain pass may take at shutdown


def main(settings: Settings, db: Database) -> None:
    """Drain until SIGTERM (then a last pass), or until the process that started it is gone. Ctrl-C
    in a terminal reaches the whole process group: the drain ignores it and waits for ``serve`` to
    stop it after the web processes."""
    assert settings.tracking_log_dir is not None
    drainer = Drainer(db, settings.tracking_log_dir)
    parent = os.getppid()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        drainer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    drainer.run(alive=lambda: os.getppid() == parent)


class Supervisor:
    """Runs one drain process while ``serve`` runs, restarted whenever it exits on its own."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="tracking-drain-supervisor")

    def start(self) -> None:
        self.process = subprocess.Popen(COMMAND, env=self.env)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            assert self.process is not None
            code = self.process.poll()
            if code is not None and not self._stopping.is_set():
                log.error("tracking log: the drain process exited (%s); starting another", code)
                self.process = subprocess.Popen(COMMAND, env=self.env)
            self._stopping.wait(RESTART)

    def stop(self, db: Database, folder: Path) -> None:
        """After the web processes: the drain takes what they sealed, then exits; then a last pass
        here, for what it left (a drain just restarted dies of SIGTERM before its handler is set)."""
        self._stopping.set()
        self._thread.join()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                log.warning("tracking log: the drain process did not finish in %.0f s; stopped", STOP_WAIT)
                self.process.kill()
                self.process.wait()
        Drainer(db, folder).last_pass()
