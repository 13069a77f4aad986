"""Byte-level BPE training, fast: reference.py's algorithm with the hot loops in Numba.

    train_bpe(text, n_tokens, "gpt2")  =  train_fast(count_pretokens_fast(text, "gpt2"), n_tokens)

count_pretokens_fast cuts the text with the Numba pre-tokenizer and counts the
unique pieces; train_fast packs them into flat arrays and runs the merges in
chunks, drawing a progress bar between chunks. Same algorithm, same
tie-breaking and same merges as ``train_reference`` (the tests check merge for
merge). The kernels and their bookkeeping (word buffer, pair table with its
``where`` lists, lazy max-heap, byte trie of the vocabulary) are in
train_kernels.py.
"""

from __future__ import annotations

import numpy as np

from .patterns import resolve_pattern
from .reference import as_texts, initial_state, replace_surrogates, split_specials
from .train_kernels import (
    EMPTY,
    KEY_SHIFT,
    S_DONE,
    S_MERGES,
    S_POOL,
    S_TOKENS,
    S_TRIE,
    T_LEN,
    T_OFF,
    _count_pieces,
    _init,
    _train_steps,
)


def count_pretokens_fast(text_or_texts, pattern: str | None, special_tokens=(),
                         chunk_bytes: int = 1 << 25) -> dict[bytes, int]:
    """reference.count_pretokens with the Numba pre-tokenizer (pretokenize.py) and a Numba counter.

    Texts (and the parts between special tokens) are gathered into chunks of about
    chunk_bytes, each split in one scanner call (a piece never spans two parts) and
    counted in one kernel call; the dicts of unique pieces (small) are summed in Python.
    """
    from .pretokenize import _fast_scanner, _texts_spans

    regex_str = resolve_pattern(pattern)
    scan = _fast_scanner(regex_str)  # the Numba scanner of many texts at once, or None: the regex
    counts: dict[bytes, int] = {}

    def flush(datas):
        raw = b"".join(datas)
        buf = np.frombuffer(raw, np.uint8)
        lengths = np.fromiter(map(len, datas), dtype=np.int64, count=len(datas))
        starts, ends, _ = _texts_spans(buf, np.cumsum(lengths), regex_str, scan)
        first, length, count = _count_pieces(buf, starts, ends)
        for s, n, c in zip(first.tolist(), length.tolist(), count.tolist()):
            piece = raw[s : s + n]
            counts[piece] = counts.get(piece, 0) + c

    datas, size = [], 0
    for text in as_texts(text_or_texts):
        for part in split_specials(replace_surrogates(text), special_tokens):
            datas.append(part.encode("utf-8"))  # valid UTF-8: surrogates were replaced
            size += len(datas[-1])
            if size >= chunk_bytes:
                flush(datas)
                datas, size = [], 0
    if datas:
        flush(datas)
    return counts


def _word_arrays(word_counts: dict, vocab: list[bytes] | None):
    """(buf, wstart, wlen, wcount, vocab) for the kernels; bytes keys take a vectorized path."""
    if vocab is None and all(type(w) is bytes for w in word_counts):
        vocab = [bytes([i]) for i in range(256)]
        counts = np.fromiter(word_counts.values(), np.int64, len(word_counts))
        if counts.size and counts.min() < 0:
            raise ValueError("word counts must be >= 0")
        lens = np.fromiter(map(len, word_counts), np.int64, len(word_counts))
        buf = np.frombuffer(b"".join(word_counts), np.uint8).astype(np.int64)
    else:
        words, counts, vocab = initial_state(word_counts, vocab)
        counts = np.array(counts, np.int64)
        lens = np.array([len(ids) for ids in words], np.int64)
        buf = np.fromiter((i for ids in words for i in ids), np.int64, int(lens.sum()))
    wstart = np.zeros(len(lens), np.int64)
    np.cumsum(lens[:-1], out=wstart[1:])
    return buf, wstart, lens, counts, vocab


def train_fast(word_counts: dict, n_tokens: int, vocab: list[bytes] | None = None, progress: bool = False):
    """train_reference's merges and vocabulary, from the Numba kernels of train_kernels.py.

    word_counts: unique pre-token (bytes, or a tuple of ids into vocab) -> count.
    Returns (merges, vocab): merges[k] = (left, right, new id); vocab[id] = bytes.
    progress=True draws a tqdm bar over the tokens added.
    """
    buf, wstart, lens, wcount, vocab = _word_arrays(word_counts, vocab)
    if n_tokens < len(vocab):
        raise ValueError(f"n_tokens={n_tokens} is less than the {len(vocab)} tokens to start from; "
                         f"ask for at least {len(vocab)}")
    if n_tokens >= KEY_SHIFT:
        raise ValueError(f"at most {KEY_SHIFT - 1} tokens (a pair key holds two ids below 2**31)")
    visited = np.zeros(len(lens), np.int64)
    tok = np.full((n_tokens, 3), EMPTY, np.int64)
    tok_lens = np.array([len(t) for t in vocab], np.int64)
    tok[: len(vocab), T_LEN] = tok_lens
    tok[: len(vocab), T_OFF] = np.concatenate(([0], np.cumsum(tok_lens)[:-1]))
    pool = np.frombuffer(b"".join(vocab), np.uint8).copy()
    sc = np.zeros(11, np.int64)
    sc[S_TOKENS] = len(vocab)
    sc[S_POOL] = len(pool)
    sc[S_TRIE] = 1  # the root
    pt = np.full((1024, 6), EMPTY, np.int64)
    edges = np.full((1024, 3), EMPTY, np.int64)
    trie_tok = np.full(1024, EMPTY, np.int64)
    nodes = np.empty((1024, 2), np.int64)
    heap = np.empty((1024, 2), np.int64)
    touched = np.empty(1024, np.int64)
    merges = np.empty((max(16, n_tokens - len(vocab)), 3), np.int64)

    pt, nodes, heap, edges, trie_tok = _init(buf, wstart, lens, wcount, pt, nodes, heap, edges, trie_tok, tok, pool, sc)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_tokens - len(vocab), desc="BPE merges", unit="tok")
    chunk = max(1, (n_tokens - len(vocab)) // 200) if progress else n_tokens
    while sc[S_TOKENS] < n_tokens and not sc[S_DONE]:
        before = int(sc[S_TOKENS])
        pt, nodes, heap, touched, edges, trie_tok, pool, merges = _train_steps(
            buf, wstart, lens, wcount, visited, pt, nodes, heap, touched, edges, trie_tok, tok, pool, merges,
            sc, n_tokens, chunk)
        if bar is not None:
            bar.update(int(sc[S_TOKENS]) - before)
    if bar is not None:
        bar.close()
    n = int(sc[S_TOKENS])
    out_vocab = vocab + [pool[tok[t, T_OFF] : tok[t, T_OFF] + tok[t, T_LEN]].tobytes() for t in range(len(vocab), n)]
    out_merges = [tuple(m) for m in merges[: int(sc[S_MERGES])].tolist()]
    return out_merges, out_vocab


def train_bpe(text_or_texts, n_tokens: int, pattern: str | None, special_tokens=(), progress: bool = False):
    """Count the pre-tokens of the text(s) once, then train_fast: -> (merges, vocab) with len(vocab) <= n_tokens.

    pattern is a regex or None (see patterns.resolve_pattern); text is cut at the
    special tokens, which are not learned.
    """
    return train_fast(count_pretokens_fast(text_or_texts, pattern, special_tokens), n_tokens, progress=progress)
