"""Scaled dot-product attention (Vaswani et al. 2017, "Attention Is All You Need", eq. 1).

For queries Q (..., L, E), keys K (..., S, E) and values V (..., S, Ev):

    scores = s · Q Kᵀ (+ mask)         s = 1/√E by default        (..., L, S)
    P      = softmax(scores)           over the keys, one row per query
    out    = P V                                                  (..., L, Ev)

Every query takes a weighted average of the values, weighted by how well it
matches each key. One fused op does all of it: the causal mask is applied
inside the softmax (the host kernel does not even compute exps above the
diagonal), and the backward is written by hand:

    dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ⊙ (dP - rowsum(dP ⊙ P)),
    dQ = s · dS K,   dK = s · dSᵀ Q

It follows torch.nn.functional.scaled_dot_product_attention: a bool attn_mask
says which keys take part (True) and a float one is added to the scores;
is_causal masks keys after the query, aligned top-left (key j is visible to
query i when j <= i, also when L != S); a query with every key masked gets
zeros, not NaN; enable_gqa lets K and V have fewer heads (dim -3) than Q,
each shared by a group of consecutive query heads (grouped-query attention,
Ainslie et al. 2023).

Two arguments go beyond torch's, shared with memory_efficient_attention and
flash_attention (the same math in tiles): ``offset`` places query i at position
offset + i among the keys (a KV cache holding S - L keys before the L new
queries: offset = S - L; is_causal then means j <= offset + i), and ``window``
(with is_causal) also hides keys j <= offset + i - window, Mistral's sliding
window. Both become a boolean mask of the scores here: this is the plain version.
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional import kernels
from tinyllm.functional._util import as_tensor
from tinyllm.functional.dropout import dropout_mask
from tinyllm.functional.softmax import softmax_backward, softmax_rows_
from tinyllm.tensor import Tensor


def _masked_softmax_(scores, is_causal):
    """softmax over the last dim, in place; causal rows see keys j <= i; all-masked rows give 0."""
    L, S = scores.shape[-2:]
    if kernels.usable(scores) and scores.size > 0 and scores.flags.c_contiguous:
        softmax_rows_(scores.reshape(-1, S), causal_L=L if is_causal else 0, zero_empty=True)
        return scores
    xp = backend.of(scores)
    neg_inf = scores.dtype.type(-np.inf)
    if is_causal:
        scores += xp.triu(xp.full((L, S), neg_inf, dtype=scores.dtype), k=1)  # -inf where j > i
    m = scores.max(axis=-1, keepdims=True)
    m = xp.where(m == neg_inf, scores.dtype.type(0), m)  # subtle: every key masked -> exps all 0, not NaN
    scores -= m
    xp.exp(scores, out=scores)
    total = scores.sum(axis=-1, keepdims=True)
    scores /= xp.where(total == 0, scores.dtype.type(1), total)
    return scores


_CHUNK_BYTES = 4 << 20  # score block per chunk: small enough to stay in cache between the steps


def _chunks(n0, bytes_per_item):
    """Slices over the leading (batch) axis so that each chunk's (…, L, S) scores fit in ~4 MB.

    Why: the steps of attention (Q Kᵀ, softmax, P V) each stream the whole score
    array through memory; done one cache-sized chunk at a time they find it in
    cache, and the backward reuses one chunk-sized buffer instead of allocating
    a full (B, nh, L, S) array. The arithmetic is unchanged.
    """
    step = max(1, _CHUNK_BYTES // max(1, bytes_per_item))
    return [slice(i, min(i + step, n0)) for i in range(0, n0, step)]


_FEW_QUERIES = 4  # up to this many queries, K and V are used in place when each matrix is contiguous


def _matrices_contiguous(a) -> bool:
    """Is each (S, E) matrix of a (..., S, E) array contiguous in memory (rows back to back)?"""
    item = a.dtype.itemsize
    return a.strides[-1] == item and (a.shape[-2] <= 1 or a.strides[-2] == a.shape[-1] * item)


def _take(a, sl):
    """a[sl] on the leading axis, unless that axis is broadcast (size 1)."""
    return a if a is None or a.shape[0] == 1 else a[sl]


class ScaledDotProductAttention(Function):
    """out = softmax(s · Q Kᵀ + mask) V, with optional causal mask, dropout on P and GQA.

    Example (L = S = 2, E = 1, s = 1): Q = [[0], [1]], K = [[0], [1]], V = [[1], [3]]:
    scores = [[0, 0], [0, 1]], P = [[0.5, 0.5], [0.269, 0.731]], out = [[2], [2.462]];
    with is_causal the first query sees key 0 only: out = [[1], [2.462]].
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, scale, is_causal, dropout_p, groups):
        L, E = q.shape[-2:]
        S, Ev = k.shape[-2], v.shape[-1]
        out_lead = q.shape[:-2]
        xp = backend.of(q)
        if groups > 1:  # GQA: query head h uses key/value head h // groups
            Hk = k.shape[-3]
            q = q.reshape(*q.shape[:-3], Hk, groups, L, E)  # (..., Hq, L, E) -> (..., Hk, g, L, E)
            k, v = k[..., None, :, :], v[..., None, :, :]  # (..., Hk, S, E) -> (..., Hk, 1, S, E)
            if bias is not None and bias.ndim >= 3:
                bias = xp.broadcast_to(bias, (*out_lead, L, S)).reshape(*q.shape[:-1], S)
        lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        if bias is not None:
            lead = np.broadcast_shapes(lead, bias.shape[:-2])
        # every operand gets the same number of dims, so axis 0 is the batch axis of all of them
        q, k, v = (a.reshape((1,) * (len(lead) + 2 - a.ndim) + a.shape) for a in (q, k, v))
        if bias is not None:
            bias = bias.reshape((1,) * (len(lead) + 2 - bias.ndim) + bias.shape)

        qs = q * scale  # (..., L, E): scaling Q costs less than scaling the (L, S) scores
        if L <= _FEW_QUERIES and _matrices_contiguous(k) and _matrices_contiguous(v):
            # subtle: a few queries (a KV-cache decode step) over K, V whose matrices are each contiguous
            # (views of the cache): BLAS reads Kᵀ as a transposed view. Copying K, Kᵀ and V would cost
            # time in proportion to everything cached, for a product of only L rows.
            kT = k.swapaxes(-1, -2)  # (..., S, E) -> (..., E, S), a view
        else:
            # subtle: contiguous K, Kᵀ and V. NumPy's stacked matmul leaves BLAS for operands whose rows
            # are strided (a transposed Kᵀ, or heads cut out of a fused qkv): 1.5-2x slower than the copies.
            k, v = xp.ascontiguousarray(k), xp.ascontiguousarray(v)
            kT = xp.ascontiguousarray(k.swapaxes(-1, -2))  # (..., S, E) -> (..., E, S)
        P = xp.empty((*lead, L, S), dtype=q.dtype)  # the attention weights, kept for backward
        out = xp.empty((*lead, L, Ev), dtype=q.dtype)
        keep, p_scale = None, 1.0
        if dropout_p > 0:
            keep = dropout_mask(P.shape, dropout_p, backend.device_of(P))
            p_scale = 1.0 / (1.0 - dropout_p) if dropout_p < 1 else 0.0
        n0 = lead[0] if lead else 1
        for sl in _chunks(n0, P[:1].nbytes if lead else P.nbytes) if lead else [...]:
            scores = P[sl]
            xp.matmul(_take(qs, sl), _take(kT, sl), out=scores)  # (..., L, E) @ (..., E, S) -> (..., L, S)
            if bias is not None:
                scores += _take(bias, sl)
            _masked_softmax_(scores, is_causal)
            Pd = scores if keep is None else (scores * keep[sl]) * scores.dtype.type(p_scale)
            xp.matmul(Pd, _take(v, sl), out=out[sl])  # (..., L, S) @ (..., S, Ev) -> (..., L, Ev)
        ctx.save_for_backward(qs, k, v, P, keep)
        ctx.scale, ctx.p_scale, ctx.groups = scale, p_scale, groups
        return out.reshape(*out_lead, L, Ev)

    @staticmethod
    def backward(ctx, grad_out):
        # scores = s·Q Kᵀ + mask, P = softmax(scores), O = P V:
        #   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP - rowsum(dP ⊙ P))  (softmax backward),
        #   dQ = s · dS K,  dK = s · dSᵀ Q  (= dSᵀ (s Q), and s Q is what we saved),  dmask = dS.
        # With dropout, O = (P ⊙ M / (1-p)) V: P is replaced by the dropped P in dV, and dP is
        # multiplied by M / (1-p) before the softmax backward.
        # Done chunk by chunk over the batch axis, as the forward (see _chunks).
        qs, k, v, P, keep = ctx.saved
        need_q, need_k, need_v, need_bias = ctx.needs_input_grad
        xp = backend.of(P)
        lead, (L, S) = P.shape[:-2], P.shape[-2:]
        dO = grad_out.reshape(*lead, L, v.shape[-1])  # GQA: (..., Hq, L, Ev) -> (..., Hk, g, L, Ev)
        dtype = P.dtype
        grad_q = xp.empty((*lead, L, qs.shape[-1]), dtype) if need_q else None
        # K and V may be broadcast over the batch (axis 0 of size 1) or, with GQA, over the group axis:
        # their per-chunk gradients then have the full shape and are summed back below.
        grad_k = xp.empty((*lead, S, k.shape[-1]), dtype) if need_k else None
        grad_v = xp.empty((*lead, S, v.shape[-1]), dtype) if need_v else None
        grad_bias = xp.empty(P.shape, dtype) if need_bias else None
        vT = xp.ascontiguousarray(v.swapaxes(-1, -2))  # contiguous, as Kᵀ in forward
        p_scale = dtype.type(ctx.p_scale)
        n0 = lead[0] if lead else 1
        for sl in _chunks(n0, P[:1].nbytes if lead else P.nbytes) if lead else [...]:
            Pc, dOc = P[sl], dO[sl]
            keep_c = None if keep is None else keep[sl]
            if need_v:
                Pd = Pc if keep_c is None else (Pc * keep_c) * p_scale
                xp.matmul(Pd.swapaxes(-1, -2), dOc, out=grad_v[sl])  # (..., S, L) @ (..., L, Ev) -> (..., S, Ev)
            if need_q or need_k or need_bias:
                dP = dOc @ _take(vT, sl)  # (..., L, Ev) @ (..., Ev, S) -> (..., L, S), fresh
                if keep_c is not None:
                    dP *= keep_c
                    dP *= p_scale
                dS = softmax_backward(Pc, dP, axis=-1, inplace=True)
                if need_q:
                    xp.matmul(dS, _take(k, sl), out=grad_q[sl])  # (..., L, S) @ (..., S, E) -> (..., L, E)
                if need_k:
                    xp.matmul(dS.swapaxes(-1, -2), _take(qs, sl), out=grad_k[sl])  # (..., S, L) @ (..., L, E)
                if need_bias:
                    grad_bias[sl] = dS
        if need_q:
            grad_q *= dtype.type(ctx.scale)
        # K/V dims that were broadcast (a batch axis of size 1, the GQA group axis) sum their gradients
        # (the engine's unbroadcast would too, but not the GQA axis, which is inside)
        if need_k:
            grad_k = _sum_to(grad_k, k.shape)
        if need_v:
            grad_v = _sum_to(grad_v, v.shape)
        if ctx.groups > 1:  # (..., Hk, g, *) -> (..., Hq, *) for Q and the mask; K and V drop their size-1 g axis
            grad_q = None if grad_q is None else grad_q.reshape(*grad_q.shape[:-4], -1, *grad_q.shape[-2:])
            grad_bias = None if grad_bias is None else grad_bias.reshape(*grad_bias.shape[:-4], -1, *P.shape[-2:])
            grad_k = None if grad_k is None else grad_k[..., 0, :, :]  # (..., Hk, 1, S, E) -> (..., Hk, S, E)
            grad_v = None if grad_v is None else grad_v[..., 0, :, :]
        return grad_q, grad_k, grad_v, grad_bias


