"""The Numba kernels of the BPE encoder (encoder.py holds the reference, the Encoder and its API).

What they compute is encoder.py's ``bpe_reference`` (tiktoken's rule: merge the
adjacent pair whose concatenated bytes are the lowest-ranked token, leftmost on
a tie), on token ids instead of byte strings:

    _build_kernel     from the token bytes by rank (tok_bytes, tok_off): a bytes -> rank
                      hash table (tab_rank, tab_hash), the rank of each single byte, and
                      the pair table (left id, right id) -> rank of their concatenation,
                      from every split of every token into two tokens
    _bpe_scan         one piece, tiktoken's O(n^2) loop: rescan the pairs, merge the best
    _bpe_heap         the same merges for long pieces, O(n log n): a linked list of parts
                      and a min-heap of rank * 2**32 + position
    _encode_pieces    all pieces of a text (or of many texts): a piece that is a token is
                      looked up whole, else found in the direct-mapped piece cache, else BPE'd

Worked example, ranks {a:0, b:1, c:2, ab:3, bc:4, abc:5}: the pair table holds
(a, b) -> 3, (b, c) -> 4, (ab, c) -> 5 and (a, bc) -> 5, so BPE of b"abcab" goes
[0, 1, 2, 0, 1] -> [3, 2, 0, 1] -> [3, 2, 3] -> [5, 3], as in encoder.py's docstring.

Length: ~335 lines: the kernels share one hash-table and pair-table layout, so they
stay together rather than each re-describing it.
"""

from __future__ import annotations

import numba
import numpy as np

_kernel = numba.njit(cache=True, nogil=True)
_helper = numba.njit(cache=True)
_inline = numba.njit(cache=True)
_EMPTY = np.int32(-1)
_NO_RANK = np.int64(2**62)


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
        if tab_hash[slot] == h and tok_off[r + 1] - tok_off[r] == b - a \
                and _same_bytes(data, a, b, tok_bytes, tok_off[r]):
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
    n_pairs = _token_splits(tok_bytes, tok_off, tab_rank, tab_hash, np.full(1, -1, np.int64), np.empty(1, np.int32),
                            False)
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
