"""Cross-entropy: the language-modelling loss, fused from logits to gradient.

For logits x (one row of C class scores) and a target class t,

    loss = -log softmax(x)_t = logsumexp(x) - x_t

the negative log-likelihood of the right answer, in nats. With label smoothing
ε (Szegedy et al. 2016, "Rethinking the Inception Architecture", §7) the target
is the mixture q = (1 - ε)·onehot(t) + ε/C, and loss = -Σ_c q_c log p_c.
A per-class ``weight`` w (for rare classes) scales each term by its class,
q_c = (1 - ε)·w_t·onehot(t)_c + (ε/C)·w_c, and "mean" then divides by the total
weight Σ_i w_{t_i} of the counted targets instead of their number (torch's rule).

Written as log_softmax followed by picking and averaging, the backward would
pass through three ops and a (N, C) temporary each; fused, the gradient is one
closed form:

    ∂loss/∂x_c = p_c Σ_k q_k - q_c,    p = softmax(x)    (= p_c - q_c without weights)

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
from tinyllm.autograd import is_grad_enabled
from tinyllm.function import Function
from tinyllm.functional import kernels
from tinyllm.functional._util import as_tensor, raw, reduction_arg, target_tensor
from tinyllm.functional.kernels import contiguous, exp32, f32, kernel
from tinyllm.functional.softmax import log_softmax_forward, max_logsum


def _reduce(loss, reduction, count):
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total / count


# -------------------------------------------------------------------- the host kernel of the backward (float32 rows)


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
    """Class-index targets; rows x (M, C), targets t (M,), optional class weights w (C,).

    Example: x = [[2, 0, 0]], t = [0]: p = [0.787, 0.107, 0.107], loss = -log 0.787 = 0.240,
    grad = p - onehot(0) = [-0.213, 0.107, 0.107].
    """

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction, label_smoothing, out_shape):
        xp = backend.of(x)
        M, C = x.shape
        eps = label_smoothing
        valid = target != ignore_index
        t = xp.where(valid, target, 0)  # ignored rows point at class 0; their weight is 0 below
        m, logs = max_logsum(x, 1)  # (M, 1) each: logsumexp = m + logs
        loss = logs - (xp.take_along_axis(x, t[:, None], axis=1) - m)  # -log p_t = log Σ e^{x-m} - (x_t - m)
        w_t = None
        if weight is not None:
            w_t = xp.where(valid, weight[t], x.dtype.type(0))  # (M,) the weight of each row's class
            loss *= w_t[:, None]
        if eps > 0:
            # -(1/C) Σ_c w_c log p_c = (1/C) Σ_c w_c (logs - (x_c - m));  w = 1: logs - mean_c (x_c - m)
            if weight is None:
                smooth = logs - (x.mean(axis=1, keepdims=True) - m)
            else:
                smooth = (logs * weight.sum() - (x - m) @ weight[:, None]) / C
            loss *= 1 - eps
            loss += eps * smooth
        loss = xp.where(valid, loss[:, 0], x.dtype.type(0))
        count = valid.sum(dtype=x.dtype) if w_t is None else w_t.sum()  # a device scalar: no sync with the host
        ctx.save_for_backward(x, t, m, logs, valid, count, weight, w_t)
        ctx.reduction, ctx.label_smoothing, ctx.out_shape = reduction, eps, out_shape
        out = _reduce(loss, reduction, count)
        return out.reshape(out_shape) if reduction == "none" else out

    @staticmethod
    def backward(ctx, grad_out):
        # loss_i = Σ_c q_ic (lse(x_i) - x_ic), and ∂lse/∂x_c = p_c, so
        # ∂loss_i/∂x_ic = p_ic Σ_k q_ik - q_ic,  q = (1-ε)·w_t·onehot(t) + (ε/C)·w
        # (no weights: w = 1, Σ_k q_ik = 1, and the gradient is p - q); ignored rows get 0.
        # Each row is scaled by its incoming gradient: grad_out_i ("none"), grad_out
        # ("sum") or grad_out / count ("mean"; count = Σ_i w_{t_i}, the number of rows without weights).
        x, t, m, logs, valid, count, weight, w_t = ctx.saved
        xp = backend.of(x)
        M, C = x.shape
        eps = ctx.label_smoothing
        if ctx.reduction == "none":
            scale = grad_out.reshape(M) * valid
        else:
            if ctx.reduction == "sum":
                g = grad_out
            elif weight is None:
                g = grad_out / xp.maximum(count, 1)
            else:  # subtle: a total weight may be below 1; only 0 (every counted weight 0) must not divide
                g = grad_out / xp.where(count != 0, count, x.dtype.type(1))
            scale = xp.where(valid, g, x.dtype.type(0))  # (M,)
        if weight is None and kernels.usable(x, m, scale):
            return cross_entropy_backward_rows(x, m[:, 0], logs[:, 0], t, scale, 1 - eps, eps / C), None
        grad_x = x - m
        grad_x -= logs
        grad_x = xp.exp(grad_x)  # p
        if weight is None:
            if eps > 0:
                grad_x -= eps / C
            grad_x *= scale[:, None]
            grad_x[xp.arange(M), t] -= (1 - eps) * scale
            return grad_x, None
        grad_x *= (scale * ((1 - eps) * w_t + (eps / C) * weight.sum()))[:, None]  # p Σ_k q_k
        if eps > 0:
            grad_x -= (eps / C) * scale[:, None] * weight  # - (ε/C) w_c
        grad_x[xp.arange(M), t] -= (1 - eps) * w_t * scale  # - (1-ε) w_t at the target
        return grad_x, None


class CrossEntropyProbs(Function):
    """Class-probability targets q (M, C): loss_i = -Σ_c w_c q_ic log p_ic (q smoothed first; w = 1 if None).

    Example: x = [[0, 0]], q = [[0.5, 0.5]]: loss = log 2 = 0.693, grad_x = p - q = [0, 0].
    """

    @staticmethod
    def forward(ctx, x, q, weight, reduction, label_smoothing, out_shape):
        M, C = x.shape
        if label_smoothing > 0:
            q = q * (1 - label_smoothing) + label_smoothing / C
        if weight is not None:
            q = q * weight  # (M, C) * (C,): each class's share scaled by its weight
        logp = log_softmax_forward(x, 1)
        loss = -(logp * q).sum(axis=1)
        ctx.save_for_backward(logp, q, weight)
        ctx.reduction, ctx.label_smoothing, ctx.out_shape = reduction, label_smoothing, out_shape
        out = _reduce(loss, reduction, M)  # subtle: probability targets' "mean" divides by M, weights or not (torch)
        return out.reshape(out_shape) if reduction == "none" else out

    @staticmethod
    def backward(ctx, grad_out):
        # loss_i = Σ_c q_ic (lse_i - x_ic):  ∂/∂x_ic = p_ic Σ_k q_ik - q_ic,  ∂/∂q_ic = -log p_ic
        # (q here already carries the weights; the given target's gradient is times (1 - ε) w_c:
        # the smoothing mixes it with a constant, and the weight scales it)
        logp, q, weight = ctx.saved
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
            if weight is not None:
                grad_q *= weight
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


def class_weight(weight, x, C, name):
    """A per-class weight as a raw (C,) array in x's dtype on x's device, or None; a clear error otherwise."""
    if weight is None:
        return None
    w = as_tensor(weight, f"{name}: weight")
    if w.ndim != 1 or w.shape[0] != C:
        raise ValueError(f"{name}: weight should hold one value per class, shape ({C},), but got shape "
                         f"{tuple(w.shape)}; pass weight=None for equal weights")
    if w.dtype.kind != "f":
        raise TypeError(f"{name}: weight must be floating-point, got dtype {w.dtype}; use weight.float()")
    if w.device != x.device:
        raise RuntimeError(f"{name}: weight is on {w.device!r} but input is on {x.device!r}; "
                           f"move it with weight.to({x.device!r})")
    constant_weight(w, name, "weight")
    return w.data.astype(x.dtype, copy=False)


def constant_weight(w, name, what):
    """Refuse a weight that wants a gradient: torch's loss is not differentiable with respect to it."""
    if w.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{name} is not differentiable with respect to {what} (as in torch); "
                           f"pass {what}.detach()")


