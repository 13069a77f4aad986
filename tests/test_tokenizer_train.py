"""BPE training: the Numba trainer (train.py) learns exactly the reference's merges (reference.py).

Same merges, in the same order, with the same ids, on: worked examples, texts
over tiny alphabets (many ties and overlapping pairs such as "aaaa"), multi-script
Hypothesis text under each split pattern, a slice of tinyshakespeare, and a start
from a vocabulary where two merges make the same bytes (the duplicate-token rule).
Also run once with NUMBA_DISABLE_JIT=1 (a subprocess test below does a small case).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shared_data import data_file

from tinyllm.tokenizer.patterns import resolve_pattern
from tinyllm.tokenizer.reference import count_pretokens, get_stats, merge, train_reference
from tinyllm.tokenizer.train import count_pretokens_fast, train_bpe, train_fast

BYTES = [bytes([i]) for i in range(256)]


def _text_file(name: str) -> str:
    return data_file(name).read_text(encoding="utf-8")


def test_helpers_worked_examples():
    assert get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert get_stats([1, 2], {(1, 2): 1}, weight=3) == {(1, 2): 4}
    assert merge([1, 2, 3, 1, 2], (1, 2), 256) == [256, 3, 256]
    assert merge([5, 5, 5], (5, 5), 256) == [256, 5]
    assert merge([5, 5, 5, 5], (5, 5), 256) == [256, 256]


@pytest.mark.parametrize("train", [train_reference, train_fast])
def test_worked_example(train):
    merges, vocab = train({b"aaab": 1}, 259)
    assert merges == [(97, 97, 256), (97, 98, 257), (256, 257, 258)]  # tie at 1: (97, 98) < (256, 97)
    assert vocab == BYTES + [b"aa", b"ab", b"aaab"]


@pytest.mark.parametrize("train", [train_reference, train_fast])
def test_counts_weight_the_pairs(train):
    # a pair counts once per occurrence of its word: (b, c) x5 beats (x, y) x4 and (a, b) x3
    merges, _ = train({b"bc": 5, b"ab": 3, b"xy": 4}, 257)
    assert merges == [(98, 99, 256)]


@pytest.mark.parametrize("train", [train_reference, train_fast])
def test_same_bytes_from_two_merges_reuse_the_id(train):
    """(a, bc) makes "abc"; later (ab, c) makes "abc" again: same id, no new token."""
    vocab = BYTES + [b"ab", b"bc"]  # 256 = ab, 257 = bc
    words = {(97, 257): 3, (256, 99): 2, b"xy": 1}  # "a|bc" x3, "ab|c" x2
    merges, out = train(words, 260, vocab)
    assert merges == [(97, 257, 258), (256, 99, 258), (120, 121, 259)]
    assert out == vocab + [b"abc", b"xy"]


@pytest.mark.parametrize("train", [train_reference, train_fast])
def test_stops_when_no_pair_is_left(train):
    merges, vocab = train({b"abc": 2, b"d": 7}, 1000)
    assert merges == [(97, 98, 256), (256, 99, 257)]
    assert len(vocab) == 258


@pytest.mark.parametrize("train", [train_reference, train_fast])
def test_bad_arguments(train):
    with pytest.raises(ValueError, match="at least 256"):
        train({b"ab": 1}, 255)
    with pytest.raises(ValueError, match="outside the starting vocabulary"):
        train({(1, 300): 1}, 300)
    with pytest.raises(ValueError, match="same bytes twice"):
        train({b"ab": 1}, 300, BYTES + [b"a"])


def test_text_arguments():
    with pytest.raises(TypeError, match="got bytes"):
        count_pretokens(b"abc", None)
    with pytest.raises(TypeError, match="#1 is int"):
        count_pretokens(["abc", 3], None)
    with pytest.raises(TypeError, match="got bytes"):
        count_pretokens_fast(b"abc", None)


def _assert_same_training(text_or_texts, n_tokens, pattern, specials=()):
    regex_str = resolve_pattern(pattern)
    words = count_pretokens(text_or_texts, regex_str, specials)
    assert count_pretokens_fast(text_or_texts, regex_str, specials) == words
    want = train_reference(words, n_tokens)
    assert train_fast(words, n_tokens) == want
    return want


tiny_alphabet_texts = st.builds(
    lambda parts: "".join(parts),
    st.lists(st.sampled_from(["a", "b", "aa", "ab", " ", " a", "\n", "é", "a1", "11"]), max_size=120))

words_strategy = st.dictionaries(
    st.binary(min_size=1, max_size=12).map(lambda b: bytes(x % 4 + 97 for x in b)),  # alphabet a..d: many ties
    st.integers(1, 9), max_size=20)


@given(words=words_strategy, extra=st.integers(0, 60))
def test_fast_equals_reference_on_word_counts(words, extra):
    assert train_fast(words, 256 + extra) == train_reference(words, 256 + extra)


@given(text=tiny_alphabet_texts, pattern=st.sampled_from(["gpt2", "gpt4", "o200k", None]), extra=st.integers(0, 40))
def test_fast_equals_reference_on_tiny_alphabets(text, pattern, extra):
    _assert_same_training(text, 256 + extra, pattern)


multiscript_texts = st.text(
    st.characters(blacklist_categories=("Cs",), max_codepoint=0x1FFFF) | st.sampled_from(list("  \n\r\tthe a'sll'")),
    max_size=200)


@given(texts=st.lists(multiscript_texts, min_size=1, max_size=3),
       pattern=st.sampled_from(["gpt2", "gpt4", "o200k", None]))
def test_fast_equals_reference_on_many_scripts(texts, pattern):
    _assert_same_training(texts, 256 + 80, pattern, specials=["<|eot|>"])


def test_custom_regex_and_special_tokens():
    text = "one<|eot|>two  three<|eot|>one two<|pad|>three" * 20
    merges, vocab = _assert_same_training(text, 300, r"\w+|\s+|[^\w\s]+", ["<|eot|>", "<|pad|>"])
    assert not any(b"<|" in t for t in vocab)  # special tokens are cut out, never learned


def test_tinyshakespeare_slice():
    text = _text_file("tinyshakespeare.txt")[:60_000]
    merges, vocab = _assert_same_training(text, 700, "gpt2")
    assert len(vocab) == 700 and len(merges) >= 700 - 256
    assert vocab[256:258] == [b" t", b"he"]  # the first merges of English text


@pytest.mark.slow
def test_tinyshakespeare_4096():
    text = _text_file("tinyshakespeare.txt")
    merges, vocab = train_bpe(text, 4096, resolve_pattern("gpt2"))
    assert (merges, vocab) == train_reference(count_pretokens(text, resolve_pattern("gpt2")), 4096)


def test_progress_bar(capsys):
    words = {b"abcabcabd": 3, b"xyzxy": 2}
    assert train_fast(words, 262, progress=True) == train_reference(words, 262)
    assert "BPE merges" in capsys.readouterr().err


def test_without_jit():
    """The kernels also run as plain Python (NUMBA_DISABLE_JIT=1), with the same merges."""
    code = (
        "from tinyllm.tokenizer.reference import train_reference, count_pretokens\n"
        "from tinyllm.tokenizer.train import train_fast, count_pretokens_fast\n"
        "t = 'the cat sat on the mat; aaaa bbbb abab the end ' * 5 + 'Ünïcode ✓ 東京'\n"
        "w = count_pretokens(t, r\"\\w+|\\s+|[^\\w\\s]+\")\n"
        "assert count_pretokens_fast(t, r\"\\w+|\\s+|[^\\w\\s]+\") == w\n"
        "assert train_fast(w, 300) == train_reference(w, 300)\n"
        "v = [bytes([i]) for i in range(256)] + [b'ab', b'bc']\n"
        "assert train_fast({(97, 257): 3, (256, 99): 2}, 259, v) == "
        "train_reference({(97, 257): 3, (256, 99): 2}, 259, v)\n"
        "print('ok')\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
