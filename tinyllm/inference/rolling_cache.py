"""RollingKVCache: the KV cache of a sliding-window model keeps only the last positions (§7).

With a sliding window of W (GPTConfig.window; Mistral, Jiang et al. 2023, §2)
query t sees the keys t - W + 1 .. t. A key older than that is never read
again, so the cache needs only the last W - 1 positions between two calls,
however long the text grows: memory O(W), not O(T), and a model whose
positions need no table (RoPE, ALiBi, none) generates past its
context_length without ever re-reading its prompt.

Mistral's rolling buffer keeps W slots and writes position i into slot
i mod W: no copies, but the keys sit out of order. This one keeps them in
order, in twice the room:

    slots (capacity = 2W by default)      slot s of layer l holds position start[l] + s
    write T new positions:
        keep  = the last W - 1 positions before them (fewer at the start of a text)
        if they fit after what is there:  write them there                     (most steps)
        elif keep + T fit:                move keep to slot 0, then write       (every W + 1 decode steps)
        else (a long prompt):             hand back keep + new as a fresh array;
                                          store only their last W - 1
        return keep + new, in position order, contiguous

so attention reads one contiguous, ordered run of keys, and on average one
position is copied per position written. The queries of a call are the last T
of the keys handed back; their first key sits at position length + T - S, so
masks and ALiBi, which depend on distances only, come out the same as with the
full cache (the module passes offset = S - T to the attention kernels).

Memory, per layer and position of capacity (as KVCache):

    bytes = 2 · n_layer · n_kv_head · head_dim · capacity · B · bytes_per_element

Example: window 4, capacity 8; after 10 positions start = 4 and slots 0..5
hold positions 4..9; writing position 10 hands back positions 7..10 (slots 3..6).
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend


def _positive(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"RollingKVCache: {name} must be a positive integer, got {v!r}")


class RollingKVCache:
    """keys, values: (n_layer, B, n_kv_head, capacity, head_dim); the last window - 1 positions are kept."""

    def __init__(self, n_layer: int, batch_size: int, n_kv_head: int, window: int, head_dim: int,
                 dtype=np.float32, device: str | None = None, capacity: int | None = None):
        capacity = 2 * window if capacity is None else capacity
        for name, v in (("n_layer", n_layer), ("batch_size", batch_size), ("n_kv_head", n_kv_head),
                        ("window", window), ("head_dim", head_dim), ("capacity", capacity)):
            _positive(name, v)
        if capacity < window:
            raise ValueError(f"RollingKVCache: capacity={capacity} must be at least window={window} "
                             f"(the kept window - 1 positions and one new one)")
        xp = backend.xp_for(device or backend.get_device())
        shape = (n_layer, batch_size, n_kv_head, capacity, head_dim)
        self.keys = xp.zeros(shape, dtype=dtype)
        self.values = xp.zeros(shape, dtype=dtype)
        self.window = int(window)
        self.length = 0                 # positions read so far (absolute; grows without bound)
        self.start = [0] * n_layer      # slot 0 of layer l holds position start[l]

    # ------------------------------------------------------------------ sizes
    @property
    def n_layer(self) -> int:
        return self.keys.shape[0]

    @property
    def batch_size(self) -> int:
        return self.keys.shape[1]

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    @property
    def nbytes(self) -> int:
        """Bytes held by the two arrays: fixed by the window, whatever the length."""
        return int(self.keys.nbytes + self.values.nbytes)

    # ------------------------------------------------------------------ writing
    def check_room(self, T: int) -> None:
        """There is always room: old positions make way (the method KVCache's callers call)."""

    def write(self, layer: int, k, v):
        """Store k, v (B, n_kv_head, T, head_dim) as positions [length, length + T) of `layer`.

        Returns (B, n_kv_head, S, head_dim) keys and values of positions [length + T - S, length + T):
        the last window - 1 before the new ones (or all there are), and the new ones. ``length``
        moves on only in advance(T), once every layer has written.
        """
        B, _, T, _ = k.shape
        if B != self.batch_size:
            raise ValueError(f"RollingKVCache: a batch of {B} rows does not match the cache's "
                             f"batch_size={self.batch_size}")
        keys, values = self.keys[layer], self.values[layer]  # (B, nkv, capacity, hs) views
        first = max(0, self.length - (self.window - 1))      # the oldest position a new query may see
        a, b = first - self.start[layer], self.length - self.start[layer]  # its slots [a, b)
        if b + T <= self.capacity:        # room after what is there
            pass
        elif b - a + T <= self.capacity:  # room once the kept positions move to the front
            keys[:, :, :b - a] = keys[:, :, a:b].copy()    # subtle: copy first, the ranges may overlap
            values[:, :, :b - a] = values[:, :, a:b].copy()
            self.start[layer], a, b = first, 0, b - a
        else:                             # a chunk longer than the room: hand back a fresh array
            xp = backend.of(keys)
            k_all = xp.concatenate([keys[:, :, a:b], k], axis=2)  # (B, nkv, kept + T, hs)
            v_all = xp.concatenate([values[:, :, a:b], v], axis=2)
            n = min(self.window - 1, k_all.shape[2])
            keys[:, :, :n], values[:, :, :n] = k_all[:, :, k_all.shape[2] - n:], v_all[:, :, v_all.shape[2] - n:]
            self.start[layer] = self.length + T - n
            return k_all, v_all
        keys[:, :, b:b + T] = k
        values[:, :, b:b + T] = v
        return keys[:, :, a:b + T], values[:, :, a:b + T]

    def advance(self, T: int) -> None:
        """Count T more positions as read (after every layer wrote them)."""
        self.length += T

    # ------------------------------------------------------------------ editing
    def reset(self) -> None:
        """Forget everything (the arrays are kept and overwritten)."""
        self.length = 0
        self.start = [0] * self.n_layer

    def __repr__(self) -> str:
        n_layer, B, nkv, cap, hs = self.keys.shape
        return (f"RollingKVCache(length={self.length}, window={self.window}, capacity={cap}, n_layer={n_layer}, "
                f"batch_size={B}, n_kv_head={nkv}, head_dim={hs}, {self.nbytes / 2**20:.2f} MiB)")
