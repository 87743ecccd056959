"""Public URLs and their tokens: the one home of every link a person follows from an email or a page.

Paths: ``/u/`` unsubscribe, ``/preferences/``, ``/v/`` view online, ``/confirm/`` (double opt-in),
``/c/{token}/{link}`` a tracked click, ``/o/{token}/{email}.gif`` the open pixel; and the public
archive, which carries no token: ``/archive``, ``/archive/{id}-{slug}`` an issue published in it,
``/archive/feed.atom`` its Atom feed.

Two token schemes, each for its own kind of link, and both kept: links already in inboxes must go on
working.

- **Delivery tokens**, in every link of a sent email (unsubscribe, preferences, view online, click,
  pixel, the List-Unsubscribe mailto): a signed delivery id (HMAC-SHA256 in itsdangerous's ``Signer``
  format). Nothing is stored, and one signature per recipient serves all the links, so making them is
  cheap on the sending hot path (``DeliveryLinks``). Under anonymous tracking, clicks and opens carry
  ``ANONYMOUS_TOKEN`` instead: counts, nobody's. Test emails and previews carry ``TEST_TOKEN``:
  their links work and nothing is counted.
- **Page tokens** (``subscribers.tokens``), for links made on a page or in the confirmation email: a
  signed contact or subscription id with a salt per purpose, so a preferences token never confirms;
  confirmation links expire.

No token carries an address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from functools import lru_cache

from itsdangerous import Signer

from newsletter.compose.personalize import RecipientValues, safe_first_name
from newsletter.config import Settings
from subscribers.models import Contact, MailingList
from subscribers.tokens import Tokens

UNSUBSCRIBE, PREFERENCES, VIEW_ONLINE, CONFIRM, CLICK, OPEN = "/u/", "/preferences/", "/v/", "/confirm/", "/c/", "/o/"
ARCHIVE, ARCHIVE_FEED = "/archive", "/archive/feed.atom"

# Ids read from URL paths. Links, issues and steps have INTEGER keys on PostgreSQL; the ledger's are
# BIGINT (SQLite's are 64-bit). A larger number would overflow the database driver.
MAX_ID = 2**31 - 1
MAX_LEDGER_ID = 2**63 - 1
ANONYMOUS_TOKEN = "anon"  # the token of emails under anonymous tracking: counts, nobody's
TEST_TOKEN = "test"  # the token of test emails and previews: links work, nothing is counted


def url_id(text: str, *, largest: int = MAX_ID) -> int | None:
    """The id a URL path segment names, or None when it names none: only ASCII digits count ("²"
    and "٣" are digits to ``str.isdigit`` but not ids), from 1 to what the column holds."""
    if not text or len(text) > 19 or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 0 < value <= largest else None


# The public archive (no token: the same page for everyone) ---------------------------------------------

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def archive_path(issue_id: int, subject: str) -> str:
    """An archived issue's page: its id, then its subject as ASCII words for people and search engines
    (``/archive/12-small-steps-for-steadier-days``). Only the id is read back, so a link keeps working
    whatever follows it."""
    words = unicodedata.normalize("NFKD", subject).encode("ascii", "ignore").decode().lower()
    slug = _NOT_SLUG.sub("-", words).strip("-")[:60].rstrip("-")
    return f"{ARCHIVE}/{issue_id}-{slug}" if slug else f"{ARCHIVE}/{issue_id}"


def archive_id(segment: str) -> int | None:
    """The issue id an archive path segment names (``12-small-steps`` or ``12``); None for anything else."""
    return url_id(segment.split("-", 1)[0])


def archive_url(settings: Settings, issue_id: int, subject: str) -> str:
    return settings.public_base_url + archive_path(issue_id, subject)


# Links with a token ---------------------------------------------------------------------------------


def unsubscribe_url(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url}{UNSUBSCRIBE}{token}"


def unsubscribe_mailto(settings: Settings, token: str) -> str:
    return f"mailto:{settings.unsubscribe_email}?subject=unsubscribe-{token}"


def recipient_values(settings: Settings, token: str, name: str | None, track: str = ANONYMOUS_TOKEN) -> RecipientValues:
    """The personal values of an email whose links carry ``token``."""
    base = settings.public_base_url
    return RecipientValues(
        first_name=safe_first_name(name),
        unsubscribe_url=unsubscribe_url(settings, token),
        preferences_url=f"{base}{PREFERENCES}{token}",
        view_online_url=f"{base}{VIEW_ONLINE}{token}",
        track=track,
    )


def test_values(settings: Settings, name: str | None) -> RecipientValues:
    """The personal values of a test email or a preview: every link carries ``TEST_TOKEN``."""
    return recipient_values(settings, TEST_TOKEN, name, track=TEST_TOKEN)


test_values.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when a test imports it


def click_url(base_url: str, token: str, link_id: int) -> str:
    return f"{base_url}{CLICK}{token}/{link_id}"


def pixel_key(issue_id: int | None, step_id: int | None) -> str:
    """The email an open pixel names: ``i12`` issue 12, ``s7`` sequence step 7."""
    return f"i{issue_id}" if issue_id is not None else f"s{step_id}"


def pixel_email(key: str) -> tuple[int | None, int | None] | None:
    """(issue, None) or (None, step) that a pixel's key names; None for anything else."""
    number = url_id(key[1:]) if key[:1] in ("i", "s") else None
    if number is None:
        return None
    return (number, None) if key[0] == "i" else (None, number)


