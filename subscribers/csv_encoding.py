"""Which encoding a CSV file is in: told by a byte-order mark, by UTF-8, by the person importing
(``--encoding``), or detected with charset-normalizer; a file that cannot be told is refused, never
read in a guess that stores garbled names ("mojibake").

Why it is shaped this way:

- Fast path first: a byte-order mark (UTF-8, UTF-16, UTF-32) decides; a sample whose lines all
  decode as UTF-8 (plain ASCII included) is read as UTF-8. Only other files pay for detection.
- A bounded sample: the first ``HEAD_BYTES`` and ``WINDOWS`` windows of ``WINDOW_BYTES`` spread
  over the rest, about 400 KiB whatever the file's size. The import's check pass then reads the
  whole file strictly in the chosen encoding, so a byte the sample missed is still caught there;
  when the sample was plain ASCII, that byte's neighbourhood is sampled and judged once more
  (``detect_encoding(..., also_at=offset)``).
- Only the lines holding a byte above 127 are evidence: ASCII reads the same in every candidate,
  and a file's e-mail addresses would only dilute the figures. Lines that are UTF-8 next to lines
  that are not mean a file pasted together from two sources: refused, as no one encoding reads it.
- charset-normalizer (``from_bytes``) gives each distinct reading its mess ("chaos", 0..1, lower
  is better) and language coherence (0..1, higher is better), and ranks them. On contact files its
  ``best()`` alone is often wrong, because names are short (measured on Japanese, Spanish, Polish,
  Czech, Turkish, Greek, Russian, Hebrew, Arabic, Chinese and Korean files of 3 to 3,000 rows):
  Shift_JIS names came out as Korean, Windows-1252 as Windows-1250 ("Ińigo"), Polish as
  Windows-1252 ("Wa³êsa"), Chinese as Thai or Cyrillic, all with chaos 0. So ``_judge`` keeps
  charset-normalizer's figures and adds what a contacts file implies:

  1. Only ``LIKELY`` encodings compete: the ones spreadsheets and address books write; Korean and
     Chinese in their strict common sets (EUC-KR, GB2312), which Japanese bytes rarely fit, and
     read in the supersets Windows writes (``_READ_AS``).
  2. A name is made of letters: a reading with more non-letters than the best one (a '³' where
     Polish has 'ł', '¶' or a word-initial '’' where Greek has 'Ά', a control character) is
     dropped.
  3. Mess at most ``MAX_CHAOS``: right readings measured up to 0.062 (a note saying "5€"); wrong
     ones that survive rule 2 from 0.1 (Chinese read as Japanese), or are beaten by rule 5.
  4. Among readings within ``CHAOS_MARGIN`` of the least messy, those in which a language is
     recognised (coherence at least ``MIN_COHERENCE``) beat those in which none is. Where none
     is, the figures tell the clean readings nothing apart and all of them tie (three Hebrew
     names read as cleanly in Cyrillic and Greek letters).
  5. Then charset-normalizer's own order: chaos first, coherence when chaos is within 0.005; two
     readings whose coherence is within 0.02 (its own tolerances) are a tie.
  6. Windows-1252 wins when its mess ties the least and its coherence is within ``LEGACY_MARGIN``
     of the best: it is Excel's "CSV" in the Americas and Western Europe, and what every file not
     in UTF-8 was read as before detection. Spanish, French, German or Nordic names in it score
     the same as Windows-1250, -1257 or -1258 ("Ińigo", "Sřren") give or take 0.04 on every sample
     measured. The import report then names the readings that scored as well.
  7. Any other tie is refused, naming the readings.

  Measured limits: a few Czech or Turkish names whose letters all exist in Windows-1252 can tie
  with it, and are then read as Windows-1252 (the report says so and names the alternatives);
  Chinese contact files are mostly refused, since no reading is clean enough. Staff who know the
  encoding give it with ``--encoding``.
"""

from __future__ import annotations

import codecs
import io
import os
import random
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from subscribers.errors import InputError

HEAD_BYTES = 256 * 1024
WINDOW_BYTES = 32 * 1024
WINDOWS = 4  # spread over the rest of a file larger than the head
EVIDENCE_BYTES = 64 * 1024  # about the most bytes of non-ASCII lines handed to charset-normalizer

