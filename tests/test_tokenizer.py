"""BPETokenizer: training, tiktoken's special-token rules, decoding, lone surrogates, tiktoken interop, errors."""

from __future__ import annotations

import numpy as np
import pytest
from shared_data import data_file

from tinyllm.tokenizer import GPT2_PATTERN, WHOLE_TEXT_PATTERN, BPETokenizer

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\r\n"
        "You are all resolved rather to die than to famish?   1234 5678 don't we'll I'M  \t\n") * 8
SPECIALS = ["<|endoftext|>", "<|pad|>"]


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer.train(TEXT, 330, special_tokens=SPECIALS, progress=False)


@pytest.fixture(scope="module")
def tik(tok):
    return tok.to_tiktoken()


def test_train_vocab_layout(tok):
    assert tok.vocab_size == 330 and len(tok.ranks) == 328
    assert tok.special_tokens == {"<|endoftext|>": 328, "<|pad|>": 329}  # after the ranks, in the given order
    assert [tok.token_bytes(i) for i in range(3)] == [b"\x00", b"\x01", b"\x02"]
    for left, right, new in tok.merges:  # every merged token is its two parts joined
        assert tok.token_bytes(new) == tok.token_bytes(left) + tok.token_bytes(right)
    assert tok.token_bytes(328) == b"<|endoftext|>"
    assert tok.pattern == GPT2_PATTERN
    assert "vocab_size=330" in repr(tok)


def test_train_from_an_iterable_of_texts():
    a = BPETokenizer.train(["hello hello", "world world world"], 260, progress=False)
    b = BPETokenizer.train(iter(["hello hello", "world world world"]), 260, progress=False)
    assert a.ranks == b.ranks
    crosses = [lambda ranks: any(b" " in t[1:] for t in ranks)]  # a space after a token's first byte
    assert crosses[0](BPETokenizer.train("ab ab ab ab", 261, pattern=None, progress=False).ranks)  # no pre-split
    assert not crosses[0](BPETokenizer.train("ab ab ab ab", 258, progress=False).ranks)  # gpt2 keeps " ab" whole


def test_train_does_not_learn_special_tokens():
    tok = BPETokenizer.train("ab<|eot|>" * 200, 258, special_tokens=["<|eot|>"], progress=False)
    assert not any(b"<|" in t or b"|>" in t for t in tok.ranks)


def test_train_errors_and_warning():
    with pytest.raises(ValueError, match="at least 258"):
        BPETokenizer.train("abc", 257, special_tokens=["<a>", "<b>"], progress=False)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        BPETokenizer.train("abc", 300.0, progress=False)
    with pytest.raises(ValueError, match="distinct"):
        BPETokenizer.train("abc", 300, special_tokens=["<a>", "<a>"], progress=False)
    with pytest.raises(TypeError, match="sequence of strings"):
        BPETokenizer.train("abc", 300, special_tokens="<a>", progress=False)
    with pytest.raises(ValueError, match="non-empty str"):
        BPETokenizer.train("abc", 300, special_tokens=[""], progress=False)
    with pytest.raises(ValueError, match="neither a known name"):
        BPETokenizer.train("abc", 300, pattern="(unclosed", progress=False)
    with pytest.warns(UserWarning, match="training stopped at 258 of 299"):
        tok = BPETokenizer.train("abc", 300, special_tokens=["<a>"], progress=False)
    assert tok.vocab_size == 259 and tok.special_tokens == {"<a>": 258}


def test_encode_matches_tiktoken_special_token_rules(tok, tik):
    text = "hello <|endoftext|> world<|pad|>  <|endoftext|>\n"
    for kw in [dict(allowed_special="all"), dict(allowed_special={"<|pad|>"}, disallowed_special=()),
               dict(allowed_special={"<|endoftext|>"}, disallowed_special=()), dict(disallowed_special=()),
               dict(allowed_special={"<|endoftext|>", "<|pad|>"})]:
        assert tok.encode(text, **kw) == tik.encode(text, **kw), kw
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>'"):
        tok.encode(text)
    with pytest.raises(ValueError, match="'<\\|pad\\|>'"):
        tok.encode(text, allowed_special={"<|endoftext|>"})  # disallowed="all" means every special not allowed
    with pytest.raises(ValueError):
        tik.encode(text, allowed_special={"<|endoftext|>"})
    with pytest.raises(ValueError, match="'<\\|pad\\|>'"):
        tok.encode(text, allowed_special={"<|endoftext|>"}, disallowed_special={"<|pad|>"})
    assert tok.encode("<|endoftext|>", allowed_special="all") == [328]
    assert tok.encode_ordinary(text) == tik.encode_ordinary(text) == tok.encode(text, disallowed_special=())


def test_encode_batch(tok, tik):
    texts = ["hello world", "", "a<|pad|>b", "First Citizen"]
    assert tok.encode_batch(texts, allowed_special="all") == tik.encode_batch(texts, allowed_special="all")
    assert tok.encode_batch(texts, disallowed_special=(), num_threads=2) == [tok.encode_ordinary(t) for t in texts]
    with pytest.raises(ValueError, match="disallowed"):
        tok.encode_batch(texts)


