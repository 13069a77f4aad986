"""Cross-entropy: the language-modelling loss, fused from logits to gradient.

For logits x (one row of C class scores) and a target class t,

    loss = -log softmax(x)_t = logsumexp(x) - x_t

the negative log-likelihood of the right answer, in nats. With label smoothing
ε (Szegedy et al. 2016, "Rethinking the Inception Architecture", §7) the target
is the mixture q = (1 - ε)·onehot(t) + ε/C, and loss = -Σ_c q_c log p_c.

Written as log_softmax followed by picking and averaging, the backward would
pass through three ops and a (N, C) temporary each; fused, the gradient is one
closed form:

    ∂loss/∂x_c = p_c - q_c,    p = softmax(x)

computed straight from the saved logits and their row max and log-sum (no (N, C) array
is kept from forward). This follows torch.nn.functional.cross_entropy:
input (N, C) or (N, C, d1, ...) with the class dim at 1 (for LLM logits
(B, T, V) write ``F.cross_entropy(logits.view(-1, V), targets.view(-1))``),
integer targets (N) or (N, d1, ...), or class probabilities of the input's
shape; ``ignore_index`` targets add nothing, and "mean" divides by the number
of targets that are not ignored.
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional import kernels
from tinyllm.functional.kernels import contiguous, exp32, f32, kernel
from tinyllm.functional._util import as_tensor, raw
from tinyllm.functional.softmax import log_softmax_forward, max_logsum
from tinyllm.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction, count):
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total / count


# ----------------------------------------------------------------------------- the host kernel of the backward (float32 rows)


@kernel
def _cross_entropy_backward_rows(x, m, logs, target, scale, confidence, smooth, out):
    M, N = x.shape
    for r in range(M):
        s, mr, lr = scale[r], m[r], logs[r]
        sub = smooth * s
        for j in range(N):
            out[r, j] = exp32((x[r, j] - mr) - lr) * s - sub
        out[r, target[r]] -= confidence * s


def cross_entropy_backward_rows(x, m, logs, target, scale, confidence, smooth):
    """grad[r] = (softmax(x[r]) - q[r]) * scale[r], q = confidence·onehot(target) + smooth."""
    out = np.empty_like(x)
    _cross_entropy_backward_rows(contiguous(x), m, logs, contiguous(target), scale, f32(confidence), f32(smooth), out)
    return out


class CrossEntropy(Function):
    """Class-index targets; rows x (M, C), targets t (M,).

    Example: x = [[2, 0, 0]], t = [0]: p = [0.787, 0.107, 0.107], loss = -log 0.787 = 0.240,
    grad = p - onehot(0) = [-0.213, 0.107, 0.107].
    """

    @staticmethod
    def forward(ctx, x, target, ignore_index, reduction, label_smoothing, out_shape):
        xp = backend.of(x)
        M, C = x.shape
        valid = target != ignore_index
        t = xp.where(valid, target, 0)  # ignored rows point at class 0; their weight is 0 below
        m, logs = max_logsum(x, 1)  # (M, 1) each: logsumexp = m + logs
        loss = logs - (xp.take_along_axis(x, t[:, None], axis=1) - m)  # -log p_t = log Σ e^{x-m} - (x_t - m)
        if label_smoothing > 0:
            # -(1/C) Σ_c log p_c = logs - mean_c (x_c - m)
            loss *= 1 - label_smoothing
            loss += label_smoothing * (logs - (x.mean(axis=1, keepdims=True) - m))
        loss = xp.where(valid, loss[:, 0], x.dtype.type(0))
        count = valid.sum(dtype=x.dtype)  # a device scalar: no sync with the host
        ctx.save_for_backward(x, t, m, logs, valid, count)
        ctx.reduction, ctx.label_smoothing, ctx.out_shape = reduction, label_smoothing, out_shape
        out = _reduce(loss, reduction, count)
        return out.reshape(out_shape) if reduction == "none" else out

    @staticmethod
    def backward(ctx, grad_out):
        # loss_i = lse(x_i) - Σ_c q_ic x_ic with Σ_c q_ic = 1, and ∂lse/∂x_c = p_c, so
        # ∂loss_i/∂x_ic = p_ic - q_ic,  q = (1-ε)·onehot(t) + ε/C; ignored rows get 0.
        # Each row is scaled by its incoming gradient: grad_out_i ("none"), grad_out
        # ("sum") or grad_out / count ("mean").
        x, t, m, logs, valid, count = ctx.saved
        xp = backend.of(x)
        M, C = x.shape
        eps = ctx.label_smoothing
        if ctx.reduction == "none":
            scale = grad_out.reshape(M) * valid
        else:
            g = grad_out / xp.maximum(count, 1) if ctx.reduction == "mean" else grad_out
            scale = xp.where(valid, g, x.dtype.type(0))  # (M,)
        if kernels.usable(x, m, scale):
            return cross_entropy_backward_rows(x, m[:, 0], logs[:, 0], t, scale, 1 - eps, eps / C), None
        grad_x = x - m
        grad_x -= logs
        grad_x = xp.exp(grad_x)  # p
        if eps > 0:
            grad_x -= eps / C
        grad_x *= scale[:, None]
        grad_x[xp.arange(M), t] -= (1 - eps) * scale
        return grad_x, None


class CrossEntropyProbs(Function):
    """Class-probability targets q (M, C): loss_i = -Σ_c q_ic log p_ic (q smoothed first).

    Example: x = [[0, 0]], q = [[0.5, 0.5]]: loss = log 2 = 0.693, grad_x = p - q = [0, 0].
    """

    @staticmethod
    def forward(ctx, x, q, reduction, label_smoothing, out_shape):
        M, C = x.shape
        if label_smoothing > 0:
            q = q * (1 - label_smoothing) + label_smoothing / C
        logp = log_softmax_forward(x, 1)
        loss = -(logp * q).sum(axis=1)
        ctx.save_for_backward(logp, q)
        ctx.reduction, ctx.label_smoothing, ctx.out_shape = reduction, label_smoothing, out_shape
        out = _reduce(loss, reduction, M)
        return out.reshape(out_shape) if reduction == "none" else out

    @staticmethod
    def backward(ctx, grad_out):
        # loss_i = Σ_c q_ic (lse_i - x_ic):  ∂/∂x_ic = p_ic Σ_k q_ik - q_ic,  ∂/∂q_ic = -log p_ic
        # (times (1 - ε) for q: the smoothing mixes the given target with a constant)
        logp, q = ctx.saved
        xp = backend.of(logp)
        M = logp.shape[0]
        if ctx.reduction == "none":
            scale = grad_out.reshape(M, 1)
        else:
            scale = grad_out / M if ctx.reduction == "mean" else grad_out
        grad_x = grad_q = None
        if ctx.needs_input_grad[0]:
            grad_x = xp.exp(logp)
            grad_x *= q.sum(axis=1, keepdims=True)
            grad_x -= q
            grad_x *= scale
        if ctx.needs_input_grad[1]:
            grad_q = logp * (-(1 - ctx.label_smoothing) * scale)
        return grad_x, grad_q


def _rows_last(a, C):
    """(N, C, d1, ...) -> (N·d1·..., C): the class dim moved last, rows flattened."""
    if a.ndim == 2:
        return a
    return backend.of(a).moveaxis(a, 1, -1).reshape(-1, C)


class _ClassDimLast(Function):
    """(N, C, d1, ...) -> (N·d1·..., C) as one op (a copy), and its inverse for the gradient."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return _rows_last(x, x.shape[1])

    @staticmethod
    def backward(ctx, grad_out):
        # a permutation and a reshape: apply their inverses to the gradient
        N, C, *rest = ctx.shape
        return backend.of(grad_out).moveaxis(grad_out.reshape(N, *rest, C), -1, 1)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """torch.nn.functional.cross_entropy: -log softmax(input)[target], averaged over targets.

    input:  logits (N, C), (N, C, d1, ...) or unbatched (C,)
    target: class ids (N) / (N, d1, ...) / () (int), or class probabilities of input's shape
    ignore_index: targets equal to it contribute 0 and do not count in the mean
    reduction: "mean" | "sum" | "none";  label_smoothing ε in [0, 1]

    >>> F.cross_entropy(tinyllm.tensor([[2.0, 0.0, 0.0]]), tinyllm.tensor([0]))
    tensor(0.23954484)
    """
    x = as_tensor(input, "cross_entropy: input")
    if weight is not None:
        raise NotImplementedError("cross_entropy: per-class `weight` is not supported; pass weight=None")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if x.ndim == 0:
        raise ValueError("cross_entropy: input must have a class dimension, got a 0-d tensor")
    if x.dtype.kind != "f":
        raise TypeError(f"cross_entropy: input must be floating-point logits, got dtype {x.dtype}")
    if not isinstance(target, Tensor):
        target = Tensor(backend.asarray(target, device=x.device)) if not backend.is_array(target) else Tensor(target)
    if target.device != x.device:
        raise RuntimeError(f"cross_entropy: target is on {target.device!r} but input is on {x.device!r}; "
                           f"move it with target.to({x.device!r})")
    unbatched = x.ndim == 1
    C = x.shape[0] if unbatched else x.shape[1]
    rows = x.reshape(1, C) if unbatched else (x if x.ndim == 2 else _ClassDimLast.apply(x))

    if target.dtype.kind == "f":  # class probabilities
        if target.shape != x.shape:
            raise ValueError(f"cross_entropy: probability targets must have the input's shape {tuple(x.shape)}, "
                             f"got {tuple(target.shape)}")
        q = target.reshape(1, C) if unbatched else (target if x.ndim == 2 else _ClassDimLast.apply(target))
        out_shape = () if unbatched else (x.shape[0], *x.shape[2:])
        return CrossEntropyProbs.apply(rows, q, reduction=reduction, label_smoothing=float(label_smoothing),
                                       out_shape=out_shape)

    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class ids (or float probabilities), "
                        f"got dtype {target.dtype}")
    expected = () if unbatched else (x.shape[0], *x.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"cross_entropy: expected target of shape {expected} for input of shape "
                         f"{tuple(x.shape)} (classes at dim {0 if unbatched else 1}), got {tuple(target.shape)}")
    t = raw(target).reshape(-1)
    # subtle: checked on the host only; on a device the answer would cost a sync every step (see embedding)
    bad = (t != ignore_index) & ((t < 0) | (t >= C)) if backend.device_of(t) == "cpu" else None
    if bad is not None and bad.any():
        pos = int(bad.argmax())
        where = tuple(int(i) for i in np.unravel_index(pos, expected)) if len(expected) > 1 else pos
        raise IndexError(f"cross_entropy: target {int(t[pos])} at position {where} is out of range for "
                         f"{C} classes (expected 0 <= target < {C}, or ignore_index={ignore_index})")
    return CrossEntropy.apply(rows, t, ignore_index=ignore_index, reduction=reduction,
                              label_smoothing=float(label_smoothing), out_shape=expected)
