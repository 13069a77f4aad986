"""Memory-efficient attention: the queries a chunk at a time (Rabe & Staats 2021).

"Self-attention does not need O(n²) memory" (the paper's title): row i of
the output needs only q_i and all of K and V. So instead of one (L, S) score
matrix, take the queries in chunks of c and keep a (c, S) one at a time:

    for each chunk of queries Q_c (rows r):
        S_c   = s · Q_c Kᵀ (+ ALiBi, -inf where masked)        (c, S): the only big array
        m_r   = rowmax(S_c),  l_r = rowsum(exp(S_c - m_r))
        O_c   = exp(S_c - m) V / l
        lse_r = m_r + log l_r                                  kept for the backward: (L,) per head

Memory: O(c · S) for the chunk instead of O(L · S), plus the output and lse.
The backward does the same per chunk: it recomputes P_c = exp(S_c - lse_c) from
the saved logsumexp instead of keeping P, and with D_r = rowsum(dO_r ⊙ O_r):

    dV   += P_cᵀ dO_c,   dS_c = P_c ⊙ (dO_c Vᵀ - D_c),
    dQ_c  = s · dS_c K,  dK  += s · dS_cᵀ Q_c

A chunk looks only at the keys it may see (tinyllm/functional/_tiles.py,
key_range): with a causal mask the first chunks read few keys, with a window
of W at most c + W - 1.

Rabe & Staats also cut the keys, with a running logsumexp; that step, with the
online softmax, is flash_attention (tinyllm/functional/flash_attention.py): memory
O(L + S) instead of O(c · S). Here each chunk's softmax is the plain one.

Example: L = S = 4096, 4 heads, float32, chunk_size = 256: the scores of one chunk
are 4 · 256 · 4096 · 4 B = 16 MiB, where scaled_dot_product_attention keeps
4 · 4096 · 4096 · 4 B = 256 MiB of P for the backward (and as much again while computing it).
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional._tiles import check_args, check_block, from_rows, key_range, tile_bias_, to_rows


class MemoryEfficientAttention(Function):
    """out = softmax(s · Q Kᵀ + mask) V, chunk_size queries at a time; saves Q, K, V, out and the row logsumexp."""

    @staticmethod
    def forward(ctx, q, k, v, spec, chunk_size):
        xp = backend.of(q)
        B, Hk, g, L = spec.B, spec.Hk, spec.g, spec.L
        Ev, dtype = v.shape[-1], q.dtype
        one = dtype.type(1)
        qs = to_rows(q, g, spec.scale)                  # (B, Hq, L, E) -> (B, Hk, L·g, E), times s
        kT = xp.ascontiguousarray(k.swapaxes(-1, -2))   # (B, Hk, E, S)
        v = xp.ascontiguousarray(v)
        out = xp.zeros((B, Hk, L * g, Ev), dtype=dtype)
        lse = xp.full((B, Hk, L * g), dtype.type(np.inf), dtype=dtype)  # +inf: a query that sees no key
        for i0 in range(0, L, chunk_size):
            i1 = min(i0 + chunk_size, L)
            rows = slice(i0 * g, i1 * g)
            lo, hi = key_range(spec, i0, i1)
            if hi <= lo:
                continue  # no key visible: the output stays 0 (torch's SDPA)
            P = tile_bias_(qs[:, :, rows] @ kT[..., lo:hi], spec, i0, i1, lo, hi)  # S_c, (B, Hk, n, hi-lo)
            m = P.max(axis=-1)
            m = xp.where(m == dtype.type(-np.inf), dtype.type(0), m)  # subtle: an all-masked row: exps 0, not NaN
            P -= m[..., None]
            xp.exp(P, out=P)
            total = P.sum(axis=-1)
            seen = total > 0
            total = xp.where(seen, total, one)
            out[:, :, rows] = (P @ v[:, :, lo:hi]) / total[..., None]  # (B,Hk,n,S') @ (B,Hk,S',Ev)
            lse[:, :, rows] = xp.where(seen, m + xp.log(total), dtype.type(np.inf))
        ctx.save_for_backward(qs, k, v, out, lse)
        ctx.spec, ctx.chunk_size = spec, chunk_size
        return from_rows(out, g)                        # (B, Hk, L·g, Ev) -> (B, Hq, L, Ev)

    @staticmethod
    def backward(ctx, grad_out):
        # P = exp(S - lse) per chunk (recomputed), D = rowsum(dO ⊙ O):
        #   dV += Pᵀ dO,  dS = P ⊙ (dO Vᵀ - D),  dQ = s · dS K,  dK += dSᵀ (s Q)
        qs, k, v, out, lse = ctx.saved
        spec, chunk_size = ctx.spec, ctx.chunk_size
        xp = backend.of(qs)
        g, L = spec.g, spec.L
        dO = to_rows(grad_out, g)                       # (B, Hq, L, Ev) -> (B, Hk, L·g, Ev)
        D = (dO * out).sum(axis=-1)                     # (B, Hk, L·g)
        k = xp.ascontiguousarray(k)
        kT = xp.ascontiguousarray(k.swapaxes(-1, -2))   # (B, Hk, E, S)
        vT = xp.ascontiguousarray(v.swapaxes(-1, -2))   # (B, Hk, Ev, S)
        dQ = xp.zeros_like(qs)
        dK = xp.zeros(k.shape, dtype=qs.dtype)
        dV = xp.zeros(v.shape, dtype=qs.dtype)
        for i0 in range(0, L, chunk_size):
            i1 = min(i0 + chunk_size, L)
            rows = slice(i0 * g, i1 * g)
            lo, hi = key_range(spec, i0, i1)
            if hi <= lo:
                continue
            Qc, dOc = qs[:, :, rows], dO[:, :, rows]
            P = tile_bias_(Qc @ kT[..., lo:hi], spec, i0, i1, lo, hi)  # S_c
            P -= lse[:, :, rows, None]
            xp.exp(P, out=P)                                       # P_c (0 where masked)
            dV[:, :, lo:hi] += P.swapaxes(-1, -2) @ dOc            # (B,Hk,S',n) @ (B,Hk,n,Ev)
            dS = dOc @ vT[..., lo:hi]                              # dP_c, (B, Hk, n, S')
            dS -= D[:, :, rows, None]
            dS *= P
            dQ[:, :, rows] = dS @ k[:, :, lo:hi]                   # (B,Hk,n,S') @ (B,Hk,S',E)
            dK[:, :, lo:hi] += dS.swapaxes(-1, -2) @ Qc            # (B,Hk,S',n) @ (B,Hk,n,E)
        dQ *= qs.dtype.type(spec.scale)
        return from_rows(dQ, g), dK, dV


def memory_efficient_attention(query, key, value, is_causal=False, scale=None, enable_gqa=False, window=None,
                               offset=0, alibi_slopes=None, chunk_size=256):
    """softmax(s · Q Kᵀ + mask) V, chunk_size queries at a time: memory O(chunk_size · S).

    Arguments as flash_attention (tinyllm/functional/flash_attention.py): query (B, Hq, L, E),
    key (B, Hk, S, E), value (B, Hk, S, Ev) -> (B, Hq, L, Ev); is_causal, window, offset,
    alibi_slopes, scale, enable_gqa. chunk_size: queries per chunk (any size >= 1; the result
    is the same).

    >>> q = k = tinyllm.tensor([[[[0.0], [1.0]]]]); v = tinyllm.tensor([[[[1.0], [3.0]]]])
    >>> F.memory_efficient_attention(q, k, v, is_causal=True, chunk_size=1)
    tensor([[[[1.       ],
              [2.4621172]]]])
    """
    name = "memory_efficient_attention"
    q, k, v, spec = check_args(name, query, key, value, is_causal, scale, enable_gqa, window, offset, alibi_slopes)
    return MemoryEfficientAttention.apply(q, k, v, spec=spec,
                                          chunk_size=check_block(name, "chunk_size", chunk_size))
