"""Reading a webhook's body: capped in size, verified, and parsed as strict JSON of bounded depth.

One home for both webhooks (``receive_json``), so hostile input gets the same clear 400, 403 or 413
everywhere, in the same order: the declared length, then the headers, then the body, read raw (a
signature covers its exact bytes) and counted as it arrives, so a client that sends no
Content-Length (chunked) cannot get past the cap either. Verifying, parsing and what the route then
does with the data are CPU and database work, done in one worker thread, off the event loop.

orjson parses strictly (RFC 8259): NaN and Infinity, numbers that overflow a double, lone surrogates
(which no database can store), invalid UTF-8, a byte-order mark and trailing data are all refused, with
a message that names the place and never the content. Nesting is bounded here as well, far below what
could exhaust the stack of any code that later walks a value: no webhook we accept nests deeper than
a few levels. Duplicate keys keep the last value, as the standard library does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool

MAX_DEPTH = 20
T = TypeVar("T")


class Refused(Exception):
    """A post answered with ``status`` and ``detail`` (one line) and nothing stored."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def check_length(request: Request, limit: int) -> None:
    """A declared Content-Length above ``limit`` is refused before anything is read."""
    declared = request.headers.get("content-length")
    if declared is None:
        return  # chunked: counted while reading
    declared = declared.strip()
    if not (declared.isascii() and declared.isdigit()):
        raise Refused(400, "Content-Length is not a number")
    if int(declared) > limit:
        raise Refused(413, f"the body is larger than {limit} bytes")


BodyCheck = Callable[[bytes], None]  # checks the raw body (a signature over its bytes); raises Refused


async def receive_json(request: Request, limit: int, *, signature: Callable[[], BodyCheck],
                       handle: Callable[[Any], T]) -> T:
    """What ``handle`` makes of the body's JSON, once the post is known to be fit. In order: a
    declared length above ``limit`` is refused (413) before anything else; ``signature()`` reads the
    headers, and may refuse the post, before its body is read, and returns the check of the raw body;
    the body is read, refused (413) as soon as it passes ``limit``; then, in a worker thread, the
    check runs, the body is parsed (400) and ``handle`` gets the data. Each step refuses with
    ``Refused``; ``handle`` may raise what its route answers."""
    check_length(request, limit)
    check = signature()
    body = await _read_capped(request, limit)

    def work() -> T:
        check(body)
        return handle(parse_json(body))

    return await run_in_threadpool(work)


async def _read_capped(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is larger than ``limit`` bytes (the declared
    length was checked before)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The body as JSON, or ``Refused(400)`` saying what is wrong and where."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Refused(400, f"the body is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    if _deeper_than(data, MAX_DEPTH):
        raise Refused(400, f"the body nests arrays and objects more than {MAX_DEPTH} levels deep")
    return data


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)] if isinstance(data, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
