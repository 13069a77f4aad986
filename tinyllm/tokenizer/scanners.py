"""The Numba pre-tokenizer scanners: GPT-2's, GPT-4's and GPT-4o's split regexes written out by hand.

Each scanner walks UTF-8 bytes, decodes a code point, looks its class up in a
table (unicode_tables.py) and follows the pattern's alternation branch by
branch, the way the regex engine would; each is checked piece for piece against
``regex.findall`` (tests/test_pretokenize.py). The API that picks a scanner for a
pattern (and falls back to the ``regex`` module for any other) is in
pretokenize.py, whose docstring walks through the GPT-2 pattern with an example::

    piece_bounds("Hello world's  123!!".encode(), "gpt2")
    -> array([ 0,  5, 11, 13, 14, 18, 20])          # byte offsets, n_pieces + 1

``_SCANNERS`` maps a pattern name to its driver kernel
``(data, text_end, flags, ci_cps, ci_letters) -> (bounds, pieces_end)``.

Length: ~320 lines: one hand-written scanner per pattern (GPT-2, GPT-4, GPT-4o), kept
side by side so their differences read as a diff; see the note on the drivers below.
"""

from __future__ import annotations

import numba
import numpy as np

from tinyllm.tokenizer.unicode_tables import (
    LETTER,
    LOWERISH,
    NUMBER,
    SPACE,
    UPPERISH,
    decode_utf8,
    letter_of,
    run_of_bit,
    run_of_group,
)

_kernel = numba.njit(cache=True, nogil=True)
_helper = numba.njit(cache=True)

# class groups: (flags & 7) is exactly one of these, letter/number/space being disjoint
_OTHER, _LETTER, _NUMBER, _SPACE = 0, LETTER, NUMBER, SPACE


# ----------------------------------------------------------------------------------------------
# Numba building blocks shared by the scanners (decoding and class runs are in unicode_tables.py)
# ----------------------------------------------------------------------------------------------

@_helper
def _contraction(data, j, n, ci, ci_cps, ci_letters):
    """End offset of s|d|m|t|ll|ve|re starting at j (just after an apostrophe), or -1."""
    if j >= n:
        return -1
    c1, w1 = decode_utf8(data, j, n)
    l1 = letter_of(c1, ci, ci_cps, ci_letters)
    if l1 == 115 or l1 == 100 or l1 == 109 or l1 == 116:  # s d m t
        return j + w1
    if j + w1 < n and (l1 == 108 or l1 == 118 or l1 == 114):  # l v r
        c2, w2 = decode_utf8(data, j + w1, n)
        l2 = letter_of(c2, ci, ci_cps, ci_letters)
        if (l1 == 108 and l2 == 108) or (l1 != 108 and l2 == 101):  # ll ve re
            return j + w1 + w2
    return -1


@_helper
def _spacerun_of_group(data, i, j, n, flags):
    """A whitespace run from i (first char ends at j):
    (end, start of its last char, end of its last \\r or \\n or -1)."""
    last = i
    crlf_end = j if (data[i] == 10 or data[i] == 13) else -1
    p = j
    while p < n:
        c, w = decode_utf8(data, p, n)
        if (flags[c] & 7) != _SPACE:
            break
        if c == 10 or c == 13:
            crlf_end = p + w
        last = p
        p += w
    return p, last, crlf_end


@_helper
def _digits(data, j, n, flags, most):
    """End of \\p{N}{1,most} whose first digit ends at j."""
    count = 1
    while count < most and j < n:
        c, w = decode_utf8(data, j, n)
        if (flags[c] & 7) != _NUMBER:
            break
        j += w
        count += 1
    return j


@_helper
def _space_then_other(data, i, c, f, j, n, flags):
    """Start of the "other" run of ' ?[^\\s\\p{L}\\p{N}]+' at i, or -1:
    j if c is other, after the next char if c is ' '."""
    if f == _OTHER:
        return j
    if c == 32 and j < n:
        c2, w2 = decode_utf8(data, j, n)
        if (flags[c2] & 7) == _OTHER:
            return j + w2
    return -1


# ----------------------------------------------------------------------------------------------
# The scanners: one per pattern, each the pattern's alternation written out branch by branch.
# Each appends the end of every piece of data[lo:hi] to bounds[nb + 1:] (every character belongs
# to exactly one piece) and returns (bounds, nb), bounds grown when full.
# ----------------------------------------------------------------------------------------------

@_helper
def _push(bounds, nb, end):
    if nb + 1 >= bounds.shape[0]:
        grown = np.empty(2 * bounds.shape[0], np.int64)
        grown[:nb + 1] = bounds[:nb + 1]
        bounds = grown
    bounds[nb + 1] = end
    return bounds, nb + 1


