"""The Tokenizer contract (tinyllm/tokenizer/base.py), one test for every tokenizer: a small trained
BPETokenizer and a CharTokenizer pass the same checks; then save/load of either kind through
tinyllm.tokenizer.load_tokenizer / save_tokenizer, and the errors for files that are not ours."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm.tokenizer import BPETokenizer, CharTokenizer, Tokenizer, load_tokenizer, save_tokenizer

TEXT = "the cat sat on the mat; the dog ate the hat.\nA naïve café, 3 € — 😀 and <|eot|> once.\n"
ALPHABET = sorted(set(TEXT))


@pytest.fixture(scope="module", params=["bpe", "char"])
def tok(request):
    if request.param == "bpe":
        return BPETokenizer.train(TEXT * 8, vocab_size=300, special_tokens=["<|eot|>"], progress=False)
    return CharTokenizer.from_text(TEXT)


def test_a_tokenizer_has_the_interface(tok):
    assert isinstance(tok, Tokenizer) and isinstance(tok.name, str) and tok.name
    assert isinstance(tok.vocab_size, int) and tok.vocab_size > 0
    assert isinstance(tok.special_tokens, dict)
    assert all(isinstance(s, str) and 0 <= i < tok.vocab_size for s, i in tok.special_tokens.items())
    assert tok.file_name in ("tokenizer.json", "tokenizer.tiktoken") and isinstance(tok.format, str)


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=80))
def test_round_trip_and_token_bytes(tok, text):
    ids = tok.encode_ordinary(text)
    assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode("utf-8")
    assert tok.encode_ordinary_array(text).tolist() == ids
    assert tok.encode(text, disallowed_special=()) == ids


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_decode_is_the_token_bytes_as_utf8(tok, data):
    ids = data.draw(st.lists(st.integers(0, tok.vocab_size - 1), max_size=20))
    joined = b"".join(tok.token_bytes(i) for i in ids)
    assert tok.decode(ids) == joined.decode("utf-8", errors="replace")  # where valid: the same text
    assert tok.decode(np.array(ids, dtype=np.int64)) == tok.decode(ids)


def test_encode_of_text_without_special_tokens_is_encode_ordinary(tok):
    plain = TEXT.replace("<|eot|>", "")
    assert tok.encode(plain) == tok.encode(plain, allowed_special="all") == tok.encode_ordinary(plain)


def test_special_tokens_follow_tiktoken(tok):
    for s, i in tok.special_tokens.items():
        assert tok.encode(s, allowed_special="all") == tok.encode(s, allowed_special={s}) == [i]
        assert i not in tok.encode_ordinary(s) and tok.encode(s, disallowed_special=()) == tok.encode_ordinary(s)
        assert tok.token_bytes(i) == s.encode("utf-8") and tok.decode([i]) == s
        with pytest.raises(ValueError, match="disallowed"):
            tok.encode(s)
    if not tok.special_tokens:  # no special tokens: every option of encode is encode_ordinary
        assert tok.encode(TEXT) == tok.encode(TEXT, allowed_special="all") == tok.encode_ordinary(TEXT)


def test_bad_ids_and_bad_text_are_errors(tok):
    with pytest.raises(ValueError, match=f"no token with id {tok.vocab_size}"):
        tok.token_bytes(tok.vocab_size)
    with pytest.raises(ValueError, match="no token with id -1"):
        tok.token_bytes(-1)
    with pytest.raises(TypeError, match="int"):
        tok.token_bytes(1.0)
    with pytest.raises(ValueError, match=f"vocab_size={tok.vocab_size}"):
        tok.decode([0, tok.vocab_size])
    with pytest.raises(TypeError, match="str"):
        tok.encode_ordinary(b"bytes")


def test_save_load_round_trip_of_the_file_and_the_folder(tok, tmp_path):
    (tmp_path / "file").mkdir()
    path = tok.save(tmp_path / "file" / tok.file_name)
    assert path == tmp_path / "file" / tok.file_name
    assert save_tokenizer(tok, tmp_path / "run") == tmp_path / "run" / tok.file_name
    for where in (path, tmp_path / "file", tmp_path / "run"):
        again = load_tokenizer(where)
        assert type(again) is type(tok) and again.vocab_size == tok.vocab_size
        assert again.special_tokens == tok.special_tokens
        assert again.encode(TEXT, allowed_special="all") == tok.encode(TEXT, allowed_special="all")
        assert ([again.token_bytes(i) for i in range(tok.vocab_size)]
                == [tok.token_bytes(i) for i in range(tok.vocab_size)])
    assert save_tokenizer(tok, tmp_path / "run") == tmp_path / "run" / tok.file_name  # the same kind: overwritten


def test_a_folder_holds_one_kind(tmp_path):
    char, bpe = CharTokenizer.from_text("abc"), BPETokenizer({bytes([i]): i for i in range(256)})
    save_tokenizer(char, tmp_path / "c")
    with pytest.raises(FileExistsError, match=r"already holds a CharTokenizer \(tokenizer.json\)"):
        save_tokenizer(bpe, tmp_path / "c")
    save_tokenizer(bpe, tmp_path / "b")
    with pytest.raises(FileExistsError, match=r"already holds a BPETokenizer \(tokenizer.tiktoken\)"):
        save_tokenizer(char, tmp_path / "b")
    char.save(tmp_path / "b" / "tokenizer.json")  # both, written behind save_tokenizer's back
    with pytest.raises(ValueError, match="holds two tokenizers .*pass the file"):
        load_tokenizer(tmp_path / "b")
    assert load_tokenizer(tmp_path / "b" / "tokenizer.json") == char
    with pytest.raises(TypeError, match="expects a Tokenizer"):
        save_tokenizer("abc", tmp_path)


def test_files_that_are_not_tinyllm_tokenizers_say_so(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no tokenizer in .*tokenizer.json .*tokenizer.tiktoken"):
        load_tokenizer(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no tokenizer file or folder"):
        load_tokenizer(tmp_path / "missing")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}), encoding="utf-8")
    for where in (hf, hf / "tokenizer.json"):
        with pytest.raises(ValueError, match="not a tinyllm tokenizer: its \"format\" is None"):
            load_tokenizer(where)
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_tokenizer(tmp_path / "broken.json")
    bare = tmp_path / "bare" / "tokenizer.tiktoken"
    bare.parent.mkdir()
    bare.write_text("IQ== 0\n", encoding="utf-8")
    for where in (bare, bare.parent):
        with pytest.raises(FileNotFoundError, match="no JSON sidecar .*BPETokenizer.from_tiktoken"):
            load_tokenizer(where)


def test_a_tokenizer_missing_a_method_names_it():
    class Half(Tokenizer):
        vocab_size = 3

        def encode_ordinary(self, text):
            return [0] * len(text)

    half = Half()
    assert half.encode_ordinary_array("ab").tolist() == [0, 0]  # provided by the base class
    with pytest.raises(NotImplementedError, match="Half does not implement token_bytes"):
        half.token_bytes(0)
