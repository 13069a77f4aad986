"""Reductions: many numbers in, fewer out, along `dim` (None: all), with `keepdim` as in torch.

The backward of a reduction hands each input element the gradient of the output
it fed, shaped back by ``expand_back`` (reinsert the reduced dims, broadcast):

    sum        dy/dx_i = 1                     mean     1/N
    var        2 (x_i - m)/(N - c)             std      via var: sqrt(var)
    amax/amin  1 at the extreme (ties share)   norm     sign(x_i)|x_i|^(p-1) / ‖x‖^(p-1)
    max(dim)   1 at the index returned (a gather, as torch)
    logsumexp  softmax(x)_i                    prod     Π_{j≠i} x_j   (exact with zeros)
    cumsum     Σ_{k>=i} g_k (a reversed cumsum of the gradient)
    argmax, argmin, all, any: indices and bools, no gradient

    >>> x = tinyllm.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> x.logsumexp(dim=1)                   # log(e^1 + e^2), log(e^3 + e^4)
    tensor([2.3132617, 4.3132615])
"""

from __future__ import annotations

import builtins
import math
from collections import namedtuple

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.ops.common import axes, axis, count, raw
from tinyllm.tensor import Tensor


def expand_back(grad, shape, axes_, keepdim):
    """Undo a reduction over `axes_`: reinsert the reduced dims and broadcast to `shape`."""
    if not keepdim:
        grad = grad.reshape([1 if i in axes_ else n for i, n in enumerate(shape)])
    return backend.of(grad).broadcast_to(grad, shape)


