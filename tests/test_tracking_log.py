"""The tracking log: a click or an open is answered once it is durable in the web process's log, and
reaches the events table exactly once, through a crash (kill -9), a partly drained log, several web
processes, a full disk or an unwritable folder; and the events it makes are those the direct path made."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text, update

from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Delivery, Event, Issue, Link, TrackingLogProgress
from newsletter.sending import schedule
from newsletter.sending.dispatch import Dispatcher
from newsletter.tracking import drain, event_log
from newsletter.tracking.answers import Seen
from newsletter.tracking.drain import Drainer
from newsletter.tracking.event_log import EventLog, encode
from newsletter.tracking.first_party import Request, record_click, record_open
from newsletter.tracking.recorder import Tracker
from newsletter.transports import OutboxTransport
from newsletter.urls import DeliveryLinks, pixel_key
from subscribers.db import utcnow
from tests.liveserver import LiveServer, free_port, serving, wait_for_health
from tests.sendkit import add_audience, make_issue

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"
APPLE_PROXY = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
SCANNER = "Mozilla/5.0 (compatible; Proofpoint URL Defense)"


def send_issue(settings: Settings, db: Database, contacts: int, tracking: str = "full",
               subject: str = "Small steps for steadier days") -> tuple[int, list[int], list[int]]:
    """An issue sent (outbox) to the audience; (issue id, its link ids, its delivery ids in contact order)."""
    settings = settings.model_copy(update={"tracking": tracking})
    issue_id = make_issue(db, settings, subject=subject)
    if contacts:
        add_audience(db, contacts)
    with db.session() as s:
        schedule.start_now(s, settings, s.get(Issue, issue_id), utcnow())
    assert settings.outbox_dir is not None
    Dispatcher(settings, db, OutboxTransport(settings.outbox_dir, settings)).run_until_idle()
    with db.session() as s:  # read long after delivery, as people do
        s.execute(update(Delivery).where(Delivery.issue_id == issue_id).values(submitted_at=utcnow() - timedelta(hours=1)))
        links = list(s.scalars(select(Link.id).where(Link.issue_id == issue_id).order_by(Link.position)))
        deliveries = list(s.scalars(select(Delivery.id).where(Delivery.issue_id == issue_id)
                                    .order_by(Delivery.contact_id)))
    return issue_id, links, deliveries


def logged_clicks(settings: Settings, issue_id: int, link_id: int, deliveries: list[int]) -> EventLog:
    """A web process's log holding one click of ``link_id`` per delivery (not sealed yet)."""
    assert settings.tracking_log_dir is not None
    log = EventLog(settings.tracking_log_dir)
    for d in deliveries:
        log.append(encode(Seen("click", "full", d, issue_id, None, link_id, None, utcnow())))
    return log


def assert_drained_once(settings: Settings, db: Database, link_id: int, deliveries: list[int]) -> None:
    """Every click of ``logged_clicks`` stored once, and neither a segment nor a progress row left."""
    assert settings.tracking_log_dir is not None
    assert event_keys(db) == Counter({("click", d, link_id): 1 for d in deliveries})
    assert list(settings.tracking_log_dir.iterdir()) == []
    with db.session() as s:
        assert s.scalars(select(TrackingLogProgress.log)).all() == []


def event_keys(db: Database) -> Counter[tuple[str, int | None, int | None]]:
    with db.session() as s:
        return Counter(map(tuple, s.execute(select(Event.type, Event.delivery_id, Event.link_id))))


# kill -9 mid-burst ----------------------------------------------------------------------------------


def serve(settings: Settings, url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))},
           "NEWSLETTER_VAR_DIR": str(settings.var_dir), "NEWSLETTER_DATABASE_URL": url,
           "NEWSLETTER_TRANSPORT": "outbox", "NEWSLETTER_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    command = [str(Path(sys.executable).parent / "newsletter"), "serve", "--web-only", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # its own process group: kill -9 takes the workers too
    wait_for_health(f"http://127.0.0.1:{port}", lambda: process.poll() is None)
    return process


