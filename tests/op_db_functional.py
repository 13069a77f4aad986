"""Rows for tinyllm.functional, same OpInfo as tests/op_db.py (F.sigmoid, the losses, ...).

Each row is an ``op_db.OpInfo``; ``tests/test_op_db.py`` runs ``op_db.OPS + OPS`` through
the one test body (values, dtypes and gradients against torch, then float64 gradcheck).
``fn(m, ...)`` reaches the functional module of either framework through ``F(m)``:
``tinyllm.functional`` or ``torch.nn.functional``, same names and arguments.

    OpInfo("F.sigmoid", lambda m, x: F(m).sigmoid(x))

What a row cannot say (ignore_index, all-ignored NaN, weights' errors, the -100 clamp of
binary_cross_entropy, kl_div's "batchmean" by hand, pad's cropping) is in
tests/test_functional_losses.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import strategies as S
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from op_db import LOOSE, OpInfo, grid, in_range, index_tensor, shapes, softplus_args, tensor, unique_abs

import tinyllm as tl

REDUCTIONS = ["mean", "sum", "none"]


def F(m):
    """The functional module of m (tinyllm or torch)."""
    return tl.functional if m is tl else m.nn.functional


def _pair(elements):
    """(for x, for y): one domain for both, or a pair."""
    return elements if isinstance(elements, tuple) else (elements, elements)


def quiet(fn):
    """fn with warnings off: torch warns when a regression target broadcasts and at kl_div's "mean"."""
    def run(*args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fn(*args)
    return run


def _kw(**kw):
    """Keyword arguments without the None ones (the default is then the callee's own)."""
    return {k: v for k, v in kw.items() if v is not None}


# ============================================================================ activations


@st.composite
def leaky_relu_args(draw, dtype, elements):
    return draw(tensor(dtype, shapes(), elements)), draw(st.sampled_from([None, 0.01, 0.2, 1.5]))


@st.composite
def glu_args(draw, dtype, elements):
    """(x, dim): x's size along dim is even (0, 2 or 4)."""
    shape = list(draw(shapes(1, 3)))
    d = draw(st.integers(-len(shape), len(shape) - 1))
    shape[d] = 2 * draw(st.integers(0, 2))
    return draw(tensor(dtype, tuple(shape), elements)), d


# ============================================================================ regression losses


@st.composite
def regression_args(draw, dtype, elements, weight=True):
    """(x, y, reduction, weight): y the same shape as x, or (one time in four) a shape broadcasting with it;
    y with or without grad; weight (x's shape, maybe with grad) only when the shapes agree."""
    ex, ey = _pair(elements)
    x = draw(tensor(dtype, shapes(0, 3), ex))
    if draw(st.integers(0, 3)) == 0:
        y_shape = tuple(draw(st.sampled_from([1, n])) for n in x.shape[draw(st.integers(0, x.ndim)):])
    else:
        y_shape = x.shape
    y = draw(tensor(dtype, y_shape, ey, requires_grad=draw(st.booleans())))
    w = None
    if weight and y_shape == x.shape and draw(st.booleans()):
        w = draw(tensor(dtype, x.shape, in_range(0.1, 2.0), requires_grad=draw(st.booleans())))
    return x, y, draw(st.sampled_from(REDUCTIONS)), w


def _with_param(args, values):
    """args plus one more element drawn from `values` (beta, delta)."""
    @st.composite
    def strategy(draw, dtype, elements):
        return (*draw(args(dtype, elements, weight=False))[:3], draw(st.sampled_from(values)))
    return strategy


@st.composite
def _nonempty_mean(draw, strategy, dtype, elements):
    """A loss's args whose mean is not over nothing (0/0 = NaN: gradcheck has nothing to compare)."""
    args = draw(strategy(dtype, elements))
    if args[2] == "mean" and int(np.prod(np.broadcast_shapes(args[0].shape, args[1].shape))) == 0:
        args = (*args[:2], "sum", *args[3:])
    return args


OFF_GRID = (grid(0.0), grid(0.25))  # x - y is never 0 (the kink of |d|) nor ±β, ±δ for the values drawn below


def regression(strategy):
    return lambda dt, el: _nonempty_mean(strategy, dt, el)


# ============================================================================ classification losses


@st.composite
def class_args(draw, dtype, elements, probs=False):
    """(x, target, weight, ignore_index, reduction): x (C,), (N, C) or (N, C, d1) with C >= 1,
    integer targets (ignore_index maybe one of the classes) or, with probs, a distribution over C."""
    kind = draw(st.sampled_from(["unbatched", "rows", "spatial"]))
    C = draw(st.integers(1, 4))
    shape = {"unbatched": (C,), "rows": (draw(st.integers(1, 4)), C),
             "spatial": (draw(st.integers(1, 3)), C, draw(st.integers(1, 3)))}[kind]
    x = draw(tensor(dtype, shape, elements))
    tshape = () if kind == "unbatched" else (shape[0], *shape[2:])
    w = draw(st.one_of(st.none(), tensor(dtype, (C,), in_range(0.2, 2.0), requires_grad=False)))
    reduction = draw(st.sampled_from(REDUCTIONS))
    if probs:
        q = draw(hnp.arrays(np.float64, (*tshape, C), elements=st.floats(0.05, 1.0)))
        q = np.moveaxis(q / q.sum(-1, keepdims=True), -1, 0 if kind == "unbatched" else 1)  # classes at dim 1
        return x, tl.tensor(q.astype(dtype), requires_grad=draw(st.booleans())), w, -100, reduction
    t = draw(index_tensor(tshape, 0, C - 1))
    ignore = draw(st.sampled_from([-100, *range(C)]))
    if reduction == "mean" and bool((t == ignore).all()):
        ignore = -100  # a mean over no target is 0/0 = NaN (tests/test_functional_losses.py checks it)
    return x, t, w, ignore, reduction


def nll_fn(m, x, t, w, ignore, reduction):
    return F(m).nll_loss(x, t, weight=w, ignore_index=ignore, reduction=reduction)


@st.composite
def cross_entropy_args(draw, dtype, elements):
    x, t, w, ignore, reduction = draw(class_args(dtype, elements, probs=draw(st.booleans())))
    return x, t, w, ignore, reduction, draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))


