"""Shingles: a document as the set of its word n-grams, each hashed to 64 bits (Broder 1997).

Near-duplicate detection compares documents as sets. A document's set is its
*shingles*, the runs of `ngram` consecutive words, so that two documents share
most shingles exactly when they share most of their word order:

    words(d)       maximal runs of ASCII letters and digits, or of bytes >= 0x80 (any non-ASCII
                   character), in the UTF-8 bytes of NFKC(d).lower()
    shingles(d)    { H(w_i, ..., w_{i+n-1}) : 0 <= i <= |words| - n }      n = ngram
                   a document of fewer than n words (but at least one) is one shingle of all of them;
                   a document with no word has none (the empty set)
    H(w_1..w_n)    fmix64( sum_j  fnv1a64(w_j) * M^(n-j)  mod 2^64 )       M = SHINGLE_MULT, odd

FNV-1a hashes a word's bytes; the polynomial in M makes the shingle depend on
the words' order; MurmurHash3's finalizer ``fmix64`` spreads every input bit
over the 64 output bits, which MinHash's hash functions (minhash.py) rely on.
Two distinct n-grams share a 64-bit hash with probability ~2^-64, so the hash
sets stand for the n-gram sets themselves.

    text "The cat sat. The cat sat!", ngram=2 -> words the, cat, sat, the, cat, sat
        -> bigrams (the cat) (cat sat) (sat the) (the cat) (cat sat) -> 3 distinct shingles

The reference below is plain Python and NumPy; ``shingle_hashes`` runs a Numba
kernel over a whole batch of documents at once (the tests check both give the
same hashes, shingle for shingle).
"""

from __future__ import annotations

import re
import unicodedata

import numba
import numpy as np

FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211
SHINGLE_MULT = 0x9E3779B97F4A7C15  # odd: multiplication by it is a bijection mod 2^64
MASK64 = (1 << 64) - 1
_WORD = re.compile(rb"[0-9A-Za-z\x80-\xff]+")

_kernel = numba.njit(cache=True, nogil=True)


def normalize_bytes(text: str) -> bytes:
    """The bytes words are cut from: UTF-8 of NFKC(text).lower() ("Ｃａｔ" and "cat" are one word)."""
    if not text.isascii():  # NFKC leaves ASCII as it is: skip the call for the common case
        text = unicodedata.normalize("NFKC", text)
    return text.lower().encode("utf-8")


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer on a uint64 array (wrapping arithmetic): every bit affects every bit."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


# ----------------------------------------------------------------------------- reference: Python and NumPy


def word_hashes_reference(data: bytes) -> np.ndarray:
    """uint64 (n_words,): FNV-1a 64 of each word of normalized bytes, in order."""
    out = []
    for word in _WORD.findall(data):
        h = FNV_OFFSET
        for byte in word:
            h = ((h ^ byte) * FNV_PRIME) & MASK64
        out.append(h)
    return np.array(out, dtype=np.uint64)


def shingles_reference(text: str, ngram: int = 5) -> np.ndarray:
    """uint64 (n_shingles,): the hash of every word n-gram of `text`, in order, repeats kept."""
    w = word_hashes_reference(normalize_bytes(text))  # (n_words,)
    if len(w) == 0:
        return w
    n = min(ngram, len(w))
    m = len(w) - n + 1
    acc = np.zeros(m, dtype=np.uint64)
    for j in range(n):
        acc = acc * np.uint64(SHINGLE_MULT) + w[j:j + m]  # (m,) uint64, wrapping mod 2^64
    return fmix64(acc)


# ----------------------------------------------------------------------------- Numba: a batch at once


@_kernel
def _is_word_byte(c):
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c >= 128


@_kernel
def _fmix64(h):
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@_kernel
def _shingle_kernel(data, offsets, ngram):
    """data uint8 (all documents' bytes), offsets int64 (N + 1,) -> (hashes uint64 (S,), starts int64 (N + 1,))."""
    N = offsets.shape[0] - 1
    out = np.empty(data.shape[0] // 2 + N + 1, dtype=np.uint64)  # a word takes >= 1 byte and 1 separator
    starts = np.zeros(N + 1, dtype=np.int64)
    words = np.empty(data.shape[0] // 2 + 1, dtype=np.uint64)
    mult = np.uint64(SHINGLE_MULT)
    s = 0
    for d in range(N):
        i, hi, nw = offsets[d], offsets[d + 1], 0
        while i < hi:  # cut the words and hash each (FNV-1a)
            if _is_word_byte(data[i]):
                h = np.uint64(FNV_OFFSET)
                while i < hi and _is_word_byte(data[i]):
                    h = (h ^ np.uint64(data[i])) * np.uint64(FNV_PRIME)
                    i += 1
                words[nw] = h
                nw += 1
            else:
                i += 1
        if nw > 0:
            n = min(ngram, nw)
            for k in range(nw - n + 1):
                acc = np.uint64(0)
                for j in range(n):
                    acc = acc * mult + words[k + j]
                out[s] = _fmix64(acc)
                s += 1
        starts[d + 1] = s
    return out[:s], starts


def pack(texts) -> tuple[np.ndarray, np.ndarray]:
    """Documents -> (data uint8, the normalized bytes of all of them; offsets int64 (N + 1,))."""
    encoded = [normalize_bytes(t) for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def shingle_hashes(texts, ngram: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(hashes uint64 (S,), starts int64 (N + 1,)): document d's shingles are hashes[starts[d]:starts[d + 1]].

    The same hashes as shingles_reference, for a whole batch, in one Numba call.
    """
    if isinstance(ngram, bool) or not isinstance(ngram, (int, np.integer)) or ngram < 1:
        raise ValueError(f"ngram must be an integer >= 1 (words per shingle), got {ngram!r}")
    data, offsets = pack(texts)
    return _shingle_kernel(data, offsets, int(ngram))


def shingle_sets(texts, ngram: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Each document's *set* of shingles: (values uint64, starts int64 (N + 1,)), sorted and unique per document."""
    hashes, starts = shingle_hashes(texts, ngram)
    doc = np.repeat(np.arange(len(starts) - 1), np.diff(starts))  # (S,) the document of each shingle
    order = np.lexsort((hashes, doc))
    hashes, doc = hashes[order], doc[order]
    keep = np.ones(len(hashes), dtype=bool)
    keep[1:] = (hashes[1:] != hashes[:-1]) | (doc[1:] != doc[:-1])
    values, doc = hashes[keep], doc[keep]
    new_starts = np.zeros_like(starts)
    np.cumsum(np.bincount(doc, minlength=len(starts) - 1), out=new_starts[1:])
    return values, new_starts