@_helper
def _scan_gpt2(data, lo, hi, flags, ci_cps, ci_letters, bounds, nb):
    """'(?:[sdmt]|ll|ve|re)| ?\\p{L}++| ?\\p{N}++| ?[^\\s\\p{L}\\p{N}]++|\\s++$|\\s+(?!\\S)|\\s"""
    n = hi
    i = lo
    while i < n:
        c, w = decode_utf8(data, i, n)
        f = flags[c] & 7
        j = i + w
        end = -1
        if c == 39:  # '(?:[sdmt]|ll|ve|re), case-sensitive
            end = _contraction(data, j, n, False, ci_cps, ci_letters)
        if end < 0 and c == 32 and j < n:  # ' ?X++' with the space: X is the next char's class
            c2, w2 = decode_utf8(data, j, n)
            g2 = flags[c2] & 7
            if g2 != _SPACE:
                end = run_of_group(data, j + w2, n, flags, g2)
        if end < 0:
            if f != _SPACE:  # 'X++' without the space
                end = run_of_group(data, j, n, flags, f)
            else:
                p, last, _ = _spacerun_of_group(data, i, j, n, flags)
                # \s++$ takes a run that reaches the end; \s+(?!\S) leaves the last char of a longer
                # run to the next piece; \s takes one char.
                end = n if p == n else (last if last > i else j)
        bounds, nb = _push(bounds, nb, end)
        i = end
    return bounds, nb


@_helper
def _scan_gpt4(data, lo, hi, flags, ci_cps, ci_letters, bounds, nb):
    """'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s"""  # noqa: E501
    n = hi
    i = lo
    while i < n:
        c, w = decode_utf8(data, i, n)
        f = flags[c] & 7
        j = i + w
        end = -1
        if c == 39:  # contractions, case-insensitive ('S, 'LL, and 'ſ which folds to s)
            end = _contraction(data, j, n, True, ci_cps, ci_letters)
        if end < 0:
            if f == _LETTER:
                end = run_of_group(data, j, n, flags, _LETTER)
            elif f != _NUMBER and c != 10 and c != 13 and j < n:  # one [^\r\n\p{L}\p{N}] before letters
                c2, w2 = decode_utf8(data, j, n)
                if (flags[c2] & 7) == _LETTER:
                    end = run_of_group(data, j + w2, n, flags, _LETTER)
        if end < 0 and f == _NUMBER:
            end = _digits(data, j, n, flags, 3)
        if end < 0:
            s = _space_then_other(data, i, c, f, j, n, flags)
            if s >= 0:
                end = run_of_group(data, s, n, flags, _OTHER)
                while end < n and (data[end] == 10 or data[end] == 13):
                    end += 1
        if end < 0:  # whitespace
            p, last, crlf_end = _spacerun_of_group(data, i, j, n, flags)
            if p == n:
                end = n  # \s++$
            elif crlf_end >= 0:
                end = crlf_end  # \s*[\r\n]: up to the run's last newline
            else:
                end = last if last > i else j  # \s+(?!\S) | \s
        bounds, nb = _push(bounds, nb, end)
        i = end
    return bounds, nb


@_helper
def _o200k_contraction(data, e, n, ci_cps, ci_letters):
    """e extended by an optional (?i:'s|'t|'re|'ve|'m|'ll|'d)."""
    if e < n and data[e] == 39:
        r = _contraction(data, e + 1, n, True, ci_cps, ci_letters)
        if r >= 0:
            return r
    return e


@_helper
def _o200k_lower_word(data, s, n, flags, ci_cps, ci_letters):
    """[UPPER]*[LOWER]+ from s (then a contraction), backtracking like the regex engine; -1 if none.

    UPPER* is greedy: the regex tries the longest upper-ish run first and gives characters
    back until LOWER+ can start, so LOWER+ starts at the largest k in the run (or just after
    it) whose character is lower-ish.
    """
    p = s
    last_lower = -1
    while p < n:
        c, w = decode_utf8(data, p, n)
        if (flags[c] & UPPERISH) == 0:
            break
        if flags[c] & LOWERISH:
            last_lower = p
        p += w
    k = -1
    if p < n:
        c, w = decode_utf8(data, p, n)
        if flags[c] & LOWERISH:
            k = p
    if k < 0:
        k = last_lower
    if k < 0:
        return -1
    return _o200k_contraction(data, run_of_bit(data, k, n, flags, LOWERISH), n, ci_cps, ci_letters)


@_helper
def _o200k_upper_word(data, s, n, flags, ci_cps, ci_letters):
    """[UPPER]+[LOWER]* from s (then a contraction); -1 if none."""
    p = run_of_bit(data, s, n, flags, UPPERISH)
    if p == s:
        return -1
    return _o200k_contraction(data, run_of_bit(data, p, n, flags, LOWERISH), n, ci_cps, ci_letters)


