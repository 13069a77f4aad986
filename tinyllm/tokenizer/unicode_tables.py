"""Characters for the Numba pre-tokenizer: Unicode classes as a lookup table, UTF-8 decoding.

The split patterns (patterns.py) ask three questions of every character: is it
a letter (``\\p{L}``), a number (``\\p{N}``), whitespace (``\\s``)? GPT-4o's
pattern also asks whether it is "upper-ish" ``[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]``
or "lower-ish" ``[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]``. A compiled kernel cannot call
the ``regex`` module, so we ask the module once, for every code point, and keep
the answers as bit flags in one byte per code point (0x110000 bytes, 1.1 MB):

    flags[ord("a")]  == LETTER | LOWERISH              # 'a' is Ll
    flags[ord("A")]  == LETTER | UPPERISH              # 'A' is Lu
    flags[ord("7")]  == NUMBER
    flags[0x3000]    == SPACE                          # ideographic space
    flags[0x0301]    == UPPERISH | LOWERISH            # combining acute: \\p{M}, not a letter
    flags[ord("!")]  == 0                              # "other": [^\\s\\p{L}\\p{N}]

The table is built from the ``regex`` module itself (not from ``unicodedata``),
so the scanner and the reference ``regex.findall`` agree by construction, for
the Unicode version that ``regex`` ships. It is built lazily on first use
(about 0.1 s: one ``regex.finditer`` per class over a string of all code points)
and kept for the life of the process; no import-time work.

The kernels read text as UTF-8 bytes and decode one code point at a time
(``decode_utf8``: 1 to 4 bytes, the lead byte says how many), then look its
class up: ``run_of_group`` and ``run_of_bit`` find where a run of letters (or
digits, or spaces, or "other") ends, the building block of every branch of the
split patterns.

Case-insensitive contractions (``'(?i:s|t|...)``) need one more answer: which
code points match an ASCII letter case-insensitively. That is the ASCII pair
plus, in the ``regex`` module, U+017F LATIN SMALL LETTER LONG S for "s" (Unicode
simple case folding); ``casefold_letters()`` finds them the same way.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

LETTER = 1  # \p{L}
NUMBER = 2  # \p{N}
SPACE = 4  # \s
UPPERISH = 8  # [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
LOWERISH = 16  # [\p{Ll}\p{Lm}\p{Lo}\p{M}]

N_CODE_POINTS = 0x110000
_INVALID = 0xFFFD  # stands in for a malformed byte (class "other"); never seen in str.encode() output
_kernel_helper = numba.njit(cache=True)
CONTRACTION_LETTERS = "sdmtlver"  # the letters after the apostrophe in 's 'd 'm 't 'll 've 're


def _all_code_points() -> str:
    # subtle: the surrogates U+D800..U+DFFF are in the string too (surrogatepass); valid UTF-8
    # never contains them, so their flags are never read, but keeping them makes index == code point.
    return np.arange(N_CODE_POINTS, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")


@functools.lru_cache(maxsize=1)
def char_flags() -> np.ndarray:
    """uint8 (0x110000,): the class bits above for every code point, as the ``regex`` module defines them."""
    import regex

    text = _all_code_points()
    flags = np.zeros(N_CODE_POINTS, dtype=np.uint8)
    for bit, cls in ((LETTER, r"\p{L}"), (NUMBER, r"\p{N}"), (SPACE, r"\s"),
                     (UPPERISH, r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"), (LOWERISH, r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]")):
        # runs of a class are long (684 runs of letters), so finditer over "cls+" is fast
        for m in regex.finditer(cls + "+", text):
            flags[m.start():m.end()] |= bit
    # subtle: the scanners assume letter, number and space are disjoint ("other" is none of them);
    # check it instead of trusting it, in case a future Unicode version changes that.
    basic = flags & (LETTER | NUMBER | SPACE)
    if np.any((basic != 0) & (basic & (basic - 1) != 0)):
        raise RuntimeError("regex module reports a code point in two of \\p{L}, \\p{N}, \\s; "
                           "the Numba pre-tokenizer assumes they are disjoint")
    flags.setflags(write=False)
    return flags


@functools.lru_cache(maxsize=1)
def casefold_letters() -> tuple[np.ndarray, np.ndarray]:
    """Non-ASCII code points that match a contraction letter case-insensitively in ``regex``.

    Returns (code_points int32 (k,), letters uint8 (k,)), e.g. ([0x17F], [ord("s")]).
    ASCII is handled in the kernel by ``c | 0x20``; this lists only the rest.
    """
    import regex

    text = _all_code_points()
    cps, letters = [], []
    for letter in CONTRACTION_LETTERS:
        for m in regex.finditer(f"(?i:{letter})", text):
            if m.start() >= 128:
                cps.append(m.start())
                letters.append(ord(letter))
    return np.array(cps, dtype=np.int32), np.array(letters, dtype=np.uint8)


@_kernel_helper
def decode_utf8(data, i, n):
    """(code point, byte length) of the UTF-8 character starting at data[i] (n = end of the data).

    decode_utf8(b"\\xc3\\xa9!", 0, 3) -> (0xE9, 2)    # "é": 110_00011 10_101001 -> 00011_101001
    """
    b0 = np.int64(data[i])
    if b0 < 0x80:
        return b0, 1
    if b0 < 0xC0:  # a stray continuation byte
        return _INVALID, 1
    if b0 < 0xE0:
        if i + 1 >= n:
            return _INVALID, 1
        return ((b0 & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), 2
    if b0 < 0xF0:
        if i + 2 >= n:
            return _INVALID, 1
        return ((b0 & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6) | (np.int64(data[i + 2]) & 0x3F), 3
    if i + 3 >= n:
        return _INVALID, 1
    c = (((b0 & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12)
         | ((np.int64(data[i + 2]) & 0x3F) << 6) | (np.int64(data[i + 3]) & 0x3F))
    # subtle: flags has 0x110000 entries and Numba does not check bounds; clamp bad 4-byte forms
    return (c if c < 0x110000 else _INVALID), 4


@_kernel_helper
def run_of_group(data, i, n, flags, group):
    """Byte offset after the longest run, from i, of characters whose (flags & 7) == group."""
    while i < n:
        b = data[i]
        if b < 0x80:  # ASCII: no decoding
            if (flags[b] & 7) != group:
                break
            i += 1
        else:
            c, w = decode_utf8(data, i, n)
            if (flags[c] & 7) != group:
                break
            i += w
    return i


@_kernel_helper
def run_of_bit(data, i, n, flags, bit):
    """Byte offset after the longest run, from i, of characters that have `bit` set."""
    while i < n:
        c, w = decode_utf8(data, i, n)
        if (flags[c] & bit) == 0:
            break
        i += w
    return i


@_kernel_helper
def letter_of(c, ci, ci_cps, ci_letters):
    """c itself if ASCII, folded to lowercase when ci;
    a non-ASCII c that ci-matches a contraction letter -> that letter; else 0."""
    if c < 128:
        if ci and 65 <= c <= 90:
            return c | 0x20
        return c
    if ci:
        for k in range(ci_cps.shape[0]):
            if ci_cps[k] == c:
                return np.int64(ci_letters[k])
    return 0
