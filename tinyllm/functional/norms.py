"""Normalisation layers: LayerNorm (Ba, Kiros & Hinton 2016) and RMSNorm (Zhang & Sennrich 2019).

Over the last dims (``normalized_shape``, N numbers per row):

    layer_norm:  x̂ = (x - μ) · r,  r = 1/√(σ² + ε),   y = x̂ ⊙ w + b    (μ, σ² the row's mean and
                                                                          biased variance)
    rms_norm:    x̂ = x · r,        r = 1/√(mean(x²) + ε),  y = x̂ ⊙ w   (no centring, no bias: LLaMA)

Composed from primitives LayerNorm is about ten ops and as many saved arrays;
its backward has a closed form that needs only x̂ (or x, μ, r) and w. With
ĝ = grad_out ⊙ w and means taken over the row:

    grad_x = r · (ĝ - mean(ĝ) - x̂ · mean(ĝ ⊙ x̂))       (layer_norm)
    grad_x = r · (ĝ - x̂ · mean(ĝ ⊙ x̂))                  (rms_norm: no mean to subtract)
    grad_w = Σ_rows grad_out ⊙ x̂,   grad_b = Σ_rows grad_out

Derivation (layer_norm): x̂_j depends on every x_k of its row through μ and r;
∂μ/∂x_k = 1/N and ∂r/∂x_k = -r³ (x_k - μ)/N, so
∂x̂_j/∂x_k = r (δ_jk - 1/N - x̂_j x̂_k / N), and contracting with ĝ gives the line above.
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional import kernels
from tinyllm.functional._util import as_tensor
from tinyllm.functional.kernels import ONE, ZERO, contiguous, f32, kernel, split


def _normalized(x, normalized_shape, name):
    """normalized_shape as a tuple, checked against the input's trailing dims."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(int(n) for n in normalized_shape)
    if len(shape) == 0 or x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        star = ", ".join(str(n) for n in shape)
        raise ValueError(f"{name}: given normalized_shape={list(shape)}, expected input with shape [*, {star}], "
                         f"but got input of shape {list(x.shape)}")
    return shape


def _check_param(p, x, shape, what, name):
    if p is None:
        return
    if tuple(p.shape) != shape:
        raise ValueError(f"{name}: {what} must have shape {shape} (= normalized_shape), got {tuple(p.shape)}")
    if p.dtype != x.dtype:
        raise TypeError(f"{name}: {what} has dtype {p.dtype} but input has {x.dtype}; cast one to match")


# ----------------------------------------------------------------------------- the host kernels
# (float32 rows: one pass per row; checked against the reference in the Functions)


@kernel
def _layer_norm_fwd(x, w, b, eps, out, mean, rstd):
    M, N = x.shape
    for r in range(M):
        s = ZERO
        for j in range(N):
            s += x[r, j]
        mu = s / np.float32(N)
        v = ZERO
        for j in range(N):
            d = x[r, j] - mu
            v += d * d
        rs = ONE / np.sqrt(v / np.float32(N) + eps)
        for j in range(N):
            out[r, j] = (x[r, j] - mu) * rs * w[j] + b[j]
        mean[r], rstd[r] = mu, rs


@kernel
def _layer_norm_bwd(x, mean, rstd, w, g, gx, gw, gb):
    M, N = x.shape
    for r in range(M):
        mu, rs = mean[r], rstd[r]
        a = ZERO
        b = ZERO
        for j in range(N):
            xh = (x[r, j] - mu) * rs
            gh = g[r, j] * w[j]
            a += gh
            b += gh * xh
            gw[j] += g[r, j] * xh
            gb[j] += g[r, j]
        a /= np.float32(N)
        b /= np.float32(N)
        for j in range(N):
            xh = (x[r, j] - mu) * rs
            gx[r, j] = rs * (g[r, j] * w[j] - a - xh * b)


@kernel
def _rms_norm_fwd(x, w, eps, out, rstd):
    M, N = x.shape
    for r in range(M):
        s = ZERO
        for j in range(N):
            s += x[r, j] * x[r, j]
        rs = ONE / np.sqrt(s / np.float32(N) + eps)
        for j in range(N):
            out[r, j] = x[r, j] * rs * w[j]
        rstd[r] = rs


