"""A prefix cache across requests: reuse the keys and values of a prompt prefix another request already computed.

Many requests to a served model start the same way (a system prompt, a few-shot
preamble, the earlier turns of a chat). The K/V of position t depends only on
tokens 0..t (attention is causal), so two requests that agree on their first n
tokens have the same K/V at positions 0..n-1, and the second request can copy
them instead of computing them. This is vLLM's automatic prefix caching (Kwon
et al. 2023, "PagedAttention", §4.4 and the vLLM design doc) and SGLang's
RadixAttention (Zheng et al. 2024), in their simplest form:

    a request's tokens are cut into blocks of block_size tokens; block i's key is a hash of ALL tokens 0..(i+1)·bs-1:
        h_0 = H(b"")                          H = BLAKE2b-128 over bytes
        h_i = H(h_{i-1} ‖ int64 bytes of tokens[i·bs : (i+1)·bs])
    lookup:  the longest run of blocks 0, 1, 2, ... whose keys are stored  -> copy their K/V (cache.set_prefix)
    compute: the rest with model(rest, cache=cache), which appends its K/V after the copied ones
    store:   every full block not yet stored (its K/V sliced out of the cache), most recently used last;
             while the stored bytes exceed max_bytes, evict the least recently used block.

Hashing the whole prefix, not the block alone, is what makes a match safe: the
same 16 tokens after a different beginning have different K/V, and a different key.

Example (block_size=4): request A = [5 1 2 7 | 3 3 0 9 | 4 4] stores 2 blocks (8 positions);
request B = [5 1 2 7 | 3 3 0 9 | 8] reuses both: positions 0-7 are hits, only position 8 is computed.
Request C = [5 1 2 7 | 3 3 0 9] (entirely cached) reuses positions 0-6 and computes position 7.
The last token is always computed: its logits (the next-token prediction) come only from a
forward pass over it, and the cache holds K/V, not logits (vLLM does the same).

Nothing but the speed changes: the logits of the computed positions equal a full
forward over the whole request (tests/test_prefix_cache.py, within 1e-5).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict

import numpy as np

from tinyllm import backend
from tinyllm.tensor import Tensor, no_grad

_DIGEST = 16  # bytes of BLAKE2b: 128 bits, collisions are not a practical concern


def block_hashes(tokens, block_size: int) -> list[bytes]:
    """The chained key of every FULL block of a 1-D token sequence (a trailing partial block has none).

    block_hashes([5, 1, 2, 7, 3], 2) -> [h_0, h_1]  (tokens 5 1, then 2 7; the lone 3 is no block),
    with h_1 = H(h_0 ‖ bytes of 2, 7): change token 0 and every key changes.
    """
    tokens = np.asarray(tokens, dtype="<i8")  # subtle: fixed width and byte order, so keys are stable everywhere
    keys, h = [], b""
    for i in range(len(tokens) // block_size):
        h = hashlib.blake2b(h + tokens[i * block_size:(i + 1) * block_size].tobytes(), digest_size=_DIGEST).digest()
        keys.append(h)
    return keys


@dataclasses.dataclass
class Block:
    """One stored block: K and V of block_size positions for every layer, (n_layer, n_kv_head, block_size, hs)."""
    keys: object
    values: object
    index: int       # its position in the sequence: it covers tokens index·bs .. (index+1)·bs - 1
    hits: int = 0    # how many requests reused it

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.values.nbytes)


@dataclasses.dataclass
class RequestStats:
    """What one prefill reused and computed.

    hit (B, T) bool: True where a position's K/V was copied from the cache (the first n_reused of each row).
    block_hits: full blocks (over all rows) whose K/V was copied, wholly or, for the block that holds the last
    token, all but its last position; block_misses: full blocks computed; stored / evicted: blocks added / dropped.
    """
    n_tokens: int
    n_reused: int
    hit: np.ndarray
    block_hits: int
    block_misses: int
    stored: int
    evicted: int

    @property
    def n_computed(self) -> int:
        return self.n_tokens - self.n_reused

    @property
    def hit_rate(self) -> float:
        return self.n_reused / self.n_tokens


@dataclasses.dataclass
class CacheStats:
    """Totals over every prefill of a PrefixCache (tokens counted per row)."""
    requests: int = 0
    tokens: int = 0
    hit_tokens: int = 0
    block_hits: int = 0
    block_misses: int = 0
    stored: int = 0
    evicted: int = 0

    @property
    def hit_rate(self) -> float:
        return self.hit_tokens / self.tokens if self.tokens else 0.0


class PrefixCache:
    """``logits, cache, stats = PrefixCache(model, block_size=16, max_bytes=64 << 20).prefill(ids)``.

    ids: a request, 1-D (T,) or a batch (B, T) of equally long requests, 1 <= T <= context_length.
    Returns the logits of the positions it computed, host float32 (B, T - n_reused, V) (the last one predicts the
    next token); a KVCache holding all T positions, ready for model(next_ids, cache=cache) decode steps; and a
    RequestStats. A batch reuses the positions every row has cached (the KVCache has one length for all rows).
    """

    def __init__(self, model, block_size: int = 16, max_bytes: int = 64 << 20):
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise ValueError(f"PrefixCache: block_size must be an integer >= 1, got {block_size!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
            raise ValueError(f"PrefixCache: max_bytes must be an integer >= 0 (0 stores nothing), got {max_bytes!r}")
        if model.config.window is not None:
            raise ValueError(f"PrefixCache: the model has a sliding window (window={model.config.window}); its "
                             "rolling cache keeps only the last window positions, not the whole prefixes stored here")
        self.model, self.block_size, self.max_bytes = model, int(block_size), int(max_bytes)
        self.blocks: OrderedDict[bytes, Block] = OrderedDict()  # least recently used first
        self.nbytes = 0
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self.blocks)

    def __repr__(self) -> str:
        return (f"PrefixCache(block_size={self.block_size}, blocks={len(self.blocks)}, "
                f"nbytes={self.nbytes:,}/{self.max_bytes:,}, hit_rate={self.stats.hit_rate:.3f})")

    def clear(self) -> None:
        """Drop every stored block (the running totals in .stats stay)."""
        self.blocks.clear()
        self.nbytes = 0

    def cached_positions(self, tokens) -> int:
        """How many leading positions of a 1-D request are stored (full blocks only; before the last-token rule)."""
        return self._stored_run(block_hashes(tokens, self.block_size)) * self.block_size

    def _stored_run(self, row_keys) -> int:
        """How many of blocks 0, 1, 2, ... are stored, counting until the first that is not."""
        n = 0
        while n < len(row_keys) and row_keys[n] in self.blocks:
            n += 1
        return n

    def _as_batch(self, ids) -> np.ndarray:
        raw = ids.data if isinstance(ids, Tensor) else ids
        ids = backend.to_numpy(raw) if backend.is_array(raw) else np.asarray(raw)
        if ids.ndim == 1:
            ids = ids[None]  # (T,) -> (1, T)
        if ids.dtype.kind not in "iu" or ids.ndim != 2:
            raise ValueError(f"PrefixCache.prefill: ids must be integer token ids of shape (T,) or (B, T), "
                             f"got {ids.dtype} array of shape {ids.shape}")
        T, ctx = ids.shape[1], self.model.config.context_length
        if T == 0:
            raise ValueError("PrefixCache.prefill: a request needs at least one token (its logits come from the last)")
        if T > ctx:
            raise ValueError(f"PrefixCache.prefill: the request has T={T} tokens but the model's context_length is "
                             f"{ctx}; crop it to its last {ctx} tokens")
        return ids.astype(np.int64)

    @no_grad()
    def prefill(self, ids):
        """(logits (B, T - n_reused, V), KVCache with T positions, RequestStats); see the class docstring."""
        ids = self._as_batch(ids)
        B, T = ids.shape
        bs, model = self.block_size, self.model
        keys = [block_hashes(row, bs) for row in ids]  # per row, one key per full block
        found = [self._stored_run(row_keys) for row_keys in keys]  # the longest stored run of blocks, per row
        # subtle: never reuse all T positions: the last token's logits need a forward pass over it, so an entirely
        # cached request copies T-1 positions (all but the last of its final block) and computes the last one.
        n_reused = min(min(found) * bs, T - 1)
        used_blocks = -(-n_reused // bs)  # ceil: the final block may be used for all but its last position

        cache = model.make_cache(batch_size=B)
        if n_reused:
            k, v = [], []
            for row_keys in keys:
                blocks = [self.blocks[key] for key in row_keys[:used_blocks]]
                xp = backend.of(blocks[0].keys)
                k.append(xp.concatenate([b.keys for b in blocks], axis=2)[:, :, :n_reused])  # (L, nkv, n, hs)
                v.append(xp.concatenate([b.values for b in blocks], axis=2)[:, :, :n_reused])
                for b in blocks:
                    b.hits += 1
            cache.set_prefix(xp.stack(k, axis=1), xp.stack(v, axis=1))  # B x (L,nkv,n,hs) -> (L, B, nkv, n, hs)

        was_training = model.training
        model.eval()
        try:
            logits, _ = model(ids[:, n_reused:], cache=cache)  # (B, T - n_reused, V); appends K/V n_reused..T-1
        finally:
            model.train(was_training)
        # (a NumPy array has .data too)
        logits = backend.to_numpy(logits.data if isinstance(logits, Tensor) else logits)

        stored, evicted = 0, 0
        for b, row_keys in enumerate(keys):
            # subtle: walk the blocks deepest first, so a request's first block ends up the most recently used and
            # eviction takes the tails of chains before their heads (a child without its parent is unreachable).
            for i in reversed(range(len(row_keys))):
                key = row_keys[i]
                if key in self.blocks:
                    self.blocks.move_to_end(key)
                    continue
                block = Block(cache.keys[:, b, :, i * bs:(i + 1) * bs].copy(),  # (L, nkv, bs, hs)
                              cache.values[:, b, :, i * bs:(i + 1) * bs].copy(), index=i)
                if block.nbytes > self.max_bytes:
                    continue  # would be evicted at once
                self.blocks[key] = block
                self.blocks.move_to_end(key)
                self.nbytes += block.nbytes
                stored += 1
        while self.nbytes > self.max_bytes:
            _, old = self.blocks.popitem(last=False)
            self.nbytes -= old.nbytes
            evicted += 1

        hit = np.zeros((B, T), dtype=bool)
        hit[:, :n_reused] = True
        stats = RequestStats(n_tokens=T, n_reused=n_reused, hit=hit, block_hits=B * used_blocks,
                             block_misses=B * (T // bs - used_blocks), stored=stored, evicted=evicted)
        s = self.stats
        s.requests += B
        s.tokens += B * T
        s.hit_tokens += B * n_reused
        s.block_hits += stats.block_hits
        s.block_misses += stats.block_misses
        s.stored += stored
        s.evicted += evicted
        return logits, cache, stats
