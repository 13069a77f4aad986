"""tinyllm.data: corpus registry (checksums, cache, TINYLLM_DATA_DIR, downloads without the network),
load_text, the stories grammar, build_tokenizer, token files, split and batches. (The tokenizers
themselves: tests/test_tokenizer*.py.)"""

import functools
import hashlib
import http.server
import json
import os
import threading
import time

import numpy as np
import pytest
from shared_data import data_file

from tinyllm.data import (
    CORPORA,
    CharTokenizer,
    ChecksumError,
    Corpus,
    DataError,
    DownloadError,
    TokenDataset,
    build_tokenizer,
    cache_dir,
    corpus_path,
    encode_corpus,
    generate_stories,
    get_batch,
    load_text,
    load_tokenizer,
    load_tokens,
    prepare_data,
    registry,
    save_tokenizer,
    save_tokens,
    sha256_file,
    split_tokens,
    stories,
    token_dtype,
)
from tinyllm.tokenizer import BPETokenizer, Tokenizer

# ----------------------------------------------------------------------------- registry


@pytest.fixture
def fake_corpus(tmp_path, monkeypatch):
    """A test-only registry entry served from a file:// URL; cache in tmp, no TINYLLM_DATA_DIR."""
    src = tmp_path / "source" / "toy.txt"
    src.parent.mkdir()
    src.write_bytes(b"to be or not to be\n")
    corpus = Corpus("toy", src.as_uri(), hashlib.sha256(src.read_bytes()).hexdigest(), "toy.txt")
    monkeypatch.setitem(CORPORA, "toy", corpus)
    monkeypatch.delenv("TINYLLM_DATA_DIR", raising=False)
    monkeypatch.setenv("TINYLLM_CACHE_DIR", str(tmp_path / "cache"))
    return corpus


@pytest.mark.parametrize("name", ["tinyshakespeare", "names"])
def test_registered_checksums_match_the_shared_copies(name):
    path = data_file(CORPORA[name].filename)
    assert sha256_file(path) == CORPORA[name].sha256
    assert CORPORA[name].url.startswith("https://raw.githubusercontent.com/karpathy/")


