"""Reading a post's source (file, stdin or URL), decoding it and telling its format.

Everything a user can point the importer at goes through ``read_source``: it refuses what cannot
be a post (missing, not a regular file, empty, too big, binary, an HTTP error, a URL that points
into our own network) with a message naming the source, before any parser runs. Every read is
capped while it happens, whatever size the source claims.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from newsletter.errors import InputError
from newsletter.posts.addresses import AllowList
from newsletter.posts.blocks import ParsedPost, excerpt_from
from newsletter.posts.fetch import fetch
from newsletter.posts.html import parse_html
from newsletter.posts.limits import read_capped, size_text
from newsletter.posts.markdown import parse_markdown
from newsletter.posts.text import parse_text

FORMATS = ("text", "markdown", "html", "feed")
_EXTENSIONS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
               ".html": "html", ".htm": "html", ".xhtml": "html", ".xml": "feed", ".rss": "feed",
               ".atom": "feed"}
_CONTENT_TYPES = {"text/html": "html", "application/xhtml+xml": "html",
                  "application/rss+xml": "feed", "application/atom+xml": "feed",
                  "application/rdf+xml": "feed", "application/feed+xml": "feed",
                  "text/markdown": "markdown", "text/x-markdown": "markdown"}
_UTF_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
# Control characters that never appear in text (tab, newlines and form feed are fine).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_PROLOGUE_RE = re.compile(r"^(?:\s+|<\?xml[^>]*\?>|<\?xml-stylesheet[^>]*\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*",
                          re.I | re.S)
_ATOM_NS = "http://www.w3.org/2005/Atom"
_MD_SIGNS = (
    re.compile(r"^---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*$", re.S | re.M),  # front matter
    re.compile(r"^#{1,6}[ \t]+\S", re.M),  # ATX heading
    re.compile(r"!?\[[^\]\n]+\]\((?:https?://|/|\.|#|mailto:)[^)\s]*\)"),  # [link](url)
    re.compile(r"^```", re.M),  # fenced code
    re.compile(r"^\[\^[^\]]+\]:", re.M),  # footnote definition
    re.compile(r"^\S.*\n(?:=+|-+)[ \t]*$", re.M),  # setext heading
)


@dataclass
class RawSource:
    name: str  # what messages call it: the path, the URL or "<stdin>"
    data: bytes
    content_type: str | None  # from HTTP; None for files and stdin
    url: str | None  # final URL after redirects, for resolving relative links


def check_bytes(name: str, data: bytes) -> None:
    """Refuse what cannot be a post whatever its format: nothing but blanks (or a BOM), or binary."""
    if not data.strip() or data.strip() in _UTF_BOMS:
        raise InputError(f"{name}: is empty")
    if b"\x00" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{name}: looks like a binary file, not text (it contains NUL bytes)")


def _not_a_regular_file(mode: int) -> str | None:
    """What a path is when it is no regular file: devices and pipes never end, or never start."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    kinds = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))
    return f"is {next((kind for test, kind in kinds if test(mode)), 'a special file')}, not a regular file"


