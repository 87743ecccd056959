"""Reading, decoding and sniffing a post source (newsletter.posts.source)."""

from __future__ import annotations

import io
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from newsletter.errors import InputError
from newsletter.posts.addresses import AllowList
from newsletter.posts.feed import parse_feed
from newsletter.posts.source import RawSource, decode_text, detect_format, parse_post, read_source

ARTICLE = b"""<!doctype html><html><head><title>Served Post | Clinic</title></head>
<body><article><h1>Served Post</h1><p>Served over HTTP.</p><img src="pic.png" alt="Pic"></article></body></html>"""
RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Served Feed</title>
<item><title>One</title><link>https://x.example/1</link><description>Hi</description></item></channel></rss>"""


# --- files and stdin --------------------------------------------------------------------------------


def test_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "post.md"
    path.write_bytes(b"# Title\n\nBody.\n")
    raw = read_source(str(path))
    assert raw == RawSource(name=str(path), data=b"# Title\n\nBody.\n", content_type=None, url=None)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.txt: no such file"):
        read_source(str(tmp_path / "nope.txt"))
    with pytest.raises(InputError, match=r": is a directory, not a file"):
        read_source(str(tmp_path))


def test_empty_files(tmp_path: Path) -> None:
    for name, data in (("empty.txt", b""), ("blank.txt", b" \n\t\r\n"), ("bom.txt", b"\xef\xbb\xbf")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputError, match=rf"{name}: is empty"):
            read_source(str(path))


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(os.urandom(2048) + b"\x00\x00" + os.urandom(64))
    with pytest.raises(InputError, match=r"photo\.jpg: looks like a binary file, not text \(it contains NUL bytes\)"):
        read_source(str(path))


def test_undecodable_bytes_are_refused_when_decoding() -> None:
    raw = RawSource(name="odd.txt", data=bytes(range(1, 9)) * 50 + b"\x81\x8d", content_type=None, url=None)
    with pytest.raises(InputError, match=r"odd\.txt: looks like a binary file, not text"):
        decode_text(raw)


def test_file_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    path.write_bytes(b"a" * 5_100_000)
    with pytest.raises(InputError, match=r"huge\.txt: is 5\.1 MB; the limit is 5\.0 MB"):
        read_source(str(path))
    small = tmp_path / "small.txt"
    small.write_bytes(b"b" * 2_000)
    with pytest.raises(InputError, match=r"small\.txt: is 2\.0 kB; the limit is 1\.0 kB"):
        read_source(str(small), max_bytes=1_000)


def test_stdin() -> None:
    raw = read_source("-", stdin=io.BytesIO(b"Title\n\nBody text."))
    assert raw.name == "<stdin>" and raw.data == b"Title\n\nBody text." and raw.url is None
    with pytest.raises(InputError, match=r"<stdin>: is empty"):
        read_source("-", stdin=io.BytesIO(b""))
    with pytest.raises(InputError, match=r"<stdin>: is larger than the 0\.1 MB limit"):
        read_source("-", stdin=io.BytesIO(b"x" * 300_000), max_bytes=100_000)


# --- decoding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("data, content_type, expected", [
    ("caf\u00e9 \u201cquoted\u201d".encode(), None, "caf\u00e9 \u201cquoted\u201d"),
    (b"\xef\xbb\xbfwith bom", None, "with bom"),
    ("utf16 text".encode("utf-16"), None, "utf16 text"),
    (b"caf\xe9 \x93quoted\x94", None, "caf\u00e9 \u201cquoted\u201d"),  # Windows-1252
    ("caf\u00e9".encode("latin-1"), "text/html; charset=ISO-8859-1", "caf\u00e9"),
])
def test_decode_text(data: bytes, content_type: str | None, expected: str) -> None:
    assert decode_text(RawSource("x", data, content_type, None)) == expected