MAX_CHAOS = 0.08
CHAOS_MARGIN = 0.02
MIN_COHERENCE = 0.05
CHAOS_TIE = 0.005  # charset-normalizer's CharsetMatch.__lt__: below this, coherence decides
COHERENCE_TIE = 0.02  # ... and this much coherence is a difference
LEGACY_MARGIN = 0.05  # how far behind in coherence Windows-1252 still wins (rule 6)
DEFAULT_LEGACY = "cp1252"

# Python codec name -> the name people know. The order is the preference among readings that are
# identical on the sample (Windows code pages first: Excel writes them).
LIKELY = {
    "cp1252": "Windows-1252", "iso8859_15": "ISO-8859-15", "mac_roman": "Mac Roman",
    "cp1250": "Windows-1250", "iso8859_2": "ISO-8859-2", "cp1251": "Windows-1251", "koi8_r": "KOI8-R",
    "koi8_u": "KOI8-U", "cp1253": "Windows-1253", "iso8859_7": "ISO-8859-7", "cp1254": "Windows-1254",
    "cp1255": "Windows-1255", "iso8859_8": "ISO-8859-8", "cp1256": "Windows-1256", "cp1257": "Windows-1257",
    "cp1258": "Windows-1258", "cp874": "Windows-874", "cp932": "Shift_JIS", "euc_jp": "EUC-JP",
    "euc_kr": "EUC-KR", "gb2312": "GB2312", "big5": "Big5",
}
# Korean and Chinese are detected in their strict common sets, whose byte ranges other scripts'
# bytes rarely fit (Shift_JIS kanji are valid in Windows' Korean cp949, not in EUC-KR), and read
# in the supersets Windows writes, which read every such file the same.
_READ_AS = {"euc_kr": "cp949", "gb2312": "gb18030"}
_NAMES = {**LIKELY, "cp949": "EUC-KR", "gb18030": "GB18030", "shift_jis": "Shift_JIS", "iso8859_1": "Latin-1",
          "utf_8": "UTF-8", "utf_8_sig": "UTF-8", "utf_16": "UTF-16", "utf_16_le": "UTF-16LE", "utf_16_be": "UTF-16BE",
          "utf_32": "UTF-32", "ascii": "ASCII"}
# Typography a name or a note may hold besides letters: quotes, apostrophes, dashes, spaces.
_TYPOGRAPHY = frozenset("‘’‚‛“”„«»‹›–—…·•€\u00a0\u2009\u202f")
# A closing quote or apostrophe never starts a word: "’ννα" is ISO-8859-7 misreading Windows-1253's "Άννα".
_CLOSING_OPENS_A_WORD = re.compile(r"(?:^|(?<=[\s,;]))[’”›»](?=[^\W\d_])", re.MULTILINE)
_CONTROL_BYTES = re.compile(rb"[\x01-\x08\x0b\x0c\x0e-\x1f]")  # C0 controls but tab, LF, CR
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def label(codec: str) -> str:
    """How people call an encoding: ``cp932`` -> ``Shift_JIS``."""
    key = codecs.lookup(codec).name.replace("-", "_")
    return _NAMES.get(key, codec)


@dataclass(frozen=True)
class Encoding:
    """The encoding a file is read in, and how it was found."""

    codec: str  # the name Python reads the file with
    how: Literal["utf-8", "bom", "detected", "given"]
    ascii_sample: bool = False  # "utf-8" from a sample with no byte above 127: nothing was proved
    alternatives: tuple[str, ...] = ()  # readings that scored as well (a tie Windows-1252 won)

    @property
    def name(self) -> str:
        """As stored in the import summary: ``utf-8``, ``cp1252``, ``cp932``, ``utf-16``."""
        return self.codec.removesuffix("-sig")

    def describe(self) -> str:
        """For the import report: "read as Shift_JIS (detected)"."""
        how = {"utf-8": "", "bom": " (byte-order mark)", "detected": " (detected)", "given": " (given)"}[self.how]
        text = f"read as {label(self.codec)}{how}"
        if self.alternatives:
            text += (f"; {_either([label(c) for c in self.alternatives])} scored as well: "
                     "if names look wrong, import again with --encoding")
        return text