def cross_entropy_fn(m, x, t, w, ignore, reduction, eps):
    return F(m).cross_entropy(x, t, weight=w, ignore_index=ignore, reduction=reduction, label_smoothing=eps)


@st.composite
def bce_args(draw, dtype, elements, logits=False):
    """(x, y, weight, pos_weight, reduction): y in [0, 1] (maybe with grad); weights constants that
    broadcast to x (pos_weight one per class of the last dim)."""
    ex, ey = _pair(elements)
    x = draw(tensor(dtype, shapes(0, 3), ex))
    y_grad = draw(st.booleans())  # a target with grad stays inside (0, 1): gradcheck steps it by ±1e-6
    y = draw(tensor(dtype, x.shape, in_range(0.02, 0.98) if y_grad else ey, requires_grad=y_grad))
    w = pw = None
    if draw(st.booleans()):
        w = draw(tensor(dtype, x.shape[draw(st.integers(0, x.ndim)):], in_range(0.1, 2.0), requires_grad=False))
    if logits and draw(st.booleans()):
        pw = draw(tensor(dtype, x.shape[-1:], in_range(0.1, 3.0), requires_grad=False))
    reduction = draw(st.sampled_from(REDUCTIONS))
    if reduction == "mean" and x.data.size == 0:
        reduction = "sum"
    return x, y, w, pw, reduction


def labels(shape):
    """Targets in [0, 1], hard (0 or 1) half of the time."""
    hard = hnp.arrays(np.int64, shape, elements=st.integers(0, 1)).map(lambda a: a.astype(np.float64))
    return st.one_of(hard, in_range(0.0, 1.0)(shape))


def bce_fn(m, p, y, w, pw, reduction):
    return F(m).binary_cross_entropy(p, y, weight=w, reduction=reduction)


def bce_logits_fn(m, x, y, w, pw, reduction):
    return F(m).binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction=reduction)


@st.composite
def kl_div_args(draw, dtype, elements):
    """(log q, p or log p, reduction, log_target): p > 0, so its gradient is defined."""
    x = draw(tensor(dtype, shapes(0, 3), in_range(-4.0, 0.0)))
    log_target = draw(st.booleans())
    y = draw(tensor(dtype, x.shape, in_range(-4.0, 0.0) if log_target else in_range(0.02, 1.0),
                    requires_grad=draw(st.booleans())))
    reduction = draw(st.sampled_from(["mean", "batchmean", "sum", "none"]))
    if reduction == "mean" and x.data.size == 0 or reduction == "batchmean" and x.ndim and x.shape[0] == 0:
        reduction = "sum"
    return x, y, reduction, log_target


# ============================================================================ utilities


@st.composite
def one_hot_args(draw, dtype, elements):
    t = draw(index_tensor(draw(shapes(0, 3)), 0, 4))
    n = draw(st.sampled_from([-1, 5, 7]))
    return t, 5 if n == -1 and t.data.size == 0 else n


@st.composite
def normalize_args(draw, dtype, elements):
    """(x, p, dim, eps): nonzero entries of distinct sizes (norms away from 0 and from |x|'s kinks)."""
    x = draw(tensor(dtype, shapes(1, 3, empty=False), elements))
    return x, draw(st.sampled_from([2.0, 1.0, 3.0])), draw(st.integers(-x.ndim, x.ndim - 1)), \
        draw(st.sampled_from([None, 1e-12, 1e-3]))


