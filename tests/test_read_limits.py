"""Every read of a post or feed is capped while it happens, whatever the source claims.

The devices run through the real console script in a subprocess with a small cap and a timeout:
before the cap, ``newsletter posts import /dev/zero`` grew until the kernel killed it.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings, get_settings
from newsletter.errors import InputError
from newsletter.posts.addresses import AllowList
from newsletter.posts.source import read_source

CAP = 1000
LOOPBACK = AllowList.parse("127.0.0.1")  # the test server's address, allowed as a deployment would


def newsletter(*args: str, stdin: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """The console script with a 1 kB cap, in the test's folder; killed if it runs past 60 s."""
    environment = {**os.environ, "NEWSLETTER_MAX_POST_BYTES": str(CAP)}
    command = [str(Path(sys.executable).parent / "newsletter"), *args]
    return subprocess.run(command, stdin=stdin, env=environment, capture_output=True, timeout=60)


def error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def no_posts_stored() -> bool:
    listed = CliRunner().invoke(app, ["posts", "list", "--json"])  # the same database, in-process
    return listed.exit_code == 0 and json.loads(listed.stdout) == []


# --- files and standard input ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "innocent.md"])
def test_a_device_is_refused_not_read_forever(settings: Settings, tmp_path: Path, device: str) -> None:
    if device == "innocent.md":  # a link to a device is the device
        device = str(tmp_path / device)
        Path(device).symlink_to("/dev/zero")
    assert error_line(newsletter("posts", "import", device)) == f"error: {device}: is a character device, not a regular file"
    assert no_posts_stored()


def test_a_fifo_is_refused_without_waiting_for_a_writer(settings: Settings, tmp_path: Path) -> None:
    fifo = tmp_path / "post.txt"
    os.mkfifo(fifo)
    assert error_line(newsletter("posts", "import", str(fifo))) == f"error: {fifo}: is a named pipe (FIFO), not a regular file"
    assert no_posts_stored()


def test_a_directory_is_refused(settings: Settings, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["posts", "import", str(tmp_path)])
    assert result.exit_code == 2 and result.stderr == f"error: {tmp_path}: is a directory, not a file\n"


def test_standard_input_is_read_under_the_same_cap(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_MAX_POST_BYTES", str(CAP))
    get_settings.cache_clear()
    runner = CliRunner()
    over = runner.invoke(app, ["posts", "import", "-"], input=b"Title\n\n" + b"word " * 400)
    assert over.exit_code == 2 and over.stderr == "error: <stdin>: is larger than the 1.0 kB limit\n"
    assert no_posts_stored()
    under = runner.invoke(app, ["posts", "import", "-"], input=b"A short post\n\nIt fits.")
    assert under.exit_code == 0, under.output
    assert not no_posts_stored()


def test_an_endless_standard_input_stops_at_the_cap(settings: Settings) -> None:
    with open("/dev/zero", "rb") as zero:
        assert error_line(newsletter("posts", "import", "-", stdin=zero.fileno())) == \
            "error: <stdin>: is larger than the 1.0 kB limit"
    assert no_posts_stored()


def test_a_file_whose_size_says_nothing_is_still_capped(tmp_path: Path) -> None:
    """/proc files say 0 bytes and hold more: the cap holds while reading, not by stat()."""
    status = Path("/proc/self/status")
    assert status.stat().st_size == 0
    with pytest.raises(InputError, match=r"^/proc/self/status: is larger than the 0\.1 kB limit$"):
        read_source(str(status), max_bytes=100)


# --- URLs --------------------------------------------------------------------------------------------------


class Misbehaving(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.close_connection = True  # one request per connection: the reader hangs up early anyway
        try:
            if self.path == "/forever":  # no Content-Length, the body never ends
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Connection", "close")
                self.end_headers()
                while True:
                    self.wfile.write(b"all work and no play " * 500)
            elif self.path == "/lies":  # says 200 bytes, then streams chunks forever
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "200")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"x" * 4096
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            elif self.path == "/bomb":  # 100 MB of text in about 100 kB of gzip
                body = BOMB
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/trickle":  # a byte at a time, never finishing, never silent long
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Connection", "close")
                self.end_headers()
                while True:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            elif self.path == "/small.gz":
                body = gzip.compress(b"A compressed post\n\nIt inflates to a few words.")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader hung up, as it should

    def log_message(self, *args: object) -> None:
        pass


def gzip_bomb(megabytes: int) -> bytes:
    """Gzip of that many megabytes of zeros, made a megabyte at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1_000_000)
    return b"".join(packer.compress(zeros) for _ in range(megabytes)) + packer.flush()


BOMB = b""


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[str]:
    global BOMB
    BOMB = gzip_bomb(100)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def read_within(seconds: float, url: str, **kwargs: object) -> InputError:
    """The error read_source gives for ``url``, which must come before ``seconds`` (a hang fails)."""
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(read_source(url, allow=LOOPBACK, **kwargs))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"reading {url} did not stop within {seconds} s"
    assert isinstance(outcome[0], InputError), outcome[0]
    return outcome[0]


def test_a_body_that_never_ends_is_refused_at_the_cap(misbehaving: str) -> None:
    error = read_within(60, f"{misbehaving}/forever", max_bytes=CAP)
    assert str(error) == f"{misbehaving}/forever: is larger than the 1.0 kB limit"


def test_a_body_longer_than_its_content_length_says_is_refused_at_the_cap(misbehaving: str) -> None:
    error = read_within(60, f"{misbehaving}/lies", max_bytes=CAP)
    assert str(error) == f"{misbehaving}/lies: is larger than the 1.0 kB limit"


def test_a_compressed_body_is_inflated_only_up_to_the_cap(misbehaving: str) -> None:
    tracemalloc.start()
    try:
        error = read_within(60, f"{misbehaving}/bomb", max_bytes=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(error) == f"{misbehaving}/bomb: is larger than the 1.0 MB limit"
    assert peak < 8_000_000, f"held {peak / 1e6:.0f} MB to refuse a body over a 1 MB cap"


def test_a_compressed_page_under_the_cap_is_read(misbehaving: str) -> None:
    raw = read_source(f"{misbehaving}/small.gz", allow=LOOPBACK, max_bytes=CAP)
    assert raw.data == b"A compressed post\n\nIt inflates to a few words."


def test_a_trickle_that_never_ends_stops_at_the_deadline(misbehaving: str) -> None:
    error = read_within(60, f"{misbehaving}/trickle", max_bytes=5_000_000, timeout=1)
    assert str(error) == f"{misbehaving}/trickle: no complete answer within 1 seconds"


def test_feeds_add_refuses_an_endless_feed_and_stores_nothing(
    loopback_allowed: Settings, misbehaving: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_MAX_POST_BYTES", str(CAP))
    get_settings.cache_clear()
    runner = CliRunner()
    result = runner.invoke(app, ["feeds", "add", f"{misbehaving}/forever"])
    assert result.exit_code == 2
    assert result.stderr == f"error: {misbehaving}/forever: is larger than the 1.0 kB limit; the feed was not added\n"
    listed = runner.invoke(app, ["feeds", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == [] and no_posts_stored()
