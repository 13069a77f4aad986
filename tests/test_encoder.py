"""The BPE encoder: Numba == plain-Python reference == tiktoken, to the last id.

GPT-2's real ranks ($TINYLLM_DATA_DIR/gpt2.tiktoken) with the "gpt2" pattern
are the main oracle; small random vocabularies (any rank order, tokens that BPE
cannot reach) test the rules themselves: lowest rank first, leftmost on a tie,
a piece that is a token is returned whole. Every Numba path is run: the
tiktoken-style scan, the heap for long pieces (heap_from=2 sends every piece
there), the piece cache on and off and with a single slot (every lookup collides).
"""

from __future__ import annotations

import base64
import functools

import numpy as np
import pytest
import tiktoken
from hypothesis import given
from hypothesis import strategies as st
from shared_data import data_file
from strategies import unicode_texts

from tinyllm.tokenizer.encoder import Encoder, bpe_reference, encode_ordinary_reference
from tinyllm.tokenizer.patterns import resolve_pattern

VARIANTS = {"default": {}, "heap": {"heap_from": 2}, "no_cache": {"cache_size": 0}, "one_slot": {"cache_size": 1}}




@pytest.fixture(scope="module")
def gpt2_ranks():
    lines = data_file("gpt2.tiktoken").read_bytes().splitlines()
    return {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in lines if line)}


@pytest.fixture(scope="module")
def gpt2_tiktoken(gpt2_ranks):
    return tiktoken.Encoding("gpt2-test", pat_str=resolve_pattern("gpt2"), mergeable_ranks=gpt2_ranks,
                             special_tokens={})


@pytest.fixture(scope="module")
def gpt2_encoders(gpt2_ranks):
    return {name: Encoder(gpt2_ranks, "gpt2", **kw) for name, kw in VARIANTS.items()}


@pytest.fixture(scope="module")
def gpt2_encoder_for(gpt2_ranks):
    """pattern -> an Encoder of GPT-2's ranks with that pattern, built once."""
    return functools.lru_cache(maxsize=None)(lambda pattern: Encoder(gpt2_ranks, pattern))


@pytest.fixture(scope="module")
def gpt2_tiktoken_for(gpt2_ranks):
    """pattern -> tiktoken's Encoding of GPT-2's ranks with that pattern, built once."""
    return functools.lru_cache(maxsize=None)(lambda pattern: tiktoken.Encoding(
        f"gpt2-ranks-{pattern}", pat_str=resolve_pattern(pattern), mergeable_ranks=gpt2_ranks, special_tokens={}))


def test_worked_example():
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"ab": 256, b"bc": 257, b"abc": 258})
    assert bpe_reference(b"abcab", ranks) == [258, 256]  # [a,b,c,a,b] -> [ab,c,a,b] -> [ab,c,ab] -> [abc,ab]
    for kw in VARIANTS.values():
        assert Encoder(ranks, None, **kw).encode_ordinary("abcab") == [258, 256]


def test_hello_world(gpt2_encoders):
    assert gpt2_encoders["default"].encode_ordinary("Hello world") == [15496, 995]


@given(text=unicode_texts())
def test_gpt2_ranks_equal_tiktoken(gpt2_ranks, gpt2_tiktoken, gpt2_encoders, text):
    want = gpt2_tiktoken.encode_ordinary(text)
    assert encode_ordinary_reference(text, gpt2_ranks, "gpt2") == want
    for name, enc in gpt2_encoders.items():
        assert enc.encode_ordinary(text) == want, name


@pytest.mark.parametrize("pattern", ["gpt4", "o200k"])
@given(text=unicode_texts())
def test_other_patterns_equal_tiktoken(gpt2_tiktoken_for, gpt2_encoder_for, pattern, text):
    """The gpt4 and o200k scanners with GPT-2's ranks: tiktoken's regex engine (Rust) splits the same way."""
    assert gpt2_encoder_for(pattern).encode_ordinary(text) == gpt2_tiktoken_for(pattern).encode_ordinary(text)


def test_tinyshakespeare_equals_tiktoken(gpt2_tiktoken, gpt2_encoders):
    text = data_file("tinyshakespeare.txt").read_text(encoding="utf-8")
    want = gpt2_tiktoken.encode_ordinary(text)
    for name in ["default", "heap"]:
        assert gpt2_encoders[name].encode_ordinary(text) == want, name


@pytest.mark.slow
def test_tinyshakespeare_reference_equals_tiktoken(gpt2_ranks, gpt2_tiktoken):
    text = data_file("tinyshakespeare.txt").read_text(encoding="utf-8")
    assert encode_ordinary_reference(text, gpt2_ranks, "gpt2") == gpt2_tiktoken.encode_ordinary(text)


@pytest.mark.parametrize("text", ["a" * 3000, " " * 5000, "ab" * 2000, "\n" * 999 + "x", "😀" * 700, "1" * 4000,
                                  "!?" * 1500, "\x00\x01" * 1000, "é" * 600 + "e\u0301" * 600])
def test_long_pieces(gpt2_tiktoken, gpt2_encoders, text):
    want = gpt2_tiktoken.encode_ordinary(text)
    for name, enc in gpt2_encoders.items():
        assert enc.encode_ordinary(text) == want, name