def kill_minus_nine(settings: Settings, db: Database, url: str, workers: int) -> None:
    issue_id, links, deliveries = send_issue(settings, db, 60)
    tokens = DeliveryLinks(settings)
    # Every request names a (delivery, link) or a delivery's pixel of its own: each event at most once.
    paths = [(f"/c/{tokens.token(d)}/{link}", ("click", d, link)) for d in deliveries for link in links]
    paths += [(f"/o/{tokens.token(d)}/{pixel_key(issue_id, None)}.gif", ("open", d, None)) for d in deliveries]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = serve(settings, url, port, workers)
    acknowledged: list[tuple[str, int, int | None]] = []
    lock = threading.Lock()
    enough = threading.Event()
    todo = iter(paths)

    def client() -> None:
        with httpx.Client(base_url=base, headers={"User-Agent": BROWSER}, timeout=10) as http:
            for path, key in todo:  # the iterator is shared: each path once, by whichever thread
                try:
                    answer = http.get(path, follow_redirects=False)
                except httpx.TransportError:
                    return  # the server is gone
                assert answer.status_code == (302 if key[0] == "click" else 200), (path, answer.status_code)
                with lock:
                    acknowledged.append(key)
                    if len(acknowledged) >= len(paths) // 3:
                        enough.set()

    threads = [threading.Thread(target=client) for _ in range(12)]
    for thread in threads:
        thread.start()
    assert enough.wait(120), "the burst did not get going"
    os.killpg(process.pid, signal.SIGKILL)  # mid-burst: no shutdown, no drain, no flush
    process.wait()
    for thread in threads:
        thread.join(timeout=30)
    assert 0 < len(acknowledged) < len(paths)
    left = {p.name for p in settings.tracking_log_dir.glob("events-*.log")}
    assert left  # at least the segments being written, now nobody's

    restarted = serve(settings, url, port, workers)  # its drain process takes the orphans
    try:
        deadline = utcnow() + timedelta(seconds=90)
        while {p.name for p in settings.tracking_log_dir.glob("events-*.log")} & left:
            assert utcnow() < deadline, "the orphaned logs were not replayed"
            threading.Event().wait(0.2)
    finally:
        restarted.send_signal(signal.SIGINT)
        restarted.wait(timeout=60)
    recorded = event_keys(db)
    assert all(recorded[key] == 1 for key in acknowledged), "an acknowledged click or open is missing"
    assert max(recorded.values()) == 1, "an event was recorded twice"
    with db.session() as s:  # the replayed logs' progress is gone with them
        assert s.scalars(select(TrackingLogProgress.log)).all() == []


def test_no_acknowledged_click_or_open_is_lost_to_kill_minus_nine(settings: Settings, db: Database) -> None:
    assert settings.database_url is not None
    kill_minus_nine(settings, db, settings.database_url, 1)


def test_several_web_processes_on_postgresql_survive_kill_minus_nine(settings: Settings, postgres_db: Database) -> None:
    kill_minus_nine(settings, postgres_db, postgres_db.url, 2)


def drain_process_of(server: subprocess.Popen[bytes]) -> int:
    """The pid of the ``newsletter tracking-drain`` process ``serve`` started (and restarts)."""
    deadline = utcnow() + timedelta(seconds=30)
    while True:
        tasks = Path(f"/proc/{server.pid}/task").glob("*/children")  # a restarted one is its supervisor thread's
        for pid in (pid for task in tasks for pid in task.read_text().split()):
            try:
                if b"tracking-drain" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return int(pid)
            except FileNotFoundError:
                continue
        assert utcnow() < deadline, "serve runs no drain process"
        threading.Event().wait(0.1)


