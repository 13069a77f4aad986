"""CharTokenizer (tinyllm/tokenizer/char.py): the worked example, round trips, the fast encoder
against the reference, errors that name the character, the JSON file. The contract it shares
with BPETokenizer is tests/test_tokenizer_interface.py."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.tokenizer import CharTokenizer


def test_char_worked_example():
    tok = CharTokenizer.from_text("hello")
    assert tok.chars == ("e", "h", "l", "o") and tok.vocab_size == 4
    assert tok.encode("hole") == [1, 3, 2, 0]
    assert tok.decode([1, 0, 2, 2, 3]) == "hello"
    assert tok.decode(np.array([[1, 0], [2, 2]])) == "hell"
    assert tok.encode_ordinary("hole") == tok.encode("hole", allowed_special="all") == [1, 3, 2, 0]
    assert [tok.token_bytes(i) for i in range(4)] == [b"e", b"h", b"l", b"o"] and tok.special_tokens == {}


@given(st.text(min_size=1, max_size=200))
def test_char_round_trip_and_fast_encode_matches_reference(text):
    tok = CharTokenizer.from_text(text)
    assert list(tok.chars) == sorted(set(text))
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    np.testing.assert_array_equal(tok.encode_ordinary_array(text), np.array(ids, dtype=np.int64))


def test_char_astral_and_lone_surrogate():
    text = "a\U0001F600b\ud800c"
    tok = CharTokenizer.from_text(text)
    assert tok.encode_ordinary_array(text).tolist() == tok.encode(text) and tok.decode(tok.encode(text)) == text
    assert b"".join(tok.token_bytes(i) for i in tok.encode(text)) == text.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("encode", ["encode", "encode_ordinary", "encode_ordinary_array"])
def test_char_unknown_character_is_named_with_its_position(encode):
    tok = CharTokenizer.from_text("hello")
    with pytest.raises(ValueError, match=r"character 'p' \(U\+0070\) at position 3 is not in"):
        getattr(tok, encode)("help")


def test_char_decode_and_construction_errors():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"vocab_size=3\), got 3 at position 1"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="got -1 at position 0"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_text("")
    with pytest.raises(ValueError, match="sorted"):
        CharTokenizer(["b", "a"])
    with pytest.raises(ValueError, match=r"no token with id 3 \(vocab_size=3\)"):
        tok.token_bytes(3)
    with pytest.raises(TypeError, match="str"):
        tok.encode(b"abc")


def test_char_save_load_json(tmp_path):
    tok = CharTokenizer.from_text("Hi é\U0001F600\ud800\n")
    path = tok.save(tmp_path / "t" / "tokenizer.json")
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["format"] == "tinyllm.char" and d["version"] == 1
    assert CharTokenizer.load(path) == tok
    d["version"] = 99
    path.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(ValueError, match="version 99"):
        CharTokenizer.load(path)
    with pytest.raises(FileNotFoundError):
        CharTokenizer.load(tmp_path / "missing.json")
