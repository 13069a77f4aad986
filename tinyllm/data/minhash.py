"""MinHash signatures and LSH banding (Broder 1997; Indyk & Motwani 1998; Leskovec et al., MMDS ch. 3).

Comparing every pair of N documents is N²/2 set intersections. MinHash shrinks
each shingle set (shingles.py) to `num_perm` numbers whose agreement estimates
the Jaccard similarity, and LSH puts similar signatures in the same bucket, so
only documents that share a bucket are ever compared:

    h_k(x)   = ((a_k · x + b_k) mod 2^64) >> 32          k = 1..P, a_k odd  (multiply-shift,
                                                          Dietzfelbinger 1996: a random hash per k)
    sig_k(A) = min_{x ∈ A} h_k(x)                         uint32; the empty set: 2^32 - 1
    P[sig_k(A) = sig_k(B)] = J(A, B)   so   Ĵ = (1/P) Σ_k [sig_k(A) = sig_k(B)],  sd ≈ √(J(1 - J) / P)

LSH cuts the signature into b bands of r rows (b·r <= P); two documents are
*candidates* when all r values of at least one band agree:

    P[candidate | J = s] = 1 - (1 - s^r)^b         the S-curve, steepest near (1/b)^(1/r)

``lsh_params(threshold, P)`` picks (b, r) as datasketch does: the pair that
minimizes the weighted area of false positives (the curve below the threshold)
plus false negatives (one minus the curve above it). Each candidate pair is then
checked on the whole signature (Ĵ >= threshold), in the same kernel: it is
checked only in the first band where it collides, so no pair is reported twice.

    t = 0.8, P = 128 -> (b, r) = (9, 13): P[candidate] = 0.012 at s = 0.6, 0.40 at s = 0.8, 0.93 at s = 0.9

(so with equal weights a pair right at the threshold is found less than half the
time: the curve trades recall near t for few false candidates; fn_weight moves it.)

The reference signature is NumPy broadcasting over the shingles; the kernel
loops over shingles and permutations in Numba. Both give the same uint32 values.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from tinyllm.data.shingles import fmix64, shingle_hashes, shingles_reference

EMPTY = np.uint32(0xFFFFFFFF)  # sig_k of the empty set
BAND_MULT = np.uint64(0x9E3779B97F4A7C15)

_kernel = numba.njit(cache=True, nogil=True)


def permutations(num_perm: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): uint64 (num_perm,) each; a odd. The same seed gives the same hash functions everywhere."""
    if isinstance(num_perm, bool) or not isinstance(num_perm, (int, np.integer)) or num_perm < 1:
        raise ValueError(f"num_perm must be an integer >= 1, got {num_perm!r}")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64 - 1, size=num_perm, dtype=np.uint64, endpoint=True) | np.uint64(1)
    b = rng.integers(0, 2**64 - 1, size=num_perm, dtype=np.uint64, endpoint=True)
    return a, b


def signature_reference(text: str, num_perm: int = 128, ngram: int = 5, seed: int = 0) -> np.ndarray:
    """uint32 (num_perm,): the MinHash signature of one document, by broadcasting (P, S) hash values."""
    a, b = permutations(num_perm, seed)
    x = shingles_reference(text, ngram)  # (S,) uint64
    if len(x) == 0:
        return np.full(num_perm, EMPTY, dtype=np.uint32)
    h = (a[:, None] * x[None, :] + b[:, None]) >> np.uint64(32)  # (P, S), wrapping mod 2^64
    return h.min(axis=1).astype(np.uint32)


@_kernel
def _minhash_kernel(hashes, starts, a, b):
    """Shingle hashes (S,) with starts (N + 1,) -> signatures uint32 (N, P)."""
    N, P = starts.shape[0] - 1, a.shape[0]
    out = np.full((N, P), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    shift = np.uint64(32)
    for d in range(N):
        row = out[d]
        for s in range(starts[d], starts[d + 1]):
            x = hashes[s]
            for k in range(P):  # the inner loop LLVM vectorizes: P multiply-adds, P minima
                v = np.uint32((a[k] * x + b[k]) >> shift)
                if v < row[k]:
                    row[k] = v
    return out


def signatures(texts, num_perm: int = 128, ngram: int = 5, seed: int = 0) -> np.ndarray:
    """uint32 (N, num_perm): every document's signature; row d equals signature_reference(texts[d], ...)."""
    a, b = permutations(num_perm, seed)
    hashes, starts = shingle_hashes(texts, ngram)
    return _minhash_kernel(hashes, starts, a, b)


def estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Ĵ: the fraction of positions where two signatures (or rows of two (N, P) arrays) agree."""
    return np.mean(np.asarray(sig_a) == np.asarray(sig_b), axis=-1)


# ----------------------------------------------------------------------------- LSH


def candidate_probability(s, bands: int, rows: int):
    """The S-curve: P[two documents of similarity s share a band] = 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(s, dtype=np.float64) ** rows) ** bands


