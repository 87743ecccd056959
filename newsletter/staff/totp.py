"""TOTP (RFC 6238) second factor: optional for every user, required for admins when
``NEWSLETTER_REQUIRE_2FA`` is set (the contact list reveals health interest).

A code is accepted for the current 30-second step and one step either side (clocks drift), and
never twice: the step it was accepted for is kept, and a code of that step or an earlier one is
refused, so a code seen over someone's shoulder cannot be replayed.
"""

from __future__ import annotations

import re
from datetime import datetime

import pyotp
import segno
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.staff.audit import AuditAction, record
from newsletter.staff.models import StaffUser
from newsletter.staff.roles import Role

STEP_SECONDS = 30
CODE = re.compile(r"^\d{6}$")


class TotpError(ValueError):
    """A code that does not fit, or a step that cannot be taken now: one line for the person."""


def required_for(user: StaffUser, settings: Settings) -> bool:
    return settings.require_2fa and user.role == Role.ADMIN


def needs_enrolment(user: StaffUser, settings: Settings) -> bool:
    """An admin without TOTP while it is required: sent to set it up before any other page."""
    return required_for(user, settings) and not user.has_totp


def clean_code(code: str) -> str:
    """The code as typed, with the spaces some apps show taken out."""
    return re.sub(r"[\s-]", "", code or "")


def _accept(user: StaffUser, secret: str, code: str, now: datetime) -> bool:
    code = clean_code(code)
    if not CODE.match(code):
        return False
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    step = int(now.timestamp()) // STEP_SECONDS
    for candidate in (step - 1, step, step + 1):
        if user.totp_last_step is not None and candidate <= user.totp_last_step:
            continue  # used already (or older than a code used already)
        if pyotp.utils.strings_equal(totp.at(candidate * STEP_SECONDS), code):
            user.totp_last_step = candidate
            return True
    return False


def verify(user: StaffUser, code: str, now: datetime) -> bool:
    """Whether ``code`` is a fresh code of the user's confirmed secret (marks it used)."""
    return user.totp_secret is not None and _accept(user, user.totp_secret, code, now)


def begin_enrolment(user: StaffUser) -> str:
    """A new secret waiting for its first code; returns it. Begun again, the old one is forgotten."""
    user.totp_pending_secret = pyotp.random_base32()
    return user.totp_pending_secret


def provisioning_uri(user: StaffUser, settings: Settings) -> str:
    """The otpauth:// URI an authenticator app reads (from the QR code or typed)."""
    if user.totp_pending_secret is None:
        raise TotpError("no two-factor set-up is under way")
    return pyotp.TOTP(user.totp_pending_secret, interval=STEP_SECONDS).provisioning_uri(
        name=user.email, issuer_name=f"{settings.org_name} staff")


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as inline SVG, drawn here (no request to any other site)."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=4, dark="#000", light="#fff",
                                                 title="QR code of the two-factor set-up key")


def confirm_enrolment(session: Session, user: StaffUser, code: str, now: datetime) -> None:
    """The first code proves the app holds the secret: two-factor sign-in is on from now."""
    if user.totp_pending_secret is None:
        raise TotpError("Start the set-up first: no key is waiting for a code.")
    if not _accept(user, user.totp_pending_secret, code, now):
        raise TotpError("That code does not match. Check the time on your phone and type the newest code.")
    user.totp_secret, user.totp_pending_secret = user.totp_pending_secret, None
    record(session, user, AuditAction.TOTP_ENABLED, f"user {user.id}", at=now)


def disable(session: Session, user: StaffUser, code: str, settings: Settings, now: datetime) -> None:
    """Turn two-factor sign-in off, with a current code (a stolen session alone cannot)."""
    if not user.has_totp:
        raise TotpError("Two-factor sign-in is not on.")
    if required_for(user, settings):
        raise TotpError("Admins must keep two-factor sign-in on here (NEWSLETTER_REQUIRE_2FA).")
    if not verify(user, code, now):
        raise TotpError("That code does not match. Type the newest code from your app.")
    user.totp_secret = None
    user.totp_last_step = None
    record(session, user, AuditAction.TOTP_DISABLED, f"user {user.id}", at=now)
