"""Pre-tokenization: cutting text into the pieces that BPE encodes one by one.

The reference is one line: ``regex.findall(pattern, text)`` (patterns.py has the
patterns and what they mean). It is also the slowest part of encoding: the
``regex`` module splits tinyshakespeare at about 10 MB/s, slower than tiktoken
encodes it. So for the three known patterns we write the regex out by hand as a
scanner over the UTF-8 bytes, compiled with Numba: decode a code point, look its
class up in a table (unicode_tables.py), and follow the pattern's alternation
branch by branch, the way the regex engine would. For GPT-2's pattern

    '(?:[sdmt]|ll|ve|re) | ' ?\\p{L}++ | ' ?\\p{N}++ | ' ?[^\\s\\p{L}\\p{N}]++ | \\s++$ | \\s+(?!\\S) | \\s

that is: an apostrophe followed by s/d/m/t/ll/ve/re is a piece; else a space
followed by a letter, digit or "other" starts a run of that class; else a run of
one class; a run of whitespace is taken whole at the end of the text, else all
but its last character (which goes with the next word: "  hi" -> " ", " hi"),
else (a single whitespace character) alone. Worked example::

    split_reference("Hello world's  123!!", "gpt2")
    -> ['Hello', ' world', "'s", ' ', ' 123', '!!']
    piece_bounds("Hello world's  123!!".encode(), "gpt2")
    -> array([ 0,  5, 11, 13, 14, 18, 20])          # byte offsets, n_pieces + 1

The scanners are checked piece for piece against ``regex.findall`` (tests/
test_pretokenize.py); a custom regex always goes through the ``regex`` module.

This file is the API and the glue (choosing a scanner, the regex fallback); the
Numba scanners themselves, one per pattern, are in scanners.py.
"""

from __future__ import annotations

import numpy as np

from tinyllm.tokenizer.patterns import pattern_name, resolve_pattern
from tinyllm.tokenizer.scanners import _SCANNERS
from tinyllm.tokenizer.unicode_tables import casefold_letters, char_flags


def split_reference(text: str, pattern: str | None) -> list[str]:
    """The pieces of `text` under `pattern` (a name, a regex, or None for no split): ``regex.findall``.

    split_reference("you're 2x", "gpt2") -> ['you', "'re", ' 2', 'x'];  split_reference("a b", None) -> ['a b']
    """
    regex_str = resolve_pattern(pattern)
    if regex_str is None:
        return [text] if text else []
    import regex

    return regex.findall(regex_str, text)


def has_fast_scanner(pattern: str | None) -> bool:
    """True when piece_bounds splits with a Numba scanner (gpt2, gpt4, o200k, None), not the regex module."""
    regex_str = resolve_pattern(pattern)
    return regex_str is None or pattern_name(regex_str) in _SCANNERS


def piece_bounds(data: bytes, pattern: str | None) -> np.ndarray:
    """Byte offsets (n_pieces + 1,) int64 of the pieces of UTF-8 `data`: piece k is data[b[k]:b[k+1]].

    The pieces equal ``split_reference(data.decode(), pattern)``, encoded. A custom regex
    that skips text between matches has no such bounds: use piece_spans for it.
    """
    buf = _as_bytes(data)
    _check_utf8(buf)
    regex_str = resolve_pattern(pattern)
    bounds = _fast_bounds(buf, regex_str)
    if bounds is not None:
        return bounds
    starts, ends = _regex_spans(buf, regex_str)
    n = buf.shape[0]
    covered = (starts.size == 0 and n == 0) or (
        starts.size > 0 and starts[0] == 0 and ends[-1] == n and np.array_equal(starts[1:], ends[:-1]))
    if not covered:
        raise ValueError(f"pattern {regex_str!r} leaves text between its matches (tiktoken drops that text); "
                         "use piece_spans(data, pattern), which returns (starts, ends)")
    return np.append(starts, np.int64(n))