def _read_file(source: str, max_bytes: int) -> bytes:
    """A regular file's bytes, under the cap whatever its size says (/proc files say 0)."""
    path = Path(source).expanduser()
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise InputError(f"{source}: no such file") from exc
    except PermissionError as exc:
        raise InputError(f"{source}: permission denied") from exc
    except OSError as exc:
        raise InputError(f"{source}: could not read ({exc.strerror or exc})") from exc
    try:
        info = os.fstat(fd)  # of what was opened, not of what the path names a moment later
        what = _not_a_regular_file(info.st_mode)
        if what:
            raise InputError(f"{source}: {what}")
        if info.st_size > max_bytes:
            raise InputError(f"{source}: is {size_text(info.st_size)}; the limit is {size_text(max_bytes)}")
        return read_capped(lambda n: os.read(fd, n), source, max_bytes)
    except OSError as exc:
        raise InputError(f"{source}: could not read ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)


def read_source(source: str, *, stdin: BinaryIO | None = None, max_bytes: int = 5_000_000,
                timeout: float = 15.0, allow: AllowList = AllowList()) -> RawSource:
    """Read a file path, "-" (stdin) or an http(s) URL, refusing what cannot be a post.

    URLs go through ``fetch``: only globally reachable hosts, unless ``allow`` names them."""
    if source == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        data = read_capped(stream.read, "<stdin>", max_bytes)
        check_bytes("<stdin>", data)
        return RawSource(name="<stdin>", data=data, content_type=None, url=None)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
        fetched = fetch(source, max_bytes=max_bytes, timeout=timeout, allow=allow)
        check_bytes(source, fetched.data)
        return RawSource(name=source, data=fetched.data, content_type=fetched.content_type, url=fetched.url)
    data = _read_file(source, max_bytes)
    check_bytes(source, data)
    return RawSource(name=source, data=data, content_type=None, url=None)


def _charset(content_type: str | None) -> str | None:
    m = re.search(r"charset=[\"']?([\w.:-]+)", content_type or "", re.I)
    return m.group(1) if m else None


def decode_text(raw: RawSource) -> str:
    """The source as text: BOMs honoured, then the HTTP charset, UTF-8, and Windows-1252."""
    data = raw.data
    if data.startswith(b"\xef\xbb\xbf"):
        candidates = ["utf-8-sig"]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates = ["utf-16"]
    else:
        candidates = [c for c in (_charset(raw.content_type), "utf-8", "cp1252") if c]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        # Windows-1252 decodes almost any bytes: only trust it when the result looks like text.
        if len(_CONTROL_RE.findall(text)) > max(3, len(text) // 1000):
            continue
        return text.lstrip("\ufeff")
    raise InputError(f"{raw.name}: looks like a binary file, not text "
                     "(it is not UTF-8 or Windows-1252 text)")


def _sniff_feed(head: str) -> bool:
    start = head[_PROLOGUE_RE.match(head).end():]  # type: ignore[union-attr]
    low = start.lower()
    if low.startswith("<rss") or low.startswith("<rdf:rdf"):
        return True
    if low.startswith("<feed") or low.startswith("<atom:feed"):
        return _ATOM_NS in start[: start.find(">") + 1]
    return False


def _sniff_html(head: str) -> bool:
    low = head.lstrip().lower()
    if low.startswith("<!doctype html") or re.search(r"<(?:html|body|head)[\s>]", low):
        return True
    return low.startswith("<") and bool(re.match(r"<(?:p|div|article|section|main|h[1-6])[\s>]", low))


def detect_format(raw: RawSource, text: str) -> str:
    """"text", "markdown", "html" or "feed", from the content itself, the HTTP type and the name."""
    head = text[:4096]
    if _sniff_feed(head):
        return "feed"  # the content says so, whatever the name or server claims
    media = (raw.content_type or "").split(";")[0].strip().lower()
    if media in _CONTENT_TYPES:
        return _CONTENT_TYPES[media]
    if media in {"text/xml", "application/xml"}:
        return "html" if _sniff_html(head) else "feed"
    ext_source = raw.url or raw.name
    suffix = Path(ext_source.split("?")[0].split("#")[0]).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if _sniff_html(head):
        return "html"
    if any(sign.search(text[:20000]) for sign in _MD_SIGNS):
        return "markdown"
    return "text"


def parse_post(raw: RawSource, fmt: str = "auto", *, title: str | None = None,
               excerpt: str | None = None) -> ParsedPost:
    """Decode and parse a source as one post. Feeds are refused: they hold many posts. ``title`` and
    ``excerpt``, when given (``posts import --title/--excerpt``), win over what the source says."""
    if fmt not in ("auto", "text", "markdown", "html", "feed"):
        raise InputError(f"{raw.name}: unknown format {fmt!r} (use auto, text, markdown or html)")
    text = decode_text(raw)
    if not text.strip():
        raise InputError(f"{raw.name}: is empty")
    if fmt == "auto":
        fmt = detect_format(raw, text)
    if fmt == "feed":
        raise InputError(f"{raw.name}: looks like a feed; use `feeds add` (or --format feed) to "
                         "import its entries")
    if fmt == "markdown":
        post = parse_markdown(text, source_name=raw.name, title=title)
    elif fmt == "html":
        post = parse_html(text, source_name=raw.name, base_url=raw.url, given_title=title)
    else:
        post = parse_text(text, source_name=raw.name, title=title)
    if excerpt is not None:
        post.excerpt = excerpt_from(excerpt)
    if post.source_url is None and raw.url:
        post.source_url = raw.url
    return post