def class_targets(target, x, ignore_index, name):
    """Integer class ids for input x (C,) / (N, C) / (N, C, d1, ...): (ids flattened, the target shape).

    Checks the shape, the dtype and, on the host, the range (0 <= t < C or t == ignore_index).
    """
    unbatched = x.ndim == 1
    C = x.shape[0] if unbatched else x.shape[1]
    if target.dtype.kind not in "iu":
        raise TypeError(f"{name}: target must hold integer class ids, got dtype {target.dtype}"
                        + ("; cross_entropy also takes float class probabilities" if name == "cross_entropy" else ""))
    expected = () if unbatched else (x.shape[0], *x.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"{name}: expected target of shape {expected} for input of shape "
                         f"{tuple(x.shape)} (classes at dim {0 if unbatched else 1}), got {tuple(target.shape)}")
    t = raw(target).reshape(-1)
    # subtle: checked on the host only; on a device the answer would cost a sync every step (see embedding)
    bad = (t != ignore_index) & ((t < 0) | (t >= C)) if backend.device_of(t) == "cpu" else None
    if bad is not None and bad.any():
        pos = int(bad.argmax())
        where = tuple(int(i) for i in np.unravel_index(pos, expected)) if len(expected) > 1 else pos
        raise IndexError(f"{name}: target {int(t[pos])} at position {where} is out of range for "
                         f"{C} classes (expected 0 <= target < {C}, or ignore_index={ignore_index})")
    return t, expected


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """torch.nn.functional.cross_entropy: -log softmax(input)[target], averaged over targets.

    input:  logits (N, C), (N, C, d1, ...) or unbatched (C,)
    target: class ids (N) / (N, d1, ...) / () (int), or class probabilities of input's shape
    weight: per-class weights (C,) or None; "mean" then divides by the summed weight of the counted targets
    ignore_index: targets equal to it contribute 0 and do not count in the mean
    reduction: "mean" | "sum" | "none";  label_smoothing ε in [0, 1]
    (size_average, reduce: torch's deprecated spelling of reduction, mapped as torch maps them)

    >>> F.cross_entropy(tinyllm.tensor([[2.0, 0.0, 0.0]]), tinyllm.tensor([0]))
    tensor(0.23954484)
    >>> F.cross_entropy(tinyllm.tensor([[2.0, 0.0], [0.0, 0.0]]), tinyllm.tensor([0, 1]),
    ...                 weight=tinyllm.tensor([1.0, 3.0]))    # (1·0.127 + 3·0.693) / (1 + 3)
    tensor(0.5515924)
    """
    x = as_tensor(input, "cross_entropy: input")
    reduction = reduction_arg(reduction, size_average, reduce, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if x.ndim == 0:
        raise ValueError("cross_entropy: input must have a class dimension, got a 0-d tensor")
    if x.dtype.kind != "f":
        raise TypeError(f"cross_entropy: input must be floating-point logits, got dtype {x.dtype}")
    target = target_tensor(target, x, "cross_entropy")
    unbatched = x.ndim == 1
    C = x.shape[0] if unbatched else x.shape[1]
    w = class_weight(weight, x, C, "cross_entropy")
    rows = x.reshape(1, C) if unbatched else (x if x.ndim == 2 else _ClassDimLast.apply(x))

    if target.dtype.kind == "f":  # class probabilities
        if target.shape != x.shape:
            raise ValueError(f"cross_entropy: probability targets must have the input's shape {tuple(x.shape)}, "
                             f"got {tuple(target.shape)}")
        q = target.reshape(1, C) if unbatched else (target if x.ndim == 2 else _ClassDimLast.apply(target))
        out_shape = () if unbatched else (x.shape[0], *x.shape[2:])
        return CrossEntropyProbs.apply(rows, q, weight=w, reduction=reduction, label_smoothing=float(label_smoothing),
                                       out_shape=out_shape)

    t, expected = class_targets(target, x, ignore_index, "cross_entropy")
    return CrossEntropy.apply(rows, t, weight=w, ignore_index=ignore_index, reduction=reduction,
                              label_smoothing=float(label_smoothing), out_shape=expected)
