"""The one home of the security headers every answer of the app carries.

Public pages are reached from emails and carry tokens in their URLs, so nothing may leak them to
another site (no Referer), nothing may frame them, and no script runs but this app's own files:
``script-src 'self'`` and never ``'unsafe-inline'`` for scripts. Email HTML (the view-online copy and
the public archive) styles itself inline and shows images from https hosts, hence ``style-src
'unsafe-inline'`` and ``img-src https:``. The staff app also frames its own issue previews.

A route that needs another policy sets its own ``Content-Security-Policy`` (the staff preview may be
framed by the staff app); it is kept, and ``X-Frame-Options`` is then left out, since its
``frame-ancestors`` says who may frame it. A route may set its own ``X-Robots-Tag`` likewise (the
archive, when it may be indexed); every other answer is ``noindex``.

HSTS is sent only over https: as the request arrived, or as a trusted proxy reported it
(``X-Forwarded-Proto``, believed only from ``NEWSLETTER_TRUSTED_PROXIES``, see ``server.py``); the
same test that decides Secure cookies (``staff/auth.py``) keeps plain http on this machine usable.

Not sent: ``Cross-Origin-Resource-Policy``, which would stop webmail on other origins from loading the
open pixel and images this app serves to emails.
"""

from __future__ import annotations

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

STAFF_PREFIX = "/staff"
HSTS = "max-age=31536000"

_COMMON = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
                          "microphone=(), payment=(), usb=()",
    "X-Robots-Tag": "noindex",
}
PUBLIC_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# The staff app runs its own first-party script and frames its own issue previews; QR codes and charts
# are inline SVG or data: images.
STAFF_CSP = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; "
             "frame-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def is_staff(path: str) -> bool:
    return path == STAFF_PREFIX or path.startswith(STAFF_PREFIX + "/")


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def headers_for(request: Request) -> dict[str, str]:
    """The headers an answer to ``request`` gets unless its route set its own."""
    return _headers(is_staff(request.url.path), is_https(request))


def _headers(staff: bool, https: bool) -> dict[str, str]:
    headers = {**_COMMON, "Content-Security-Policy": STAFF_CSP if staff else PUBLIC_CSP, "X-Frame-Options": "DENY"}
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return headers


def public_raw_headers(https: bool, **own: str) -> list[tuple[bytes, bytes]]:
    """The headers of a public answer sent by raw ASGI (the tracking fast path, ``web/tracking.py``),
    with the answer's ``own`` (e.g. ``cache_control="no-store, private"``) kept as ``apply`` keeps them."""
    headers = {name.replace("_", "-").title(): value for name, value in own.items()}
    for name, value in _headers(False, https).items():
        headers.setdefault(name, value)
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def apply(request: Request, response: Response) -> None:
    own_policy = "content-security-policy" in response.headers
    for name, value in headers_for(request).items():
        if name == "X-Frame-Options" and own_policy:
            continue
        response.headers.setdefault(name, value)


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        apply(request, response)
        return response