# --- format detection -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, content_type, text, expected", [
    ("post.txt", None, "Title\n\nBody.", "text"),
    ("post.md", None, "Title\n\nBody.", "markdown"),
    ("post.markdown", None, "Title", "markdown"),
    ("page.htm", None, "Title", "html"),
    ("feed.atom", None, "x", "feed"),
    ("-", None, '<?xml version="1.0"?>\n<!-- c --><rss version="2.0">', "feed"),
    ("-", None, '<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title>', "feed"),
    ("-", None, "<feed><title>not atom</title>", "text"),
    ("-", None, '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">', "feed"),
    ("-", None, "<!DOCTYPE html><html><body>x", "html"),
    ("-", None, "<p>Just a paragraph.</p>", "html"),
    ("-", None, "---\ntitle: x\n---\nBody", "markdown"),
    ("-", None, "Title\n\n## Section\n\nBody", "markdown"),
    ("-", None, "Title\n\nSee [the study](https://x.example/s).", "markdown"),
    ("-", None, "Title\n\nPlain words, #1 reason, 3 > 2.", "text"),
    ("https://x.example/post", "text/html; charset=utf-8", "Title only", "html"),
    ("https://x.example/feed", "application/rss+xml", "x", "feed"),
    ("https://x.example/raw/post.md", "text/plain", "Title", "markdown"),
    ("https://x.example/a", "application/xml", "<item>", "feed"),
    ("post.txt", None, '<rss version="2.0">', "feed"),  # the content wins over the name
])
def test_detect_format(name: str, content_type: str | None, text: str, expected: str) -> None:
    url = name if name.startswith("http") else None
    assert detect_format(RawSource(name, text.encode(), content_type, url), text) == expected


def test_parse_post_dispatches_and_refuses_feeds() -> None:
    md = parse_post(RawSource("post.md", b"# From Markdown\n\nBody.", None, None))
    assert (md.title, md.source_format) == ("From Markdown", "markdown")
    txt = parse_post(RawSource("-", b"From Text\n\nBody.", None, None))
    assert (txt.title, txt.source_format) == ("From Text", "text")
    forced = parse_post(RawSource("post.md", b"# Not Markdown\n\nBody.", None, None), "text")
    assert forced.title == "# Not Markdown"
    with pytest.raises(InputError, match=r"blog\.xml: looks like a feed; use `feeds add`"):
        parse_post(RawSource("blog.xml", RSS, None, None))
    with pytest.raises(InputError, match=r"x: unknown format 'pdf'"):
        parse_post(RawSource("x", b"Title\n\nBody", None, None), "pdf")


# --- http ------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/blog/post":
            self._send(200, "text/html; charset=utf-8", ARTICLE)
        elif self.path == "/old":
            self.send_response(301)
            self.send_header("Location", "/blog/post")
            self.end_headers()
        elif self.path == "/feed":
            self._send(200, "application/rss+xml", RSS)
        elif self.path == "/big":  # no Content-Length: the reader must stop by itself
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"x" * 10_000)
        else:
            self._send(404, "text/plain", b"not here")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


LOOPBACK = AllowList.parse("127.0.0.1")  # the test server's address, allowed as a deployment would


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_200_html_follows_redirects(server: str) -> None:
    raw = read_source(f"{server}/old", allow=LOOPBACK)
    assert raw.name == f"{server}/old"
    assert raw.url == f"{server}/blog/post"
    assert raw.content_type == "text/html; charset=utf-8" and raw.data == ARTICLE
    post = parse_post(raw)
    assert post.title == "Served Post" and post.source_format == "html"
    assert post.source_url == f"{server}/blog/post"
    assert post.blocks[1].src == f"{server}/blog/pic.png"  # resolved against the final URL


def test_http_feed_is_parsed_by_the_caller(server: str) -> None:
    raw = read_source(f"{server}/feed", allow=LOOPBACK)
    assert detect_format(raw, decode_text(raw)) == "feed"
    title, entries = parse_feed(raw.data, source_name=raw.name, url=raw.url)
    assert title == "Served Feed" and [e.key for e in entries] == ["https://x.example/1"]


def test_http_404_is_an_error_naming_the_url(server: str) -> None:
    with pytest.raises(InputError, match=rf"{server}/missing: the server answered HTTP 404 Not Found"):
        read_source(f"{server}/missing", allow=LOOPBACK)


def test_http_body_over_the_limit_stops_reading(server: str) -> None:
    with pytest.raises(InputError, match=r"/big: is larger than the 0\.1 MB limit"):
        read_source(f"{server}/big", allow=LOOPBACK, max_bytes=100_000)


def test_http_declared_length_over_the_limit(server: str) -> None:
    with pytest.raises(InputError, match=rf"{server}/feed: is 0\.\d kB; the limit is 0\.1 kB"):
        read_source(f"{server}/feed", allow=LOOPBACK, max_bytes=100)


def test_connection_failure_and_unsupported_scheme() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(InputError, match=rf"http://127\.0\.0\.1:{port}/x: could not fetch \(ConnectError"):
        read_source(f"http://127.0.0.1:{port}/x", allow=LOOPBACK, timeout=5)
    with pytest.raises(InputError, match=r"ftp://x\.example/a: only http:// and https:// URLs"):
        read_source("ftp://x.example/a")