def kill_the_drain_mid_burst(settings: Settings, db: Database, url: str, workers: int) -> None:
    """The drain process is killed (-9) while it drains a burst, twice: serve starts another, which
    resumes each segment after its last committed batch. Every click is stored once."""
    issue_id, links, deliveries = send_issue(settings, db, 60)
    tokens = DeliveryLinks(settings)
    paths = [(f"/c/{tokens.token(d)}/{link}", ("click", d, link)) for d in deliveries for link in links]
    port = free_port()
    server = serve(settings, url, port, workers)
    killed: list[int] = []
    try:
        todo = iter(paths)

        def client() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"User-Agent": BROWSER}, timeout=30) as http:
                for path, _ in todo:
                    assert http.get(path, follow_redirects=False).status_code == 302

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for _ in range(2):
            while sum(event_keys(db).values()) <= len(killed) * len(paths) // 4:  # it is draining
                threading.Event().wait(0.02)
            pid = drain_process_of(server)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            while drain_process_of(server) == pid:
                threading.Event().wait(0.1)
        for thread in threads:
            thread.join(timeout=120)
    finally:
        server.send_signal(signal.SIGINT)  # the web processes seal their segments; the drain takes them
        server.wait(timeout=120)
    assert event_keys(db) == Counter(key for _, key in paths), "a click was lost or stored twice"
    assert list(settings.tracking_log_dir.glob("events-*.log")) == []
    with db.session() as s:
        assert s.scalars(select(TrackingLogProgress.log)).all() == []


def test_a_drain_process_killed_mid_burst_loses_and_repeats_nothing(settings: Settings, db: Database) -> None:
    assert settings.database_url is not None
    kill_the_drain_mid_burst(settings, db, settings.database_url, 1)


def test_a_drain_process_killed_beside_several_web_processes_on_postgresql(settings: Settings,
                                                                          postgres_db: Database) -> None:
    kill_the_drain_mid_burst(settings, postgres_db, postgres_db.url, 2)


