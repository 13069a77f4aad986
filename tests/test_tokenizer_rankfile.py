"""Rank files + JSON sidecar: round trips, tiktoken reads what we write, and clear errors on broken files."""

from __future__ import annotations

import base64
import json

import pytest
from shared_data import data_file

from tinyllm.tokenizer import BPETokenizer, RankFileError, read_ranks, sidecar_path
from tinyllm.tokenizer.rankfile import check_ranks, format_ranks

BYTES = {bytes([i]): i for i in range(256)}


@pytest.fixture(scope="module")
def tok():
    text = "the quick brown fox jumps over the lazy dog; the dog sleeps. " * 30 + "东京 Ünïcode ✓"
    return BPETokenizer.train(text, 300, special_tokens=["<|endoftext|>"], progress=False)


def _line(token: bytes, rank: int) -> bytes:
    return base64.b64encode(token) + b" %d\n" % rank


def _bytes_lines() -> bytes:
    return b"".join(_line(t, r) for t, r in BYTES.items())


def test_save_load_round_trip(tok, tmp_path):
    path = tmp_path / "tokenizer.tiktoken"
    tok.save(path)
    assert sidecar_path(path) == tmp_path / "tokenizer.tiktoken.json"
    # no temp files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.tiktoken", "tokenizer.tiktoken.json"]
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["format_version"] == 1 and meta["pattern_name"] == "gpt2" and meta["n_ranks"] == 299
    back = BPETokenizer.load(path)
    assert back.ranks == tok.ranks and back.pattern == tok.pattern and back.special_tokens == tok.special_tokens
    text = "the lazy fox<|endoftext|> 东京"
    assert back.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    tok.save(path)  # overwriting is fine
    assert BPETokenizer.load(path).ranks == tok.ranks


def test_pattern_none_and_custom_regex_round_trip(tok, tmp_path):
    for pattern in [None, r"\w+|\s+|[^\w\s]+"]:
        t = BPETokenizer(dict(tok.ranks), pattern, {})
        t.save(tmp_path / "t.tiktoken")
        back = BPETokenizer.load(tmp_path / "t.tiktoken", trust_pattern=pattern is not None)  # a custom regex
        assert back.pattern == pattern and back.special_tokens == {}                    # needs the opt-in


def test_tiktoken_reads_our_rank_file(tok, tmp_path, monkeypatch):
    from tiktoken.load import load_tiktoken_bpe

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the local file, cache nothing
    tok.save(tmp_path / "tokenizer.tiktoken")
    assert load_tiktoken_bpe(str(tmp_path / "tokenizer.tiktoken")) == tok.ranks


def test_from_rank_file(tok, tmp_path):
    (tmp_path / "bare.tiktoken").write_bytes(format_ranks(tok.ranks))
    t = BPETokenizer.from_tiktoken(tmp_path / "bare.tiktoken", pattern="gpt2", special_tokens={"<|endoftext|>": 299})
    assert t.ranks == tok.ranks and t.name == "bare"
    with pytest.raises(FileNotFoundError, match="no sidecar"):
        BPETokenizer.load(tmp_path / "bare.tiktoken")
    with pytest.raises(FileNotFoundError, match="no rank file"):
        read_ranks(tmp_path / "missing.tiktoken")


def test_gpt2_rank_file_is_valid():
    ranks = read_ranks(data_file("gpt2.tiktoken"))
    assert len(ranks) == 50256 and ranks[b"!"] == 0 and ranks[b" the"] == 262


@pytest.mark.parametrize("extra, message", [
    (b"!!!! 256\n", "line 257: bad base64"),
    (b"YWI= 256 7\n", "line 257: expected '<base64 token> <rank>'"),
    (b"YWI= two\n", "line 257: the rank 'two' is not an integer"),
    (b"YWI= -3\n", "line 257: a rank must be an int >= 0"),
    (_line(b"ab", 256) + _line(b"ab", 257), "line 258: token b'ab' appears twice \\(also at line 257\\)"),
    (_line(b"ab", 256) + _line(b"bc", 256), "line 258: rank 256 appears twice \\(also at line 257\\)"),
    (_line(b"ab", 256) + _line(b"abc", 258), "rank 257 is missing"),
    (_line(b"abc", 256), "line 257: token b'abc' \\(rank 256\\) is not two earlier tokens joined"),
    (_line(b"abc", 256) + _line(b"ab", 257), "line 257: token b'abc'"),  # its parts must come BEFORE it
])
def test_corrupt_rank_files(tmp_path, extra, message):
    path = tmp_path / "bad.tiktoken"
    path.write_bytes(_bytes_lines() + extra)
    with pytest.raises(RankFileError, match=message):
        read_ranks(path)


def test_missing_byte_tokens(tmp_path):
    path = tmp_path / "bad.tiktoken"
    path.write_bytes(b"".join(_line(bytes([i]), i) for i in range(200)))
    with pytest.raises(RankFileError, match="56 are missing, e.g. byte 0xc8"):
        read_ranks(path)


def test_blank_lines_are_skipped_and_any_order_is_fine(tmp_path):
    path = tmp_path / "ok.tiktoken"
    path.write_bytes(_line(b"ab", 256) + b"\n" + _bytes_lines())
    assert read_ranks(path) == {**BYTES, b"ab": 256}


def test_check_ranks_names_the_rank():
    with pytest.raises(RankFileError, match="rank 256: token b'xyz'"):
        check_ranks({**BYTES, b"xyz": 256})
    with pytest.raises(TypeError, match="must be a dict"):
        check_ranks([1, 2])
    with pytest.raises(RankFileError, match="non-empty bytes"):
        check_ranks({**BYTES, b"": 256})


def test_inconsistent_sidecar(tok, tmp_path):
    path = tmp_path / "tokenizer.tiktoken"
    side = sidecar_path(path)

    def fresh():
        tok.save(path)
        return json.loads(side.read_text())

    meta = fresh()
    path.write_bytes(path.read_bytes() + _line(b"zz", 299))  # rank file changed, sidecar not
    with pytest.raises(RankFileError, match="does not match its sidecar"):
        BPETokenizer.load(path)
    for key, value, message in [("format_version", 99, "format_version 99 is not supported"),
                                ("format", "other", "not a tinyllm tokenizer sidecar"),
                                ("n_ranks", 5, "says 5 ranks but"),
                                ("special_tokens", {"<x>": "1"}, "must map strings to integer ids"),
                                ("pattern", 3, "must be a regex string or null")]:
        fresh()
        side.write_text(json.dumps({**meta, key: value}))
        with pytest.raises(RankFileError, match=message):
            BPETokenizer.load(path)
    fresh()
    side.write_text("{not json")
    with pytest.raises(RankFileError, match="not valid JSON"):
        BPETokenizer.load(path)
    fresh()
    side.write_text(json.dumps({**meta, "special_tokens": {"<x>": 3}}))
    with pytest.raises(ValueError, match="is a mergeable rank"):
        BPETokenizer.load(path)
    fresh()
    path.unlink()
    with pytest.raises(FileNotFoundError, match="no rank file"):
        BPETokenizer.load(path)


def test_save_to_a_missing_folder(tok, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tok.save(tmp_path / "nope" / "tokenizer.tiktoken")
