"""tinyllm.data.shingles / jaccard / minhash / dedup: the Numba kernels against their references, MinHash
against exact Jaccard, LSH pairs against a brute-force scan of the same signatures, the keep mask, the
streaming file version, and the `tinyllm dedup` command."""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data import dedup as dd
from tinyllm.data import jaccard, minhash, shingles
from tinyllm.data.synthetic.duplicates import KINDS, change, planted_corpus, vocabulary

WORDS = st.sampled_from(["cat", "Cat", "sat", "mat", "the", "ﬁsh", "Ｃａｔ", "naïve", "日本", "x1", "42", ""])
TEXTS = st.lists(WORDS, max_size=14).flatmap(
    lambda ws: st.lists(st.sampled_from([" ", "  ", ", ", "\n", ".", "-", "\t"]), min_size=len(ws), max_size=len(ws))
    .map(lambda seps: "".join(w + s for w, s in zip(ws, seps))))


@pytest.fixture(scope="module")
def corpus():
    docs, source, kind = planted_corpus(300, 200, seed=1, min_words=20, max_words=80, max_change=0.1)
    return docs, source, kind


@given(texts=st.lists(TEXTS, min_size=1, max_size=6), ngram=st.integers(1, 6))
def test_the_shingle_kernel_equals_the_reference(texts, ngram):
    hashes, starts = shingles.shingle_hashes(texts, ngram)
    assert starts[0] == 0 and starts[-1] == len(hashes)
    for d, text in enumerate(texts):
        np.testing.assert_array_equal(hashes[starts[d]:starts[d + 1]], shingles.shingles_reference(text, ngram))


def test_shingles_follow_normalized_words():
    ref = shingles.shingles_reference
    assert len(ref("The cat sat. The cat sat!", 2)) == 5 and len(set(ref("The cat sat. The cat sat!", 2))) == 3
    assert np.array_equal(ref("Ｃａｔ  SAT", 2), ref("cat sat", 2))          # NFKC, case, spacing
    assert len(ref("one two", 5)) == 1 and len(ref("...", 5)) == 0          # short: one shingle; no word: none
    assert not np.array_equal(ref("a b", 2), ref("b a", 2))                  # order matters
    values, starts = shingles.shingle_sets(["b a b a", "", "x"], 1)
    assert np.diff(starts).tolist() == [2, 0, 1] and np.all(np.diff(values[:2].astype(np.float64)) > 0)
    with pytest.raises(ValueError, match="ngram"):
        shingles.shingle_hashes(["a"], 0)


@given(texts=st.lists(TEXTS, min_size=1, max_size=4), num_perm=st.integers(1, 40), seed=st.integers(0, 3))
def test_the_minhash_kernel_equals_the_reference(texts, num_perm, seed):
    sig = minhash.signatures(texts, num_perm, 3, seed)
    assert sig.dtype == np.uint32 and sig.shape == (len(texts), num_perm)
    for d, text in enumerate(texts):
        np.testing.assert_array_equal(sig[d], minhash.signature_reference(text, num_perm, 3, seed))


def test_the_estimate_is_unbiased_against_exact_jaccard(corpus):
    docs, source, _ = corpus
    P = 256
    sig = minhash.signatures(docs, P, 5, 0)
    values, starts = shingles.shingle_sets(docs, 5)
    sets = [values[starts[d]:starts[d + 1]] for d in range(len(docs))]
    copies = np.flatnonzero(source >= 0)
    exact = np.array([jaccard.jaccard(sets[c], sets[source[c]]) for c in copies])
    est = minhash.estimate(sig[copies], sig[source[copies]])
    z = (est - exact) / np.sqrt(np.maximum(exact * (1 - exact), 1e-3) / P)
    assert exact.min() < 0.7 < 0.95 < exact.max()                      # the copies span the interesting range
    assert abs(np.mean(est - exact)) < 3 * np.sqrt(0.25 / P / len(copies))  # no bias
    assert np.mean(np.abs(z) < 3) > 0.97                                # sd ≈ sqrt(J(1 - J) / P)
    assert np.all(minhash.signatures(["", "..."], 8) == minhash.EMPTY)  # the empty set


@given(sets=st.lists(st.sets(st.integers(0, 12), max_size=8), max_size=12),
       threshold=st.sampled_from([0.1, 0.3, 0.5, 0.6, 0.75, 0.8, 1.0]))