@st.composite
def toy_vocab(draw):
    """A vocabulary over a 3-letter alphabet in any rank order: tokens need not be buildable by BPE."""
    extra = draw(st.lists(st.text("ab ", min_size=2, max_size=6), min_size=1, max_size=25, unique=True))
    tokens = [bytes([b]) for b in range(256)] + [t.encode() for t in extra]
    order = draw(st.permutations(range(len(tokens))))
    return dict(zip(tokens, order))


@given(ranks=toy_vocab(), text=st.text("ab c", max_size=40), pattern=st.sampled_from(["gpt2", None]))
def test_toy_vocabularies_equal_tiktoken(ranks, text, pattern):
    pat_str = resolve_pattern(pattern) if pattern else r"(?s).+"  # tiktoken needs a regex; ".+" = no split
    want = tiktoken.Encoding("toy", pat_str=pat_str, mergeable_ranks=ranks, special_tokens={}).encode_ordinary(text)
    assert encode_ordinary_reference(text, ranks, pattern) == want
    for name, kw in VARIANTS.items():
        assert Encoder(ranks, pattern, **kw).encode_ordinary(text) == want, name


def test_whole_piece_fast_path():
    """b"abc" is a token BPE cannot reach (neither ab nor bc is a token): returned whole, as tiktoken does."""
    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"abc"] = 256
    assert bpe_reference(b"abc", ranks) == [256] and bpe_reference(b"abca", ranks) == [97, 98, 99, 97]
    enc = tiktoken.Encoding("toy", pat_str=resolve_pattern("gpt2"), mergeable_ranks=ranks, special_tokens={})
    for text in ["abc", "abca abc"]:
        assert Encoder(ranks, "gpt2").encode_ordinary(text) == enc.encode_ordinary(text)


@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "x \ud83d \ude00 y", "\ud83d\ude00"])
def test_lone_surrogates_become_replacement_characters(gpt2_ranks, gpt2_tiktoken, gpt2_encoders, text):
    """tiktoken's policy: a lone surrogate is encoded as U+FFFD; a high+low pair written as two
    code points is joined into the character it stands for ("\ud83d\ude00" -> "😀")."""
    want = gpt2_tiktoken.encode_ordinary(text)
    replaced = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert replaced == ("😀" if text == "\ud83d\ude00" else text.replace("\ud83d", "\ufffd").replace(
        "\ude00", "\ufffd").replace("\ud800", "\ufffd").replace("\udfff", "\ufffd"))
    assert gpt2_encoders["default"].encode_ordinary(text) == want == gpt2_encoders["default"].encode_ordinary(replaced)
    assert encode_ordinary_reference(text, gpt2_ranks, "gpt2") == want


def test_array_and_batch(gpt2_tiktoken, gpt2_encoders):
    enc = gpt2_encoders["default"]
    texts = ["Hello world", "", "  spaces  ", "日本語 text", "don't stop"] * 3
    ids = enc.encode_ordinary_array(texts[0])
    assert ids.dtype == np.uint32 and ids.tolist() == gpt2_tiktoken.encode_ordinary(texts[0])
    want = [gpt2_tiktoken.encode_ordinary(t) for t in texts]
    assert enc.encode_ordinary_batch(texts) == want
    assert enc.encode_ordinary_batch(texts, num_threads=2) == want
    assert enc.encode_ordinary("") == [] and enc.encode_ordinary_array("").shape == (0,)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "o200k", None, r"\w+"])
@given(texts=st.lists(unicode_texts(8), max_size=12))
def test_batch_equals_one_by_one(gpt2_ranks, gpt2_encoder_for, pattern, texts):
    """A batch is scanned text by text (no piece spans two texts) and encoded in one kernel call."""
    enc = gpt2_encoder_for(pattern)
    want = [encode_ordinary_reference(t, gpt2_ranks, pattern) for t in texts]
    assert enc.encode_ordinary_batch(texts) == want
    assert enc.encode_ordinary_batch(texts, num_threads=3) == want


def test_custom_regex(gpt2_ranks, gpt2_tiktoken):
    """A pattern without a Numba scanner goes through the regex module; text between matches is dropped,
    as tiktoken does."""
    for pattern in [r"\w+|\W", r"\w+"]:
        enc = Encoder(gpt2_ranks, pattern)
        ref = tiktoken.Encoding("custom", pat_str=pattern, mergeable_ranks=gpt2_ranks, special_tokens={})
        for text in ["hello, world! 123", "a  b\r\nc", ""]:
            assert (enc.encode_ordinary(text) == ref.encode_ordinary(text)
                    == encode_ordinary_reference(text, gpt2_ranks, pattern))


def test_bad_vocabularies_are_refused():
    byte_ranks = {bytes([b]): b for b in range(256)}
    with pytest.raises(ValueError, match="all 256 single bytes"):
        Encoder({k: v for k, v in byte_ranks.items() if k != b"x"}, "gpt2")
    with pytest.raises(ValueError, match="rank 5 is given to two tokens"):
        Encoder({**byte_ranks, b"ab": 5}, "gpt2")
    with pytest.raises(ValueError, match="empty byte string"):
        Encoder({**byte_ranks, b"": 256}, "gpt2")
    with pytest.raises(ValueError, match="all 256 single bytes"):
        bpe_reference(b"xy", {b"x": 0})
    with pytest.raises(TypeError, match="expected str"):
        Encoder(byte_ranks, "gpt2").encode_ordinary(b"bytes")