def open_pixel_url(base_url: str, token: str, key: str) -> str:
    return f"{base_url}{OPEN}{token}/{key}.gif"


# Delivery tokens ------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _delivery_signer(key: str) -> Signer:
    return Signer(key, salt="newsletter.delivery", digest_method=hashlib.sha256)


def delivery_token(settings: Settings, delivery_id: int) -> str:
    return DeliveryLinks(settings).token(delivery_id)


def delivery_from_token(settings: Settings, token: str) -> int | None:
    """The delivery id a token was made for, or None when it is not a genuine delivery token."""
    return DeliveryLinks(settings).delivery_of(token)


class DeliveryLinks:
    """Makes the per-recipient values of a batch: one signature per delivery serves the unsubscribe,
    preferences and view-online links and the List-Unsubscribe mailto (the hot path of sending)."""

    def __init__(self, settings: Settings) -> None:
        # The same tokens itsdangerous's Signer makes (and verifies), with the key derived once and
        # the keyed HMAC state reused: a microsecond or two a recipient instead of tens.
        self._mac = hmac.new(_delivery_signer(settings.signing_key()).derive_key(), digestmod=hashlib.sha256)
        base = settings.public_base_url
        self._unsubscribe, self._preferences, self._view = base + UNSUBSCRIBE, base + PREFERENCES, base + VIEW_ONLINE
        self._mailto = f"mailto:{settings.unsubscribe_email}?subject=unsubscribe-"

    def token(self, delivery_id: int) -> str:
        value = str(delivery_id)
        mac = self._mac.copy()  # the keyed state copied: half the cost of keying OpenSSL's HMAC afresh
        mac.update(value.encode())
        return f"{value}.{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"  # itsdangerous's encoding

    def delivery_of(self, token: str) -> int | None:
        """The delivery id ``token`` was made for, or None. Only the one spelling we made is genuine:
        base64 ignores the low bits of a signature's last character, so a verifying signer would take
        "…OM" and "…ON" alike (found by the URL fuzz test); one HMAC, compared whole."""
        if not token.isascii():  # ours are; compare_digest refuses to compare other text
            return None
        value, dot, _ = token.partition(".")
        delivery_id = url_id(value, largest=MAX_LEDGER_ID) if dot else None
        if delivery_id is None or not hmac.compare_digest(self.token(delivery_id), token):
            return None
        return delivery_id

    def values(self, delivery_id: int, name: str | None, nameless: str = "there") -> tuple[RecipientValues, str]:
        token = self.token(delivery_id)
        values = RecipientValues(
            first_name=safe_first_name(name, nameless),
            unsubscribe_url=self._unsubscribe + token,
            preferences_url=self._preferences + token,
            view_online_url=self._view + token,
            track=token,
        )
        return values, self._mailto + token


def delivery_values(settings: Settings, delivery_id: int, name: str | None) -> RecipientValues:
    return DeliveryLinks(settings).values(delivery_id, name)[0]


# Page tokens ----------------------------------------------------------------------------------------


def page_tokens(settings: Settings) -> Tokens:
    return Tokens(settings.signing_key())


def confirm_url(settings: Settings, subscription_id: int) -> str:
    return f"{settings.public_base_url}{CONFIRM}{page_tokens(settings).make('confirm', s=subscription_id)}"


def preferences_url(settings: Settings, contact: Contact) -> str:
    return f"{settings.public_base_url}{PREFERENCES}{page_tokens(settings).make('preferences', c=contact.id)}"


def unsubscribe_token(settings: Settings, contact: Contact, mailing_list: MailingList | None) -> str:
    return page_tokens(settings).make("unsubscribe", c=contact.id, l=mailing_list.id if mailing_list else 0)


# Staff links in emails to staff ---------------------------------------------------------------------

STAFF_LEADS = "/staff/leads/"  # the staff app's page of one lead, named by its contact id


def staff_lead_url(settings: Settings, contact_id: int) -> str:
    """The lead's page in the staff app (sign-in required); a number, never an address."""
    return f"{settings.public_base_url}{STAFF_LEADS}{contact_id}"
