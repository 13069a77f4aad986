"""Deduplication: exact copies by a hash of the normalized text, near copies by MinHash + LSH.

A web crawl repeats itself: boilerplate, mirrors, the same article with another
header. Duplicates waste compute, skew the mixture toward whatever is copied
most, and are what a model memorizes verbatim (Lee et al. 2022, "Deduplicating
Training Data Makes Language Models Better"). Two passes remove them:

    exact   key(d) = blake2b-128( " ".join(NFKC(d).lower().split()) )
            documents with one key are copies up to case, Unicode form and whitespace
    near    pairs (i, j), i < j, with Ĵ(i, j) >= threshold among the LSH candidates
            (minhash.py: signatures of word n-gram shingles, bands chosen from the threshold)
    keep    the pairs' connected components (union-find); each keeps its first document

so a chain a ~ b ~ c is one cluster even when a and c differ more than the
threshold allows, as in every MinHash-LSH deduplicator (text-dedup, datatrove).

The bands: ``lsh_params(threshold, num_perm, fp_weight=0.2, fn_weight=0.8)``,
not datasketch's equal weights. Every candidate is checked on its whole signature
in the same Numba loop, so a false candidate costs a comparison of 128 numbers,
while a missed pair is a duplicate left in the corpus: weigh misses more. At
t = 0.8 and 128 permutations that is 12 bands of 10 rows (datasketch: 9 of 13),
and the chance that a pair right at the threshold becomes a candidate goes from
0.40 to 0.74 (benchmarks/bench_dedup.py measures what that does to recall).

    >>> texts = ["the cat sat on the mat today", "The cat  sat on the mat today", "a different story"]
    >>> dedup(texts, ngram=2).tolist()          # the second is the first with other case and spaces
    [True, False, True]

``dedup_file`` streams a file too large for memory: one pass computes each
document's exact key, signature and band keys, writing the signatures to a
temporary file (``num_perm`` x 4 bytes a document) and keeping only the keys in
memory (16 + 8·bands bytes a document); the pairs are found on those; a second
pass writes the documents kept.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from tinyllm.data.documents import DocumentWriter, read_documents, read_texts
from tinyllm.data.minhash import band_keys, lsh_pairs, lsh_params, signatures

_kernel = numba.njit(cache=True, nogil=True)


def exact_key(text: str) -> bytes:
    """16 bytes: blake2b of NFKC(text), lower-cased, whitespace runs made one space, stripped."""
    text = text if text.isascii() else unicodedata.normalize("NFKC", text)
    return hashlib.blake2b(" ".join(text.lower().split()).encode("utf-8"), digest_size=16).digest()


def _first_of_each(keys: np.ndarray) -> np.ndarray:
    """bool (N,): True where keys[i] is the first occurrence of its value."""
    keep = np.zeros(len(keys), dtype=bool)
    if len(keys):
        keep[np.unique(keys, return_index=True)[1]] = True
    return keep


def exact_duplicates(texts) -> np.ndarray:
    """Keep mask, bool (N,): False for a document whose exact key an earlier one already has."""
    return _first_of_each(np.array([exact_key(t) for t in texts], dtype="S16"))


def _check(threshold, num_perm, ngram) -> None:
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold} (1 is exact duplicates: use exact=True)")
    if isinstance(num_perm, bool) or not isinstance(num_perm, (int, np.integer)) or num_perm < 2:
        raise ValueError(f"num_perm must be an integer >= 2, got {num_perm!r}")
    if isinstance(ngram, bool) or not isinstance(ngram, (int, np.integer)) or ngram < 1:
        raise ValueError(f"ngram must be an integer >= 1 (words per shingle), got {ngram!r}")


FP_WEIGHT, FN_WEIGHT = 0.2, 0.8  # how lsh_params weighs false candidates and missed pairs (module docstring)


def _bands(threshold, num_perm, bands, rows=None) -> tuple[int, int]:
    if bands is None:
        return lsh_params(threshold, num_perm, FP_WEIGHT, FN_WEIGHT)
    if isinstance(bands, bool) or not isinstance(bands, (int, np.integer)) or not 1 <= bands <= num_perm:
        raise ValueError(f"bands must be an integer in [1, num_perm={num_perm}], got {bands!r}")
    rows = num_perm // int(bands) if rows is None else rows
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or not 1 <= bands * rows <= num_perm:
        raise ValueError(f"bands x rows must be at most num_perm={num_perm}, got {bands} x {rows!r}")
    return int(bands), int(rows)


def near_duplicates(texts, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5, seed: int = 0,
                    bands: int | None = None, rows: int | None = None) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, sorted, whose MinHash estimate Ĵ >= threshold, found through LSH.

    bands, rows: the LSH bands (rows default: num_perm // bands); default: lsh_params(threshold, num_perm,
    FP_WEIGHT, FN_WEIGHT), misses weighted 0.8 (module docstring).
    """
    _check(threshold, num_perm, ngram)
    b, r = _bands(threshold, num_perm, bands, rows)
    sig = signatures(list(texts), num_perm, ngram, seed)  # (N, P) uint32
    return [(int(i), int(j)) for i, j in lsh_pairs(sig, threshold, b, r)]


@_kernel
def _components(n, pairs):
    """Union-find over pairs -> int64 (n,): each document's cluster root, the smallest index in it."""
    parent = np.arange(n)
    for k in range(pairs.shape[0]):
        ri, rj = pairs[k, 0], pairs[k, 1]
        while parent[ri] != ri:
            ri = parent[ri]
        while parent[rj] != rj:
            rj = parent[rj]
        if ri < rj:
            parent[rj] = ri
        elif rj < ri:
            parent[ri] = rj
    for x in range(n):  # roots point to themselves; compress every path to its root
        r = x
        while parent[r] != r:
            r = parent[r]
        parent[x] = r
    return parent


