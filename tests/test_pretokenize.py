"""The Numba pre-tokenizer scanners against the regex reference, piece for piece.

The scanners (tinyllm/tokenizer/scanners.py, driven by pretokenize.py) re-implement three regexes by
hand; any difference from ``regex.finditer`` is a bug. The texts lean on the
corners: contractions in both cases, letters that are upper/lower/titlecase/
modifier/other, combining marks, digits of other scripts, every kind of
whitespace the regex module knows (and a few it does not: U+001C..U+001F),
CRLF, emoji sequences, CJK.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import regex
from hypothesis import given
from shared_data import data_file
from strategies import UNICODE_FRAGMENTS as FRAGMENTS
from strategies import unicode_texts

from tinyllm.tokenizer.patterns import PATTERNS
from tinyllm.tokenizer.pretokenize import has_fast_scanner, piece_bounds, piece_spans, split_reference
from tinyllm.tokenizer.unicode_tables import LETTER, LOWERISH, NUMBER, SPACE, UPPERISH, casefold_letters, char_flags


def reference_bounds(text: str, pattern: str) -> np.ndarray:
    """Byte offsets of regex.finditer's matches, computed independently of the code under test."""
    regex_str = PATTERNS.get(pattern, pattern)
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (n_chars,) code points
    utf8_len = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    byte_at = np.concatenate([[0], np.cumsum(utf8_len)]).astype(np.int64)  # (n_chars + 1,)
    ends = [m.end() for m in regex.finditer(regex_str, text)]
    return byte_at[np.array([0] + ends, dtype=np.int64)]


def assert_same_pieces(text: str, pattern: str) -> None:
    data = text.encode("utf-8")
    got = piece_bounds(data, pattern)
    want = reference_bounds(text, pattern)
    if not np.array_equal(got, want):
        got_pieces = [data[got[k]:got[k + 1]].decode("utf-8", "replace") for k in range(len(got) - 1)]
        ref_pieces = split_reference(text, pattern)
        k = next((k for k, (a, b) in enumerate(zip(got_pieces, ref_pieces)) if a != b),
                 min(len(got_pieces), len(ref_pieces)))
        raise AssertionError(f"pattern {pattern}: piece {k} differs for {text!r}: scanner "
                             f"{got_pieces[max(k - 2, 0):k + 3]} vs regex {ref_pieces[max(k - 2, 0):k + 3]}")


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "o200k"])
@given(text=unicode_texts())
def test_scanner_equals_regex(pattern, text):
    assert_same_pieces(text, pattern)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "o200k"])
@pytest.mark.parametrize("text", FRAGMENTS + [
    "", "Hello world's  123!!", "a  \n", "x \n\n  ", "\n\n x", "HELLO'S hello'll 'LL", "ſ 'ſt", "!!\u0301abc",
    " !!\n\n/\n", "(hello) \"quoted\"", "1234567890 12", "\r\n\r\n  hi", "e\u0301\u0301E\u0301", "\u0301\u0301 x",
])
def test_scanner_corner_cases(pattern, text):
    assert_same_pieces(text, pattern)


@functools.lru_cache(maxsize=1)
def _all_code_points_text() -> str:
    cps = np.concatenate([np.arange(0xD800), np.arange(0xE000, 0x110000)]).astype(np.uint32)  # no surrogates
    third = len(cps) // 3
    with_context = np.stack([np.full(third, ord("a")), cps[:third], np.full(third, ord(" "))], axis=1)  # "a?" "
    with_digit = np.stack([cps[third:2 * third], np.full(third, ord("1"))], axis=1)  # "?1"
    text = np.concatenate([with_context.ravel(), with_digit.ravel(), cps[2 * third:]]).astype("<u4")
    return text.tobytes().decode("utf-32-le")


@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "o200k"])
def test_every_code_point(pattern):
    """Every non-surrogate code point once (after a letter, before a digit, or among its neighbours):
    exercises the UTF-8 decoder on every 1-4 byte form and every entry of the class table."""
    assert_same_pieces(_all_code_points_text(), pattern)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "o200k"])
def test_tinyshakespeare(pattern):
    assert_same_pieces(data_file("tinyshakespeare.txt").read_text(encoding="utf-8"), pattern)


def test_worked_example():
    text = "Hello world's  123!!"
    assert split_reference(text, "gpt2") == ["Hello", " world", "'s", " ", " 123", "!!"]
    assert piece_bounds(text.encode(), "gpt2").tolist() == [0, 5, 11, 13, 14, 18, 20]


def test_no_pattern_and_empty_text():
    assert split_reference("a b", None) == ["a b"] and split_reference("", None) == []
    assert piece_bounds(b"a b", None).tolist() == [0, 3] and piece_bounds(b"", None).tolist() == [0]
    for pattern in ["gpt2", "gpt4", "o200k", r"\w+|\W"]:
        assert piece_bounds(b"", pattern).tolist() == [0]
        assert split_reference("", pattern) == []


def test_custom_regex_falls_back_to_the_regex_module():
    pattern = r"\w+|\W"
    assert not has_fast_scanner(pattern) and has_fast_scanner("gpt2") and has_fast_scanner(None)
    for text in ["héllo wörld, 日本!", "a\r\nb", ""]:
        assert_same_pieces(text, pattern)


def test_regex_with_gaps_needs_piece_spans():
    data = "héllo, wörld!".encode()
    with pytest.raises(ValueError, match="piece_spans"):
        piece_bounds(data, r"\w+")
    starts, ends = piece_spans(data, r"\w+")
    assert [data[a:b].decode() for a, b in zip(starts, ends)] == ["héllo", "wörld"]
    starts, ends = piece_spans(data, "gpt2")
    assert [data[a:b].decode() for a, b in zip(starts, ends)] == split_reference(data.decode(), "gpt2")


def test_bad_input_is_refused_with_a_clear_error():
    with pytest.raises(TypeError, match="encode"):
        piece_bounds("text", "gpt2")
    with pytest.raises(ValueError, match="UTF-8"):
        piece_bounds(b"ab\xff", "gpt2")
    with pytest.raises(ValueError, match="neither a known name"):
        piece_bounds(b"ab", "gpt5(")


def test_char_flags_and_casefold():
    f = char_flags()
    assert f.shape == (0x110000,) and f.dtype == np.uint8
    assert f[ord("a")] == LETTER | LOWERISH and f[ord("A")] == LETTER | UPPERISH and f[ord("7")] == NUMBER
    assert f[0x3000] == SPACE and f[0x0301] == UPPERISH | LOWERISH and f[ord("!")] == 0
    assert f[0x1C] == 0  # not \s in the regex module (str.isspace() says it is)
    cps, letters = casefold_letters()
    assert (0x17F, ord("s")) in set(zip(cps.tolist(), letters.tolist()))
