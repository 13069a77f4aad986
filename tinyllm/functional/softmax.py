"""Softmax and log-softmax: from scores to probabilities, fused with their backward.

    softmax(x)_i     = e^{x_i} / Σ_j e^{x_j}          a distribution over one dim
    log_softmax(x)_i = x_i - log Σ_j e^{x_j}          its logarithm, computed directly

Both are shift invariant (adding c to every x_j changes nothing), so the maximum
is subtracted first: every exponent is then <= 0 and e^x cannot overflow, the
"safe softmax" of every framework (Goodfellow, Bengio & Courville 2016, §4.1).

Built from primitives (amax, sub, exp, sum, div) softmax is five ops that keep
five arrays for backward. Fused it is one op that keeps only its output y,
because the Jacobian can be written in y alone:

    ∂y_i/∂x_j = y_i (δ_ij - y_j)

The raw-array helpers (softmax_forward, softmax_backward, max_logsum) are
reused by attention and cross-entropy.
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend, ops
from tinyllm.function import Function
from tinyllm.functional import kernels
from tinyllm.functional._util import as_tensor
from tinyllm.functional.kernels import ONE, ZERO, contiguous, exp32, f32, kernel, split
from tinyllm.ops.common import axis as _axis

# ----------------------------------------------------------------------------- the host kernels
# (float32 rows; checked against the reference below)


_NEG_INF = f32(-np.inf)


@kernel
def _softmax_rows_(x, causal_L, zero_empty):
    # row r: max, exps and their sum, then scale, all in place
    M, N = x.shape
    for r in range(M):
        n = N if causal_L == 0 else min(r % causal_L + 1, N)  # causal: query i = r % L sees keys j <= i
        m = _NEG_INF
        for j in range(n):
            m = max(m, x[r, j])
        if zero_empty and m == _NEG_INF:
            m = ZERO  # every key masked: exps are all 0, the row becomes 0 (torch's SDPA)
        s = ZERO
        for j in range(n):
            e = exp32(x[r, j] - m)
            x[r, j] = e
            s += e
        inv = ONE / s if (s > ZERO or not zero_empty) else ZERO
        for j in range(n):
            x[r, j] *= inv
        for j in range(n, N):
            x[r, j] = ZERO


def softmax_rows_(x, causal_L=0, zero_empty=False):
    """Softmax of each row of a C-contiguous 2-D float32 array, in place.

    causal_L > 0: row r is query i = r % causal_L of a (..., L, S) score block
    and sees columns j <= i only; the others get probability 0.
    zero_empty: a row whose entries are all -inf gives zeros instead of NaN.

    # subtle: in place on purpose. Reading x and writing a second array that
    # is secretly x defeats LLVM's runtime alias check and the loop runs
    # unvectorised, 2x slower; one array cannot alias.
    """
    split(lambda a, b: _softmax_rows_(x[a:b], causal_L, zero_empty), x.shape[0], x.size, max(1, causal_L))
    return x


@kernel
def _softmax_backward_rows_(y, g):
    M, N = y.shape
    for r in range(M):
        d = ZERO
        for j in range(N):
            d += g[r, j] * y[r, j]
        for j in range(N):
            g[r, j] = y[r, j] * (g[r, j] - d)


def softmax_backward_rows_(y, g):
    """g <- y * (g - Σ_j g_j y_j) per row, in place on g (a C-contiguous float32 array)."""
    y = contiguous(y)
    split(lambda a, b: _softmax_backward_rows_(y[a:b], g[a:b]), y.shape[0], y.size)
    return g


@kernel
def _max_logsum_rows(x, m_out, logs_out):
    M, N = x.shape
    for r in range(M):
        m = _NEG_INF
        for j in range(N):
            m = max(m, x[r, j])
        s = ZERO
        for j in range(N):
            s += exp32(x[r, j] - m)
        m_out[r], logs_out[r] = m, np.log(s)


def max_logsum_rows(x):
    """Per row: m = max_j x_j and log Σ_j e^{x_j - m} (so logsumexp = m + that); shapes (M,)."""
    x = contiguous(x)
    m, logs = np.empty(x.shape[0], dtype=x.dtype), np.empty(x.shape[0], dtype=x.dtype)
    _max_logsum_rows(x, m, logs)
    return m, logs


@kernel
def _log_softmax_rows(x, out):
    M, N = x.shape
    for r in range(M):
        m = _NEG_INF
        for j in range(N):
            m = max(m, x[r, j])
        s = ZERO
        for j in range(N):
            d = x[r, j] - m
            out[r, j] = d
            s += exp32(d)
        logs = np.log(s)
        # subtle: a second pass over the stored x - m; written as (x - m) - logs in one
        # expression, reassociation may compute x - (m + logs) and round at |x|'s scale
        for j in range(N):
            out[r, j] -= logs


def log_softmax_rows(x):
    """(x - m) - log Σ e^{x - m} per row."""
    x = contiguous(x)
    out = np.empty_like(x)
    _log_softmax_rows(x, out)
    return out


@kernel
def _log_softmax_backward_rows(y, g, out):
    M, N = y.shape
    for r in range(M):
        s = ZERO
        for j in range(N):
            s += g[r, j]
        for j in range(N):
            out[r, j] = g[r, j] - exp32(y[r, j]) * s


def log_softmax_backward_rows(y, g):
    """grad_x = g - exp(y) · Σ_j g_j per row, y = log_softmax(x)."""
    y, g = contiguous(y), contiguous(g)
    out = np.empty_like(y)
    _log_softmax_backward_rows(y, g, out)
    return out


# ----------------------------------------------------------------------------- the reference (any array module),
# choosing the kernel where it applies


def _rows(x, axis):
    """Whether the host kernels apply: the last axis of a non-empty float32 NumPy array."""
    return x.ndim > 0 and axis % x.ndim == x.ndim - 1 and x.size > 0 and kernels.usable(x)


def softmax_forward(x, axis):
    """softmax of a raw array along `axis` (a fresh array)."""
    if _rows(x, axis):
        y = x.copy()  # C-contiguous; the kernel works in place
        softmax_rows_(y.reshape(-1, x.shape[-1]))  # (..., N) -> (M, N) rows, a view
        return y
    xp = backend.of(x)
    y = xp.exp(x - x.max(axis=axis, keepdims=True))  # every exponent <= 0
    y /= y.sum(axis=axis, keepdims=True)
    return y


def softmax_backward(y, grad_out, axis, inplace=False):
    """grad_x = y ⊙ (grad_out - Σ_j grad_out_j y_j) along `axis`.

    A fresh array, or with inplace=True written over grad_out (only for a
    grad_out the caller owns, e.g. a temporary of attention's backward).
    """
    if _rows(y, axis) and kernels.usable(grad_out) and (grad_out.flags.c_contiguous or not inplace):
        g = grad_out if inplace else grad_out.copy()  # C-contiguous; the kernel works in place
        softmax_backward_rows_(y.reshape(-1, y.shape[-1]), g.reshape(-1, y.shape[-1]))  # (M, N) rows
        return g
    dot = (grad_out * y).sum(axis=axis, keepdims=True)
    if inplace:
        grad_out -= dot
        grad_x = grad_out
    else:
        grad_x = grad_out - dot
    grad_x *= y
    return grad_x


def max_logsum(x, axis):
    """(m, log Σ_j e^{x_j - m}) along `axis`, keepdims, m = max_j x_j; logsumexp(x) = m + the second.

    Kept apart because (x - m) - log Σ is exact where x - logsumexp(x) rounds:
    for x = [1000, 1001, 1002] in float32 the first gives -0.4076059, the second -0.40759277.
    """
    if _rows(x, axis):
        m, logs = max_logsum_rows(x.reshape(-1, x.shape[-1]))  # (..., N) -> (M, N): (M,), (M,)
        return m.reshape(*x.shape[:-1], 1), logs.reshape(*x.shape[:-1], 1)
    xp = backend.of(x)
    m = x.max(axis=axis, keepdims=True)
    logs = xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True))
    return m, logs


def log_softmax_forward(x, axis):
    """(x - m) - log Σ_j e^{x_j - m} along `axis` (a fresh array)."""
    if _rows(x, axis):
        return log_softmax_rows(x.reshape(-1, x.shape[-1])).reshape(x.shape)  # (M, N) -> (..., N)
    m, logs = max_logsum(x, axis)
    y = x - m
    y -= logs
    return y


# ----------------------------------------------------------------------------- the ops


class Softmax(Function):
    """y = softmax(x) along one axis.

    Example: softmax([1, 2, 3]) = [e, e², e³] / (e + e² + e³) = [0.090, 0.245, 0.665].
    """

    @staticmethod
    def forward(ctx, x, axis):
        y = softmax_forward(x, axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, grad_out):
        # ∂y_i/∂x_j = y_i (δ_ij - y_j), so
        # grad_x_j = Σ_i grad_out_i y_i (δ_ij - y_j) = y_j (grad_out_j - Σ_i grad_out_i y_i)
        (y,) = ctx.saved
        return softmax_backward(y, grad_out, ctx.axis)


class LogSoftmax(Function):
    """y = x - logsumexp(x) along one axis.

    Example: log_softmax([1, 2, 3]) = [1, 2, 3] - 3.408 = [-2.408, -1.408, -0.408].
    """

    @staticmethod
    def forward(ctx, x, axis):
        y = log_softmax_forward(x, axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, grad_out):
        # y_i = x_i - log Σ_k e^{x_k}:  ∂y_i/∂x_j = δ_ij - softmax(x)_j = δ_ij - e^{y_j}, so
        # grad_x_j = grad_out_j - e^{y_j} Σ_i grad_out_i
        (y,) = ctx.saved
        axis = ctx.axis
        if _rows(y, axis) and kernels.usable(grad_out):
            N = y.shape[-1]
            return log_softmax_backward_rows(y.reshape(-1, N), grad_out.reshape(-1, N)).reshape(y.shape)
        p = backend.of(y).exp(y)  # softmax(x)
        p *= grad_out.sum(axis=axis, keepdims=True)
        return grad_out - p


def softmax(input, dim=-1, dtype=None):
    """torch.nn.functional.softmax: e^{x_i} / Σ_j e^{x_j} along `dim` (cast to `dtype` first if given).

    >>> F.softmax(tinyllm.tensor([1.0, 2.0, 3.0]), dim=-1)
    tensor([0.09003057, 0.24472848, 0.66524094])
    """
    x = as_tensor(input, "softmax: input")
    if dtype is not None:
        x = ops.astype(x, dtype)
    if x.ndim == 0:
        return ops.reshape(softmax(ops.reshape(x, 1), _axis(dim, 0)), ())
    return Softmax.apply(x, axis=_axis(dim, x.ndim))


def log_softmax(input, dim=-1, dtype=None):
    """torch.nn.functional.log_softmax: x_i - log Σ_j e^{x_j} along `dim`, without forming e^{x} / Σ.

    >>> F.log_softmax(tinyllm.tensor([1.0, 2.0, 3.0]), dim=-1)
    tensor([-2.407606  , -1.4076059 , -0.40760595])
    """
    x = as_tensor(input, "log_softmax: input")
    if dtype is not None:
        x = ops.astype(x, dtype)
    if x.ndim == 0:
        return ops.reshape(log_softmax(ops.reshape(x, 1), _axis(dim, 0)), ())
    return LogSoftmax.apply(x, axis=_axis(dim, x.ndim))