def clusters(n: int, pairs) -> np.ndarray:
    """int64 (n,): the root of each document's cluster (connected component of `pairs`), its smallest index.

    clusters(5, [(0, 3), (3, 4)]) -> [0, 1, 2, 0, 0]
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= n):
        raise ValueError(f"pairs must index documents 0..{n - 1}")
    return _components(int(n), pairs)


def dedup(texts, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5, seed: int = 0,
          bands: int | None = None, exact: bool = True, near: bool = True) -> np.ndarray:
    """Keep mask, bool (N,): one document kept per cluster of exact and near duplicates (the first)."""
    texts = list(texts)
    keep = exact_duplicates(texts) if exact else np.ones(len(texts), dtype=bool)
    if near and len(texts) > 1:
        _check(threshold, num_perm, ngram)
        b, r = _bands(threshold, num_perm, bands)
        rows = np.flatnonzero(keep)  # subtle: exact copies go first, so their buckets do not blow up quadratically
        sig = signatures([texts[i] for i in rows], num_perm, ngram, seed)
        root = clusters(len(rows), lsh_pairs(sig, threshold, b, r))
        keep[rows[root != np.arange(len(rows))]] = False
    return keep


@dataclass
class DedupReport:
    """What dedup_file did: counts, the LSH parameters, time, and a few removed documents with what they copy."""

    documents: int = 0
    exact_removed: int = 0
    near_removed: int = 0
    near_pairs: int = 0
    bands: int = 0
    rows: int = 0
    seconds: float = 0.0
    examples: list = field(default_factory=list)  # (kind, kept text, removed text), a few of each

    @property
    def kept(self) -> int:
        return self.documents - self.exact_removed - self.near_removed

    def summary(self) -> str:
        lines = [f"{self.documents:,} documents -> {self.kept:,} kept: {self.exact_removed:,} exact copies and "
                 f"{self.near_removed:,} near duplicates removed ({self.near_pairs:,} pairs over the threshold; "
                 f"LSH {self.bands} bands x {self.rows} rows) in {self.seconds:.1f} s"]
        for kind, kept, removed in self.examples:
            lines.append(f"  {kind}: {_short(removed)!r}\n      copies {_short(kept)!r}")
        return "\n".join(lines)


def _short(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 3] + "..."


def dedup_file(src, dst, *, fmt: str | None = None, field: str = "text", threshold: float = 0.8,
               num_perm: int = 128, ngram: int = 5, seed: int = 0, bands: int | None = None, near: bool = True,
               chunk_size: int = 8192, n_examples: int = 3) -> DedupReport:
    """Deduplicate a corpus file into another, streaming (module docstring); returns a DedupReport.

    fmt: "jsonl" or "text" (default: from the suffix; documents.py); dst has the same format and keeps
    every record's other fields. Memory: 16 + 8·bands bytes a document, plus one chunk of documents.
    """
    _check(threshold, num_perm, ngram)
    src, dst = Path(src), Path(dst)
    b, r = _bands(threshold, num_perm, bands)
    report = DedupReport(bands=b, rows=r)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".dedup-", dir=dst.parent) as work:
        sig_path = Path(work) / "signatures.u32"
        digests, keys = [], []
        with open(sig_path, "wb") as sig_file:
            chunk: list[str] = []
            for text in [*read_texts(src, fmt, field), None]:  # None flushes the last chunk
                if text is not None:
                    chunk.append(text)
                if chunk and (text is None or len(chunk) == chunk_size):
                    digests.append(np.array([exact_key(t) for t in chunk], dtype="S16"))
                    if near:
                        sig = signatures(chunk, num_perm, ngram, seed)  # (chunk, P)
                        sig.tofile(sig_file)
                        keys.append(band_keys(sig, b, r))               # (chunk, b)
                    chunk = []
        keep = _first_of_each(np.concatenate(digests)) if digests else np.zeros(0, dtype=bool)
        report.documents, report.exact_removed = len(keep), int((~keep).sum())
        root = np.arange(len(keep))
        if near and len(keep) > 1:
            rows = np.flatnonzero(keep)
            sig = np.memmap(sig_path, dtype=np.uint32, mode="r", shape=(len(keep), num_perm))
            pairs = lsh_pairs(sig, threshold, b, r, rows_of=rows, keys=np.concatenate(keys)[rows])
            sub_root = clusters(len(rows), pairs)
            root[rows] = rows[sub_root]
            report.near_pairs = len(pairs)
            report.near_removed = int((sub_root != np.arange(len(rows))).sum())
            del sig
        keep_near = root == np.arange(len(keep))
        # examples: the first removed documents of each kind, and the document each one copies
        if digests:
            _, first, inverse = np.unique(np.concatenate(digests), return_index=True, return_inverse=True)
            root[~keep] = first[inverse.reshape(-1)][~keep]  # an exact copy's original: the first with its key
        removed = {int(i): "exact copy" for i in np.flatnonzero(~keep)[:n_examples]}
        removed |= {int(i): "near duplicate" for i in np.flatnonzero(keep & ~keep_near)[:n_examples]}
        originals = {int(root[i]) for i in removed}
        texts_of: dict[int, str] = {}
        with DocumentWriter(dst, fmt, field) as out:
            for i, record in enumerate(read_documents(src, fmt, field)):
                if i in originals:
                    texts_of[i] = record[field]
                if i in removed:
                    report.examples.append((removed[i], texts_of[int(root[i])], record[field]))
                if keep[i] and keep_near[i]:
                    out.write(record)
    report.seconds = time.perf_counter() - t0
    return report