def test_sha256_file_reads_in_chunks(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(bytes(range(256)) * 1000)
    assert sha256_file(p, chunk_size=7) == hashlib.sha256(p.read_bytes()).hexdigest()


def test_download_verifies_then_caches_and_reuses(fake_corpus, tmp_path, monkeypatch):
    path = corpus_path("toy")
    assert path == tmp_path / "cache" / "toy.txt"
    assert path.read_bytes() == b"to be or not to be\n"
    assert sorted(os.listdir(tmp_path / "cache")) == ["toy.txt"]  # no .part left behind

    def no_network(*a, **k):
        raise AssertionError("the cached corpus must not be downloaded again")

    monkeypatch.setattr(registry.urllib.request, "urlopen", no_network)
    assert corpus_path("toy") == path
    assert load_text("toy") == "to be or not to be\n"


def test_download_checksum_mismatch_leaves_nothing_in_the_cache(fake_corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(CORPORA, "toy", Corpus("toy", fake_corpus.url, "0" * 64, "toy.txt"))
    with pytest.raises(ChecksumError, match="sha256 .* expected 0000"):
        corpus_path("toy")
    assert os.listdir(tmp_path / "cache") == []


def test_download_failure_says_how_to_work_offline(fake_corpus, tmp_path, monkeypatch):
    missing = (tmp_path / "nowhere.txt").as_uri()
    monkeypatch.setitem(CORPORA, "toy", Corpus("toy", missing, fake_corpus.sha256, "toy.txt"))
    with pytest.raises(DownloadError, match="TINYLLM_DATA_DIR") as e:
        corpus_path("toy")
    assert isinstance(e.value, OSError) and missing in str(e.value)
    assert os.listdir(tmp_path / "cache") == []
    with pytest.raises(DataError, match="allow the download"):
        corpus_path("toy", download_if_missing=False)


def test_download_over_http_from_localhost(fake_corpus, tmp_path, monkeypatch):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path / "source"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/toy.txt"
        monkeypatch.setitem(CORPORA, "toy", Corpus("toy", url, fake_corpus.sha256, "toy.txt"))
        assert corpus_path("toy").read_bytes() == b"to be or not to be\n"
        monkeypatch.setitem(CORPORA, "gone", Corpus("gone", url + ".missing", fake_corpus.sha256, "gone.txt"))
        with pytest.raises(DownloadError, match="404"):
            corpus_path("gone")
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(os.listdir(tmp_path / "cache")) == ["toy.txt"]


def test_corrupt_cache_is_fetched_again(fake_corpus, tmp_path):
    cached = tmp_path / "cache" / "toy.txt"
    cached.parent.mkdir()
    cached.write_bytes(b"half a file")
    assert corpus_path("toy").read_bytes() == b"to be or not to be\n"


def test_data_dir_copy_is_used_first_and_verified(fake_corpus, tmp_path, monkeypatch):
    local = tmp_path / "local"
    local.mkdir()
    (local / "toy.txt").write_bytes(b"to be or not to be\n")
    monkeypatch.setenv("TINYLLM_DATA_DIR", str(local))
    monkeypatch.setattr(registry.urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded"))
    assert corpus_path("toy") == local / "toy.txt"
    assert not (tmp_path / "cache").exists()

    (local / "toy.txt").write_bytes(b"to be or not to be?\n")  # an edited copy: a clear error, kept as is
    with pytest.raises(ChecksumError, match=r"toy\.txt .*TINYLLM_DATA_DIR.*sha256"):
        corpus_path("toy")
    assert (local / "toy.txt").read_bytes() == b"to be or not to be?\n"


def test_data_dir_without_the_file_falls_back_to_the_cache(fake_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLM_DATA_DIR", str(tmp_path))
    assert corpus_path("toy") == tmp_path / "cache" / "toy.txt"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYLLM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "tinyllm"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "tinyllm"
    monkeypatch.setenv("TINYLLM_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_unknown_corpus_lists_the_valid_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"stories, names, tinyshakespeare"):
        load_text("shakespeare")
    with pytest.raises(DataError, match="registered corpora: names, tinyshakespeare"):
        corpus_path("stories")  # built in: not downloadable


@pytest.mark.parametrize("name,size", [("tinyshakespeare", 1_115_394), ("names", 228_145)])
def test_load_registered_corpus_from_data_dir(name, size):
    data_file(CORPORA[name].filename)
    text = load_text(name)
    assert len(text.encode("utf-8")) == size
    assert text.startswith("First Citizen:" if name == "tinyshakespeare" else "emma\nolivia\n")


# ----------------------------------------------------------------------------- load_text: files and folders


def test_load_text_file_and_folder(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"\xef\xbb\xbfsecond\r\nfile\r\n")  # BOM and CRLF are dropped
    (tmp_path / "a.txt").write_text("first\n\n\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("third", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not a .txt file", encoding="utf-8")
    assert load_text(tmp_path / "b.txt") == "second\nfile\n"
    assert load_text(str(tmp_path)) == "first\n\nsecond\nfile\n\nthird\n"


def test_load_text_clear_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 .*0xe9 at offset 3.*convert"):
        load_text(tmp_path / "latin1.txt")
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no .txt files"):
        load_text(tmp_path / "none")


# ----------------------------------------------------------------------------- stories


def test_stories_are_deterministic_and_seeded():
    assert generate_stories(50, seed=3) == generate_stories(50, seed=3)
    assert generate_stories(50, seed=3) != generate_stories(50, seed=4)
    assert load_text("stories") == generate_stories()


def test_default_stories_size_speed_and_shape():
    t0 = time.perf_counter()
    text = generate_stories()
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"generate_stories() took {elapsed:.2f} s"
    assert 200_000 < len(text) < 1_000_000
    assert text.isascii() and len(set(text)) == 54  # a small alphabet (the module docstring says 54)
    tales = text.rstrip("\n").split("\n\n")
    assert len(tales) == 1000
    assert all(t.startswith("Once upon a time, ") for t in tales)
    assert "{" not in text and "}" not in text  # every slot was filled
    assert all(text.count(arc_word) > 50 for arc_word in ("found the", "scared of", "sharing", "set off"))


def test_stories_docstring_example_is_the_real_output():
    example = generate_stories(1, seed=0).rstrip("\n")
    assert "\n".join("    " + line for line in example.split("\n")) in stories.__doc__


def test_story_pronouns_follow_the_hero():
    tales = generate_stories(300, seed=1).split("\n\n")
    girls = [t for t in tales if t.startswith("Once upon a time, there was a little girl named")]
    boys = [t for t in tales if t.startswith("Once upon a time, there was a little boy named")]
    assert girls and boys
    assert all(". She lived " in t for t in girls) and all(". He lived " in t for t in boys)


# ----------------------------------------------------------------------------- tokenizers in folders


def test_build_tokenizer_specs():
    assert build_tokenizer("char", "abca") == CharTokenizer.from_text("abc")
    for bad in ("word", "bpe:", "bpe:lots", "bpe:100"):
        with pytest.raises(ValueError, match="bpe:512"):
            build_tokenizer(bad, "abc")


def test_data_re_exports_the_tokenizer_files():
    import tinyllm.tokenizer

    assert CharTokenizer is tinyllm.tokenizer.CharTokenizer
    assert load_tokenizer is tinyllm.tokenizer.load_tokenizer and save_tokenizer is tinyllm.tokenizer.save_tokenizer


def test_bpe_tokenizer_build_save_load_encode(tmp_path):
    text = generate_stories(40, seed=0)
    tok = build_tokenizer("bpe:300", text)
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == 300
    assert save_tokenizer(tok, tmp_path) == tmp_path / "tokenizer.tiktoken"
    again = load_tokenizer(tmp_path)
    assert again.ranks == tok.ranks and load_tokenizer(tmp_path / "tokenizer.tiktoken").ranks == tok.ranks
    ids = encode_corpus(text, again)
    assert ids.dtype == np.uint16 and ids.tolist() == tok.encode_ordinary(text)
    assert len(ids) < len(text) and again.decode(ids.tolist()) == text
    with pytest.raises(FileExistsError, match=r"already holds a BPETokenizer \(tokenizer.tiktoken\)"):
        save_tokenizer(CharTokenizer.from_text("abc"), tmp_path)


# ----------------------------------------------------------------------------- token arrays and files


def test_token_dtype_boundaries():
    assert token_dtype(50) == np.uint16 and token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    with pytest.raises(ValueError):
        token_dtype(0)


def test_encode_corpus_checks_the_range():
    tok = CharTokenizer.from_text("ab")
    assert encode_corpus("abba", tok).tolist() == [0, 1, 1, 0] and encode_corpus("a", tok).dtype == np.uint16

    class Liar(Tokenizer):  # a tokenizer that returns an id outside its own vocabulary
        vocab_size = 2

        def encode_ordinary(self, text):
            return [0, 1, 7]

    with pytest.raises(ValueError, match="vocab_size=2, got 7 at position 2"):
        encode_corpus("abc", Liar())


@pytest.mark.parametrize("vocab_size", [65, 70_000])
def test_bin_memmap_round_trip(tmp_path, vocab_size):
    tokens = np.random.default_rng(0).integers(0, vocab_size, size=1000)
    path = save_tokens(tmp_path / "train.bin", tokens, vocab_size)
    assert path.stat().st_size == 1000 * token_dtype(vocab_size).itemsize
    got, v = load_tokens(path)
    assert isinstance(got, np.memmap) and not got.flags.writeable and v == vocab_size
    assert got.dtype == token_dtype(vocab_size)
    np.testing.assert_array_equal(got, tokens)
    np.testing.assert_array_equal(load_tokens(path, mmap=False)[0], tokens)


def test_bin_errors(tmp_path):
    with pytest.raises(ValueError, match="vocab_size=10, got 10"):
        save_tokens(tmp_path / "x.bin", np.array([1, 10]), 10)
    path = save_tokens(tmp_path / "x.bin", np.arange(10), 10)
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="truncated or stale"):
        load_tokens(path)
    (tmp_path / "y.bin").write_bytes(b"\0\0")
    with pytest.raises(FileNotFoundError, match="sidecar"):
        load_tokens(tmp_path / "y.bin")
    empty = save_tokens(tmp_path / "e.bin", np.zeros(0, np.int64), 10)
    assert load_tokens(empty)[0].size == 0


def test_split_sizes_and_contiguity():
    tokens = np.arange(1000, dtype=np.uint16)
    train, val = split_tokens(tokens)
    assert len(train) == 900 and len(val) == 100
    np.testing.assert_array_equal(np.concatenate([train, val]), tokens)
    assert np.shares_memory(train, tokens) and np.shares_memory(val, tokens)
    assert [len(s) for s in split_tokens(tokens, 0.25)] == [750, 250]
    assert len(split_tokens(tokens, 0.0)[1]) == 0
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="val_fraction"):
            split_tokens(tokens, bad)


# ----------------------------------------------------------------------------- batches


def _reference_batch(tokens, B, T, rng):
    """nanoGPT's get_batch, one window at a time."""
    ix = rng.integers(0, len(tokens) - T, size=B)
    x = np.stack([np.asarray(tokens[i:i + T], dtype=np.int64) for i in ix])
    y = np.stack([np.asarray(tokens[i + 1:i + 1 + T], dtype=np.int64) for i in ix])
    return x, y


def test_get_batch_shapes_shift_and_reference():
    tokens = np.random.default_rng(1).integers(0, 50, size=500).astype(np.uint16)
    x, y = get_batch(tokens, 8, 16, np.random.default_rng(7))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == np.int64
    assert x.flags.c_contiguous and y.flags.c_contiguous
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    rx, ry = _reference_batch(tokens, 8, 16, np.random.default_rng(7))
    np.testing.assert_array_equal(x, rx)
    np.testing.assert_array_equal(y, ry)


def test_get_batch_windows_cover_the_whole_array():
    tokens = np.arange(20, dtype=np.uint16)  # x[b] = arange(i, i+T), y = x + 1
    x, y = get_batch(tokens, 2000, 5, np.random.default_rng(0))
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(x - x[:, :1], np.broadcast_to(np.arange(5), x.shape))
    assert x[:, 0].min() == 0 and y[:, -1].max() == 19  # first and last token both reachable
    x, y = get_batch(np.array([5, 1, 4, 1]), 1, 3, np.random.default_rng(0))  # only one window fits
    assert x.tolist() == [[5, 1, 4]] and y.tolist() == [[1, 4, 1]]


def test_get_batch_seeded_and_resumable_through_json():
    tokens = np.arange(10_000) % 97
    a = [get_batch(tokens, 4, 32, np.random.default_rng(42)) for _ in range(2)]
    np.testing.assert_array_equal(a[0][0], a[1][0])
    assert not np.array_equal(a[0][0], get_batch(tokens, 4, 32, np.random.default_rng(43))[0])

    rng = np.random.default_rng(5)
    get_batch(tokens, 4, 32, rng)
    state = json.loads(json.dumps(rng.bit_generator.state))  # what a checkpoint stores
    want = get_batch(tokens, 4, 32, rng)
    resumed = np.random.default_rng()
    resumed.bit_generator.state = state
    got = get_batch(tokens, 4, 32, resumed)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_get_batch_errors():
    tokens = np.arange(10)
    with pytest.raises(ValueError, match=r"context_length \+ 1 = 11 .*only 10 tokens"):
        get_batch(tokens, 2, 10, np.random.default_rng(0))
    with pytest.raises(TypeError, match="default_rng"):
        get_batch(tokens, 2, 4, 0)
    with pytest.raises(ValueError, match=">= 1"):
        get_batch(tokens, 0, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="vocab_size=5"):
        get_batch(np.full(10, 7), 2, 4, np.random.default_rng(0), vocab_size=5)


def test_token_dataset_memmap_round_trip(tmp_path):
    tok, ds = prepare_data("stories", "char")
    assert len(ds.train) == int(0.9 * (len(ds.train) + len(ds.val))) and ds.vocab_size == tok.vocab_size
    ds.save(tmp_path)
    back = TokenDataset.load(tmp_path)
    assert isinstance(back.train, np.memmap) and back.vocab_size == ds.vocab_size
    np.testing.assert_array_equal(back.val, ds.val)
    x1, y1 = ds.get_batch("val", 4, 64, np.random.default_rng(0))
    x2, y2 = back.get_batch("val", 4, 64, np.random.default_rng(0))
    np.testing.assert_array_equal(x1, x2)
    assert tok.decode(np.append(x1[0], y1[0, -1])) in load_text("stories")  # a real window of the text
    with pytest.raises(ValueError, match="'train' or 'val'"):
        ds.get_batch("test", 1, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="vocab_size=3"):
        TokenDataset(np.array([0, 1, 3]), np.array([0]), 3)