def _sum_to(grad, shape):
    """Sum over the axes where `shape` has size 1 and grad does not (broadcast in forward)."""
    axes = tuple(i for i, (g, n) in enumerate(zip(grad.shape, shape)) if n == 1 and g != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _mask_bias(attn_mask, q, L, S):
    """attn_mask -> an additive bias: bool True = take part (0), False = masked (-inf); float as is."""
    m = attn_mask if isinstance(attn_mask, Tensor) else as_tensor(attn_mask, "scaled_dot_product_attention: attn_mask")
    ok = m.ndim >= 1 and all(a in (1, b) for a, b in zip(m.shape[::-1], (S, L)))
    if not ok:
        raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {tuple(m.shape)} does not broadcast "
                         f"to the scores (..., L={L}, S={S})")
    if m.device != q.device:
        raise RuntimeError(f"scaled_dot_product_attention: attn_mask is on {m.device!r} but query is on {q.device!r}")
    if m.dtype == np.bool_:
        xp = backend.of(m.data)
        zero, neg_inf = q.dtype.type(0), q.dtype.type(-np.inf)
        return xp.where(m.data, zero, neg_inf)  # a constant array: no gradient
    if m.dtype != q.dtype:
        raise TypeError(f"scaled_dot_product_attention: a float attn_mask must have the query's dtype {q.dtype}, "
                        f"got {m.dtype}")
    return m  # a Tensor: it may require grad (e.g. a learned bias)


