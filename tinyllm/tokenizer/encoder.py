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
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from tinyllm.tokenizer.patterns import resolve_pattern
from tinyllm.tokenizer.pretokenize import _fast_scanner, _spans, split_reference

CACHE_MAX_BYTES = 32  # pieces up to this long are cached; longer ones are rare and BPE'd every time
HEAP_FROM = 128  # pieces at least this long merge with a heap, O(n log n), not tiktoken's O(n^2) scan

_kernel = numba.njit(cache=True, nogil=True)
_helper = numba.njit(cache=True)
_inline = numba.njit(cache=True)
_EMPTY = np.int32(-1)
_NO_RANK = np.int64(2**62)


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
        raise ValueError(f"byte {e.args[0]!r} is not a token: byte-level BPE needs all 256 single bytes in ranks") from None


def encode_ordinary_reference(text: str, ranks: dict[bytes, int], pattern: str | None) -> list[int]:
    """Split with the regex (split_reference), then bpe_reference each piece's UTF-8 bytes."""
    text = _utf8(text).decode("utf-8")
    return [t for piece in split_reference(text, pattern) for t in bpe_reference(piece.encode("utf-8"), ranks)]


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of text; lone surrogates become U+FFFD first (tiktoken's policy)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # subtle: a surrogate cannot be UTF-8 encoded; the utf-16 round trip replaces a lone one with
        # U+FFFD and joins a high+low pair into one character (what tiktoken does)
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


class Encoder:
    """Fast encode_ordinary for ``ranks`` under ``pattern``: Numba scanner + Numba BPE + a piece cache.

    Encoder(ranks, "gpt2").encode_ordinary("Hello world") -> [15496, 995]   (GPT-2's ranks)
    encode_ordinary_array returns np.uint32 (as tiktoken's encode_to_numpy). Not safe to share
    between threads that encode at the same time except through encode_ordinary (it locks the
    cache) and encode_ordinary_batch (each thread gets its own cache).
    """

    def __init__(self, ranks: dict[bytes, int], pattern: str | None, cache_size: int = 4096, heap_from: int = HEAP_FROM):
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
        if self._scan is not None:  # subtle: each text is scanned alone: a piece never spans two texts
            bounds, pieces_end = self._scan(buf, text_end)
            starts, ends = bounds[:-1], bounds[1:]
        else:
            spans = [_spans(np.frombuffer(d, dtype=np.uint8), self.pattern) for d in datas]
            offset = text_end - lengths
            starts = np.concatenate([s + o for (s, _), o in zip(spans, offset)] + [np.zeros(0, np.int64)])
            ends = np.concatenate([e + o for (_, e), o in zip(spans, offset)] + [np.zeros(0, np.int64)])
            pieces_end = np.cumsum(np.fromiter((len(s) for s, _ in spans), dtype=np.int64, count=len(spans)))
        piece_end = np.zeros(len(starts) if len(texts) > 1 else 0, np.int64)  # only needed to split texts
        t = self._tables
        ids = _encode_pieces(buf, starts, ends, t["tok_bytes"], t["tok_off"], t["tab_rank"], t["tab_hash"],
                             t["byte_rank"], t["pair_key"], t["pair_val"], *cache, self.heap_from, piece_end)
        if len(texts) == 1:
            return ids, np.array([len(ids)], np.int64)
        return ids, np.concatenate([[0], piece_end])[pieces_end]


def _new_cache(size: int):
    """(hash uint64 (S,), length int32 (S,), bytes uint8 (S, 32), n_tokens int32 (S,), tokens int32 (S, 32)); S=0: off."""
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
            raise ValueError(f"rank {rank} is given to two tokens, {by_rank[rank]!r} and {token!r}; ranks must be unique")
        if not token:
            raise ValueError("the empty byte string cannot be a token")
        by_rank[rank] = token
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ValueError(f"byte-level BPE needs all 256 single bytes as tokens; missing {len(missing)}, e.g. {bytes(missing[:5])!r}")
    lengths = np.fromiter((len(t) for t in by_rank), dtype=np.int64, count=n_ids)
    tok_off = np.zeros(n_ids + 1, np.int64)
    np.cumsum(lengths, out=tok_off[1:])
    tok_bytes = np.frombuffer(b"".join(by_rank), dtype=np.uint8)
    tab_rank, tab_hash, byte_rank, pair_key, pair_val = _build_kernel(tok_bytes, tok_off)
    return dict(tok_bytes=tok_bytes, tok_off=tok_off, tab_rank=tab_rank, tab_hash=tab_hash, byte_rank=byte_rank,
                pair_key=pair_key, pair_val=pair_val)


# ----------------------------------------------------------------------------------------------
# Numba: hashing, the two tables, BPE on one piece, the whole-text kernel
# ----------------------------------------------------------------------------------------------

@_inline
def _hash_bytes(data, a, b):
    """FNV-1a 64 of data[a:b], with a final mix so the low bits (the table index) depend on every byte."""
    h = np.uint64(14695981039346656037)
    for k in range(a, b):
        h = (h ^ np.uint64(data[k])) * np.uint64(1099511628211)
    return h ^ (h >> np.uint64(29))


@_helper
def _hash_pair(key):
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return h ^ (h >> np.uint64(31))


@_inline
def _same_bytes(data, a, b, tok_bytes, off):
    for k in range(b - a):
        if data[a + k] != tok_bytes[off + k]:
            return False
    return True


@_inline
def _lookup_bytes(data, a, b, h, tok_bytes, tok_off, tab_rank, tab_hash):
    """The rank of the token whose bytes are data[a:b] (h = their hash), or -1."""
    mask = tab_rank.shape[0] - 1
    slot = np.int64(h & np.uint64(mask))
    while True:
        r = tab_rank[slot]
        if r < 0:
            return np.int64(-1)
        if tab_hash[slot] == h and tok_off[r + 1] - tok_off[r] == b - a and _same_bytes(data, a, b, tok_bytes, tok_off[r]):
            return np.int64(r)
        slot = (slot + 1) & mask


@_inline
def _pair_rank(left, right, pair_key, pair_val):
    """The rank of the token bytes(left) + bytes(right), or _NO_RANK."""
    key = (np.int64(left) << 32) | np.int64(right)
    mask = pair_key.shape[0] - 1
    slot = np.int64(_hash_pair(key) & np.uint64(mask))
    while True:
        k = pair_key[slot]
        if k == key:
            return np.int64(pair_val[slot])
        if k < 0:
            return _NO_RANK
        slot = (slot + 1) & mask


@_kernel
def _build_kernel(tok_bytes, tok_off):
    n_ids = tok_off.shape[0] - 1
    cap = 1
    while cap < 2 * n_ids:
        cap *= 2
    tab_rank = np.full(cap, _EMPTY, np.int32)
    tab_hash = np.zeros(cap, np.uint64)
    for r in range(n_ids):
        a, b = tok_off[r], tok_off[r + 1]
        if b == a:
            continue  # an unused rank (ranks may have gaps)
        h = _hash_bytes(tok_bytes, a, b)
        slot = np.int64(h & np.uint64(cap - 1))
        while tab_rank[slot] >= 0:
            slot = (slot + 1) & (cap - 1)
        tab_rank[slot] = r
        tab_hash[slot] = h
    byte_rank = np.empty(256, np.int32)
    one = np.empty(1, np.uint8)
    for v in range(256):
        one[0] = v
        byte_rank[v] = _lookup_bytes(one, 0, 1, _hash_bytes(one, 0, 1), tok_bytes, tok_off, tab_rank, tab_hash)
    # every split of every token into two tokens: (left, right) -> token. Count, then fill.
    n_pairs = _token_splits(tok_bytes, tok_off, tab_rank, tab_hash, np.full(1, -1, np.int64), np.empty(1, np.int32), False)
    pcap = 2
    while pcap < 2 * n_pairs:
        pcap *= 2
    pair_key = np.full(pcap, -1, np.int64)
    pair_val = np.empty(pcap, np.int32)
    _token_splits(tok_bytes, tok_off, tab_rank, tab_hash, pair_key, pair_val, True)
    return tab_rank, tab_hash, byte_rank, pair_key, pair_val


@_helper
def _token_splits(tok_bytes, tok_off, tab_rank, tab_hash, pair_key, pair_val, fill):
    """Every (left, right) with bytes(left) + bytes(right) == bytes(token): counted, or inserted when fill."""
    n_pairs = 0
    mask = pair_key.shape[0] - 1
    for r in range(tok_off.shape[0] - 1):
        a, b = tok_off[r], tok_off[r + 1]
        for s in range(a + 1, b):
            left = _lookup_bytes(tok_bytes, a, s, _hash_bytes(tok_bytes, a, s), tok_bytes, tok_off, tab_rank, tab_hash)
            if left < 0:
                continue
            right = _lookup_bytes(tok_bytes, s, b, _hash_bytes(tok_bytes, s, b), tok_bytes, tok_off, tab_rank, tab_hash)
            if right < 0:
                continue
            n_pairs += 1
            if fill:
                key = (left << 32) | right
                slot = np.int64(_hash_pair(key) & np.uint64(mask))
                while pair_key[slot] >= 0:
                    slot = (slot + 1) & mask
                pair_key[slot] = key
                pair_val[slot] = r
    return n_pairs


@_helper
def _bpe_scan(data, a, b, byte_rank, pair_key, pair_val, ids, rk, out, m_out):
    """tiktoken's loop on ids: rk[t] = rank of ids[t] + ids[t+1]; merge the leftmost lowest; O(n^2)."""
    m = b - a
    for t in range(m):
        ids[t] = byte_rank[data[a + t]]
    for t in range(m - 1):
        rk[t] = _pair_rank(ids[t], ids[t + 1], pair_key, pair_val)
    while m > 1:
        best = _NO_RANK
        bi = -1
        for t in range(m - 1):
            if rk[t] < best:  # strict <: the leftmost of equal ranks
                best = rk[t]
                bi = t
        if bi < 0:
            break
        ids[bi] = best  # parts bi and bi+1 -> one token, whose id is the pair's rank
        for t in range(bi + 1, m - 1):  # remove part bi+1
            ids[t] = ids[t + 1]
        for t in range(bi + 1, m - 2):
            rk[t] = rk[t + 1]
        m -= 1
        if bi > 0:
            rk[bi - 1] = _pair_rank(ids[bi - 1], ids[bi], pair_key, pair_val)
        if bi < m - 1:
            rk[bi] = _pair_rank(ids[bi], ids[bi + 1], pair_key, pair_val)
    for t in range(m):
        out[m_out + t] = ids[t]
    return m_out + m


@_helper
def _heap_push(heap, size, item):
    k = size
    heap[k] = item
    while k > 0:
        parent = (k - 1) >> 1
        if heap[parent] <= heap[k]:
            break
        heap[parent], heap[k] = heap[k], heap[parent]
        k = parent
    return size + 1


@_helper
def _heap_pop(heap, size):
    top = heap[0]
    size -= 1
    heap[0] = heap[size]
    k = 0
    while True:
        child = 2 * k + 1
        if child >= size:
            break
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if heap[k] <= heap[child]:
            break
        heap[k], heap[child] = heap[child], heap[k]
        k = child
    return top, size


@_helper
def _bpe_heap(data, a, b, byte_rank, pair_key, pair_val, ids, rk, nxt, prv, heap, out, m_out):
    """The same merges as _bpe_scan for long pieces: parts in a linked list, pairs in a min-heap of
    rank * 2**32 + position (lowest rank, then leftmost, as tiktoken). A popped entry is stale when
    rk[t] changed since: a part only grows to the right, so its pair's token (and rank) never repeats."""
    m = b - a
    hn = 0
    for t in range(m):
        ids[t] = byte_rank[data[a + t]]
        nxt[t] = t + 1
        prv[t] = t - 1
    rk[m - 1] = _NO_RANK
    for t in range(m - 1):
        rk[t] = _pair_rank(ids[t], ids[t + 1], pair_key, pair_val)
        if rk[t] != _NO_RANK:
            hn = _heap_push(heap, hn, (rk[t] << 32) | t)
    while hn > 0:
        top, hn = _heap_pop(heap, hn)
        r = top >> 32
        t = top & 0xFFFFFFFF
        if rk[t] != r:
            continue
        u = nxt[t]  # merge part t with part u, its right neighbour
        ids[t] = r
        rk[u] = _NO_RANK
        nxt[t] = nxt[u]
        if nxt[u] < m:
            prv[nxt[u]] = t
            rk[t] = _pair_rank(ids[t], ids[nxt[t]], pair_key, pair_val)
            if rk[t] != _NO_RANK:
                hn = _heap_push(heap, hn, (rk[t] << 32) | t)
        else:
            rk[t] = _NO_RANK
        p = prv[t]
        if p >= 0:
            rk[p] = _pair_rank(ids[p], ids[t], pair_key, pair_val)
            if rk[p] != _NO_RANK:
                hn = _heap_push(heap, hn, (rk[p] << 32) | p)
    t = 0
    while t < m:
        out[m_out] = ids[t]
        m_out += 1
        t = nxt[t]
    return m_out


@_helper
def _grow(out, used, need):
    grown = np.empty(max(2 * out.shape[0], need), out.dtype)
    grown[:used] = out[:used]
    return grown


@_kernel
def _encode_pieces(data, starts, ends, tok_bytes, tok_off, tab_rank, tab_hash, byte_rank, pair_key, pair_val,
                   c_hash, c_len, c_bytes, c_ntok, c_toks, heap_from, piece_end):
    """Token ids of all pieces data[starts[p]:ends[p]]: whole-token lookup, else the cache, else BPE.

    piece_end: (n_pieces,) filled with the end of each piece's ids in the output, or (0,) for none."""
    n_pieces = starts.shape[0]
    total = 0
    longest = 1
    for p in range(n_pieces):
        total += ends[p] - starts[p]
        longest = max(longest, ends[p] - starts[p])
    out = np.empty(total // 2 + 16, np.uint32)  # grown when needed (a piece of L bytes has at most L tokens)
    ids = np.empty(longest, np.int64)
    rk = np.empty(longest, np.int64)
    big = longest if longest >= heap_from else 1
    nxt = np.empty(big, np.int64)
    prv = np.empty(big, np.int64)
    heap = np.empty(3 * big, np.int64)
    cmask = np.uint64(max(c_len.shape[0], 1) - 1)
    use_cache = c_len.shape[0] > 0
    want_ends = piece_end.shape[0] > 0
    m_out = 0
    for p in range(n_pieces):
        if want_ends and p > 0:
            piece_end[p - 1] = m_out
        a, b = starts[p], ends[p]
        L = b - a
        if m_out + L > out.shape[0]:
            out = _grow(out, m_out, m_out + L)
        if L == 1:
            out[m_out] = byte_rank[data[a]]
            m_out += 1
            continue
        h = _hash_bytes(data, a, b)
        r = _lookup_bytes(data, a, b, h, tok_bytes, tok_off, tab_rank, tab_hash)
        if r >= 0:  # the whole piece is a token
            out[m_out] = r
            m_out += 1
            continue
        slot = -1
        if use_cache and L <= c_bytes.shape[1]:
            slot = np.int64((h >> np.uint64(40)) & cmask)
            if c_len[slot] == L and c_hash[slot] == h:
                hit = True
                for k in range(L):
                    if c_bytes[slot, k] != data[a + k]:
                        hit = False
                        break
                if hit:
                    for k in range(c_ntok[slot]):
                        out[m_out + k] = c_toks[slot, k]
                    m_out += c_ntok[slot]
                    continue
        if L < heap_from:
            m_new = _bpe_scan(data, a, b, byte_rank, pair_key, pair_val, ids, rk, out, m_out)
        else:
            m_new = _bpe_heap(data, a, b, byte_rank, pair_key, pair_val, ids, rk, nxt, prv, heap, out, m_out)
        if slot >= 0:  # remember this piece (direct-mapped: it replaces whatever was in its slot)
            c_hash[slot] = h
            c_len[slot] = L
            c_ntok[slot] = m_new - m_out
            for k in range(L):
                c_bytes[slot, k] = data[a + k]
            for k in range(m_new - m_out):
                c_toks[slot, k] = out[m_out + k]
        m_out = m_new
    if want_ends:
        piece_end[n_pieces - 1] = m_out
    return out[:m_out]