def test_decode(tok):
    ids = tok.encode(TEXT[:300] + "<|pad|>", allowed_special="all")
    assert tok.decode(ids) == TEXT[:300] + "<|pad|>"
    assert tok.decode_bytes(np.array(ids, np.uint32)) == (TEXT[:300] + "<|pad|>").encode()
    assert tok.decode([]) == "" and tok.decode_bytes([]) == b""
    euro = tok.encode("€")  # 3 byte tokens: decoding 2 of them is broken UTF-8
    assert len(euro) == 3 and tok.decode(euro[:2]) == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        tok.decode(euro[:2], errors="strict")


def test_decode_errors(tok):
    with pytest.raises(ValueError, match="vocab_size=330\\), got 330 at position 1"):
        tok.decode([1, 330])
    with pytest.raises(ValueError, match="got -1 at position 0"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="must be integers"):
        tok.decode([1.5])
    with pytest.raises(ValueError, match="1-D"):
        tok.decode([[1, 2]])
    gap = BPETokenizer(dict(tok.ranks), "gpt2", {"<|x|>": 500})  # ids 328..499 are unused
    with pytest.raises(ValueError, match="id 450 at position 1 is not a token"):
        gap.decode([1, 450])
    with pytest.raises(ValueError, match="no token with id 450"):
        gap.token_bytes(450)


def test_text_must_be_str(tok):
    for bad in (b"abc", None, 3):
        with pytest.raises(TypeError, match="expected text as str"):
            tok.encode(bad)
        with pytest.raises(TypeError, match="expected text as str"):
            tok.encode_ordinary(bad)
    with pytest.raises(TypeError):
        tok.encode_batch(["a", b"b"])


def test_lone_surrogates_become_replacement_characters(tok, tik):
    """tiktoken's policy: each lone surrogate is encoded as U+FFFD; a pair written as two code points joins."""
    for s, clean in [("a\ud800b", "a\ufffdb"), ("\udfff", "\ufffd"), ("x\ud83d\ude00y", "x\U0001F600y"),
                     ("\ud800\ud800 hi", "\ufffd\ufffd hi")]:
        assert tok.encode(s) == tok.encode(clean) == tik.encode(s)
        assert tok.decode(tok.encode(s)) == clean
    assert tok.encode("a\ud800<|pad|>", allowed_special="all") == tok.encode("a\ufffd<|pad|>", allowed_special="all")


def test_from_tiktoken_and_back(tok, tik):
    again = BPETokenizer.from_tiktoken(tik)
    assert again.ranks == tok.ranks and again.pattern == tok.pattern and again.special_tokens == tok.special_tokens
    assert again.name == tik.name
    enc2 = again.to_tiktoken("round-trip")
    assert enc2.encode(TEXT, allowed_special="all") == tik.encode(TEXT, allowed_special="all")
    assert BPETokenizer.from_tiktoken(tik, pattern="gpt4").pattern != tok.pattern


def test_pattern_none_uses_the_whole_text(tok):
    flat = BPETokenizer(dict(tok.ranks), None, dict(tok.special_tokens))
    enc = flat.to_tiktoken()
    assert enc._pat_str == WHOLE_TEXT_PATTERN
    text = "hello world, all: speak  speak\n\n"
    assert flat.encode(text) == enc.encode(text)
    assert flat.encode("a<|pad|> b", allowed_special="all") == enc.encode("a<|pad|> b", allowed_special="all")


def test_constructor_checks():
    ranks = {bytes([i]): i for i in range(256)}
    with pytest.raises(ValueError, match="is a mergeable rank"):
        BPETokenizer(ranks, "gpt2", {"<s>": 10})
    with pytest.raises(ValueError, match="share an id"):
        BPETokenizer(ranks, "gpt2", {"<s>": 300, "</s>": 300})
    with pytest.raises(ValueError, match="missing"):
        BPETokenizer({bytes([i]): i for i in range(255)}, "gpt2")
    with pytest.raises(ValueError, match="not two earlier tokens"):
        BPETokenizer({**ranks, b"abc": 256}, "gpt2")
    with pytest.raises(TypeError, match="tiktoken.Encoding or the path"):
        BPETokenizer.from_tiktoken(123)
    with pytest.raises(ValueError, match="pass pattern"):
        BPETokenizer.from_tiktoken("some/file.tiktoken")


def test_gpt2_ranks():
    data_file("gpt2.tiktoken")  # skips without it
    gpt2 = BPETokenizer.gpt2()
    assert gpt2.vocab_size == 50257 and gpt2.special_tokens == {"<|endoftext|>": 50256}
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert gpt2.decode([15496, 995, 50256]) == "Hello world<|endoftext|>"


def test_visualize_method(tok):
    view = tok.visualize("hello world<|pad|>")
    html = view._repr_html_()
    assert "<span" in html and str(tok.encode("hello world<|pad|>", allowed_special="all")[-1]) in html
