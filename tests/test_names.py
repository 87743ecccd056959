"""The one rule for names (and any free text bound for an email header): plain text on one line."""

from __future__ import annotations

import pytest

from subscribers.errors import InputError
from subscribers.names import MAX_NAME, clean_name, plain_line


@pytest.mark.parametrize("raw, expected", [
    ("Ana María", "Ana María"),
    ("  Ana \t María\r\n", "Ana María"),
    ("Eve\r\nBcc: evil@example.com", "Eve Bcc: evil@example.com"),
    ("=?utf-8?q?x=0D=0ABcc:_evil@example.com?=", "x Bcc: evil@example.com"),  # decoded, then one line
    ("=?utf-8?b?Sm9zw6k=?= Pérez", "José Pérez"),
    ("=?utf-8?q?=3D=3Futf-8=3Fq=3FJos=3DC3=3DA9=3F=3D?=", "José"),  # nested: decoded until plain
    ("=?utf-8?q?=3D=3Futf-8=3Fq=3Fa=0Ab=3F=3D?=", "= ?utf-8?q?a b?="),  # or left harmless
    ("=?x-unknown?q?caf=E9?=", "café"),  # an unknown charset is read as Latin-1
    ("=?utf-8?b?###?= left", "left"),  # an empty (broken) word is nothing
    ("a=?b", "a= ?b"),  # whatever is left can never start an encoded word
    ("\u202eevil\u202c name\ufeff", "evil name"),  # bidi overrides and invisible marks dropped
    ("Ana\u2028Bcc\u2029x\x00y\x85z", "Ana Bcc x y z"),  # line and paragraph separators, NUL, NEL
    ("👩\u200d👩\u200d👧 Family", "👩\u200d👩\u200d👧 Family"),  # joiners that emoji and scripts need stay
])
def test_plain_line(raw: str, expected: str) -> None:
    assert plain_line(raw) == expected
    assert plain_line(expected) == expected  # idempotent


def test_clean_name_composes_caps_and_empties() -> None:
    assert clean_name("Jose\u0301") == "José"  # NFC: one way to write each name
    assert clean_name(" \r\n ") is None and clean_name(None) is None
    assert clean_name("N" * MAX_NAME) == "N" * MAX_NAME
    assert clean_name("N" * MAX_NAME + "\r\n   ") == "N" * MAX_NAME  # counted after cleaning
    with pytest.raises(InputError, match="name is longer than 200 characters"):
        clean_name("N" * (MAX_NAME + 1))
