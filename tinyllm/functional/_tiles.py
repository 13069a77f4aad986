"""The tiles of attention: what memory_efficient_attention and flash_attention share.

Both kernels cut the (L, S) score matrix into tiles and never hold more than a
few of them. They share four things, kept here:

1. Positions. Query i sits at position offset + i, key j at position j
   (offset = 0: torch's top-left alignment; a KV cache holding S - L keys in
   front of the L new queries: offset = S - L). Key j is visible to query i when

       causal:   j <= offset + i
       window:   j >  offset + i - window      (Mistral's sliding window; it implies causal)

   and ALiBi (Press et al. 2021) adds -m_h · |offset + i - j| to head h's scores.
   Only distances enter, so any offset gives the same numbers for the same
   (query, key) pairs: a rolling cache may hand its keys from any position on.

2. Ranges. A block of queries [i0, i1) sees at most the keys

       lo = max(0, offset + i0 - window + 1)     hi = min(S, offset + i1)        (key_range)

   and a block of keys [j0, j1) is seen at most by the queries [j0 - offset, j1 - offset + window - 1)
   (query_range). Every key in key_range is seen by some query of the block, so a
   kernel that loops only over these ranges computes no tile that is wholly masked:
   causal attention does about half the work of full attention, a window of W
   about L·W instead of L·S.

3. Rows. With grouped-query attention (Hk key heads, g = Hq / Hk query heads each)
   a query tensor (B, Hq, L, E) is laid out as (B, Hk, L·g, E): row r is query
   r // g of query head hk·g + r % g. A block of queries [i0, i1) is then the
   contiguous rows [i0·g, i1·g), and one matrix product per key head serves its
   g query heads.

4. The tile's bias: ALiBi's distances and -inf where a key is hidden, added to a
   tile of scores in place (tile_bias_); a tile that is wholly visible and has
   no ALiBi gets nothing.

Example: L = S = 6, causal, window 3, offset 0: queries [2, 4) see keys [0, 4);
keys [4, 6) are seen by queries [4, 6); query 3 sees keys 1, 2, 3.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from tinyllm import backend
from tinyllm.functional._util import as_tensor


class Spec(NamedTuple):
    """The sizes and options of one attention call (checked by check_args)."""

    B: int
    Hk: int       # key/value heads
    g: int        # query heads per key head
    L: int        # queries
    S: int        # keys
    scale: float
    causal: bool
    window: int | None
    offset: int
    slopes: object  # ALiBi slopes (Hk, 1, g, 1) on the inputs' device and dtype, or None


def check_args(name, query, key, value, is_causal, scale, enable_gqa, window, offset, alibi_slopes):
    """(q, k, v) as Tensors and their Spec; a ValueError/TypeError that says what to pass otherwise."""
    q, k, v = (as_tensor(t, f"{name}: {n}") for t, n in ((query, "query"), (key, "key"), (value, "value")))
    for n, t in (("query", q), ("key", k), ("value", v)):
        if t.ndim != 4:
            raise ValueError(f"{name}: {n} must be 4-D (batch, heads, seq, features), got shape {tuple(t.shape)}; "
                             f"add the missing dims with [None]")
        if t.dtype != q.dtype or t.dtype.kind != "f":
            raise TypeError(f"{name}: query, key and value must share one floating dtype, got "
                            f"{q.dtype}, {k.dtype}, {v.dtype}")
        if t.device != q.device:
            raise RuntimeError(f"{name}: {n} is on {t.device!r} but query is on {q.device!r}")
    B, Hq, L, E = q.shape
    Hk, S = k.shape[1], k.shape[2]
    if k.shape[0] != B or v.shape[0] != B:
        raise ValueError(f"{name}: query, key and value must have the same batch size, got "
                         f"{q.shape[0]}, {k.shape[0]}, {v.shape[0]}")
    if k.shape[3] != E:
        raise ValueError(f"{name}: query and key must have the same last dim, got {E} and {k.shape[3]}")
    if v.shape[1] != Hk or v.shape[2] != S:
        raise ValueError(f"{name}: key {tuple(k.shape)} and value {tuple(v.shape)} must have the same heads "
                         f"and sequence length")
    if Hq != Hk and not enable_gqa:
        raise ValueError(f"{name}: query has {Hq} heads but key has {Hk}; for grouped-query attention "
                         f"pass enable_gqa=True")
    if Hq % Hk:
        raise ValueError(f"{name}: query heads must be a multiple of key/value heads, got {Hq} and {Hk}")
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"{name}: window must be a positive integer or None, got {window!r}")
        if not is_causal:
            raise ValueError(f"{name}: a sliding window is causal (query i sees keys i - window < j <= i); "
                             f"pass is_causal=True with window={window}")
        window = int(window)
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise ValueError(f"{name}: offset must be an integer (query i sits at position offset + i), got {offset!r}")
    slopes = None
    if alibi_slopes is not None:
        host = np.asarray(backend.to_numpy(alibi_slopes) if backend.is_array(alibi_slopes) else alibi_slopes,
                          dtype=np.float64)
        if host.shape != (Hq,):
            raise ValueError(f"{name}: alibi_slopes must hold one slope per query head, shape ({Hq},), "
                             f"got {host.shape}")
        g = Hq // Hk  # query head h = hk·g + i -> (Hk, 1, g, 1), as the rows are laid out
        slopes = backend.asarray(host.reshape(Hk, 1, g, 1), dtype=q.dtype, device=q.device)
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    return q, k, v, Spec(B, Hk, Hq // Hk, L, S, scale, bool(is_causal), window, int(offset), slopes)


def check_block(name: str, what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: {what} must be a positive integer, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- layout


def to_rows(x, g: int, scale: float = 1.0):
    """(B, Hk·g, L, E) -> a fresh contiguous (B, Hk, L·g, E), times scale: row r = query r // g, head hk·g + r % g."""
    B, H, L, E = x.shape
    xp = backend.of(x)
    out = xp.empty((B, H // g, L, g, E), dtype=x.dtype)
    out[...] = x.reshape(B, H // g, g, L, E).transpose(0, 1, 3, 2, 4)  # (B,Hk,g,L,E) -> (B,Hk,L,g,E)
    if scale != 1.0:
        out *= x.dtype.type(scale)
    return out.reshape(B, H // g, L * g, E)


def from_rows(x, g: int):
    """(B, Hk, L·g, E) -> (B, Hk·g, L, E): the inverse of to_rows (a copy when g > 1)."""
    B, Hk, R, E = x.shape
    if g == 1:
        return x
    return x.reshape(B, Hk, R // g, g, E).transpose(0, 1, 3, 2, 4).reshape(B, Hk * g, R // g, E)


# ----------------------------------------------------------------------------- ranges


def key_range(spec: Spec, i0: int, i1: int) -> tuple[int, int]:
    """[lo, hi): the keys that queries [i0, i1) may see (empty when hi <= lo)."""
    if not spec.causal:
        return 0, spec.S
    lo = 0 if spec.window is None else max(0, spec.offset + i0 - spec.window + 1)
    return lo, min(spec.S, spec.offset + i1)


def query_range(spec: Spec, j0: int, j1: int) -> tuple[int, int]:
    """[lo, hi): the queries that may see a key in [j0, j1) (empty when hi <= lo)."""
    if not spec.causal:
        return 0, spec.L
    hi = spec.L if spec.window is None else min(spec.L, j1 - spec.offset + spec.window - 1)
    return max(0, j0 - spec.offset), hi


def tile_bias_(scores, spec: Spec, i0: int, i1: int, j0: int, j1: int):
    """Add ALiBi and the mask to a tile of scores (B, Hk, (i1-i0)·g, j1-j0), in place; returns it.

    The mask is built only for a tile that a causal or window edge crosses; a wholly visible
    tile without ALiBi is left as it is.
    """
    s = spec
    hidden_after = s.causal and j1 - 1 > s.offset + i0          # some key after some query
    hidden_before = s.window is not None and j0 <= s.offset + i1 - 1 - s.window  # some key out of the window
    if not (hidden_after or hidden_before or s.slopes is not None):
        return scores
    xp = backend.of(scores)
    dtype = scores.dtype
    qpos = (xp.arange(i0, i1) + s.offset)[:, None]  # (br, 1)
    kpos = xp.arange(j0, j1)[None, :]                # (1, bc)
    bias = None
    if s.slopes is not None:  # -m_h · |i - j|: (Hk, 1, g, 1) * (br, 1, bc) -> (Hk, br, g, bc)
        dist = xp.abs(qpos - kpos).astype(dtype)[:, None, :]
        bias = -s.slopes * dist
    if hidden_after or hidden_before:
        hidden = xp.zeros((i1 - i0, j1 - j0), dtype=bool)
        if hidden_after:
            hidden |= kpos > qpos
        if hidden_before:
            hidden |= kpos <= qpos - s.window
        neg = xp.where(hidden, dtype.type(-np.inf), dtype.type(0))[:, None, :]  # (br, 1, bc)
        bias = neg if bias is None else bias + neg
    B, Hk, R, n = scores.shape
    view = scores.reshape(B, Hk, i1 - i0, s.g, n)  # rows -> (query, head in group)
    view += bias
    return scores
