"""KVCache: the keys and values of the positions a model has already read (§6).

Generating token t+1 needs attention from position t over keys and values
0..t. Without a cache the model recomputes all of them at every step: step t
costs a forward over t tokens, and n tokens cost ~n²/2 position-forwards. But
the K and V of position j never change once computed (the mask keeps j from
seeing anything after it), so keep them:

    prefill:  model(prompt, cache)      K, V of positions 0..P-1 written, logits of the last one used
    decode:   model(last token, cache)  one position: its q attends over the cached K, V and its own

Each decode step is then one position through the network plus one row of
attention over the t cached keys.

Memory: per layer and position, one key and one value vector per KV head:

    bytes = 2 · n_layer · n_kv_head · head_dim · T · B · bytes_per_element

Example: GPT-2 small (12 layers, 12 heads of 64) at T = 1024, float32: 2·12·12·64·1024·4 = 75.5 MB
per sequence; grouped-query attention (n_kv_head < n_head) divides it by n_head / n_kv_head.

The arrays are preallocated at max_len; ``length`` says how many positions
hold data (the same for every row of the batch). Positions are absolute: RoPE
rotates a key by its position before it is stored, and ALiBi adds its bias to
the scores at each step from the positions, so a cached key is never touched again.
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend


class KVCache:
    """keys, values: (n_layer, B, n_kv_head, max_len, head_dim); positions [0, length) are filled."""

    def __init__(self, n_layer: int, batch_size: int, n_kv_head: int, max_len: int, head_dim: int,
                 dtype=np.float32, device: str | None = None):
        for name, v in (("n_layer", n_layer), ("batch_size", batch_size), ("n_kv_head", n_kv_head),
                        ("max_len", max_len), ("head_dim", head_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"KVCache: {name} must be a positive integer, got {v!r}")
        xp = backend.xp_for(device or backend.get_device())
        shape = (n_layer, batch_size, n_kv_head, max_len, head_dim)
        self.keys = xp.zeros(shape, dtype=dtype)
        self.values = xp.zeros(shape, dtype=dtype)
        self.length = 0

    # ------------------------------------------------------------------ sizes
    @property
    def n_layer(self) -> int:
        return self.keys.shape[0]

    @property
    def batch_size(self) -> int:
        return self.keys.shape[1]

    @property
    def max_len(self) -> int:
        return self.keys.shape[3]

    @property
    def nbytes(self) -> int:
        """Bytes held by the two arrays (all max_len positions: they are allocated up front)."""
        return int(self.keys.nbytes + self.values.nbytes)

    @staticmethod
    def bytes_needed(n_layer: int, n_kv_head: int, head_dim: int, T: int, batch_size: int = 1,
                     itemsize: int = 4) -> int:
        """2 · n_layer · n_kv_head · head_dim · T · B · itemsize (the formula in the module docstring)."""
        return 2 * n_layer * n_kv_head * head_dim * T * batch_size * itemsize

    # ------------------------------------------------------------------ writing
    def check_room(self, T: int) -> None:
        """Raise if T more positions do not fit."""
        if self.length + T > self.max_len:
            raise ValueError(f"KVCache: {T} new position(s) after the {self.length} cached ones exceed max_len="
                             f"{self.max_len}; make a longer cache (model.make_cache(max_len=...)), or crop() / "
                             f"reset() it and re-read a shorter window")

    def write(self, layer: int, k, v):
        """Store k, v (B, n_kv_head, T, head_dim) at positions [length, length + T) of `layer`.

        Returns views (B, n_kv_head, length + T, head_dim) of everything cached in that layer,
        the new positions included. ``length`` itself moves on only in advance(T), once every
        layer has written (the model calls it after its last block).
        """
        B, _, T, _ = k.shape
        if B != self.batch_size:
            raise ValueError(f"KVCache: a batch of {B} rows does not match the cache's batch_size={self.batch_size}")
        self.check_room(T)
        end = self.length + T
        self.keys[layer, :, :, self.length:end] = k
        self.values[layer, :, :, self.length:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, T: int) -> None:
        """Count T more positions as filled (after every layer wrote them)."""
        self.check_room(T)
        self.length += T

    # ------------------------------------------------------------------ editing
    def reset(self) -> None:
        """Forget everything (the arrays are kept and overwritten)."""
        self.length = 0

    def crop(self, n: int) -> None:
        """Keep the first n positions only (e.g. to re-read a different continuation)."""
        if not 0 <= n <= self.length:
            raise ValueError(f"KVCache.crop: n must be in [0, length={self.length}], got {n}")
        self.length = int(n)

    def set_prefix(self, keys, values) -> None:
        """Fill positions [0, n) from keys, values (n_layer, B, n_kv_head, n, head_dim); length = n."""
        want = self.keys.shape[:3] + self.keys.shape[4:]
        got = tuple(keys.shape[:3]) + tuple(keys.shape[4:])
        if got != want or tuple(values.shape) != tuple(keys.shape):
            raise ValueError(f"KVCache.set_prefix: keys and values must have shape (n_layer, B, n_kv_head, n, "
                             f"head_dim) = {want[:3]} + (n,) + {want[3:]}; got {tuple(keys.shape)} and "
                             f"{tuple(values.shape)}")
        n = keys.shape[3]
        if n > self.max_len:
            raise ValueError(f"KVCache.set_prefix: {n} positions do not fit in max_len={self.max_len}")
        self.keys[:, :, :, :n] = keys
        self.values[:, :, :, :n] = values
        self.length = int(n)

    def __repr__(self) -> str:
        n_layer, B, nkv, T, hs = self.keys.shape
        return (f"KVCache(length={self.length}/{T}, n_layer={n_layer}, batch_size={B}, n_kv_head={nkv}, "
                f"head_dim={hs}, {self.nbytes / 2**20:.2f} MiB)")