@_helper
def _scan_o200k(data, lo, hi, flags, ci_cps, ci_letters, bounds, nb):
    """GPT-4o: P?U*L+C? | P?U+L*C? | \\p{N}{1,3} | ' ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*' | \\s*[\\r\\n]+ | \\s+(?!\\S) | \\s+

    P = [^\\r\\n\\p{L}\\p{N}], U = upper-ish, L = lower-ish, C = a contraction (see patterns.py).
    """  # noqa: E501
    n = hi
    i = lo
    while i < n:
        c, w = decode_utf8(data, i, n)
        f = flags[c] & 7
        j = i + w
        # subtle: P? is greedy but not possessive: each word branch is tried with the leading
        # char first and then without it (which matters when that char is a combining mark).
        has_p = (f == _OTHER or f == _SPACE) and c != 10 and c != 13 and j < n
        end = -1
        if has_p:
            end = _o200k_lower_word(data, j, n, flags, ci_cps, ci_letters)
        if end < 0:
            end = _o200k_lower_word(data, i, n, flags, ci_cps, ci_letters)
        if end < 0 and has_p:
            end = _o200k_upper_word(data, j, n, flags, ci_cps, ci_letters)
        if end < 0:
            end = _o200k_upper_word(data, i, n, flags, ci_cps, ci_letters)
        if end < 0 and f == _NUMBER:
            end = _digits(data, j, n, flags, 3)
        if end < 0:
            s = _space_then_other(data, i, c, f, j, n, flags)
            if s >= 0:
                end = run_of_group(data, s, n, flags, _OTHER)
                while end < n and (data[end] == 10 or data[end] == 13 or data[end] == 47):  # [\r\n/]*
                    end += 1
        if end < 0:  # whitespace; no \s++$ branch in this pattern, so the newline rule comes first
            p, last, crlf_end = _spacerun_of_group(data, i, j, n, flags)
            if crlf_end >= 0:
                end = crlf_end  # \s*[\r\n]+
            elif p == n:
                end = n  # \s+(?!\S) at the end
            else:
                end = last if last > i else j  # \s+(?!\S) | \s+
        bounds, nb = _push(bounds, nb, end)
        i = end
    return bounds, nb


# One driver per scanner (not one with a switch), so a program compiles only the scanner it uses.
# subtle: written out three times on purpose. A factory closing over the scanner, or the scanner
# passed as an argument, would also compile one scanner only, but Numba's cache=True does not
# hit across processes for either (tried with Numba 0.68: each new process compiled and cached
# the driver again), so every run would pay the compile.

@_helper
def _new_bounds(data, text_end):
    bounds = np.empty(data.shape[0] // 4 + 16, np.int64)  # grown when the pieces are short
    bounds[0] = 0
    return bounds, np.empty(text_end.shape[0], np.int64)


@_kernel
def _scan_texts_gpt2(data, text_end, flags, ci_cps, ci_letters):
    """Bounds of the pieces of every text data[text_end[k-1]:text_end[k]] (text_end[-1] = 0), as
    one list: the pieces of text k end at text_end[k], where those of text k+1 begin. Returns
    (bounds (n_pieces + 1,), pieces_end (n_texts,): the number of pieces up to the end of each text)."""
    bounds, pieces_end = _new_bounds(data, text_end)
    nb = 0
    for k in range(text_end.shape[0]):
        bounds, nb = _scan_gpt2(data, text_end[k - 1] if k > 0 else 0, text_end[k], flags, ci_cps, ci_letters,
                                bounds, nb)
        pieces_end[k] = nb
    return bounds[:nb + 1], pieces_end


@_kernel
def _scan_texts_gpt4(data, text_end, flags, ci_cps, ci_letters):
    """_scan_texts_gpt2 with the gpt4 scanner."""
    bounds, pieces_end = _new_bounds(data, text_end)
    nb = 0
    for k in range(text_end.shape[0]):
        bounds, nb = _scan_gpt4(data, text_end[k - 1] if k > 0 else 0, text_end[k], flags, ci_cps, ci_letters,
                                bounds, nb)
        pieces_end[k] = nb
    return bounds[:nb + 1], pieces_end


@_kernel
def _scan_texts_o200k(data, text_end, flags, ci_cps, ci_letters):
    """_scan_texts_gpt2 with the o200k scanner."""
    bounds, pieces_end = _new_bounds(data, text_end)
    nb = 0
    for k in range(text_end.shape[0]):
        bounds, nb = _scan_o200k(data, text_end[k - 1] if k > 0 else 0, text_end[k], flags, ci_cps, ci_letters,
                                 bounds, nb)
        pieces_end[k] = nb
    return bounds[:nb + 1], pieces_end


_SCANNERS = {"gpt2": _scan_texts_gpt2, "gpt4": _scan_texts_gpt4, "o200k": _scan_texts_o200k}