def _squeeze(out, shape, axes_, keepdim):
    return out if keepdim else out.reshape([n for i, n in enumerate(shape) if i not in axes_])


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        # d(Σ x)/dx_i = 1: each input gets the gradient of the sum it fed
        return expand_back(grad_out, ctx.shape, ctx.axes, ctx.keepdim)


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        ctx.count = count(x.shape, axes)
        return x.mean(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        # d(mean x)/dx_i = 1/N
        grad = grad_out / grad_out.dtype.type(ctx.count)
        return expand_back(grad, ctx.shape, ctx.axes, ctx.keepdim)


class Var(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim, correction):
        n = count(x.shape, axes)
        centered = x - x.mean(axis=axes, keepdims=True)
        ctx.save_for_backward(centered)
        ctx.axes, ctx.keepdim, ctx.denom = axes, keepdim, builtins.max(n - correction, 0)
        denom = x.dtype.type(ctx.denom if ctx.denom else math.nan)  # N <= correction: NaN, as torch
        return (centered * centered).sum(axis=axes, keepdims=keepdim) / denom

    @staticmethod
    def backward(ctx, grad_out):
        # var = Σ (x_i - m)² / (N - c)  ->  dvar/dx_i = 2 (x_i - m) / (N - c)   (the m-terms sum to 0)
        (centered,) = ctx.saved
        grad = expand_back(grad_out, centered.shape, ctx.axes, ctx.keepdim)
        scale = 2.0 / ctx.denom if ctx.denom else math.nan  # N <= correction: undefined, NaN as torch
        return grad * centered * centered.dtype.type(scale)


class Extreme(Function):
    """amax (largest=True) and amin: the gradient goes to the extreme; ties share it evenly (as torch)."""

    @staticmethod
    def forward(ctx, x, axes, keepdim, largest):
        out = x.max(axis=axes, keepdims=True) if largest else x.min(axis=axes, keepdims=True)
        ctx.save_for_backward(x, out)
        ctx.axes, ctx.keepdim = axes, keepdim
        return _squeeze(out, x.shape, axes, keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        # d(max x)/dx_i = 1 at the maximum, 0 elsewhere; k tied maxima get 1/k each
        x, out = ctx.saved
        is_ext = (x == out).astype(grad_out.dtype)
        tied = is_ext.sum(axis=ctx.axes, keepdims=True)
        return expand_back(grad_out, x.shape, ctx.axes, ctx.keepdim) * is_ext / tied


class Norm(Function):
    """The p-norm for p = 2 (√Σx², the common case) and any other p > 0 (1 and inf are compositions)."""

    @staticmethod
    def forward(ctx, x, axes, keepdim, p):
        xp = backend.of(x)
        if p == 2:
            out = xp.sqrt((x * x).sum(axis=axes, keepdims=True))
        else:
            out = (xp.abs(x) ** p).sum(axis=axes, keepdims=True) ** (1.0 / p)
        ctx.save_for_backward(x, out)
        ctx.axes, ctx.keepdim, ctx.p = axes, keepdim, p
        return _squeeze(out, x.shape, axes, keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        # ‖x‖ = (Σ|x|^p)^(1/p): d‖x‖/dx_i = sign(x_i)|x_i|^(p-1) / ‖x‖^(p-1)  (p = 2: x_i / ‖x‖),
        # taken as 0 where ‖x‖ = 0 (as torch; the formula gives 0/0 there)
        x, out = ctx.saved
        xp, p = backend.of(x), ctx.p
        zero = out == 0
        safe = xp.where(zero, out.dtype.type(1), out)
        if p == 2:
            scale = expand_back(grad_out, x.shape, ctx.axes, ctx.keepdim) / safe
            return xp.where(zero, x.dtype.type(0), x * scale)
        scale = expand_back(grad_out, x.shape, ctx.axes, ctx.keepdim) / safe ** (p - 1)
        ax = xp.abs(x)
        powed = xp.where(ax > 0, ax, x.dtype.type(1)) ** (p - 1)  # subtle: 0^(p-1) is inf for p < 1; sign(0) = 0 wins
        return xp.where(zero, x.dtype.type(0), xp.sign(x) * powed * scale)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        xp = backend.of(x)
        if x.size == 0:  # subtle: max() of nothing raises; log Σ over nothing is log 0 = -inf, as torch
            out = xp.full([1 if i in axes else n for i, n in enumerate(x.shape)], -math.inf, dtype=x.dtype)
        else:
            m = x.max(axis=axes, keepdims=True)
            m = xp.where(xp.isfinite(m), m, x.dtype.type(0))  # subtle: all -inf (or an inf) must not give inf - inf
            out = xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True)) + m
        ctx.save_for_backward(x, out)
        ctx.axes, ctx.keepdim = axes, keepdim
        return _squeeze(out, x.shape, axes, keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        # y = log Σ e^{x_j}: dy/dx_i = e^{x_i - y} = softmax(x)_i
        x, out = ctx.saved
        return expand_back(grad_out, x.shape, ctx.axes, ctx.keepdim) * backend.of(x).exp(x - out)


class Prod(Function):
    @staticmethod
    def forward(ctx, x, ax, keepdim):
        ctx.save_for_backward(x)
        ctx.axis, ctx.keepdim = ax, keepdim
        return x.prod(axis=ax, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        # d(Π x)/dx_i = Π_{j≠i} x_j = (product left of i)·(product right of i): exact with zeros,
        # where dividing the product by x_i would give 0/0
        (x,) = ctx.saved
        xp = backend.of(x)
        ax = ctx.axis
        head = (slice(None),) * ax
        ones = xp.ones_like(x[head + (slice(0, 1),)])
        left = xp.cumprod(xp.concatenate([ones, x[head + (slice(None, -1),)]], axis=ax), axis=ax)
        rev = xp.flip(x, axis=ax)
        right = xp.cumprod(xp.concatenate([ones, rev[head + (slice(None, -1),)]], axis=ax), axis=ax)
        others = left * xp.flip(right, axis=ax)
        return expand_back(grad_out, x.shape, (ax,), ctx.keepdim) * others


class CumSum(Function):
    @staticmethod
    def forward(ctx, x, ax):
        ctx.axis = ax
        return backend.of(x).cumsum(x, axis=ax)

    @staticmethod
    def backward(ctx, grad_out):
        # y_k = Σ_{i<=k} x_i  ->  dL/dx_i = Σ_{k>=i} g_k: the cumsum of the reversed gradient, reversed
        xp = backend.of(grad_out)
        return xp.flip(xp.cumsum(xp.flip(grad_out, axis=ctx.axis), axis=ctx.axis), axis=ctx.axis)


def sum(x, dim=None, keepdim=False):  # noqa: A001
    return Sum.apply(x, axes=axes(dim, x.ndim), keepdim=keepdim)


def mean(x, dim=None, keepdim=False):
    return Mean.apply(x, axes=axes(dim, x.ndim), keepdim=keepdim)


def var(x, dim=None, keepdim=False, correction=1, unbiased=None):
    """Variance with Bessel's correction by default (``correction=1``), as torch.var."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    return Var.apply(x, axes=axes(dim, x.ndim), keepdim=keepdim, correction=correction)


def std(x, dim=None, keepdim=False, correction=1, unbiased=None):
    """√var, as torch.std."""
    return var(x, dim, keepdim, correction, unbiased).sqrt()


def amax(x, dim=None, keepdim=False):
    return Extreme.apply(x, axes=axes(dim, x.ndim), keepdim=keepdim, largest=True)


def amin(x, dim=None, keepdim=False):
    return Extreme.apply(x, axes=axes(dim, x.ndim), keepdim=keepdim, largest=False)


def _arg(x, dim, keepdim, name):
    data = raw(x)
    if dim is None:
        out = getattr(data.reshape(-1), name)()
        return Tensor(out.reshape((1,) * data.ndim) if keepdim else out)
    out = getattr(data, name)(axis=axis(dim, data.ndim))
    return Tensor(backend.of(out).expand_dims(out, dim) if keepdim and data.ndim else out)


def argmax(x, dim=None, keepdim=False):
    """Index of the maximum (no gradient); the flat index when dim is None."""
    return _arg(x, dim, keepdim, "argmax")


def argmin(x, dim=None, keepdim=False):
    """Index of the minimum (no gradient); the flat index when dim is None."""
    return _arg(x, dim, keepdim, "argmin")


MaxResult = namedtuple("MaxResult", ["values", "indices"])
MinResult = namedtuple("MinResult", ["values", "indices"])


def _extreme_at(x, dim, keepdim, name, result):
    """(values, indices) along `dim`, values gathered at the indices: the gradient goes to the element
    returned, as torch.max(x, dim) (amax shares it among ties)."""
    indices = _arg(x, dim, True, name)
    values = x.gather(dim, indices) if x.ndim else x
    if not keepdim and x.ndim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return result(values, indices)


def max(x, dim=None, keepdim=False):  # noqa: A001
    """Like torch.max: the overall maximum (ties share the gradient), or (values, indices) along `dim`."""
    if dim is None:
        return amax(x)
    return _extreme_at(x, dim, keepdim, "argmax", MaxResult)


def min(x, dim=None, keepdim=False):  # noqa: A001
    """Like torch.min: the overall minimum (ties share the gradient), or (values, indices) along `dim`."""
    if dim is None:
        return amin(x)
    return _extreme_at(x, dim, keepdim, "argmin", MinResult)


def norm(x, p=2, dim=None, keepdim=False):
    """The p-norm (Σ|x|^p)^(1/p) over `dim` (None: all); p in 2 ('fro'), 1, inf, or any p > 0."""
    if p == 1:
        return sum(x.abs(), dim, keepdim)
    if p == math.inf:
        return amax(x.abs(), dim, keepdim)
    if p == "fro" or isinstance(p, (int, float)) and p > 0:
        return Norm.apply(x, axes=axes(dim, x.ndim), keepdim=keepdim, p=2 if p == "fro" else p)
    raise ValueError(f"norm: p must be a positive number, inf or 'fro', got {p!r}")


def logsumexp(x, dim, keepdim=False):
    """log Σ e^x along `dim`, computed as m + log Σ e^{x - m} (no overflow); torch.logsumexp."""
    return LogSumExp.apply(x, axes=axes(dim, x.ndim), keepdim=keepdim)


def prod(x, dim=None, keepdim=False):
    """Product of the elements (all, or along one dim), as torch.prod."""
    if dim is None:
        out = Prod.apply(x.reshape(-1), ax=0, keepdim=False)
        return out.reshape([1] * x.ndim) if keepdim else out
    if x.ndim == 0:
        return x
    return Prod.apply(x, ax=axis(dim, x.ndim), keepdim=keepdim)


def cumsum(x, dim):
    """Running sum along `dim`: cumsum([1, 2, 3], 0) -> [1, 3, 6]."""
    if x.ndim == 0:
        return x
    return CumSum.apply(x, ax=axis(dim, x.ndim))


def all(x, dim=None, keepdim=False):  # noqa: A001
    """Whether every element (along `dim`) is true (non-zero): a bool tensor."""
    return Tensor(raw(x).astype(bool).all(axis=axes(dim, x.ndim), keepdims=keepdim))


def any(x, dim=None, keepdim=False):  # noqa: A001
    """Whether some element (along `dim`) is true (non-zero): a bool tensor."""
    return Tensor(raw(x).astype(bool).any(axis=axes(dim, x.ndim), keepdims=keepdim))
