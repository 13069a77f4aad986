"""Parity with tiktoken: BPETokenizer.encode == tiktoken's encode, to the last id.

Two vocabularies: GPT-2's real ranks (r50k_base, built the way tiktoken builds it:
its own rank-file loader, its own r50k pattern string) and vocabularies tinyllm
trained (gpt2, gpt4, o200k patterns and no split), handed to tiktoken with
to_tiktoken(). Text comes from a composite Hypothesis strategy (letters of many
scripts, digits of several kinds, punctuation, whitespace runs, CRLF, emoji with
ZWJ and skin tones, CJK, combining marks, contractions, special-token strings),
plus the whole of tinyshakespeare. decode(encode(s)) == s for every str without
lone surrogates.

subtle: the `regex` module (our reference split and the source of the Numba
scanner's class table) and tiktoken's Rust regex carry different Unicode versions.
The arbitrary-character part of the strategy draws only characters assigned in
Unicode 14.0 (Python 3.11's unicodedata, which Hypothesis uses to skip category
Cn), older than both, so a code point assigned in only one of them never shows up.
"""

from __future__ import annotations

import os

import pytest
import tiktoken
from hypothesis import given
from hypothesis import strategies as st
from shared_data import data_file as _data_file

from tinyllm.tokenizer import BPETokenizer


def _chars(lo: int, hi: int) -> str:
    return "".join(chr(c) for c in range(lo, hi + 1))


SCRIPTS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "éèàüöñçßÆØœÉÀŁżđ",
    _chars(0x391, 0x3C9),  # Greek
    _chars(0x410, 0x44F),  # Cyrillic
    _chars(0x5D0, 0x5EA),  # Hebrew
    _chars(0x621, 0x64A),  # Arabic
    _chars(0x905, 0x939) + _chars(0x93E, 0x94D),  # Devanagari letters and vowel signs (marks)
    _chars(0xE01, 0xE30),  # Thai
    _chars(0x3041, 0x3096) + _chars(0x30A1, 0x30FA),  # Hiragana, Katakana
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年東京語",  # CJK
    "가나다라마바사아자차카타파하한국어",  # Hangul
    "ǅǈᾈ",  # titlecase letters (o200k's upper class)
]
DIGITS = "0123456789" + "٠١٢٣٤٥٦٧٨٩" + "०१२३" + "０１２３" + "²³¹½¼Ⅳ"
PUNCT = ".,;:!?'\"()[]{}-–—…«»¿¡/\\@#$%^&*_+=<>|~`§¶•’“”"
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u2009", "\u3000", "\x0b", "\x0c", "\u2028",
          " \n "]
EMOJI = ["😀", "🎉", "👍🏽", "❤️", "👨‍👩‍👧", "🇫🇷", "✓", "☃"]
MARKS = "\u0301\u0308\u0327\u0303\u20dd\u0951"
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re"]
SPECIAL_STRINGS = ["<|endoftext|>", "<|pad|>"]

word = st.sampled_from(SCRIPTS).flatmap(lambda s: st.text(st.sampled_from(s), min_size=1, max_size=8))
atoms = st.one_of(
    word,
    word.flatmap(lambda w: st.sampled_from(MARKS).map(lambda m: w + m)),  # combining marks after letters
    st.text(st.sampled_from(DIGITS), min_size=1, max_size=6),
    st.text(st.sampled_from(PUNCT), min_size=1, max_size=3),
    st.sampled_from(SPACES),
    st.sampled_from(EMOJI),
    st.sampled_from(CONTRACTIONS),
    st.sampled_from(MARKS),  # a mark with nothing to combine with
    # anything assigned in Unicode 14
    st.text(st.characters(blacklist_categories=("Cs", "Cn")), min_size=1, max_size=4),
)
texts = st.lists(atoms, max_size=40).map("".join)
texts_with_specials = st.lists(st.one_of(atoms, st.sampled_from(SPECIAL_STRINGS)), max_size=30).map("".join)


