"""Encoding text with byte-pair ranks, exactly as tiktoken does (Sennrich et al. 2016; OpenAI tiktoken).

A vocabulary is a dict ``ranks: bytes -> int``; a token's id is its rank and a
lower rank was merged earlier in training. To encode, cut the text into pieces
(pretokenize.py), then for each piece:

    1. if the whole piece is a token, that is its encoding (tiktoken's fast path);
    2. else start from its single bytes and, while some adjacent pair's
       CONCATENATED BYTES is a token, merge the pair whose token has the lowest
       rank (the leftmost one on a tie).

Worked example, ranks {a:0, b:1, c:2, ab:3, bc:4, abc:5}, piece b"abcab" (not a token)::

    [a, b, c, a, b]   pairs ab=3 bc=4 ca=- ab=3 -> leftmost lowest: ab at 0
    [ab, c, a, b]     pairs abc=5 ca=- ab=3       -> ab at 2
    [ab, c, ab]       pairs abc=5 cab=-           -> abc at 0
    [abc, ab]         pairs abcab=-               -> done: [5, 3]

``bpe_reference`` is that loop in plain Python. The fast path (``Encoder``) runs
it in Numba, on token ids instead of byte strings: "is a + b a token, and which"
becomes one lookup in a hash table keyed by the pair of ids (left, right), built
once from the ranks by splitting every token's bytes in two at every position
where both halves are tokens. Every part during BPE is a token, so this answers
exactly the question tiktoken asks of the bytes. A hash table of all tokens'
bytes serves the whole-piece fast path, and a direct-mapped cache keyed by the
piece's bytes remembers recent pieces that needed BPE (" Coriolanus" is BPE'd
once, not at each of its 200 appearances).

Lone surrogates (a str that is not valid Unicode, e.g. "\\ud800"): like tiktoken,
the text goes through UTF-16 with ``surrogatepass`` and back with ``replace``
(``_utf8``): a lone surrogate becomes U+FFFD, and a high+low pair written as two
code points is joined into the character it stands for ("\\ud83d\\ude00" -> "😀").
Decoding gives back the repaired text.

This file is the readable part: the reference, the Encoder and its tables' layout.
The Numba kernels (the two hash tables, BPE on one piece by scan or by heap, the
whole-text kernel with its cache) are in bpe_kernels.py.
"""

from __future__ import annotations

import threading

import numpy as np

from tinyllm.tokenizer.bpe_kernels import _build_kernel, _encode_pieces
from tinyllm.tokenizer.patterns import resolve_pattern
from tinyllm.tokenizer.pretokenize import _fast_scanner, _texts_spans, split_reference
from tinyllm.tokenizer.reference import replace_surrogates

CACHE_MAX_BYTES = 32  # pieces up to this long are cached; longer ones are rare and BPE'd every time
HEAP_FROM = 128  # pieces at least this long merge with a heap, O(n log n), not tiktoken's O(n^2) scan


