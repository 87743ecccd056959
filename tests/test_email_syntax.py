"""The cheap address check (``subscribers.email_syntax``) gives email-validator's verdict: the same
addresses accepted, with the same normalised form, and none accepted that email-validator refuses;
and ``normalise_email`` with the per-domain cache warm says what it says with the cache cold."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from subscribers.contacts import normalise_email
from subscribers.email_syntax import domain_forms, quick_normalized
from subscribers.errors import InputError

ATEXT = "abcXYZ019!#$%&'*+-/=?^_`{|}~"
# Characters that sit on the edges of the rules: dots, quotes, brackets, spaces, combining marks,
# full-width and non-ASCII letters, IDNA-relevant and disallowed code points.
AWKWARD = ".\"\\()<>[],;: @\t\u0301\u0338\uff20\u00e9\u00fc\u0130\u00df\u200d\u2024\u3002\u0660"
LABELS = ["example", "EXAMPLE", "ex-ample", "xn--bcher-kva", "bücher", "münchen", "localhost", "test",
          "invalid", "local", "com", "org", "co", "1", "a" * 63, "a" * 64, "-x", "x-", "例え", "ß", "İ"]


def validator_verdict(address: str) -> str | None:
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


local_parts = st.one_of(
    st.text(alphabet=ATEXT + ".", min_size=0, max_size=70),
    st.text(alphabet=ATEXT + AWKWARD, min_size=0, max_size=12),
    st.sampled_from(["Postmaster", "info", "SALES", "a", "a" * 64, "a" * 65, "\"quoted\"", "a..b", ".a", "a."]),
)
domains = st.one_of(
    st.lists(st.sampled_from(LABELS), min_size=1, max_size=5).map(".".join),
    st.text(alphabet="abcxyz019-." + AWKWARD, min_size=0, max_size=20),
    st.lists(st.sampled_from(LABELS), min_size=1, max_size=5).map(".".join).map(lambda d: d + "."),
    st.sampled_from(["[127.0.0.1]", "[IPv6:::1]", "example.com>", "a" * 250 + ".com"]),
)


@settings(max_examples=3000, deadline=None)
@given(local=local_parts, domain=domains)
@example(local="Postmaster", domain="example.com")
@example(local="a" * 64, domain=("a" * 63 + ".") * 3 + "com")
@example(local="ann", domain="\u0301example.com")
@example(local="ann", domain="bücher.example")
def test_the_quick_check_agrees_with_email_validator(local: str, domain: str) -> None:
    address = f"{local}@{domain}".strip()
    quick = quick_normalized(address)
    if quick is not None:  # when it answers, it answers as email-validator does
        assert quick == validator_verdict(address)


@settings(max_examples=1500, deadline=None)
@given(local=st.text(alphabet=ATEXT + ".", min_size=1, max_size=70),
       domain=st.lists(st.sampled_from(LABELS), min_size=2, max_size=4).map(".".join))
def test_the_usual_addresses_take_the_quick_path(local: str, domain: str) -> None:
    # Not a proof of speed: that plain addresses at a valid domain never need email-validator itself.
    address = f"{local}@{domain}"
    expected = validator_verdict(address)
    if expected is not None and local.lower() not in ("postmaster", "info"):
        assert quick_normalized(address) == expected


@settings(max_examples=1000, deadline=None)
@given(local=local_parts, domain=domains)
def test_normalise_email_says_the_same_with_the_cache_warm_and_cold(local: str, domain: str) -> None:
    address = f"{local}@{domain}"

    def verdict() -> str:
        try:
            return normalise_email(address)
        except InputError as exc:
            return f"refused: {exc}"

    domain_forms.cache_clear()
    cold = verdict()
    warm = verdict()  # the domain's verdict now comes from the cache
    assert warm == cold


@pytest.mark.parametrize("address", ["ann@Example.ORG", "Ann.Lee+news@bücher.example", "x@xn--bcher-kva.example"])
def test_accepted_addresses_keep_their_local_part_and_lower_case_their_domain(address: str) -> None:
    local, _, _ = address.partition("@")
    normalised = normalise_email(f"  {address} ")
    assert normalised.partition("@")[0] == local
    assert normalised.partition("@")[2] == validator_verdict(address).partition("@")[2].lower()


@pytest.mark.parametrize("address", ["broken.example.org", "a@localhost", "a@b..c", "\"a b\"@example.org x",
                                     "a@[127.0.0.1]", "a" * 250 + "@example.org"])
def test_refused_addresses_are_refused_with_email_validators_reason(address: str) -> None:
    with pytest.raises(InputError, match="is not a valid email address: "):
        normalise_email(address)
