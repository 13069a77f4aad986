"""FlashAttention: exact attention in tiles, never holding the (L, S) matrix (Dao et al. 2022; Dao 2023).

Plain attention materializes the scores S = s·Q Kᵀ and the weights P = softmax(S):
two (L, S) arrays per head, kept for the backward. At L = S = 8192 and 4 heads in
float32 that is 1 GiB each, while Q, K, V and the output are 8 MiB each. FlashAttention
computes the same output a tile at a time and keeps only O(L + S) numbers.

Forward (FlashAttention-2, Algorithm 1). For each block of queries Q_i (rows r):

    m_r = -inf,  l_r = 0,  acc_r = 0                  running max, running sum, unnormalized output
    for each block of keys K_j, V_j the block can see:
        S_ij   = s · Q_i K_jᵀ (+ ALiBi, -inf where masked)
        m_new  = max(m, rowmax(S_ij))
        P̃_ij   = exp(S_ij - m_new)                     every exponent <= 0
        l      = e^(m - m_new) · l + rowsum(P̃_ij)       the old terms rescaled to the new max
        acc    = e^(m - m_new) · acc + P̃_ij V_j
        m      = m_new
    O_i = acc / l,   lse_i = m + log l                  the row's logsumexp: all the backward needs

The online softmax is exact: after the last block, l = Σ_j e^(S_rj - m) over every
visible key and acc = Σ_j e^(S_rj - m) v_j, so acc / l is softmax(S_r) V.

Backward (FlashAttention-2, Algorithm 2). With D_r = rowsum(dO_r ⊙ O_r), the softmax
backward dS = P ⊙ (dP - rowsum(dP ⊙ P)) needs only D, since rowsum(dP ⊙ P) = dO_r · O_r.
For each block of keys j (outer loop), for each block of queries i that sees it:

    P_ij  = exp(S_ij - lse_i)                         recomputed: the forward kept only lse
    dV_j += P_ijᵀ dO_i
    dP_ij = dO_i V_jᵀ
    dS_ij = P_ij ⊙ (dP_ij - D_i)
    dQ_i += s · dS_ij K_j                               (on a GPU: atomic adds; here, adds)
    dK_j += s · dS_ijᵀ Q_i

Blocks that the causal mask or the window hide entirely are never visited
(tinyllm/functional/_tiles.py: key_range, query_range): causal attention does half
the tiles of full attention, a window of W about L·W / (block_q · block_k) of them.
Memory beyond the inputs and outputs: Q and Kᵀ laid out for the products, lse (L per
head) and a few tiles: O(L + S), where scaled_dot_product_attention keeps (L, S).

The tiles are the same array-module code on NumPy, CuPy and the strict device; on
NumPy each tile is a handful of BLAS products and elementwise passes over data that
stays in cache. The reference is the plain math, scaled_dot_product_attention
(tinyllm/functional/attention.py); the tests check the two against each other and
against PyTorch, values and gradients, for every block size down to 1.

Example (L = S = 2, E = 1, s = 1, causal, blocks of 1): q = k = [[0], [1]], v = [[1], [3]].
Query 1 meets key 0 first: m = 0, l = 1, acc = 1; then key 1 (score 1): m_new = 1,
l = e^-1 · 1 + 1 = 1.368, acc = e^-1 · 1 + 3 = 3.368, O = 3.368 / 1.368 = 2.462,
softmax's answer; lse = 1 + log 1.368 = 1.313.
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional._tiles import check_args, check_block, from_rows, key_range, query_range, tile_bias_, to_rows


class FlashAttention(Function):
    """out = softmax(s · Q Kᵀ + mask) V in tiles of block_q x block_k; saves Q, K, V, out and the row logsumexp."""

    @staticmethod
    def forward(ctx, q, k, v, spec, block_q, block_k):
        xp = backend.of(q)
        B, Hk, g, L = spec.B, spec.Hk, spec.g, spec.L
        Ev, dtype = v.shape[-1], q.dtype
        neg_inf, zero = dtype.type(-np.inf), dtype.type(0)
        qs = to_rows(q, g, spec.scale)                  # (B, Hq, L, E) -> (B, Hk, L·g, E), times s
        kT = xp.ascontiguousarray(k.swapaxes(-1, -2))   # (B, Hk, E, S): a tile K_jᵀ is a view
        v = xp.ascontiguousarray(v)
        out = xp.zeros((B, Hk, L * g, Ev), dtype=dtype)  # acc, then O, in the same rows
        lse = xp.empty((B, Hk, L * g), dtype=dtype)
        for i0 in range(0, L, block_q):
            i1 = min(i0 + block_q, L)
            rows = slice(i0 * g, i1 * g)
            Qi, acc = qs[:, :, rows], out[:, :, rows]   # (B, Hk, n, E), (B, Hk, n, Ev): views
            m = xp.full(Qi.shape[:-1], neg_inf, dtype=dtype)   # (B, Hk, n)
            total = xp.zeros(Qi.shape[:-1], dtype=dtype)   # l: the running sum
            lo, hi = key_range(spec, i0, i1)
            for j0 in range(lo, hi, block_k):
                j1 = min(j0 + block_k, hi)
                s = tile_bias_(Qi @ kT[..., j0:j1], spec, i0, i1, j0, j1)  # (B, Hk, n, bc)
                m_new = xp.maximum(m, s.max(axis=-1))
                # subtle: a row that has seen only masked keys so far has m_new = -inf; subtracting
                # 0 instead keeps exp(-inf - -inf) = NaN out (its exps are all 0 anyway)
                m_safe = xp.where(m_new == neg_inf, zero, m_new)
                s -= m_safe[..., None]
                xp.exp(s, out=s)                                       # P̃_ij
                alpha = xp.exp(m - m_safe)                             # e^(m - m_new): 0 on the first block
                total *= alpha
                total += s.sum(axis=-1)
                acc *= alpha[..., None]
                acc += s @ v[:, :, j0:j1]                              # (B,Hk,n,bc) @ (B,Hk,bc,Ev)
                m = m_new
            seen = total > 0  # a query that sees no key at all gets 0 (torch's SDPA), and lse = +inf: P = 0
            total = xp.where(seen, total, dtype.type(1))
            acc /= total[..., None]
            lse[:, :, rows] = xp.where(seen, m + xp.log(total), dtype.type(np.inf))
        ctx.save_for_backward(qs, k, v, out, lse)
        ctx.spec, ctx.blocks = spec, (block_q, block_k)
        return from_rows(out, g)                        # (B, Hk, L·g, Ev) -> (B, Hq, L, Ev)

    @staticmethod
    def backward(ctx, grad_out):
        # S = s·Q Kᵀ + mask, P = softmax(S) = exp(S - lse), O = P V; per tile (module docstring):
        #   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP - D) with D = rowsum(dO ⊙ O),
        #   dQ = s · dS K,  dK = s · dSᵀ Q = dSᵀ (s Q)  (s Q is what the forward kept)
        qs, k, v, out, lse = ctx.saved
        spec, (block_q, block_k) = ctx.spec, ctx.blocks
        xp = backend.of(qs)
        g, S = spec.g, spec.S
        dO = to_rows(grad_out, g)                       # (B, Hq, L, Ev) -> (B, Hk, L·g, Ev)
        D = (dO * out).sum(axis=-1)                     # (B, Hk, L·g)
        k = xp.ascontiguousarray(k)
        kT = xp.ascontiguousarray(k.swapaxes(-1, -2))   # (B, Hk, E, S)
        vT = xp.ascontiguousarray(v.swapaxes(-1, -2))   # (B, Hk, Ev, S)
        dQ = xp.zeros_like(qs)
        dK = xp.zeros(k.shape, dtype=qs.dtype)
        dV = xp.zeros(v.shape, dtype=qs.dtype)
        for j0 in range(0, S, block_k):                 # FlashAttention-2: keys outside, queries inside
            j1 = min(j0 + block_k, S)
            dKj, dVj = dK[:, :, j0:j1], dV[:, :, j0:j1]  # views: accumulated in place
            lo, hi = query_range(spec, j0, j1)
            for i0 in range(lo, hi, block_q):
                i1 = min(i0 + block_q, hi)
                rows = slice(i0 * g, i1 * g)
                Qi, dOi = qs[:, :, rows], dO[:, :, rows]
                P = tile_bias_(Qi @ kT[..., j0:j1], spec, i0, i1, j0, j1)  # S_ij, (B, Hk, n, bc)
                P -= lse[:, :, rows, None]
                xp.exp(P, out=P)                                       # P_ij (0 where masked)
                dVj += P.swapaxes(-1, -2) @ dOi                        # (B,Hk,bc,n) @ (B,Hk,n,Ev)
                dS = dOi @ vT[..., j0:j1]                              # dP_ij, (B, Hk, n, bc)
                dS -= D[:, :, rows, None]
                dS *= P                                                # dS_ij
                dQ[:, :, rows] += dS @ k[:, :, j0:j1]                  # (B,Hk,n,bc) @ (B,Hk,bc,E)
                dKj += dS.swapaxes(-1, -2) @ Qi                        # (B,Hk,bc,n) @ (B,Hk,n,E)
        dQ *= qs.dtype.type(spec.scale)
        return from_rows(dQ, g), dK, dV


def flash_attention(query, key, value, is_causal=False, scale=None, enable_gqa=False, window=None, offset=0,
                    alibi_slopes=None, block_q=128, block_k=128):
    """softmax(s · Q Kᵀ + mask) V, computed in tiles with an online softmax (FlashAttention-2).

    query (B, Hq, L, E), key (B, Hk, S, E), value (B, Hk, S, Ev) -> (B, Hq, L, Ev); with
    enable_gqa, Hk may divide Hq (query head h uses key head h // (Hq / Hk)).
    is_causal: query i sees keys j <= offset + i (offset = 0: torch's top-left alignment).
    window: also j > offset + i - window (needs is_causal). offset: the position of query 0
    among the keys (a KV cache: S - L). alibi_slopes: (Hq,) slopes m_h, adds -m_h·|offset + i - j|.
    scale: defaults to 1/√E. block_q, block_k: the tile (any sizes >= 1; the result is the same).

    The same values and gradients as scaled_dot_product_attention with the equivalent mask,
    in O(L + S) memory beyond the inputs (module docstring).

    >>> q = k = tinyllm.tensor([[[[0.0], [1.0]]]]); v = tinyllm.tensor([[[[1.0], [3.0]]]])
    >>> F.flash_attention(q, k, v, is_causal=True, block_q=1, block_k=1)
    tensor([[[[1.       ],
              [2.4621172]]]])
    """
    name = "flash_attention"
    q, k, v, spec = check_args(name, query, key, value, is_causal, scale, enable_gqa, window, offset, alibi_slopes)
    return FlashAttention.apply(q, k, v, spec=spec, block_q=check_block(name, "block_q", block_q),
                                block_k=check_block(name, "block_k", block_k))