def _area(y: np.ndarray, x: np.ndarray) -> float:
    """∫ y dx by the trapezoid rule."""
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands·rows <= num_perm minimizing fp_weight·FP + fn_weight·FN (datasketch's rule).

    FP = ∫_0^t P(s) ds (pairs below the threshold that become candidates), FN = ∫_t^1 (1 - P(s)) ds.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1) for LSH, got {threshold}")
    lo = np.linspace(0.0, threshold, 2001)
    hi = np.linspace(threshold, 1.0, 2001)
    best, best_cost = (1, num_perm), math.inf
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = _area(candidate_probability(lo, bands, rows), lo)
            fn = _area(1.0 - candidate_probability(hi, bands, rows), hi)
            cost = fp_weight * fp + fn_weight * fn
            if cost < best_cost:
                best, best_cost = (bands, rows), cost
    return best


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64 (N, bands): one hash per band of each signature; equal keys <=> (almost surely) equal bands."""
    N, P = sig.shape
    if bands * rows > P or bands < 1 or rows < 1:
        raise ValueError(f"bands x rows = {bands} x {rows} must be at most num_perm = {P}, each >= 1")
    cut = np.asarray(sig[:, :bands * rows], dtype=np.uint64).reshape(N, bands, rows)  # (N, b, r)
    acc = np.zeros((N, bands), dtype=np.uint64)
    for j in range(rows):
        acc = acc * BAND_MULT + cut[:, :, j]
    return fmix64(acc)


@_kernel
def _grow(a, cap):
    out = np.empty((cap, a.shape[1]), a.dtype)
    out[:a.shape[0]] = a
    return out


@_kernel
def _lsh_pairs(keys, order, rows_of, sig, min_agree):
    """Candidate pairs of LSH buckets, verified on the whole signature -> int64 (K, 2), i < j.

    keys (n, b) band keys; order[t] = a stable argsort of keys[:, t]; rows_of[u] = the row of sig that
    document u stands for (a subset of a larger signature table). A pair is checked only in the first band
    where it collides, so each is reported once; it is kept when >= min_agree signature values agree.
    """
    n, n_bands = keys.shape
    P = sig.shape[1]
    cap = 1024
    out = np.empty((cap, 2), np.int64)
    m = 0
    for t in range(n_bands):
        s = 0
        while s < n:
            e = s + 1
            key = keys[order[t, s], t]
            while e < n and keys[order[t, e], t] == key:
                e += 1
            for u in range(s, e - 1):
                i = order[t, u]
                for v in range(u + 1, e):
                    j = order[t, v]  # subtle: a stable sort keeps i < j within a bucket
                    seen = False
                    for t2 in range(t):
                        if keys[i, t2] == keys[j, t2]:
                            seen = True
                            break
                    if seen:
                        continue
                    ri, rj, agree = rows_of[i], rows_of[j], 0
                    for k in range(P):
                        if sig[ri, k] == sig[rj, k]:
                            agree += 1
                    if agree >= min_agree:
                        if m == cap:
                            cap *= 2
                            out = _grow(out, cap)
                        out[m, 0], out[m, 1] = i, j
                        m += 1
            s = e
    return out[:m]


def lsh_pairs(sig: np.ndarray, threshold: float, bands: int, rows: int, rows_of: np.ndarray | None = None,
              keys: np.ndarray | None = None) -> np.ndarray:
    """int64 (K, 2), sorted: the pairs (i, j), i < j, that share a band and whose Ĵ >= threshold.

    sig: (N, P) signatures (a NumPy array or a memmap); rows_of: which rows of sig take part (default all;
    pairs are then positions in rows_of); keys: their band keys if already computed.
    """
    rows_of = np.arange(len(sig), dtype=np.int64) if rows_of is None else np.asarray(rows_of, dtype=np.int64)
    if keys is None:
        keys = band_keys(np.asarray(sig[rows_of]), bands, rows)
    order = np.ascontiguousarray(np.argsort(keys, axis=0, kind="stable").T)  # (b, n)
    min_agree = math.ceil(threshold * sig.shape[1] - 1e-9)
    pairs = _lsh_pairs(np.ascontiguousarray(keys), order, rows_of, np.asarray(sig), min_agree)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]