@kernel
def _rms_norm_bwd(x, rstd, w, g, gx, gw):
    M, N = x.shape
    for r in range(M):
        rs = rstd[r]
        b = ZERO
        for j in range(N):
            xh = x[r, j] * rs
            b += g[r, j] * w[j] * xh
            gw[j] += g[r, j] * xh
        b /= np.float32(N)
        for j in range(N):
            gx[r, j] = rs * (g[r, j] * w[j] - x[r, j] * rs * b)


def layer_norm_forward(x2, w, b, eps):
    """(M, N) rows -> (y, mean, rstd); w, b of shape (N,)."""
    x2 = contiguous(x2)
    M = x2.shape[0]
    out = np.empty_like(x2)
    mean, rstd = np.empty(M, np.float32), np.empty(M, np.float32)
    w, b = contiguous(w), contiguous(b)
    split(lambda i, j: _layer_norm_fwd(x2[i:j], w, b, f32(eps), out[i:j], mean[i:j], rstd[i:j]), M, x2.size)
    return out, mean, rstd


def layer_norm_backward(x2, mean, rstd, w, g2):
    """-> (grad_x, grad_w, grad_b) for (M, N) rows."""
    x2, g2 = contiguous(x2), contiguous(g2)
    M, N = x2.shape
    gx = np.empty_like(x2)
    gw, gb = np.zeros(N, np.float32), np.zeros(N, np.float32)
    _layer_norm_bwd(x2, mean, rstd, contiguous(w), g2, gx, gw, gb)
    return gx, gw, gb


def rms_norm_forward(x2, w, eps):
    """(M, N) rows -> (y, rstd); w of shape (N,)."""
    x2 = contiguous(x2)
    out = np.empty_like(x2)
    rstd = np.empty(x2.shape[0], np.float32)
    w = contiguous(w)
    split(lambda i, j: _rms_norm_fwd(x2[i:j], w, f32(eps), out[i:j], rstd[i:j]), x2.shape[0], x2.size)
    return out, rstd


def rms_norm_backward(x2, rstd, w, g2):
    """-> (grad_x, grad_w) for (M, N) rows."""
    x2, g2 = contiguous(x2), contiguous(g2)
    M, N = x2.shape
    gx = np.empty_like(x2)
    gw = np.zeros(N, np.float32)
    _rms_norm_bwd(x2, rstd, contiguous(w), g2, gx, gw)
    return gx, gw


class LayerNorm(Function):
    """Rows of N numbers, normalised to mean 0 and variance 1, then scaled and shifted.

    Example: x = [1, 2, 3], w = 1, b = 0, ε = 0: μ = 2, σ² = 2/3, y = [-1.2247, 0, 1.2247].
    """

    @staticmethod
    def forward(ctx, x, weight, bias, N, eps):
        x2 = x.reshape(-1, N)  # (..., *normalized_shape) -> (M, N)
        w = None if weight is None else weight.reshape(N)
        b = None if bias is None else bias.reshape(N)
        ctx.shapes = (x.shape, None if weight is None else weight.shape, None if bias is None else bias.shape)
        if kernels.usable(x2, w, b) and x2.size > 0:
            xp = backend.of(x2)
            ones = xp.ones(N, dtype=x2.dtype) if w is None else w
            zeros = xp.zeros(N, dtype=x2.dtype) if b is None else b
            y, mean, rstd = layer_norm_forward(x2, ones, zeros, eps)
            ctx.save_for_backward(x2, mean, rstd, ones)
            ctx.kernel = True
            return y.reshape(x.shape)
        mean = x2.mean(axis=1, keepdims=True)
        xhat = x2 - mean  # fresh: centred
        var = (xhat * xhat).mean(axis=1, keepdims=True)
        rstd = 1 / backend.of(x2).sqrt(var + eps)  # (M, 1)
        xhat *= rstd
        ctx.save_for_backward(xhat, rstd, w)
        y = xhat * w if w is not None else xhat.copy()
        if b is not None:
            y += b
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad_out):
        # x̂ = (x - μ) r, y = x̂ w + b, ĝ = grad_out · w:
        #   grad_x = r (ĝ - mean(ĝ) - x̂ mean(ĝ x̂)),  grad_w = Σ_rows grad_out x̂,  grad_b = Σ_rows grad_out
        x_shape, w_shape, b_shape = ctx.shapes
        need_x, need_w, need_b = ctx.needs_input_grad
        if getattr(ctx, "kernel", False):  # the kernel path saved x, μ, r and w
            x2, mean, rstd, w = ctx.saved
            gx, gw, gb = layer_norm_backward(x2, mean, rstd, w, grad_out.reshape(x2.shape))
            return (gx.reshape(x_shape), gw.reshape(w_shape) if need_w else None,
                    gb.reshape(b_shape) if need_b else None)
        xhat, rstd, w = ctx.saved
        g2 = grad_out.reshape(xhat.shape)
        gw = (g2 * xhat).sum(axis=0).reshape(w_shape) if need_w else None
        gb = g2.sum(axis=0).reshape(b_shape) if need_b else None
        gx = None
        if need_x:
            gh = g2 * w if w is not None else g2
            gx = gh - gh.mean(axis=1, keepdims=True)  # fresh
            gh_xhat = gh * xhat
            gx -= xhat * gh_xhat.mean(axis=1, keepdims=True)
            gx *= rstd
            gx = gx.reshape(x_shape)
        return gx, gw, gb


