"""The usual address checked cheaply, with the same verdict as email-validator.

``validate_email`` costs about 100 µs an address (it walks the address a character at a time,
normalising a window of it to NFC at each step); a CSV import of 100,000 rows spent most of its time
there. Nearly every address has a plain ASCII local part (RFC 5322 dot-atom: letters, digits and
``!#$%&'*+-/=?^_`{|}~``, dots between them) and one of a few domains. For those, what
email-validator decides depends on the domain alone, apart from the length of the whole address:

- the domain's verdict and its normalised forms are email-validator's own, got once per domain by
  validating ``a@DOMAIN`` (an LRU cache, so memory stays bounded whatever the file holds);
- the three lengths email-validator checks (as given, normalised, with the IDNA domain) are checked
  here, in UTF-8 octets, against the same limit.

Anything else (quotes, a display name, a non-ASCII local part, a local part that email-validator
lower-cases such as ``Postmaster``, a domain it refuses, an address over the limit) returns None,
and the caller asks email-validator itself, which also words the error. tests/test_email_syntax.py
checks with Hypothesis that both give the same verdict and the same normalised address.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH

# RFC 5322 3.2.3 dot-atom over ASCII atext: email-validator accepts such a local part unchanged.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")
_LOWERED = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)  # local parts email-validator lower-cases (RFC 2142)
DOMAINS_CACHED = 4096  # distinct domains remembered; a file with more only re-checks the rarer ones


@lru_cache(maxsize=DOMAINS_CACHED)
def domain_forms(domain: str) -> tuple[str, str] | None:
    """(normalised domain, its IDNA ASCII form) as email-validator gives them, or None when it refuses
    the domain (or an address at it even with a one-letter local part). A bracketed IP address is
    refused too: email-validator's default, which ``normalise_email`` keeps."""
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.domain, result.ascii_domain


def quick_normalized(address: str) -> str | None:
    """email-validator's ``normalized`` form of ``address`` (already stripped), or None when this
    cheap path cannot tell: then email-validator must be asked."""
    local, at, domain = address.rpartition("@")
    if not at or not _DOT_ATOM.fullmatch(local) or local.lower() in _LOWERED:
        return None
    forms = domain_forms(domain)
    if forms is None:
        return None
    normalized_domain, ascii_domain = forms
    given = len(address) if address.isascii() else len(address.encode())  # octets, as email-validator counts
    longest = max(given, len(local) + 1 + max(len(normalized_domain.encode()), len(ascii_domain)))
    if longest > EMAIL_MAX_LENGTH:
        return None
    return f"{local}@{normalized_domain}"