def test_several_web_processes_are_refused_with_sqlite(settings: Settings) -> None:
    newsletter = str(Path(sys.executable).parent / "newsletter")
    done = subprocess.run([newsletter, "serve", "--web-only", "--workers", "2"], capture_output=True, text=True,
                          env={**os.environ, "NEWSLETTER_VAR_DIR": str(settings.var_dir)}, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr + done.stdout
    assert "--workers above 1 needs PostgreSQL" in done.stderr + done.stdout


def test_a_partly_drained_segment_is_resumed_from_where_it_stopped(settings: Settings, db: Database,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The events of a batch and the segment's offset commit together: a drain that dies after a batch
    leaves a segment the next drain resumes after it (none twice, none lost); a segment still being
    written is left alone."""
    issue_id, links, deliveries = send_issue(settings, db, 10)
    log = logged_clicks(settings, issue_id, links[0], deliveries)
    assert Drainer(db, settings.tracking_log_dir).drain_sealed() == 0  # held by its process
    log.seal()
    monkeypatch.setattr(drain, "BATCH", 4)
    calls = 0
    commit = Drainer._commit

    def dies_after_one_batch(self: Drainer, lines: list[tuple[drain.Segment, bytes]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # killed between two batches
        commit(self, lines)

    monkeypatch.setattr(Drainer, "_commit", dies_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        Drainer(db, settings.tracking_log_dir).drain_sealed()
    assert sum(event_keys(db).values()) == 4
    monkeypatch.setattr(Drainer, "_commit", commit)
    assert Drainer(db, settings.tracking_log_dir).drain_sealed() == 6
    assert_drained_once(settings, db, links[0], deliveries)


def test_a_drain_stopped_after_draining_a_segment_leaves_nothing_behind(settings: Settings, db: Database,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A drain killed after a segment's last batch, before its progress row is deleted: the next pass
    deletes the row and the file and stores nothing again (the file deleted first, as before, left
    the row for good; the row first would replay the whole file)."""
    issue_id, links, deliveries = send_issue(settings, db, 5)
    log = logged_clicks(settings, issue_id, links[0], deliveries)
    log.seal()
    forget = Drainer._forget

    def killed(self: Drainer, names: list[str]) -> None:
        if names:
            raise KeyboardInterrupt  # killed between the last batch and the progress rows' deletion
        forget(self, names)

    monkeypatch.setattr(Drainer, "_forget", killed)
    with pytest.raises(KeyboardInterrupt):
        Drainer(db, settings.tracking_log_dir).drain_sealed()
    with db.session() as s:
        assert len(s.scalars(select(TrackingLogProgress.log)).all()) == 1
    monkeypatch.setattr(Drainer, "_forget", forget)
    assert Drainer(db, settings.tracking_log_dir).drain_sealed() == 0
    assert_drained_once(settings, db, links[0], deliveries)


# The drained events are the direct path's events ------------------------------------------------------


def test_drained_events_match_what_the_direct_path_records(live_server: LiveServer, db: Database) -> None:
    """The same requests, once through ``first_party.record_*`` in the request (the direct path, as
    before the log) and once over HTTP through the log and the drain: the same events."""
    settings = live_server.settings
    direct = send_issue(settings, db, 4, subject="Direct")
    logged = send_issue(settings, db, 0, subject="Logged")
    anonymous = [send_issue(settings, db, 0, tracking="anonymous", subject=f"Anonymous {n}") for n in (1, 2)]
    tokens = DeliveryLinks(settings)
    now = utcnow()
    with db.session() as s:  # reader 3's deliveries are held as unknown (their provider request timed out)
        s.execute(update(Delivery).where(Delivery.id.in_([direct[2][3], logged[2][3]]))
                  .values(status="unknown", submitted_at=None))

    def script(issue: tuple[int, list[int], list[int]], anon: tuple[int, list[int], list[int]]) -> list[tuple]:
        issue_id, links, ds = issue
        return [  # (kind, token, link or pixel key, method, user agent)
            ("open", tokens.token(ds[0]), pixel_key(issue_id, None), "GET", APPLE_PROXY),
            ("open", tokens.token(ds[0]), pixel_key(issue_id, None), "GET", BROWSER),
            ("click", tokens.token(ds[0]), links[0], "GET", BROWSER),
            ("click", tokens.token(ds[0]), links[0], "HEAD", BROWSER),
            ("click", tokens.token(ds[0]), links[1], "GET", SCANNER),
            *[("click", tokens.token(ds[1]), link, "GET", BROWSER) for link in links[:3]],  # every link at once
            ("click", tokens.token(ds[2]), links[0], "GET", BROWSER),  # its email went out a moment ago
            ("open", tokens.token(ds[3]), pixel_key(issue_id, None), "GET", BROWSER),  # the unknown delivery
            ("click", "anon", anon[1][0], "GET", BROWSER),
            ("open", "anon", pixel_key(anon[0], None), "GET", BROWSER),
            ("click", tokens.token(ds[1]), anon[1][0], "GET", BROWSER),  # not this token's email: nothing
        ]

    with db.session() as s:
        s.execute(update(Delivery).where(Delivery.id == direct[2][2]).values(submitted_at=now))
    for n, (kind, token, target, method, agent) in enumerate(script(direct, anonymous[0])):
        with db.session() as s:  # 300 ms apart
            record = record_click if kind == "click" else record_open
            record(s, settings, token, str(target), Request(method, agent, "127.0.0.1"),
                   now + timedelta(milliseconds=300 * n))
    with db.session() as s:
        s.execute(update(Delivery).where(Delivery.id == logged[2][2]).values(submitted_at=utcnow()))
    with httpx.Client(base_url=live_server.url) as http:
        for kind, token, target, method, agent in script(logged, anonymous[1]):
            path = f"/c/{token}/{target}" if kind == "click" else f"/o/{token}/{target}.gif"
            http.request(method, path, headers={"User-Agent": agent})
    live_server.drained()

    def made(issue: tuple[int, list[int], list[int]], anon: tuple[int, list[int], list[int]]) -> list[tuple]:
        issue_id, links, ds = issue
        with db.session() as s:
            rows = s.scalars(select(Event).where(Event.issue_id.in_([issue_id, anon[0]])).order_by(Event.id)).all()
            states = [s.get(Delivery, d).status for d in ds]
        reader = {d: n for n, d in enumerate(ds)}
        return [(e.type, reader.get(e.delivery_id), e.contact_id is not None, e.issue_id == anon[0],
                 links.index(e.link_id) if e.link_id in links else None, e.url, e.machine, e.reason)
                for e in rows] + [tuple(states)]

    assert made(logged, anonymous[1]) == made(direct, anonymous[0])
    # And what that is, spelled out.
    events = made(logged, anonymous[1])
    assert [(e[0], e[6], e[7]) for e in events[:-1]] == [
        ("open", True, "Apple Mail Privacy Protection"), ("open", False, None),
        ("click", False, None), ("click", True, "HEAD request"), ("click", True, "known scanner or proxy"),
        ("click", True, "clicked every link at once"), ("click", True, "clicked every link at once"),
        ("click", True, "clicked every link at once"),
        ("click", True, "clicked within seconds of sending"), ("open", False, None),
        ("click", False, None), ("open", False, None)]
    assert [e[2] for e in events[-3:-1]] == [False, False]  # anonymous: nobody's
    assert events[-1][3] == "submitted"  # the unknown delivery's genuine token settled it


# When the log cannot take a record -------------------------------------------------------------------


def test_an_unwritable_log_folder_writes_events_directly(settings: Settings, db: Database,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Decision: when the log cannot be made or written, the event is written to the database in the
    request, as before the log existed, and an ERROR line says why; the reader is answered as usual."""
    (settings.var_dir / "not-a-folder").parent.mkdir(parents=True, exist_ok=True)
    (settings.var_dir / "not-a-folder").write_text("a file where the log folder should be")
    unwritable = settings.model_copy(update={"tracking_log_dir": settings.var_dir / "not-a-folder" / "tracking"})
    issue_id, links, deliveries = send_issue(settings, db, 1)
    token = DeliveryLinks(settings).token(deliveries[0])
    with caplog.at_level(logging.ERROR, logger="newsletter.tracking"), serving(unwritable, db) as server:
        with httpx.Client(base_url=server.url, headers={"User-Agent": BROWSER}) as http:
            answer = http.get(f"/c/{token}/{links[0]}", follow_redirects=False)
            with db.session() as s:
                assert answer.status_code == 302 and answer.headers["location"] == s.get(Link, links[0]).url
            assert http.get(f"/o/{token}/{pixel_key(issue_id, None)}.gif").headers["content-type"] == "image/gif"
        assert server.app.state.tracker.direct == 2
    assert event_keys(db) == Counter({("click", deliveries[0], links[0]): 1, ("open", deliveries[0], None): 1})
    assert "cannot be made" in caplog.text and "written to the database directly" in caplog.text


def test_a_full_disk_falls_back_to_the_database_and_a_lost_event_is_never_silent(
        live_server: LiveServer, db: Database, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The log's writes fail with ENOSPC (its file swapped for /dev/full): the click is written
    directly. With the database refusing too, the reader is still redirected, and an ERROR line says
    a click was answered but not recorded."""
    issue_id, links, deliveries = send_issue(live_server.settings, db, 1)
    token = DeliveryLinks(live_server.settings).token(deliveries[0])
    tracker = live_server.app.state.tracker
    monkeypatch.setattr(event_log, "SEAL", 3600.0)  # the segment stays open for the swap below
    with httpx.Client(base_url=live_server.url, headers={"User-Agent": BROWSER}) as http:
        assert http.get(f"/c/{token}/{links[0]}", follow_redirects=False).status_code == 302  # through the log
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, tracker.log.fd)  # every write now fails as on a full disk
        os.close(full)
        with caplog.at_level(logging.ERROR, logger="newsletter.tracking"):
            assert http.get(f"/c/{token}/{links[1]}", follow_redirects=False).status_code == 302
            assert tracker.direct == 1
            with db.session() as s:
                s.execute(text("DROP TABLE events"))  # the database refuses the event too
            answer = http.get(f"/c/{token}/{links[0]}", follow_redirects=False)
            assert answer.status_code == 302 and answer.headers["location"]
            assert tracker.unrecorded == 1
    assert "No space left on device" in caplog.text
    assert "was answered but not recorded" in caplog.text


def test_the_fast_path_answers_with_the_headers_the_app_gave(live_server: LiveServer, db: Database) -> None:
    """The click and the pixel are answered ahead of the app's middleware, with the same headers it
    would add: no Referer to leak the token, nothing cached, the public CSP."""
    issue_id, links, deliveries = send_issue(live_server.settings, db, 1)
    token = DeliveryLinks(live_server.settings).token(deliveries[0])
    healthz = httpx.get(live_server.url + "/healthz").headers
    click = httpx.get(f"{live_server.url}/c/{token}/{links[0]}", follow_redirects=False).headers
    pixel = httpx.get(f"{live_server.url}/o/{token}/{pixel_key(issue_id, None)}.gif").headers
    for name in ("referrer-policy", "content-security-policy", "x-frame-options", "x-content-type-options",
                 "permissions-policy", "cross-origin-opener-policy", "x-robots-tag"):
        assert click[name] == pixel[name] == healthz[name], name
    assert click["referrer-policy"] == "no-referrer" and click["cache-control"] == "no-store"
    assert pixel["cache-control"] == "no-store, private" and pixel["content-type"] == "image/gif"


def test_bursts_are_labelled_the_same_in_one_batch_or_one_by_one(settings: Settings, any_db: Database) -> None:
    """Random clicks (four links, some machine, a few seconds apart or less, many at the same instant)
    made into events one by one, as the direct path does, in a single batch, and in batches of seven,
    as the drain does (each batch labels its own clicks before they go in, and the stored ones a
    burst reaches back to): the same labels. The first three are two people's clicks and a HEAD
    request at one instant, which one by one are no burst."""
    import random

    db = any_db
    rng = random.Random(19)
    one_by_one = send_issue(settings, db, 7, subject="One by one")  # the seventh reader: the three at once
    batched = send_issue(settings, db, 0, subject="Batched")
    in_sevens = send_issue(settings, db, 0, subject="In sevens")
    start = utcnow()
    # Sorted by time only: clicks at the same instant keep their random order, as they arrive.
    clicks = [(start, 6, 0, None), (start, 6, 1, None), (start, 6, 2, "HEAD request")] + sorted(
        ((start + timedelta(milliseconds=500 * rng.randrange(1, 40)), rng.randrange(6), rng.randrange(4),
          rng.choice([None, None, None, "HEAD request"])) for _ in range(80)), key=lambda click: click[0])

    def seen(issue: tuple[int, list[int], list[int]], at, reader: int, link: int, reason: str | None) -> Seen:  # noqa: ANN001
        issue_id, links, deliveries = issue
        return Seen("click", "full", deliveries[reader], issue_id, None, links[link], reason, at)

    for click in clicks:
        with db.session() as s:
            drain.apply(s, [seen(one_by_one, *click)])
    with db.session() as s:
        drain.apply(s, [seen(batched, *click) for click in clicks])
    for at in range(0, len(clicks), 7):
        with db.session() as s:
            drain.apply(s, [seen(in_sevens, *click) for click in clicks[at:at + 7]])

    def labels(issue_id: int) -> list[tuple[bool, str | None]]:
        with db.session() as s:
            return list(map(tuple, s.execute(select(Event.machine, Event.reason).where(Event.issue_id == issue_id)
                                             .order_by(Event.id))))

    assert labels(batched[0]) == labels(one_by_one[0]) == labels(in_sevens[0])
    assert {"clicked every link at once", "HEAD request", None} == {reason for _, reason in labels(batched[0])}
    assert labels(batched[0])[:3] == [(False, None), (False, None), (True, "HEAD request")]  # inserted first


def test_a_record_the_database_refuses_is_left_out_alone(settings: Settings, any_db: Database,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A logged open of an issue deleted since it was answered (anonymous tracking: no delivery to
    look up first) is refused by the database: the batch's other records are stored, the refused one
    is counted and logged without its values, and the segment is done."""
    issue_id, links, deliveries = send_issue(settings, any_db, 3)
    log = logged_clicks(settings, issue_id, links[0], deliveries)
    log.append(encode(Seen("open", "anonymous", None, issue_id + 1000, None, None, None, utcnow())))
    log.seal()
    drainer = Drainer(any_db, settings.tracking_log_dir)
    with caplog.at_level(logging.ERROR, logger="newsletter.tracking"):
        drainer.drain_sealed()
    assert event_keys(any_db) == Counter({("click", d, links[0]): 1 for d in deliveries})
    assert drainer.dropped == 1
    refused = "IntegrityError" if any_db.engine.dialect.name == "sqlite" else "ForeignKeyViolation"
    assert [re.sub(r"log \S+:", "log SEGMENT:", r.getMessage()) for r in caplog.records] == [
        f"tracking log SEGMENT: the open of issue {issue_id + 1000} / step None could not be recorded ({refused})"]
    assert list(settings.tracking_log_dir.iterdir()) == []


def test_a_burst_of_new_tokens_loads_the_caches_once(settings: Settings, db: Database) -> None:
    """A freshly sent issue's first clicks all miss the caches at once: one request loads what they
    need from the database while the others wait for it, rather than each loading the same rows in a
    thread of its own (which stalled the event loop while the threads started). Every one is answered
    and recorded."""
    issue_id, links, deliveries = send_issue(settings, db, 30)
    tokens = DeliveryLinks(settings)
    tracker = Tracker(settings.model_copy(update={"tracking_drain_process": False}), db)
    loads: list[str] = []
    answer = tracker.answers.click

    def counted(token: str, link_id: str, *, offline: bool = False):  # noqa: ANN202 - an Answer
        if not offline:
            loads.append(token)
        return answer(token, link_id, offline=offline)

    tracker.answers.click = counted  # type: ignore[method-assign]

    async def burst() -> list[object]:
        return await asyncio.gather(*(tracker.click(tokens.token(d), str(links[0]), "GET", BROWSER, "127.0.0.1")
                                      for d in deliveries))

    answered: list[object] = []
    # A loop of its own in a thread: the browser tests leave one running in this thread.
    runner = threading.Thread(target=lambda: answered.extend(asyncio.run(burst())))
    tracker.start()
    try:
        runner.start()
        runner.join()
        tracker.flush()
    finally:
        tracker.stop()
    assert [getattr(link, "id", None) for link in answered] == [links[0]] * len(deliveries)
    assert len(loads) == 1
    assert event_keys(db) == Counter(("click", d, links[0]) for d in deliveries)


def test_a_log_written_by_an_earlier_version_reads_back_the_same() -> None:
    """Records were written with the standard library's json before orjson: a log left by a process
    of that version (drained after an upgrade) reads back to the same records."""
    seen = Seen("click", "full", 123456, 7, None, 42, "Mimecast – link scanner", utcnow())
    earlier = (json.dumps([seen.kind, seen.mode, seen.delivery_id, seen.issue_id, seen.step_id, seen.link_id,
                           seen.reason, (seen.at - event_log.EPOCH) // timedelta(microseconds=1)],
                          separators=(",", ":")) + "\n").encode()
    assert event_log.decode(earlier) == event_log.decode(encode(seen)) == seen
    assert encode(seen).endswith(b"\n") and encode(seen).count(b"\n") == 1