class RMSNorm(Function):
    """Rows scaled to root-mean-square 1, then by w.

    Example: x = [3, 4], w = 1, ε = 0: rms = √((9 + 16)/2) = 3.5355, y = [0.8485, 1.1314].
    """

    @staticmethod
    def forward(ctx, x, weight, N, eps):
        x2 = x.reshape(-1, N)  # (..., *normalized_shape) -> (M, N)
        w = None if weight is None else weight.reshape(N)
        ctx.shapes = (x.shape, None if weight is None else weight.shape)
        if kernels.usable(x2, w) and x2.size > 0:
            ones = backend.of(x2).ones(N, dtype=x2.dtype) if w is None else w
            y, rstd = rms_norm_forward(x2, ones, eps)
            ctx.save_for_backward(x2, rstd, ones)
            ctx.kernel = True
            return y.reshape(x.shape)
        xp = backend.of(x2)
        ms = (x2 * x2).mean(axis=1, keepdims=True)
        rstd = 1 / xp.sqrt(ms + eps)  # (M, 1)
        xhat = x2 * rstd
        ctx.save_for_backward(xhat, rstd, w)
        if w is not None:
            return (xhat * w).reshape(x.shape)
        return xhat.copy().reshape(x.shape)

    @staticmethod
    def backward(ctx, grad_out):
        # x̂ = x r, y = x̂ w, ĝ = grad_out · w:
        #   grad_x = r (ĝ - x̂ mean(ĝ x̂)),  grad_w = Σ_rows grad_out x̂
        x_shape, w_shape = ctx.shapes
        need_x, need_w = ctx.needs_input_grad
        if getattr(ctx, "kernel", False):  # the kernel path saved x, r and w
            x2, rstd, w = ctx.saved
            gx, gw = rms_norm_backward(x2, rstd, w, grad_out.reshape(x2.shape))
            return gx.reshape(x_shape), gw.reshape(w_shape) if need_w else None
        xhat, rstd, w = ctx.saved
        g2 = grad_out.reshape(xhat.shape)
        gw = (g2 * xhat).sum(axis=0).reshape(w_shape) if need_w else None
        gx = None
        if need_x:
            gh = g2 * w if w is not None else g2
            gx = gh - xhat * (gh * xhat).mean(axis=1, keepdims=True)
            gx *= rstd
            gx = gx.reshape(x_shape)
        return gx, gw


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.layer_norm over the trailing dims `normalized_shape`.

    >>> F.layer_norm(tinyllm.tensor([[1.0, 2.0, 3.0]]), (3,))
    tensor([[-1.2247356,  0.       ,  1.2247356]])
    """
    x = as_tensor(input, "layer_norm: input")
    shape = _normalized(x, normalized_shape, "layer_norm")
    _check_param(weight, x, shape, "weight", "layer_norm")
    _check_param(bias, x, shape, "bias", "layer_norm")
    N = math.prod(shape)
    return LayerNorm.apply(x, weight, bias, N=N, eps=float(eps))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """torch.nn.functional.rms_norm: x / √(mean(x²) + ε) · w; eps=None means the dtype's machine epsilon.

    >>> F.rms_norm(tinyllm.tensor([[3.0, 4.0]]), (2,))
    tensor([[0.84852815, 1.1313709 ]])
    """
    x = as_tensor(input, "rms_norm: input")
    shape = _normalized(x, normalized_shape, "rms_norm")
    _check_param(weight, x, shape, "weight", "rms_norm")
    if eps is None:
        eps = float(np.finfo(x.dtype).eps)  # torch.finfo(input.dtype).eps
    N = math.prod(shape)
    return RMSNorm.apply(x, weight, N=N, eps=float(eps))

