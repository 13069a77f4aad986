"""Losses: how far a prediction is from its target, as one number to make smaller.

Regression (input x and target y are numbers, broadcast together as torch does), with d = x - y:

    mse_loss        d²                                                  least squares (Gauss)
    l1_loss         |d|                                                 least absolute deviations
    smooth_l1_loss  ½d²/β where |d| < β, else |d| - ½β                  Girshick 2015 (Fast R-CNN)
    huber_loss      ½d² where |d| < δ, else δ(|d| - ½δ)  (= δ·smooth_l1 with β = δ)   Huber 1964

Probabilities:

    nll_loss          -w_t · x[t]: x holds log-probabilities over the classes at dim 1 (log_softmax's output)
    binary_cross_entropy              -w (y log p + (1-y) log(1-p)) for a probability p; logs clamped at -100
    binary_cross_entropy_with_logits  the same from the logit x, p = σ(x):  (1-y) x - l·log σ(x),
                                      l = 1 + (pos_weight - 1) y  (pos_weight = 1: l = 1)
    kl_div            y (log y - x): KL(target ‖ input) summed over the classes, x = log-probabilities

A reduction turns the pointwise losses into the result: "none" keeps them, "sum"
adds them, "mean" divides the sum by their number, except

    nll_loss   "mean" divides by Σ_i w_{t_i} over the targets that count (their number without weights)
    mse, l1    with weight w, "mean" divides by Σ w (torch 2.x's rule; huber's weighted mean is plain)
    kl_div     "batchmean" divides by input.shape[0]: the true KL per sample, where "mean"
               also divides by the number of classes (torch keeps "mean" for compatibility)

Each loss here is its formula written with tinyllm.ops primitives, so the
gradient comes from the autograd and matches the math by construction: a loss
runs once per step on the model's output, and none of these is hot enough to
earn a fused kernel (cross_entropy, the LLM loss, is the fused one:
cross_entropy.py). One exception, binary_cross_entropy, is a Function: torch's
gradient at p = 0 or 1 is finite (p(1-p) clamped at 1e-12), while the gradient
of its clamped forward through the primitives would be 0·∞ = NaN.

    >>> F.mse_loss(tinyllm.tensor([1.0, 2.0]), tinyllm.tensor([1.0, 4.0]))       # (0² + 2²) / 2
    tensor(2.)

Length: ~350 lines, a little over the ~300 aim: eight losses that share the reduction and
target checks at the top; one file keeps the table above next to the code it describes.
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend, ops
from tinyllm.function import Function
from tinyllm.functional._util import as_tensor, reduction_arg, target_tensor
from tinyllm.functional.activations import logsigmoid
from tinyllm.functional.cross_entropy import class_targets, class_weight, constant_weight
from tinyllm.tensor import Tensor

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "huber_loss", "kl_div", "l1_loss", "mse_loss",
    "nll_loss", "smooth_l1_loss",
]


# ----------------------------------------------------------------------------- arguments and reductions


def _float_input(input, name):
    x = as_tensor(input, f"{name}: input")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: input must be floating-point, got dtype {x.dtype}; use input.float()")
    return x


def _target(target, x, name):
    """The target on x's device; integer or bool targets in x's dtype (torch's promotion, not NumPy's float64)."""
    y = target_tensor(target, x, name)
    return y if y.dtype.kind == "f" else ops.astype(y, x.dtype)


def _same_shape(x, y, name):
    if tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"{name}: target shape {tuple(y.shape)} differs from input shape {tuple(x.shape)}; "
                         "they must be the same (reshape the target)")


def _weight(weight, x, name, what="weight", constant=False):
    """An elementwise weight as a Tensor in x's dtype on x's device, or None; it must broadcast to x's shape.

    constant=True: a weight that requires grad is an error (torch's binary cross-entropies
    are not differentiable with respect to their weights).
    """
    if weight is None:
        return None
    w = as_tensor(weight, f"{name}: {what}")
    if constant:
        constant_weight(w, name, what)
    if w.device != x.device:
        raise RuntimeError(f"{name}: {what} is on {w.device!r} but input is on {x.device!r}; "
                           f"move it with {what}.to({x.device!r})")
    shape = tuple(x.shape)
    try:
        fits = tuple(np.broadcast_shapes(tuple(w.shape), shape)) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{name}: {what} of shape {tuple(w.shape)} does not broadcast to the input's shape {shape}")
    return w if w.dtype == x.dtype else ops.astype(w, x.dtype)


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _weighted(loss, weight, reduction, x, name, mean_by_weight):
    """torch 2.x's weighted regression losses: weight has the input's shape; "mean" divides by Σ w or by n."""
    if weight is None:
        return _reduce(loss, reduction)
    if tuple(weight.shape) != tuple(x.shape):
        raise ValueError(f"{name}: weight must have the input's shape {tuple(x.shape)}, got {tuple(weight.shape)}")
    w = _weight(weight, x, name)
    loss = loss * w
    if reduction == "mean" and mean_by_weight:
        return loss.sum() / w.sum()
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- regression


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """torch.nn.functional.mse_loss: (x - y)², reduced; with weight w: Σ w(x - y)² / Σ w for "mean".

    >>> F.mse_loss(tinyllm.tensor([1.0, 2.0]), tinyllm.tensor([1.0, 4.0]))
    tensor(2.)
    """
    reduction = reduction_arg(reduction, size_average, reduce, "mse_loss")
    x = _float_input(input, "mse_loss")
    d = x - _target(target, x, "mse_loss")  # broadcasts, as torch does (torch also warns when the shapes differ)
    return _weighted(d * d, weight, reduction, x, "mse_loss", mean_by_weight=True)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """torch.nn.functional.l1_loss: |x - y|, reduced (gradient sign(x - y), 0 where x = y, as torch).

    >>> F.l1_loss(tinyllm.tensor([1.0, 2.0]), tinyllm.tensor([1.0, 4.0]))
    tensor(1.)
    """
    reduction = reduction_arg(reduction, size_average, reduce, "l1_loss")
    x = _float_input(input, "l1_loss")
    d = x - _target(target, x, "l1_loss")
    return _weighted(d.abs(), weight, reduction, x, "l1_loss", mean_by_weight=True)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """torch.nn.functional.smooth_l1_loss: ½d²/β where |d| < β, |d| - ½β elsewhere (d = x - y; β = 0: l1_loss).

    Quadratic near 0 (a gradient that shrinks with the error), linear beyond β (outliers pull
    with a gradient of at most 1).

    >>> F.smooth_l1_loss(tinyllm.tensor([0.5, 3.0]), tinyllm.tensor([0.0, 0.0]), reduction="none")
    tensor([0.125, 2.5  ])
    """
    reduction = reduction_arg(reduction, size_average, reduce, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta} (beta=0 is l1_loss)")
    x = _float_input(input, "smooth_l1_loss")
    d = x - _target(target, x, "smooth_l1_loss")
    a = d.abs()
    if beta == 0:
        return _reduce(a, reduction)
    return _reduce(ops.where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """torch.nn.functional.huber_loss: ½d² where |d| < δ, δ(|d| - ½δ) elsewhere (d = x - y); = δ·smooth_l1(β=δ).

    >>> F.huber_loss(tinyllm.tensor([0.5, 3.0]), tinyllm.tensor([0.0, 0.0]), reduction="none", delta=2.0)
    tensor([0.125, 4.   ])
    """
    reduction = reduction_arg(reduction, None, None, "huber_loss")
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    x = _float_input(input, "huber_loss")
    d = x - _target(target, x, "huber_loss")
    a = d.abs()
    loss = ops.where(a < delta, d * d * 0.5, (a - 0.5 * delta) * delta)
    return _weighted(loss, weight, reduction, x, "huber_loss", mean_by_weight=False)


# ----------------------------------------------------------------------------- negative log-likelihood


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """torch.nn.functional.nll_loss: -w_t · input[t], input = log-probabilities with classes at dim 1.

    input (N, C), (N, C, d1, ...) or (C,); target class ids (N) / (N, d1, ...) / (). Targets equal
    to ignore_index add 0 and do not count; "mean" divides by the summed class weight of the
    targets that count (their number without weights). nll_loss(log_softmax(x, 1), t) = cross_entropy(x, t).

    >>> logp = tinyllm.tensor([[-0.1, -2.3], [-1.2, -0.4]])
    >>> F.nll_loss(logp, tinyllm.tensor([0, 1]))                            # (0.1 + 0.4) / 2
    tensor(0.25)
    >>> F.nll_loss(logp, tinyllm.tensor([0, 1]), weight=tinyllm.tensor([1.0, 3.0]))   # (0.1 + 3·0.4) / 4
    tensor(0.32500002)
    """
    reduction = reduction_arg(reduction, size_average, reduce, "nll_loss")
    x = _float_input(input, "nll_loss")
    if x.ndim == 0:
        raise ValueError("nll_loss: input must have a class dimension, got a 0-d tensor")
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    w = class_weight(weight, x, C, "nll_loss")
    t, shape = class_targets(target_tensor(target, x, "nll_loss"), x, ignore_index, "nll_loss")
    xp = backend.of(t)
    valid = t != ignore_index
    t = xp.where(valid, t, 0)  # ignored targets pick class 0; their weight is 0 below
    w_t = valid.astype(x.dtype) if w is None else xp.where(valid, w[t], x.dtype.type(0))  # (M,) a constant
    if x.ndim == 1:
        picked = ops.gather(x, 0, Tensor(t)).reshape(())  # (C,) -> ()
    else:
        index = t.reshape(x.shape[0], 1, *x.shape[2:])  # (N, 1, d1, ...)
        picked = ops.gather(x, 1, Tensor(index)).reshape(shape)  # (N, 1, d1, ...) -> (N, d1, ...)
    loss = -picked * Tensor(w_t.reshape(shape))
    if reduction != "mean":
        return _reduce(loss, reduction)
    # subtle: with every target ignored torch's mean is 0/0 = NaN but its gradient is 0 (not 0·∞ = NaN):
    # divide by a total that is never 0, and add the NaN apart, as a constant
    total = w_t.sum()
    empty = total == 0
    one, nan, zero = x.dtype.type(1), x.dtype.type(np.nan), x.dtype.type(0)
    return loss.sum() / Tensor(xp.where(empty, one, total)) + Tensor(xp.where(empty, nan, zero))


# ----------------------------------------------------------------------------- binary cross-entropy


_EPSILON = float(np.float32(1e-12))  # torch's clamp of p(1 - p), a float32 constant (9.99999996e-13)


class BinaryCrossEntropy(Function):
    """ℓ = -w (y log p + (1-y) log(1-p)), each log clamped at -100 (so p = 0 or 1 gives 100, not inf).

    Example: p = [0.9, 0.2], y = [1, 0]: ℓ = [-log 0.9, -log 0.8] = [0.105, 0.223];
    ∂ℓ/∂p = (p - y)/(p(1-p)) = [-1.111, 1.25].
    """

    @staticmethod
    def forward(ctx, p, y, weight, reduction):
        xp = backend.of(p)
        with np.errstate(divide="ignore"):  # log(0) = -inf is expected here; the clamp below makes it -100
            log_p = xp.maximum(xp.log(p), p.dtype.type(-100))
            log_q = xp.maximum(xp.log1p(-p), p.dtype.type(-100))
        loss = (y - 1) * log_q - y * log_p
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(p, y, weight)
        ctx.reduction = reduction
        if reduction == "none":
            return loss
        return loss.sum() if reduction == "sum" else loss.mean()

    @staticmethod
    def backward(ctx, grad_out):
        # ∂ℓ/∂p = w (p - y) / (p(1 - p)), the denominator clamped at 1e-12 as torch (finite at p = 0 and 1;
        #         not the derivative of the clamped forward, whose 0·∞ would be NaN there)
        # ∂ℓ/∂y = -w (log p - log(1 - p)) = -w logit(p)   (unclamped, as torch)
        p, y, weight = ctx.saved
        xp = backend.of(p)
        g = grad_out / p.dtype.type(p.size) if ctx.reduction == "mean" else grad_out
        if weight is not None:
            g = g * weight
        grad_p = grad_y = None
        if ctx.needs_input_grad[0]:
            grad_p = g * (p - y) / xp.maximum(p * (1 - p), p.dtype.type(_EPSILON))
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                grad_y = g * (xp.log1p(-p) - xp.log(p))
        return grad_p, grad_y


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """torch.nn.functional.binary_cross_entropy: -w (y log p + (1-y) log(1-p)), p = input in [0, 1].

    Each log is clamped at -100, as torch, so a confident wrong answer costs 100 rather than inf.
    weight (a constant, as in torch) broadcasts to the input's shape. Prefer
    binary_cross_entropy_with_logits on the logits: it never forms σ(x) and so never rounds it to 0 or 1.

    >>> F.binary_cross_entropy(tinyllm.tensor([0.9, 0.2]), tinyllm.tensor([1.0, 0.0]), reduction="none")
    tensor([0.10536055, 0.22314356])
    """
    reduction = reduction_arg(reduction, size_average, reduce, "binary_cross_entropy")
    p = _float_input(input, "binary_cross_entropy")
    y = _target(target, p, "binary_cross_entropy")
    _same_shape(p, y, "binary_cross_entropy")
    y = y if y.dtype == p.dtype else ops.astype(y, p.dtype)  # torch refuses a mixed pair; here p's dtype rules
    w = _weight(weight, p, "binary_cross_entropy", constant=True)
    # subtle: checked on the host only; on a device the answer would cost a sync every step
    if p.device == "cpu":
        if ((p.data < 0) | (p.data > 1)).any():
            raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1 (probabilities); "
                             "apply sigmoid first, or pass the logits to binary_cross_entropy_with_logits")
        if ((y.data < 0) | (y.data > 1)).any():
            raise ValueError("binary_cross_entropy: all elements of target should be between 0 and 1")
    return BinaryCrossEntropy.apply(p, y, weight=None if w is None else w.data, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """torch.nn.functional.binary_cross_entropy_with_logits: binary cross-entropy of p = σ(x), from the logit x.

        ℓ = (1 - y) x - l · log σ(x),   l = 1 + (pos_weight - 1) y
          = max(x, 0) - x y + log(1 + e^{-|x|})              (pos_weight = None: l = 1)

    log σ(x) = -softplus(-x) is computed without forming σ(x), so it is exact where
    σ(x) rounds to 0 or 1. pos_weight (one per class, broadcast along the last dim)
    scales the positive term: > 1 favours recall. weight broadcasts to the input's shape.
    Both weights are constants (as in torch: one that requires grad is an error).

    >>> F.binary_cross_entropy_with_logits(tinyllm.tensor([0.0, 100.0]), tinyllm.tensor([1.0, 0.0]), reduction="none")
    tensor([  0.6931472, 100.       ])
    """
    reduction = reduction_arg(reduction, size_average, reduce, "binary_cross_entropy_with_logits")
    x = _float_input(input, "binary_cross_entropy_with_logits")
    y = _target(target, x, "binary_cross_entropy_with_logits")
    _same_shape(x, y, "binary_cross_entropy_with_logits")
    w = _weight(weight, x, "binary_cross_entropy_with_logits", constant=True)
    log_sig = logsigmoid(x)
    if pos_weight is not None:
        pw = _weight(pos_weight, x, "binary_cross_entropy_with_logits", "pos_weight", constant=True)
        log_sig = log_sig * ((pw - 1) * y + 1)
    loss = (1 - y) * x - log_sig
    if w is not None:
        loss = loss * w
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- KL divergence


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """torch.nn.functional.kl_div: pointwise y (log y - x), with x = input as log-probabilities.

    Summed over the classes of a sample this is KL(target ‖ exp(input)) = Σ_c y_c log(y_c / q_c),
    the distillation loss (student log-probabilities in, teacher probabilities as target);
    reduction="batchmean" gives that per sample. log_target=True takes the target as
    log-probabilities too: e^{y} (y - x). Where y = 0 the term is 0 (0 log 0 = 0).

    >>> logq = tinyllm.tensor([[0.5, 0.5]]).log()
    >>> F.kl_div(logq, tinyllm.tensor([[1.0, 0.0]]), reduction="batchmean")   # log(1/0.5) + 0
    tensor(0.6931472)
    """
    reduction = reduction_arg(reduction, size_average, reduce, "kl_div", allowed=("mean", "batchmean", "sum", "none"))
    x = _float_input(input, "kl_div")
    y = _target(target, x, "kl_div")
    if log_target:
        loss = y.exp() * (y - x)
    else:
        # subtle: xlogy(y, y) = 0 where y = 0; log of 1 there, not of 0, so no 0·(-inf) = NaN in either pass
        loss = y * ops.where(y == 0, 1, y).log() - y * x
    if reduction == "batchmean":
        return loss.sum() / x.shape[0] if x.ndim else loss.sum()
    return _reduce(loss, reduction)
