"""A corpus with planted near-duplicates: the test bed of deduplication (its precision and recall).

To measure a deduplicator we need documents whose duplicates we know. This
module writes *background* documents that share (almost) no word 5-gram, then
plants copies of some of them, each changed by one kind of edit that real
near-duplicates show:

    edit      each word replaced by a random word with probability p     (typos, templated fields)
    insert    a span of random words, p · length long, put at one place   (a header, an ad, a footer)
    delete    a span of p · length words cut out                          (a truncated page)
    reorder   the document cut into 4 chunks, shuffled (never left as it was)   (boilerplate moved around)

p is drawn uniformly from [0, max_change], so the copies' Jaccard similarity
to their source spreads from 1 down to well below any usual threshold: the
ground truth comes from exact Jaccard (tinyllm/data/jaccard.py), never from the
planting itself.

Background words are pseudo-words (syllables glued together, "tokaremi")
drawn from a Zipf law over a vocabulary (frequency of rank k ∝ 1/k), so a few
are everywhere, as in real text, and random documents are not near-duplicates.

    docs, source, kind = planted_corpus(1000, 200, seed=0)
    docs[1000 + k] is a changed copy of docs[source[1000 + k]]; source = -1 for the originals
"""

from __future__ import annotations

import numpy as np

SYLLABLES = ("ka", "to", "re", "mi", "sa", "lo", "ne", "pu", "di", "ga", "ve", "ro", "shi", "ta", "no", "be",
             "la", "fo", "ki", "mu", "de", "zo", "ra", "ni")
KINDS = ("edit", "insert", "delete", "reorder")


def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    """`size` distinct pseudo-words of 2 to 4 syllables."""
    words: dict[str, None] = {}
    while len(words) < size:
        n = int(rng.integers(2, 5))
        words["".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), n))] = None
    return list(words)


def zipf_documents(n_docs: int, rng: np.random.Generator, vocab_size: int = 20_000, min_words: int = 40,
                   max_words: int = 300) -> list[str]:
    """Documents of words drawn independently from a Zipf law over a pseudo-word vocabulary."""
    vocab = np.array(vocabulary(vocab_size, rng))
    p = 1.0 / np.arange(1, vocab_size + 1)
    p /= p.sum()
    lengths = rng.integers(min_words, max_words + 1, size=n_docs)
    ids = rng.choice(vocab_size, size=int(lengths.sum()), p=p)
    bounds = np.r_[0, np.cumsum(lengths)]
    return [" ".join(vocab[ids[bounds[d]:bounds[d + 1]]]) for d in range(n_docs)]


def change(words: list[str], kind: str, p: float, rng: np.random.Generator, filler: list[str]) -> list[str]:
    """One changed copy of a document's words (module docstring); `filler` supplies new words."""
    words = list(words)
    n = len(words)
    if kind == "edit":
        for i in np.flatnonzero(rng.random(n) < p):
            words[i] = filler[int(rng.integers(len(filler)))]
    elif kind == "insert":
        span = [filler[int(i)] for i in rng.integers(len(filler), size=max(1, round(p * n)))]
        at = int(rng.integers(n + 1))
        words[at:at] = span
    elif kind == "delete":
        span = min(n - 1, round(p * n))
        at = int(rng.integers(n - span + 1))
        del words[at:at + span]
    elif kind == "reorder":
        cuts = np.sort(rng.choice(np.arange(1, n), size=min(3, n - 1), replace=False))
        chunks = np.split(np.array(words, dtype=object), cuts)
        order = rng.permutation(len(chunks))
        if np.all(order == np.arange(len(chunks))):  # the identity is no reordering: move each chunk one on
            order = np.roll(order, 1)
        words = [w for k in order for w in chunks[k]]
    else:
        raise ValueError(f"unknown change {kind!r}; choose from {KINDS}")
    return words


def planted_corpus(n_docs: int, n_copies: int, seed: int = 0, max_change: float = 0.3, kinds=KINDS,
                   **doc_options) -> tuple[list[str], np.ndarray, list[str]]:
    """n_docs background documents, then n_copies changed copies of random ones.

    -> (texts, source int64 (n_docs + n_copies,): the original a copy was made from, -1 for originals,
        kind: "original" or the change made). doc_options go to zipf_documents.
    """
    rng = np.random.default_rng(seed)
    docs = zipf_documents(n_docs, rng, **doc_options)
    filler = vocabulary(2_000, np.random.default_rng(seed + 1))
    source = np.full(n_docs + n_copies, -1, dtype=np.int64)
    kind = ["original"] * n_docs
    for c in range(n_copies):
        src, k = int(rng.integers(n_docs)), kinds[c % len(kinds)]
        docs.append(" ".join(change(docs[src].split(), k, float(rng.uniform(0, max_change)), rng, filler)))
        source[n_docs + c] = src
        kind.append(k)
    return docs, source, kind