def _causal_bias(name, L, S, window, offset, q):
    """(L, S) constant: 0 where query i sees key j (j <= offset + i, j > offset + i - window), else -inf."""
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise ValueError(f"{name}: offset must be an integer (query i sits at position offset + i), got {offset!r}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1):
        raise ValueError(f"{name}: window must be a positive integer or None, got {window!r}")
    xp = backend.of(q.data)
    qpos = (xp.arange(L) + int(offset))[:, None]  # (L, 1)
    kpos = xp.arange(S)[None, :]                  # (1, S)
    hidden = kpos > qpos
    if window is not None:
        hidden |= kpos <= qpos - int(window)
    return xp.where(hidden, q.dtype.type(-np.inf), q.dtype.type(0))


def _add(bias, extra):
    """bias + extra, where bias is None, a raw array or a Tensor (a learned float mask keeps its gradient)."""
    if bias is None:
        return extra
    if isinstance(bias, Tensor):
        return bias + Tensor(extra)
    return bias + extra


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False, window=None, offset=0):
    """torch.nn.functional.scaled_dot_product_attention: softmax(Q Kᵀ/√E + mask) V.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev).
    attn_mask: bool (True = take part) or float (added), broadcastable to (..., L, S).
    dropout_p: dropout on the attention weights (pass 0 when evaluating, as in torch).
    is_causal: query i sees keys j <= i (top-left aligned); combined with attn_mask if both given.
    scale: defaults to 1/√E.  enable_gqa: key/value may have fewer heads (dim -3) than query.
    offset: query i sits at position offset + i among the keys (is_causal: sees j <= offset + i).
    window: with is_causal, query i also does not see keys j <= offset + i - window (sliding window).

    >>> q = k = tinyllm.tensor([[0.0], [1.0]]); v = tinyllm.tensor([[1.0], [3.0]])
    >>> F.scaled_dot_product_attention(q, k, v, is_causal=True)
    tensor([[1.       ],
            [2.4621172]])
    """
    name = "scaled_dot_product_attention"
    q, k, v = (as_tensor(t, f"{name}: {n}") for t, n in ((query, "query"), (key, "key"), (value, "value")))
    for n, t in (("query", q), ("key", k), ("value", v)):
        if t.ndim < 2:
            raise ValueError(f"{name}: {n} must have at least 2 dims (..., seq, features), got shape {tuple(t.shape)}")
        if t.dtype != q.dtype or t.dtype.kind != "f":
            raise TypeError(f"{name}: query, key and value must share one floating dtype, got "
                            f"{q.dtype}, {k.dtype}, {v.dtype}")
    L, E = q.shape[-2:]
    S = k.shape[-2]
    if k.shape[-1] != E:
        raise ValueError(f"{name}: query and key must have the same last dim, got {E} and {k.shape[-1]}")
    if v.shape[-2] != S:
        raise ValueError(f"{name}: key and value must have the same sequence length, got {S} and {v.shape[-2]}")
    groups = 1
    if enable_gqa:
        if q.ndim < 3 or k.ndim < 3 or v.shape[-3] != k.shape[-3] or q.shape[-3] % k.shape[-3]:
            raise ValueError(f"{name}: with enable_gqa, query heads (dim -3) must be a multiple of key/value heads, "
                             f"got query {tuple(q.shape)}, key {tuple(k.shape)}, value {tuple(v.shape)}")
        groups = q.shape[-3] // k.shape[-3]
    elif q.ndim >= 3 and k.ndim >= 3 and q.shape[-3] != k.shape[-3] and k.shape[-3] != 1:
        raise ValueError(f"{name}: query has {q.shape[-3]} heads but key has {k.shape[-3]}; for grouped-query "
                         "attention pass enable_gqa=True")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{name}: dropout_p must be in [0, 1], got {dropout_p}")
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    bias = None if attn_mask is None else _mask_bias(attn_mask, q, L, S)
    if is_causal and (offset or window is not None):  # the general causal mask, as an additive bias
        bias = _add(bias, _causal_bias(name, L, S, window, offset, q))
        is_causal = False
    elif window is not None:
        raise ValueError(f"{name}: a sliding window is causal (query i sees keys i - window < j <= i); "
                         f"pass is_causal=True with window={window}")
    # the output has the query's batch dims; key, value and mask may broadcast up to them, not beyond
    cut = -3 if groups > 1 else -2
    leads = [q.shape[:cut], k.shape[:cut], v.shape[:cut]] + ([] if bias is None else [bias.shape[:-2]])
    try:
        ok = np.broadcast_shapes(*leads[:3]) == q.shape[:cut] and (
            bias is None or np.broadcast_shapes(q.shape[:-2], bias.shape[:-2]) == q.shape[:-2])
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: the batch dims of key {tuple(k.shape)}, value {tuple(v.shape)}"
                         f"{'' if bias is None else f' and attn_mask {tuple(bias.shape)}'} must broadcast to "
                         f"those of query {tuple(q.shape)}")
    return ScaledDotProductAttention.apply(q, k, v, bias, scale=scale, is_causal=bool(is_causal),
                                           dropout_p=float(dropout_p), groups=groups)

