"""The Numba kernels of BPE training (train.py is the driver: counting pre-tokens, train_fast, progress).

Same algorithm, same tie-breaking and same merges as ``train_reference`` (the
tests check merge for merge); what changes is the bookkeeping, all in flat arrays:

    words    one int64 buffer holding every unique pre-token as token ids;
             word w is buf[wstart[w] : wstart[w] + wlen[w]] and occurs wcount[w] times.
             A merge rewrites a word in place (it only gets shorter).
    pairs    an open-addressing hash table (left, right) -> count, plus the head of
             a linked list of the words that contain the pair (the ``where`` index:
             merging (a, b) visits only those words, never the whole corpus). One
             row per pair, so that a pair's fields share a cache line.
    heap     a binary max-heap of (count, pair key): highest count first, then the
             smallest pair (key = left * 2**31 + right orders pairs like (left, right)).
             Entries are never updated in place ("lazy deletion"): a popped entry
             whose count is stale is pushed back with the current count (if the count
             went down) or dropped; a pair whose count went UP gets a fresh entry.
             The popped entry that matches its pair's count is the best pair: every
             live pair has an entry >= its count, and ties pop smallest-key first.
    tokens   a byte trie of the vocabulary: merging (a, b) walks from a's node
             along b's bytes; if that node already is a token (the same bytes made
             by another merge), its id is reused, as in the reference.

A merge of (a, b) -> n in a word updates only the neighbours of each occurrence,
left to right (x a b y -> x n y):  (x, a) -1, (x, n) +1, (b, y) -1, (n, y) +1, where
x is what was already written (possibly an n), so "a b a b" and "a a a" come out
right; the merged pair's own count is set to 0 at the end (none is left).

The kernels run a chunk of merges per call so that Python can draw a progress bar
between calls; the arrays that grow (tables, lists, heap) are returned by each call.

Length: ~365 lines: every kernel works on the same flat-array layout described
here, so they stay in one file with that description.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EMPTY = -1
# columns of the pair table pt (one row per slot): the key, the count, the word list's head,
# the last word put on that list, the merge step that last marked the pair as touched
P_LEFT, P_RIGHT, P_COUNT, P_HEAD, P_LAST, P_STAMP = 0, 1, 2, 3, 4, 5
# columns of the trie-edge table: (node, byte) -> child node
E_NODE, E_BYTE, E_CHILD = 0, 1, 2
# columns of tok (one row per token id): its trie node and where its bytes are in the pool
T_NODE, T_OFF, T_LEN = 0, 1, 2
# slots of the scalar state sc
S_PAIRS, S_EDGES, S_TRIE, S_TOKENS, S_NODES, S_HEAP, S_TOUCHED, S_MERGES, S_POOL, S_STEP, S_DONE = range(11)
KEY_SHIFT = 2147483648  # 2**31: key = left * KEY_SHIFT + right


@njit(cache=True)
def _hash(left, right, mask):
    # subtle: int64 throughout and factors < 2**31, so nothing overflows (also without the JIT)
    h = np.int64(left) * 1540483477 + np.int64(right) * 668265261
    return (h ^ (h >> 29)) & mask


@njit(cache=True)
def _find(tab, left, right):
    """Slot of (left, right) in an open-addressing table (columns 0, 1 = key), or the empty slot for it."""
    mask = tab.shape[0] - 1
    i = _hash(left, right, mask)
    while tab[i, 0] != EMPTY and (tab[i, 0] != left or tab[i, 1] != right):
        i = (i + 1) & mask
    return i


@njit(cache=True)
def _reserve(tab, used, extra):
    """The table, doubled and rehashed as needed so that used + extra entries stay at load <= 1/2."""
    if 2 * (used + extra) <= tab.shape[0]:
        return tab
    cap = tab.shape[0]
    while 2 * (used + extra) > cap:
        cap *= 2
    new = np.full((cap, tab.shape[1]), EMPTY, np.int64)
    for i in range(tab.shape[0]):
        if tab[i, 0] != EMPTY:
            j = _find(new, tab[i, 0], tab[i, 1])
            new[j, :] = tab[i, :]
    return new


@njit(cache=True)
def _grow(arr, need):
    """arr (cap,) or (cap, fields) with its capacity (first axis) doubled until it holds `need` rows."""
    if need <= arr.shape[0]:
        return arr
    cap = max(arr.shape[0], 16)
    while cap < need:
        cap *= 2
    new = np.empty((cap,) + arr.shape[1:], arr.dtype)  # (cap,) or (cap, fields)
    new[: arr.shape[0]] = arr
    return new


@njit(cache=True)
def _better(c1, k1, c2, k2):
    return c1 > c2 or (c1 == c2 and k1 < k2)


@njit(cache=True)
def _heap_push(heap, sc, count, key):
    heap = _grow(heap, sc[S_HEAP] + 1)
    i = sc[S_HEAP]
    sc[S_HEAP] += 1
    while i > 0:  # sift up
        parent = (i - 1) // 2
        if not _better(count, key, heap[parent, 0], heap[parent, 1]):
            break
        heap[i, 0] = heap[parent, 0]
        heap[i, 1] = heap[parent, 1]
        i = parent
    heap[i, 0] = count
    heap[i, 1] = key
    return heap


@njit(cache=True)
def _heap_pop(heap, sc):
    """Remove the top entry (read it from heap[0] before calling)."""
    n = sc[S_HEAP] - 1
    sc[S_HEAP] = n
    count, key = heap[n, 0], heap[n, 1]  # the last entry sifts down from the root
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _better(heap[child + 1, 0], heap[child + 1, 1], heap[child, 0], heap[child, 1]):
            child += 1
        if not _better(heap[child, 0], heap[child, 1], count, key):
            break
        heap[i, 0] = heap[child, 0]
        heap[i, 1] = heap[child, 1]
        i = child
    heap[i, 0] = count
    heap[i, 1] = key


@njit(cache=True)
def _add(pt, nodes, sc, left, right, delta, w):
    """count(left, right) += delta (inserting the pair if new); on an increase, put word w on the pair's list.

    Returns the pair's slot. The caller has reserved room in pt and nodes.
    """
    s = _find(pt, left, right)
    if pt[s, P_LEFT] == EMPTY:
        pt[s, :] = EMPTY
        pt[s, P_LEFT] = left
        pt[s, P_RIGHT] = right
        pt[s, P_COUNT] = 0
        sc[S_PAIRS] += 1
    pt[s, P_COUNT] += delta
    if delta > 0 and pt[s, P_LAST] != w:  # (skip an immediate repeat of the same word)
        k = sc[S_NODES]
        nodes[k, 0] = w
        nodes[k, 1] = pt[s, P_HEAD]
        pt[s, P_HEAD] = k
        pt[s, P_LAST] = w
        sc[S_NODES] = k + 1
    return s


@njit(cache=True)
def _bump(pt, nodes, touched, sc, left, right, delta, w):
    """_add, and on an increase note the pair as touched: it gets a fresh heap entry after this merge."""
    s = _add(pt, nodes, sc, left, right, delta, w)
    if delta > 0 and pt[s, P_STAMP] != sc[S_STEP]:
        pt[s, P_STAMP] = sc[S_STEP]
        touched[sc[S_TOUCHED]] = left * KEY_SHIFT + right
        sc[S_TOUCHED] += 1


@njit(cache=True)
def _trie_walk(edges, trie_tok, sc, node, pool, off, length):
    """Follow (creating as needed) the trie path of pool[off:off+length] from node -> (edges, trie_tok, end node)."""
    for k in range(length):
        edges = _reserve(edges, sc[S_EDGES], 1)
        e = _find(edges, node, pool[off + k])
        if edges[e, E_NODE] == EMPTY:
            child = sc[S_TRIE]
            sc[S_TRIE] += 1
            trie_tok = _grow(trie_tok, child + 1)
            trie_tok[child] = EMPTY
            edges[e, E_NODE] = node
            edges[e, E_BYTE] = pool[off + k]
            edges[e, E_CHILD] = child
            sc[S_EDGES] += 1
        node = edges[e, E_CHILD]
    return edges, trie_tok, node


@njit(cache=True)
def _init(buf, wstart, wlen, wcount, pt, nodes, heap, edges, trie_tok, tok, pool, sc):
    """Build the trie of the starting vocabulary, count every pair once, fill the word lists and the heap."""
    for t in range(sc[S_TOKENS]):
        edges, trie_tok, node = _trie_walk(edges, trie_tok, sc, 0, pool, tok[t, T_OFF], tok[t, T_LEN])
        trie_tok[node] = t
        tok[t, T_NODE] = node
    for w in range(wstart.shape[0]):
        n = wlen[w]
        pt = _reserve(pt, sc[S_PAIRS], n)
        nodes = _grow(nodes, sc[S_NODES] + n)
        for i in range(wstart[w], wstart[w] + n - 1):
            _add(pt, nodes, sc, buf[i], buf[i + 1], wcount[w], w)
    for s in range(pt.shape[0]):
        if pt[s, P_LEFT] != EMPTY and pt[s, P_COUNT] > 0:
            heap = _heap_push(heap, sc, pt[s, P_COUNT], pt[s, P_LEFT] * KEY_SHIFT + pt[s, P_RIGHT])
    return pt, nodes, heap, edges, trie_tok


@njit(cache=True)
def _pop_best(pt, heap, sc):
    """The best pair's key (highest count, then smallest pair), or -1 when no pair is left."""
    while sc[S_HEAP] > 0:
        count, key = heap[0, 0], heap[0, 1]
        _heap_pop(heap, sc)
        s = _find(pt, key // KEY_SHIFT, key % KEY_SHIFT)
        now = pt[s, P_COUNT]
        if now == count:
            return key, heap
        if 0 < now < count:  # stale: the count went down since this entry was pushed
            heap = _heap_push(heap, sc, now, key)
    return -1, heap


@njit(cache=True)
def _new_token(left, right, edges, trie_tok, tok, pool, sc):
    """Id of bytes(left) + bytes(right): an existing token with those bytes, or a new one."""
    edges, trie_tok, node = _trie_walk(edges, trie_tok, sc, tok[left, T_NODE], pool, tok[right, T_OFF],
                                       tok[right, T_LEN])
    new_id = trie_tok[node]
    if new_id == EMPTY:  # subtle: else the same bytes came from another merge; reuse that id
        new_id = sc[S_TOKENS]
        sc[S_TOKENS] += 1
        n_left, n_right = tok[left, T_LEN], tok[right, T_LEN]
        off = sc[S_POOL]
        pool = _grow(pool, off + n_left + n_right)
        pool[off : off + n_left] = pool[tok[left, T_OFF] : tok[left, T_OFF] + n_left]
        pool[off + n_left : off + n_left + n_right] = pool[tok[right, T_OFF] : tok[right, T_OFF] + n_right]
        sc[S_POOL] = off + n_left + n_right
        trie_tok[node] = new_id
        tok[new_id, T_NODE] = node
        tok[new_id, T_OFF] = off
        tok[new_id, T_LEN] = n_left + n_right
    return new_id, edges, trie_tok, pool


@njit(cache=True)
def _train_steps(buf, wstart, wlen, wcount, visited, pt, nodes, heap, touched, edges, trie_tok, tok, pool, merges,
                 sc, n_tokens, max_steps):
    """Up to max_steps merges (stopping at n_tokens tokens or when no pair is left: sc[S_DONE] = 1)."""
    for _ in range(max_steps):
        if sc[S_TOKENS] >= n_tokens:
            break
        key, heap = _pop_best(pt, heap, sc)
        if key < 0:
            sc[S_DONE] = 1
            break
        left, right = key // KEY_SHIFT, key % KEY_SHIFT
        new_id, edges, trie_tok, pool = _new_token(left, right, edges, trie_tok, tok, pool, sc)
        merges = _grow(merges, sc[S_MERGES] + 1)
        merges[sc[S_MERGES], 0] = left
        merges[sc[S_MERGES], 1] = right
        merges[sc[S_MERGES], 2] = new_id
        sc[S_MERGES] += 1

        sc[S_STEP] += 1
        sc[S_TOUCHED] = 0
        s = _find(pt, left, right)
        item = pt[s, P_HEAD]
        pt[s, P_HEAD] = EMPTY  # the list is used up; a pair that comes back starts a new one
        pt[s, P_LAST] = EMPTY
        while item != EMPTY:
            w = nodes[item, 0]
            item = nodes[item, 1]
            if visited[w] == sc[S_STEP]:
                continue  # the list can hold a word twice
            visited[w] = sc[S_STEP]
            start, end, c = wstart[w], wstart[w] + wlen[w], wcount[w]
            n = wlen[w]  # at most n new pairs, list items and touched pairs for this word
            if 2 * (sc[S_PAIRS] + n) > pt.shape[0]:
                pt = _reserve(pt, sc[S_PAIRS], n)
            if sc[S_NODES] + n > nodes.shape[0]:
                nodes = _grow(nodes, sc[S_NODES] + n)
            if sc[S_TOUCHED] + n > touched.shape[0]:
                touched = _grow(touched, sc[S_TOUCHED] + n)
            r = start  # read position
            o = start  # write position (the word shrinks in place)
            while r < end:
                if r + 1 < end and buf[r] == left and buf[r + 1] == right:
                    if o > start:  # x a b -> x n, with x as already written
                        _bump(pt, nodes, touched, sc, buf[o - 1], left, -c, w)
                        _bump(pt, nodes, touched, sc, buf[o - 1], new_id, c, w)
                    buf[o] = new_id
                    o += 1
                    r += 2
                    if r < end:  # a b y -> n y
                        _bump(pt, nodes, touched, sc, right, buf[r], -c, w)
                        _bump(pt, nodes, touched, sc, new_id, buf[r], c, w)
                else:
                    buf[o] = buf[r]
                    o += 1
                    r += 1
            wlen[w] = o - start
        pt[_find(pt, left, right), P_COUNT] = 0  # every occurrence is merged (the bumps above went below 0 on overlaps)
        for t in range(sc[S_TOUCHED]):
            k = touched[t]
            count = pt[_find(pt, k // KEY_SHIFT, k % KEY_SHIFT), P_COUNT]
            if count > 0:
                heap = _heap_push(heap, sc, count, k)
    return pt, nodes, heap, touched, edges, trie_tok, pool, merges


# Counting the unique pre-tokens of a text (for train.count_pretokens_fast)

@njit(cache=True)
def _piece_hash(data, s, e):
    h = np.int64(0)
    for i in range(s, e):
        h = (h * 257 + data[i] + 1) & 0xFFFFFFFFFFFF  # 48 bits: no overflow, also without the JIT
    return h ^ (h >> 23)


@njit(cache=True)
def _count_pieces(data, starts, ends):
    """Unique pieces data[starts[k]:ends[k]] -> (first start, length, count) each, in first-seen order."""
    cap = 1024
    slot_id = np.full(cap, EMPTY, np.int64)  # hash slot -> unique piece id
    u = np.empty((1024, 4), np.int64)  # per unique piece: hash, first start, length, count
    n_u = 0
    for k in range(starts.shape[0]):
        s, e = starts[k], ends[k]
        h = _piece_hash(data, s, e)
        i = h & (cap - 1)
        while True:
            j = slot_id[i]
            if j == EMPTY:
                break
            if u[j, 0] == h and u[j, 2] == e - s:
                same = True
                for t in range(e - s):
                    if data[u[j, 1] + t] != data[s + t]:
                        same = False
                        break
                if same:
                    break
            i = (i + 1) & (cap - 1)
        if j != EMPTY:
            u[j, 3] += 1
            continue
        u = _grow(u, n_u + 1)
        u[n_u, 0], u[n_u, 1], u[n_u, 2], u[n_u, 3] = h, s, e - s, 1
        slot_id[i] = n_u
        n_u += 1
        if 2 * n_u > cap:  # rehash at load 1/2
            cap *= 2
            slot_id = np.full(cap, EMPTY, np.int64)
            for j in range(n_u):
                i = u[j, 0] & (cap - 1)
                while slot_id[i] != EMPTY:
                    i = (i + 1) & (cap - 1)
                slot_id[i] = j
    return u[:n_u, 1].copy(), u[:n_u, 2].copy(), u[:n_u, 3].copy()