def test_the_prefix_filter_finds_exactly_the_brute_force_pairs(sets, threshold):
    values = np.concatenate([np.array(sorted(s), dtype=np.uint64) for s in sets] or [np.zeros(0, np.uint64)])
    starts = np.r_[0, np.cumsum([len(s) for s in sets])].astype(np.int64)
    pairs, sim = jaccard.similar_pairs(values, starts, threshold)
    assert [tuple(p) for p in pairs.tolist()] == jaccard.all_pairs_reference(sets, threshold)
    assert all(math.isclose(s, jaccard.jaccard(sets[i], sets[j])) for (i, j), s in zip(pairs.tolist(), sim))


def test_jaccard_worked_example():
    assert jaccard.jaccard({1, 2, 3, 4}, {2, 3, 4, 5}) == 0.6 and jaccard.jaccard([], []) == 1.0
    sets = [{1, 2, 3, 4}, {2, 3, 4, 5}, {6, 7}]
    assert jaccard.all_pairs_reference(sets, 0.5) == [(0, 1)]


def test_lsh_parameters_and_the_s_curve():
    assert minhash.lsh_params(0.8, 128) == (9, 13)
    assert minhash.lsh_params(0.8, 128, dd.FP_WEIGHT, dd.FN_WEIGHT) == (12, 10)  # dedup.py's docstring
    assert round(float(minhash.candidate_probability(0.8, 12, 10)), 2) == 0.74
    b, r = minhash.lsh_params(0.5, 64)
    assert b * r <= 64
    # the module docstring's numbers
    assert [round(float(minhash.candidate_probability(s, 9, 13)), 3) for s in (0.6, 0.8, 0.9)] == [0.012, 0.399, 0.929]
    # weighting false negatives more buys recall near the threshold with more bands
    b2, r2 = minhash.lsh_params(0.8, 128, fp_weight=0.2, fn_weight=0.8)
    assert minhash.candidate_probability(0.8, b2, r2) > minhash.candidate_probability(0.8, 9, 13)
    with pytest.raises(ValueError, match="threshold"):
        minhash.lsh_params(1.0, 128)
    with pytest.raises(ValueError, match="num_perm"):
        minhash.band_keys(np.zeros((2, 8), np.uint32), 3, 3)


def test_lsh_params_equal_datasketch():
    lsh = pytest.importorskip("datasketch.lsh", reason="the peer: pip install datasketch")
    for t in (0.5, 0.7, 0.9):
        for P in (64, 256):
            assert minhash.lsh_params(t, P) == tuple(lsh._optimal_param(t, P, 0.5, 0.5))


def test_lsh_pairs_are_the_verified_band_collisions(corpus):
    docs, _, _ = corpus
    sig = minhash.signatures(docs, 64, 5, 0)
    for t in (0.5, 0.8):
        b, r = minhash.lsh_params(t, 64, dd.FP_WEIGHT, dd.FN_WEIGHT)  # near_duplicates' own choice
        keys = minhash.band_keys(sig, b, r)
        i, j = np.triu_indices(len(docs), k=1)
        collide = (keys[i] == keys[j]).any(axis=1)
        agree = (sig[i] == sig[j]).mean(axis=1) >= t
        expect = np.stack([i[collide & agree], j[collide & agree]], axis=1)
        np.testing.assert_array_equal(minhash.lsh_pairs(sig, t, b, r), expect)
        assert dd.near_duplicates(docs, t, 64) == [tuple(p) for p in expect.tolist()]


def test_near_duplicates_precision_and_recall_against_exact_jaccard(corpus):
    docs, _, _ = corpus
    values, starts = shingles.shingle_sets(docs, 5)
    pairs, sim = jaccard.similar_pairs(values, starts, 0.5)
    exact = dict(zip(map(tuple, pairs.tolist()), sim))
    truth = {p for p, j in exact.items() if j >= 0.8}
    found = set(dd.near_duplicates(docs, 0.8))
    assert len(truth) > 60
    assert len(found & truth) / len(found) > 0.8   # a miss is a pair whose estimate fell on the wrong side
    assert len(found & truth) / len(truth) > 0.75  # misses: pairs near the threshold (estimate or LSH)
    assert min(exact.get(p, 0.0) for p in found) > 0.7          # never far below the threshold
    assert {p for p, j in exact.items() if j >= 0.9} <= found    # the clear cases: all found
    fewer = set(dd.near_duplicates(docs, 0.8, bands=9, rows=13))  # datasketch's choice: a later-rising curve
    assert len(fewer & truth) < len(found & truth) and len(fewer) < len(found)