# Codecs Python reads text with that are no file's encoding: host names, escapes in source code, and
# one that refuses everything. Named, they raised UnicodeError (not a decoding error) on the first line.
NOT_FILE_ENCODINGS = frozenset({"undefined", "punycode", "idna", "unicode-escape", "raw-unicode-escape"})


def given_encoding(name: str) -> Encoding:
    """The encoding named by the person importing (``--encoding``), checked."""
    try:
        codec = codecs.lookup(name.strip()).name
        io.TextIOWrapper(io.BytesIO(), encoding=codec)  # LookupError for a codec that is not a text encoding
        if codec in NOT_FILE_ENCODINGS:
            raise LookupError(codec)
    except LookupError:
        raise InputError(f"unknown encoding {name.strip()!r}: give a name such as utf-8, cp1252 (Windows-1252), "
                         "shift_jis or iso-8859-7") from None
    return Encoding("utf-8-sig" if codec == "utf-8" else codec, "given")  # -sig: a BOM is not a character


class NotInEncoding(InputError):
    """A line that the chosen encoding cannot decode; ``offset`` is about where (in bytes)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def detect_encoding(path: Path, *, also_at: int | None = None) -> Encoding:
    """The encoding of the file at ``path``, from a sample of it (see the module's docstring).
    ``also_at``: a byte offset where the file is known not to be UTF-8, sampled as well. Raises
    ``InputError`` for binary data, a file mixing UTF-8 with another encoding, and a file whose
    encoding cannot be told."""
    try:
        with path.open("rb") as binary:
            head = binary.read(HEAD_BYTES)
            for bom, codec in _BOMS:
                if head.startswith(bom):
                    return Encoding(codec, "bom")
            if (nul := head.find(b"\x00")) >= 0:
                raise binary_error(path, head.count(b"\n", 0, nul) + 1)
            size = os.fstat(binary.fileno()).st_size
            head_lines = _lines(head, first=True, last=len(head) >= size)
            lines = list(head_lines)
            for offset in _window_offsets(size, also_at):
                binary.seek(offset)
                lines += _lines(binary.read(WINDOW_BYTES), first=offset == 0, last=offset + WINDOW_BYTES >= size)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror})") from None
    evidence = [line for line in lines if not line.isascii() and b"\x00" not in line]  # NULs: the check pass says where
    if not evidence:
        return Encoding("utf-8-sig", "utf-8", ascii_sample=True)
    utf8 = [line for line in evidence if _is_utf8(line)]
    if len(utf8) == len(evidence):
        return Encoding("utf-8-sig", "utf-8")
    header = next((n for n, line in enumerate(head_lines, 1) if line.strip()), 0)
    if header and _CONTROL_BYTES.search(head_lines[header - 1]):  # the same byte in every candidate encoding
        raise control_error(path, header)
    if utf8:
        raise InputError(f"{path}: some lines are UTF-8 and others are not, so no one encoding reads the whole file "
                         "(rows pasted together from two sources?); save it as UTF-8 and import again")
    return _judge(path, _bounded(evidence))


def _window_offsets(size: int, also_at: int | None) -> list[int]:
    offsets = []
    if size > HEAD_BYTES:
        step = (size - HEAD_BYTES) / WINDOWS
        offsets = sorted({HEAD_BYTES + int(step * i) for i in range(WINDOWS)})
    if also_at is not None:
        offsets.append(max(0, also_at - WINDOW_BYTES // 2))
    return offsets


def _lines(chunk: bytes, *, first: bool, last: bool) -> list[bytes]:
    """The whole lines of a chunk: a line cut by the chunk's edge is dropped (its first bytes may
    be the middle of a character). A line end is the same byte in every candidate encoding."""
    lines = chunk.split(b"\n")
    if not first:
        lines = lines[1:]
    if not last:
        lines = lines[:-1]
    return lines


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _bounded(lines: list[bytes]) -> bytes:
    """About ``EVIDENCE_BYTES`` of the lines: first each line holding a byte above 127 that no line
    kept so far holds (readings differ only at such bytes, so a rare letter is never left out),
    then lines drawn from all the rest, so that the windows count as much as the head."""
    kept, seen, rest = [], set(), []
    for line in lines:
        novel = set(line) - seen
        if any(byte > 127 for byte in novel):
            kept.append(line)
            seen |= novel
        else:
            rest.append(line)
    room = EVIDENCE_BYTES - sum(len(line) + 1 for line in kept)
    total = sum(len(line) + 1 for line in rest)
    if total <= room:
        return b"\n".join(kept + rest)
    if room > 0:  # lines drawn evenly at random (seeded: the same file, the same verdict), not every n-th,
        # which could keep one name of a repeating pattern and lose the others
        share = max(1, len(rest) * room // total)
        kept += [rest[i] for i in sorted(random.Random(len(rest)).sample(range(len(rest)), share))]
    return b"\n".join(kept)


@dataclass
class _Reading:
    codec: str
    chaos: float
    coherence: float
    odd: int  # non-ASCII characters that are neither letters, marks nor typography
    non_ascii: int


def _judge(path: Path, evidence: bytes) -> Encoding:
    from charset_normalizer import from_bytes  # here: files in UTF-8 never pay for importing it

    matches = from_bytes(evidence, cp_isolation=list(LIKELY), preemptive_behaviour=False)
    readings = [_reading(match) for match in matches]
    if not readings:
        raise _cannot_tell(path, [])
    fewest_odd = min(r.odd for r in readings)
    clean = [r for r in readings if r.odd == fewest_odd and r.chaos <= MAX_CHAOS]  # rules 2 and 3
    if not clean or fewest_odd > max(1, clean[0].non_ascii // 20):  # a note may hold a '©', a name none
        raise _cannot_tell(path, readings)
    floor = min(r.chaos for r in clean)
    near = [r for r in clean if r.chaos <= floor + CHAOS_MARGIN]
    if recognised := [r for r in near if r.coherence >= MIN_COHERENCE]:  # rule 4
        least = min(r.chaos for r in recognised)
        leaders = [r for r in recognised if r.chaos <= least + CHAOS_TIE]  # rule 5
        most = max(r.coherence for r in leaders)
        tied = [r for r in leaders if r.coherence >= most - COHERENCE_TIE]
        legacy = [r for r in leaders if r.codec == DEFAULT_LEGACY and r.coherence >= most - LEGACY_MARGIN]
    else:  # no language recognised where the mess is least: the figures tell clean readings nothing apart
        tied = leaders = clean
        legacy = [r for r in clean if r.codec == DEFAULT_LEGACY]
    if legacy:  # rule 6
        others = [r.codec for r in leaders
                  if r is not legacy[0] and r.coherence >= legacy[0].coherence - COHERENCE_TIE]
        return Encoding(DEFAULT_LEGACY, "detected", alternatives=tuple(others))
    if len(tied) == 1:
        return Encoding(_READ_AS.get(tied[0].codec, tied[0].codec), "detected")
    raise _cannot_tell(path, tied)


def _reading(match: Any) -> _Reading:
    decoded = str(match)
    text = _non_ascii(decoded)
    odd = sum(1 for ch in text if ch not in _TYPOGRAPHY and unicodedata.category(ch)[0] not in "LM")
    odd += len(_CLOSING_OPENS_A_WORD.findall(decoded))
    return _Reading(_codec_of(match.could_be_from_charset), match.chaos, match.coherence, odd, len(text))


def _cannot_tell(path: Path, likely: list[_Reading]) -> InputError:
    names = list(dict.fromkeys(label(r.codec) for r in likely))[:3]
    looks = f" (it looks like {_either(names)})" if names else ""
    return InputError(f"{path}: could not tell the file's encoding{looks}; save it as UTF-8 and import again, "
                      "or name its encoding with --encoding")


def _codec_of(could_be: Iterable[str]) -> str:
    """Of the encodings that read the sample identically, the first in ``LIKELY``."""
    candidates = list(could_be)
    return next((codec for codec in LIKELY if codec in candidates), candidates[0])


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _non_ascii(text: str) -> list[str]:
    return [ch for ch in text if ch >= "\x80"]


def binary_error(path: Path, line: int) -> InputError:
    return InputError(f"{path} line {line}: this is not a CSV text file: it holds a NUL character, which text "
                      "never does (binary data or a damaged file; a spreadsheet must be saved as CSV first)")


def control_error(path: Path, line: int) -> InputError:
    return InputError(f"{path} line {line}: the header line holds control characters: this is not a CSV text file "
                      "(a spreadsheet must be saved as CSV first)")