@st.composite
def cosine_args(draw, dtype, elements):
    """(x1, x2, dim): broadcastable shapes (size >= 1), dim in the broadcast shape."""
    a, b = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, min_side=1,
                                                  max_side=3)).input_shapes
    x1 = draw(tensor(dtype, a, elements))
    x2 = draw(tensor(dtype, b, elements, requires_grad=draw(st.booleans())))
    n = max(len(a), len(b))
    return x1, x2, draw(st.integers(-n, n - 1))


@st.composite
def pad_args(draw, dtype, elements):
    """(x, pad, value): up to x.ndim (left, right) pairs, last dim first; negative ones crop (never below 0)."""
    x = draw(tensor(dtype, shapes(0, 3), elements))
    amounts = []
    for k in range(draw(st.integers(0, x.ndim))):
        n = x.shape[x.ndim - 1 - k]
        left = draw(st.integers(-n, 3))
        right = draw(st.integers(-(n + min(left, 0)), 3))  # crop at most what is there
        amounts += [left, right]
    return x, tuple(amounts), draw(st.sampled_from([None, 0.0, -1.5]))


# ============================================================================ the table


def MSE(m, x, y, r, w):
    return F(m).mse_loss(x, y, reduction=r, **_kw(weight=w))


def L1(m, x, y, r, w):
    return F(m).l1_loss(x, y, reduction=r, **_kw(weight=w))


def SMOOTH_L1(m, x, y, r, beta):
    return F(m).smooth_l1_loss(x, y, reduction=r, beta=beta)


def HUBER(m, x, y, r, delta):
    return F(m).huber_loss(x, y, reduction=r, delta=delta)


def KL_DIV(m, x, y, r, log_target):
    return F(m).kl_div(x, y, reduction=r, log_target=log_target)


OPS = [
    # ------------------------------------------------------------------ activations
    OpInfo("F.sigmoid", lambda m, x: F(m).sigmoid(x), elements=in_range(-30.0, 30.0)),
    OpInfo("F.tanh", lambda m, x: F(m).tanh(x)),
    OpInfo("F.softplus", lambda m, x, beta, t: F(m).softplus(x, beta, t), softplus_args, grid(0.1, -20, 20)),
    OpInfo("F.logsigmoid", lambda m, x: F(m).logsigmoid(x), elements=in_range(-120.0, 40.0)),
    OpInfo("F.leaky_relu", lambda m, x, a: F(m).leaky_relu(x) if a is None else F(m).leaky_relu(x, a),
           leaky_relu_args, S.nonzero_arrays),
    OpInfo("F.glu", lambda m, x, d: F(m).glu(x, d), glu_args),
    # ------------------------------------------------------------------ regression losses
    OpInfo("F.mse_loss", MSE, regression(regression_args), tol=LOOSE, torch_fn=quiet(MSE)),
    OpInfo("F.l1_loss", L1, regression(regression_args), OFF_GRID, tol=LOOSE, torch_fn=quiet(L1)),
    OpInfo("F.smooth_l1_loss", SMOOTH_L1, regression(_with_param(regression_args, [1.0, 0.5, 2.0, 0.0])), OFF_GRID,
           tol=LOOSE, torch_fn=quiet(SMOOTH_L1)),
    OpInfo("F.huber_loss", HUBER, regression(_with_param(regression_args, [1.0, 0.5, 2.0])), OFF_GRID, tol=LOOSE,
           torch_fn=quiet(HUBER)),
    # ------------------------------------------------------------------ classification losses
    OpInfo("F.nll_loss", nll_fn, class_args, tol=LOOSE),
    OpInfo("F.cross_entropy", cross_entropy_fn, cross_entropy_args, tol=LOOSE, max_examples=15),
    OpInfo("F.binary_cross_entropy", bce_fn, bce_args, (in_range(0.02, 0.98), labels), tol=LOOSE),
    OpInfo("F.binary_cross_entropy_with_logits", bce_logits_fn, lambda dt, el: bce_args(dt, el, logits=True),
           (in_range(-30.0, 30.0), labels), tol=LOOSE),
    OpInfo("F.kl_div", KL_DIV, kl_div_args, tol=LOOSE, torch_fn=quiet(KL_DIV)),
    # ------------------------------------------------------------------ utilities
    OpInfo("F.one_hot", lambda m, t, n: F(m).one_hot(t, n), one_hot_args, grad=False),
    OpInfo("F.normalize", lambda m, x, p, d, eps: F(m).normalize(x, p, d, **_kw(eps=eps)), normalize_args,
           unique_abs, tol=LOOSE),
    OpInfo("F.cosine_similarity", lambda m, a, b, d: F(m).cosine_similarity(a, b, dim=d), cosine_args, unique_abs,
           tol=LOOSE),
    OpInfo("F.pad", lambda m, x, p, v: F(m).pad(x, p, value=v), pad_args),
]