def test_planted_changes():
    rng = np.random.default_rng(0)
    words, filler = vocabulary(40, rng)[:30], vocabulary(10, rng)
    assert len(set(vocabulary(50, rng))) == 50
    for kind in KINDS:
        out = change(words, kind, 0.2, rng, filler)
        if kind == "reorder":
            assert sorted(out) == sorted(words) and out != words
        if kind == "insert":
            assert len(out) == 36
        if kind == "delete":
            assert len(out) == 24
    with pytest.raises(ValueError, match="unknown change"):
        change(words, "swap", 0.1, rng, filler)


def test_dedup_keeps_one_document_per_cluster():
    texts = ["the cat sat on the mat today", "The cat  sat on the mat today", "a different story"]
    assert dd.dedup(texts, ngram=2).tolist() == [True, False, True]  # the module docstring's example
    assert dd.exact_duplicates(["a  b", "A b", "a b c", "a b"]).tolist() == [True, False, True, False]
    assert dd.clusters(5, [(0, 3), (3, 4)]).tolist() == [0, 1, 2, 0, 0]
    assert dd.clusters(4, [(2, 3), (1, 3)]).tolist() == [0, 1, 1, 1]
    base = " ".join(f"w{i}" for i in range(60))
    near = base.replace("w30", "zz")
    keep = dd.dedup([base, "another text entirely, nothing shared", near, base], threshold=0.7)
    assert keep.tolist() == [True, True, False, False]
    assert dd.dedup([base, near], threshold=0.7, near=False).tolist() == [True, True]
    with pytest.raises(ValueError, match="threshold"):
        dd.dedup(texts, threshold=1.0)
    with pytest.raises(ValueError, match="bands"):
        dd.near_duplicates(texts, bands=0)
    with pytest.raises(ValueError, match="bands x rows"):
        dd.near_duplicates(texts, bands=9, rows=15)
    sig = minhash.signatures(texts, 16, 2)
    assert dd.near_duplicates(texts, 0.5, 16, 2, bands=4, rows=3) == [
        tuple(p) for p in minhash.lsh_pairs(sig, 0.5, 4, 3).tolist()] == [(0, 1)]


@pytest.mark.parametrize("fmt", ["jsonl", "text"])
def test_dedup_file_streams_to_the_same_answer(tmp_path, corpus, fmt):
    docs, _, _ = corpus
    docs = docs + docs[:7]  # exact copies too
    src = tmp_path / ("in.jsonl" if fmt == "jsonl" else "in.txt")
    if fmt == "jsonl":
        src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(docs)))
    else:
        src.write_text("\n\n".join(docs) + "\n")
    report = dd.dedup_file(src, tmp_path / src.name.replace("in", "out"), chunk_size=64)
    keep, exact = dd.dedup(docs), (~dd.exact_duplicates(docs)).sum()
    assert report.documents == len(docs) and report.kept == keep.sum() and report.exact_removed == exact >= 7
    assert report.near_removed == len(docs) - exact - keep.sum() > 0
    out = tmp_path / src.name.replace("in", "out")
    if fmt == "jsonl":
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["id"] for r in records] == np.flatnonzero(keep).tolist()
    else:
        assert out.read_text().rstrip("\n").split("\n\n") == [d for d, k in zip(docs, keep) if k]
    assert {kind for kind, _, _ in report.examples} == {"exact copy", "near duplicate"}
    assert "kept" in report.summary() and not list(tmp_path.glob(".*"))  # no temporary file left


def test_the_dedup_command(tmp_path, capsys, corpus):
    from tinyllm.cli import main

    docs, _, _ = corpus
    src, out = tmp_path / "c.txt", tmp_path / "d.txt"
    src.write_text("\n\n".join(docs + docs[:3]) + "\n")
    assert main(["dedup", str(src), str(out), "--threshold", "0.8"]) == 0
    assert f"{(~dd.exact_duplicates(docs + docs[:3])).sum()} exact copies" in capsys.readouterr().out
    assert len(out.read_text().split("\n\n")) == dd.dedup(docs + docs[:3]).sum()
    assert main(["dedup", str(src), str(out)]) == 2                          # OUT exists
    assert "--force" in capsys.readouterr().err
    assert main(["dedup", str(src), str(out), "--force", "--exact-only"]) == 0
    assert len(out.read_text().split("\n\n")) == dd.exact_duplicates(docs).sum()
    for argv in (["--threshold", "1.5"], ["--num-perm", "1"], ["--ngram", "0"], ["--bands", "999"]):
        assert main(["dedup", str(src), str(tmp_path / "x.txt"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tinyllm dedup: ") and err.count("\n") == 1
    assert not (tmp_path / "x.txt").exists()
    assert main(["dedup", str(tmp_path / "missing.txt"), str(tmp_path / "x.txt")]) == 2
    assert main(["dedup", str(src), str(src), "--force"]) == 2