def piece_spans(data: bytes, pattern: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) int64 byte offsets of the pieces, for any pattern (gaps between matches allowed).

    Empty matches are dropped (an empty piece has no tokens).
    """
    buf = _as_bytes(data)
    _check_utf8(buf)
    return _spans(buf, resolve_pattern(pattern))


def _spans(buf: np.ndarray, regex_str: str | None) -> tuple[np.ndarray, np.ndarray]:
    """piece_spans on a uint8 array already known to be valid UTF-8 (the encoder's entry point)."""
    bounds = _fast_bounds(buf, regex_str)
    if bounds is not None:
        return bounds[:-1], bounds[1:]
    return _regex_spans(buf, regex_str)


def _texts_spans(buf: np.ndarray, text_end: np.ndarray, regex_str: str | None, scan) -> tuple[np.ndarray, ...]:
    """(starts, ends, pieces_end) of the pieces of the texts buf[text_end[k-1]:text_end[k]] (valid UTF-8),
    each text split alone (no piece spans two); pieces_end[k] = the number of pieces up to the end of text k.
    scan is _fast_scanner(regex_str): all texts in one call; None: the regex module, text by text."""
    if scan is not None:
        bounds, pieces_end = scan(buf, text_end)
        return bounds[:-1], bounds[1:], pieces_end
    begin = np.concatenate([[0], text_end[:-1]]).astype(np.int64)  # (n_texts,)
    spans = [_regex_spans(buf[a:b], regex_str) for a, b in zip(begin.tolist(), text_end.tolist())]
    starts = np.concatenate([s + a for (s, _), a in zip(spans, begin)] + [np.zeros(0, np.int64)])
    ends = np.concatenate([e + a for (_, e), a in zip(spans, begin)] + [np.zeros(0, np.int64)])
    pieces_end = np.cumsum(np.fromiter((len(s) for s, _ in spans), dtype=np.int64, count=len(spans)))
    return starts, ends, pieces_end


def _as_bytes(data) -> np.ndarray:
    if isinstance(data, str):
        raise TypeError("piece_bounds expects UTF-8 bytes; pass text.encode('utf-8')")
    return (np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray)
            else data.astype(np.uint8, copy=False))


def _check_utf8(buf: np.ndarray) -> None:
    raw = buf.tobytes()
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"data is not valid UTF-8 ({e}); encode text with text.encode('utf-8')") from None


def _fast_bounds(buf: np.ndarray, regex_str: str | None) -> np.ndarray | None:
    scan = _fast_scanner(regex_str)
    return None if scan is None else scan(buf, np.array([buf.shape[0]], np.int64))[0]


def _fast_scanner(regex_str: str | None):
    """For a pattern with a Numba scanner (or None), the function (uint8 array of texts one after the
    other, text_end (n_texts,) byte offsets) -> (bounds, pieces_end) (see scanners._scan_texts_gpt2); else None."""
    if regex_str is None:
        def whole(buf, text_end):
            ends = np.unique(text_end)  # an empty text has no piece
            return (np.concatenate([[0], ends[ends > 0]]).astype(np.int64),
                    np.searchsorted(ends[ends > 0], text_end, "right"))
        return whole
    scan_texts = _SCANNERS.get(pattern_name(regex_str))
    if scan_texts is None:
        return None
    flags, (ci_cps, ci_letters) = char_flags(), casefold_letters()
    return lambda buf, text_end: scan_texts(buf, text_end, flags, ci_cps, ci_letters)


def _regex_spans(buf: np.ndarray, regex_str: str) -> tuple[np.ndarray, np.ndarray]:
    """The regex module's matches as byte offsets: char index -> byte offset via the UTF-8 lead bytes."""
    import regex

    text = buf.tobytes().decode("utf-8")
    spans = np.array([m.span() for m in regex.finditer(regex_str, text) if m.end() > m.start()],
                     dtype=np.int64).reshape(-1, 2)  # (n_pieces, 2) in characters
    char_start = np.append(np.flatnonzero((buf & 0xC0) != 0x80), buf.shape[0])  # (n_chars + 1,) byte offsets
    return char_start[spans[:, 0]], char_start[spans[:, 1]]

