"""CPU time of processes on this machine (Linux /proc): the measured work's own, and PostgreSQL's
beside it, since the database shares the same cores. No import of the product: a benchmark's
parent process uses these before the settings' environment is in place."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process and its threads (Linux /proc), 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL server process (backends, WAL writer, checkpointer) on this
    machine, by pid: what the database itself costs on the same cores."""
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    seconds[int(entry.name)] = cpu_of(int(entry.name))
            except OSError:  # the process ended meanwhile
                continue
    return seconds


def cpu_since(before: dict[int, float]) -> float:
    """PostgreSQL CPU spent since ``before``, taken while the send's own backends are still alive
    (a backend that has exited takes its CPU count with it). Anything else using the server adds in."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in postgres_cpu().items())


def with_application_name(url: str, tag: str) -> str:
    """``url`` whose PostgreSQL sessions say ``tag`` (pg_stat_activity.application_name)."""
    if not url.startswith("postgresql"):
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).update_query_dict({"application_name": tag}).render_as_string(hide_password=False)


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving one send (those whose application_name is
    ``tag``), sampled while the send runs: unlike all of the server's processes, it leaves out what
    other users of a shared server spend (its WAL writer and checkpointer too)."""

    def __init__(self, base: str, tag: str) -> None:
        self.base, self.tag = base, tag
        self.latest: dict[int, float] = {}
        self.done = threading.Event()

    def __enter__(self) -> "BackendCpu":
        from sqlalchemy import create_engine, text

        self.engine = create_engine(self.base)
        query = text("SELECT pid FROM pg_stat_activity WHERE application_name = :tag")

        def sample() -> None:
            with self.engine.connect() as conn:
                while not self.done.wait(0.1):
                    for pid in conn.execute(query, {"tag": self.tag}).scalars():
                        self.latest[pid] = max(self.latest.get(pid, 0.0), cpu_of(pid))
                    conn.rollback()

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.engine.dispose()

    @property
    def seconds(self) -> float:
        return sum(self.latest.values())