def bpe_reference(piece: bytes, ranks: dict[bytes, int]) -> list[int]:
    """tiktoken's encoding of one piece (see the module docstring), in plain Python.

    bpe_reference(b"abcab", {b"a": 0, b"b": 1, b"c": 2, b"ab": 3, b"bc": 4, b"abc": 5}) -> [5, 3]
    """
    if piece in ranks:  # the whole piece is a token: tiktoken returns it without BPE
        return [ranks[piece]]
    parts = [piece[i:i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best_rank, best_i = None, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best_rank is None or rank < best_rank):  # strict <: leftmost wins
                best_rank, best_i = rank, i
        if best_rank is None:
            break
        parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    try:
        return [ranks[p] for p in parts]
    except KeyError as e:
        raise ValueError(f"byte {e.args[0]!r} is not a token: "
                         "byte-level BPE needs all 256 single bytes in ranks") from None


def encode_ordinary_reference(text: str, ranks: dict[bytes, int], pattern: str | None) -> list[int]:
    """Split with the regex (split_reference), then bpe_reference each piece's UTF-8 bytes."""
    text = _utf8(text).decode("utf-8")
    return [t for piece in split_reference(text, pattern) for t in bpe_reference(piece.encode("utf-8"), ranks)]


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of text; lone surrogates become U+FFFD first (tiktoken's policy)."""
    return replace_surrogates(text).encode("utf-8")


class Encoder:
    """Fast encode_ordinary for ``ranks`` under ``pattern``: Numba scanner + Numba BPE + a piece cache.

    Encoder(ranks, "gpt2").encode_ordinary("Hello world") -> [15496, 995]   (GPT-2's ranks)
    encode_ordinary_array returns np.uint32 (as tiktoken's encode_to_numpy). Not safe to share
    between threads that encode at the same time except through encode_ordinary (it locks the
    cache) and encode_ordinary_batch (each thread gets its own cache).
    """

    def __init__(self, ranks: dict[bytes, int], pattern: str | None, cache_size: int = 4096,
                 heap_from: int = HEAP_FROM):
        self.pattern = resolve_pattern(pattern)
        self._scan = _fast_scanner(self.pattern)  # Numba scanner of many texts at once, or None: the regex
        self._tables = _build_tables(ranks)
        self.cache_size = 0 if cache_size <= 0 else 1 << int(cache_size - 1).bit_length()  # a power of two
        self.heap_from = max(int(heap_from), 2)
        self._cache = _new_cache(self.cache_size)
        self._lock = threading.Lock()

    def clear_cache(self) -> None:
        """Forget the cached pieces (benchmarks time encoding from a cold cache)."""
        with self._lock:
            self._cache = _new_cache(self.cache_size)

    def encode_ordinary_array(self, text: str) -> np.ndarray:
        """Token ids (n_tokens,) uint32 of text, special tokens treated as plain text."""
        with self._lock:
            return self._encode([text], self._cache)[0].copy()  # a view into a bigger buffer

    def encode_ordinary(self, text: str) -> list[int]:
        with self._lock:
            return self._encode([text], self._cache)[0].tolist()

    def encode_ordinary_batch(self, texts, num_threads: int = 1) -> list[list[int]]:
        """encode_ordinary of each text, all in one kernel call (many short texts cost little more
        than one long one); num_threads > 1 splits the texts into that many chunks, encoded at the
        same time (the kernels release the GIL), each with its own cache."""
        texts = list(texts)
        if num_threads <= 1 or len(texts) < 2:
            with self._lock:
                return self._encode_lists(texts, self._cache)
        from concurrent.futures import ThreadPoolExecutor

        chunks = np.array_split(np.arange(len(texts)), min(num_threads, len(texts)))
        work = lambda idx: self._encode_lists([texts[i] for i in idx], _new_cache(self.cache_size))  # noqa: E731
        with ThreadPoolExecutor(len(chunks)) as pool:
            return [ids for part in pool.map(work, chunks) for ids in part]

    def _encode_lists(self, texts: list[str], cache) -> list[list[int]]:
        if len(texts) <= 1:
            return [self._encode(texts, cache)[0].tolist()] if texts else []
        ids, text_end = self._encode(texts, cache)
        flat = ids.tolist()
        begin = np.concatenate([[0], text_end[:-1]]).tolist()
        return [flat[a:b] for a, b in zip(begin, text_end.tolist())]

    def _encode(self, texts: list[str], cache) -> tuple[np.ndarray, np.ndarray]:
        """(token ids of all texts one after the other, uint32 (n_tokens,); end of each text's ids (n_texts,))."""
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"expected str, got {type(text).__name__}")
        datas = [_utf8(text) for text in texts]
        buf = np.frombuffer(datas[0] if len(datas) == 1 else b"".join(datas), dtype=np.uint8)
        lengths = np.fromiter(map(len, datas), dtype=np.int64, count=len(datas))
        text_end = np.cumsum(lengths) if len(datas) > 1 else lengths  # (n_texts,) byte offsets
        # subtle: each text is split alone: a piece never spans two texts
        starts, ends, pieces_end = _texts_spans(buf, text_end, self.pattern, self._scan)
        piece_end = np.zeros(len(starts) if len(texts) > 1 else 0, np.int64)  # only needed to split texts
        t = self._tables
        ids = _encode_pieces(buf, starts, ends, t["tok_bytes"], t["tok_off"], t["tab_rank"], t["tab_hash"],
                             t["byte_rank"], t["pair_key"], t["pair_val"], *cache, self.heap_from, piece_end)
        if len(texts) == 1:
            return ids, np.array([len(ids)], np.int64)
        return ids, np.concatenate([[0], piece_end])[pieces_end]


def _new_cache(size: int):
    """(hash uint64 (S,), length int32 (S,), bytes uint8 (S, 32), n_tokens int32 (S,), tokens int32 (S, 32));
    S=0: off."""
    return (np.zeros(size, np.uint64), np.zeros(size, np.int32), np.zeros((size, CACHE_MAX_BYTES), np.uint8),
            np.zeros(size, np.int32), np.zeros((size, CACHE_MAX_BYTES), np.int32))


def _build_tables(ranks: dict[bytes, int]) -> dict[str, np.ndarray]:
    """Flat arrays for the kernels: token bytes by rank, a bytes -> rank table, a (left, right) -> rank table."""
    if not isinstance(ranks, dict) or not ranks:
        raise ValueError("ranks must be a non-empty dict bytes -> int")
    n_ids = max(ranks.values()) + 1
    if min(ranks.values()) < 0 or n_ids >= 2**31:
        raise ValueError(f"ranks must be in [0, 2**31), got {min(ranks.values())}..{n_ids - 1}")
    by_rank = [b""] * n_ids
    for token, rank in ranks.items():
        if by_rank[rank]:
            raise ValueError(f"rank {rank} is given to two tokens, {by_rank[rank]!r} and {token!r}; "
                             "ranks must be unique")
        if not token:
            raise ValueError("the empty byte string cannot be a token")
        by_rank[rank] = token
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ValueError(f"byte-level BPE needs all 256 single bytes as tokens; missing {len(missing)}, "
                         f"e.g. {bytes(missing[:5])!r}")
    lengths = np.fromiter((len(t) for t in by_rank), dtype=np.int64, count=n_ids)
    tok_off = np.zeros(n_ids + 1, np.int64)
    np.cumsum(lengths, out=tok_off[1:])
    tok_bytes = np.frombuffer(b"".join(by_rank), dtype=np.uint8)
    tab_rank, tab_hash, byte_rank, pair_key, pair_val = _build_kernel(tok_bytes, tok_off)
    return dict(tok_bytes=tok_bytes, tok_off=tok_off, tab_rank=tab_rank, tab_hash=tab_hash, byte_rank=byte_rank,
                pair_key=pair_key, pair_val=pair_val)