def _training_text() -> str:
    """Shakespeare plus every script above, so that the learned vocabulary has multi-byte tokens."""
    mixed = " ".join(s[i : i + 5] for s in SCRIPTS for i in range(0, len(s), 3)) + " " + " ".join(EMOJI) + DIGITS
    return _data_file("tinyshakespeare.txt").read_text(encoding="utf-8")[:40_000] + (mixed + "\n") * 6


@pytest.fixture(scope="module")
def gpt2_pair():
    """(tinyllm's GPT-2, tiktoken's r50k_base from the same file), the latter built by tiktoken's own code."""
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext.openai_public import r50k_pat_str

    path = _data_file("gpt2.tiktoken")
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the local file, cache nothing
    try:
        ranks = load_tiktoken_bpe(str(path),
                                  expected_hash="306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930")
    finally:
        if old is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old
    enc = tiktoken.Encoding("r50k_base", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)
    return BPETokenizer.gpt2(path), enc


@pytest.fixture(scope="module")
def trained():
    """pattern -> (a tokenizer tinyllm trained with it, tiktoken.Encoding of the same ranks)."""
    text = _training_text()
    out = {}
    for pattern in ["gpt2", "gpt4", "o200k", None]:
        tok = BPETokenizer.train(text, 1200 if pattern is not None else 600, pattern=pattern,
                                 special_tokens=SPECIAL_STRINGS, progress=False)
        out[pattern] = (tok, tok.to_tiktoken(f"trained-{pattern}"))
    return out


def test_gpt2_is_r50k_base(gpt2_pair):
    tok, enc = gpt2_pair
    assert tok.ranks == enc._mergeable_ranks and tok.vocab_size == enc.n_vocab == 50257
    assert tok.encode("Hello world") == enc.encode("Hello world") == [15496, 995]


@given(text=texts)
def test_gpt2_parity(gpt2_pair, text):
    tok, enc = gpt2_pair
    ids = tok.encode(text)
    assert ids == enc.encode(text)
    assert tok.decode(ids) == text


@given(text=texts_with_specials)
def test_gpt2_parity_special_tokens(gpt2_pair, text):
    tok, enc = gpt2_pair
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert tok.encode(text, disallowed_special=()) == enc.encode(text, disallowed_special=())
    assert tok.decode(tok.encode(text, allowed_special="all")) == text


@given(text=texts, pattern=st.sampled_from(["gpt2", "gpt4", "o200k", None]))
def test_trained_parity(trained, text, pattern):
    tok, enc = trained[pattern]
    ids = tok.encode(text)
    assert ids == enc.encode(text)
    assert tok.decode(ids) == text


@given(text=texts_with_specials, pattern=st.sampled_from(["gpt2", "o200k"]))
def test_trained_parity_special_tokens(trained, text, pattern):
    tok, enc = trained[pattern]
    for kw in [dict(allowed_special="all"), dict(allowed_special={"<|pad|>"}, disallowed_special=()),
               dict(disallowed_special=())]:
        assert tok.encode(text, **kw) == enc.encode(text, **kw)


@given(text=texts, cut=st.integers(0, 40), surrogate=st.integers(0xD800, 0xDFFF))
def test_lone_surrogates_parity(gpt2_pair, text, cut, surrogate):
    """A lone surrogate is encoded as U+FFFD, as tiktoken does."""
    tok, enc = gpt2_pair
    bad = text[:cut] + chr(surrogate) + text[cut:]
    assert tok.encode(bad) == enc.encode(bad)
    assert tok.decode(tok.encode(bad)) == bad.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "o200k"])
def test_tinyshakespeare_parity_trained(trained, pattern):
    text = _data_file("tinyshakespeare.txt").read_text(encoding="utf-8")
    tok, enc = trained[pattern]
    ids = tok.encode(text)
    assert ids == enc.encode(text)
    assert tok.decode(ids) == text


def test_tinyshakespeare_parity_gpt2(gpt2_pair):
    text = _data_file("tinyshakespeare.txt").read_text(encoding="utf-8")
    tok, enc = gpt2_pair
    ids = tok.encode(text)
    assert ids == enc.encode(text)
    assert tok.decode(ids) == text
