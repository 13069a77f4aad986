"""The op table: one row per op, checked against PyTorch and finite differences by one test.

Modelled on PyTorch's ``OpInfo`` (torch/testing/_internal/common_methods_invocations.py):
a row says what to call and how to draw its arguments; ``tests/test_op_db.py`` runs every
row through the same checks. Adding an op is adding a row.

    OpInfo("exp", lambda m, x: (m.exp(x), x.exp()))

``fn(m, *args)`` is written once for both frameworks: ``m`` is ``tinyllm`` or ``torch``,
which share names (``m.clamp(x, 0, 1)``, ``x.topk(2, dim=d)``); where torch spells an op
differently, ``torch_fn`` is its twin. Returning a tuple checks several forms at once
(function and method, say). ``args(dtype, elements)`` is a Hypothesis strategy of the
argument tuple: tinyllm Tensors on the default device (drawn shapes with size-1 and size-0
dims, broadcasting pairs, non-contiguous views) and plain values (dim, keepdim, k, bounds).
Tensors are copied to torch; everything else is passed to both as is.

Each example (see ``check``):

    1. values, shapes, dtypes and devices equal torch's (tolerance by dtype, ``tol``);
    2. a random weighting of the float outputs is backpropagated in both: the gradients of
       every input that requires grad equal torch's (zeros included: floor, sign...);
    3. ``gradcheck``: float64 central differences (unless ``gradcheck=False``: kinks, steps).

Flags: ``grad=False`` for ops with no gradient (comparisons, argmax, all/any);
``elements`` keeps inputs in the domain (positive for log, distinct for sort, off the kinks
for abs/clamp); ``dtypes``, ``tol`` and ``max_examples`` per row.

``tests/op_db_functional.py`` holds the rows of ``tinyllm.functional``, same ``OpInfo``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import strategies as S
from gradcheck import gradcheck
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm as tl
from tinyllm import ops

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
TOL = {F32: dict(rtol=2e-5, atol=2e-5), F64: dict(rtol=1e-9, atol=1e-11)}


# ============================================================================ the row


@dataclass(frozen=True)
class OpInfo:
    """One op of the table (see the module docstring)."""

    name: str
    fn: Callable                             # fn(m, *args), m = tinyllm or torch
    args: Callable = None                    # args(dtype, elements) -> strategy of tuples; default: unary
    elements: Callable = S.arrays            # shape -> strategy of host float arrays (the domain)
    torch_fn: Callable | None = None         # torch's twin where names differ
    dtypes: tuple = (np.float32, np.float64)
    grad: bool = True                        # False: no output carries a gradient
    gradcheck: bool = True                   # False: finite differences are meaningless here
    tol: dict = field(default_factory=dict)  # {dtype: dict(rtol=, atol=)} over TOL
    max_examples: int = 12

    def sample(self, dtype):
        return (self.args or unary)(np.dtype(dtype), self.elements)

    def tolerance(self, dtype) -> dict:
        dtype = np.dtype(dtype)
        return {**TOL[dtype], **{k: v for d, t in self.tol.items() if np.dtype(d) == dtype for k, v in t.items()}}


# ============================================================================ the checks


def host(t):
    """A host copy of a Tensor's values (the explicit transfer)."""
    return np.array(tl.to_numpy(t.data))


def to_torch(torch, x):
    """A tinyllm Tensor as a torch leaf (same values, dtype, requires_grad); anything else as is."""
    if isinstance(x, tl.Tensor):
        return torch.tensor(host(x), requires_grad=x.requires_grad)
    return x


def _list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def check_torch(torch, fn, *inputs, tol=None, torch_fn=None):
    """Run fn(tinyllm, *inputs) and (torch_fn or fn)(torch, *copies); compare values, dtypes and gradients."""
    t_inputs = [to_torch(torch, x) for x in inputs]
    outs = _list(fn(tl, *inputs))
    with warnings.catch_warnings():  # the oracle's deprecations (x.T on 1-D) and 0/0 notes are not ours
        warnings.simplefilter("ignore", UserWarning)
        t_outs = _list((torch_fn or fn)(torch, *t_inputs))
    assert len(outs) == len(t_outs), f"{len(outs)} outputs, torch gives {len(t_outs)}"
    floats = [x.dtype for x in inputs if isinstance(x, tl.Tensor) and x.dtype.kind == "f"]
    tol = tol or TOL[F32 if F32 in floats else F64]
    for k, (o, to) in enumerate(zip(outs, t_outs)):
        expected = to.detach().numpy()
        assert o.shape == expected.shape, f"output {k}: shape {o.shape}, torch gives {expected.shape}"
        assert o.dtype == expected.dtype, f"output {k}: dtype {o.dtype}, torch gives {expected.dtype}"
        assert o.device == tl.get_device(), f"output {k} on {o.device}"
        np.testing.assert_allclose(host(o), expected, err_msg=f"output {k}", **tol)

    assert [o.requires_grad for o in outs] == [to.requires_grad for to in t_outs], "requires_grad of the outputs"
    rng = np.random.default_rng(1)
    pairs = [(o, to, rng.standard_normal(o.shape)) for o, to in zip(outs, t_outs) if to.requires_grad]
    for o, _, w in pairs:
        o.backward(tl.tensor(w, dtype=o.dtype, device=o.device), retain_graph=True)
    if pairs:
        torch.autograd.backward([to for _, to, _ in pairs], [torch.tensor(w, dtype=to.dtype) for _, to, w in pairs])
    for k, (x, tx) in enumerate(zip(inputs, t_inputs)):
        if not (isinstance(x, tl.Tensor) and x.requires_grad):
            continue
        expected = np.zeros(x.shape, x.dtype) if tx.grad is None else tx.grad.numpy()
        got = np.zeros(x.shape, x.dtype) if x.grad is None else host(x.grad)
        assert x.grad is None or (x.grad.dtype == x.dtype and x.grad.device == x.device), f"grad of input {k}"
        assert x.grad is None or x.grad.shape == x.shape, f"grad of input {k} has shape {x.grad.shape}"
        np.testing.assert_allclose(got, expected, err_msg=f"gradient of input {k}", **tol)


def check(torch, fn, *inputs, tol=None, **gradcheck_kw):
    """Against torch, then against central differences."""
    check_torch(torch, fn, *inputs, tol=tol)
    gradcheck(lambda *xs: fn(tl, *xs), inputs, **gradcheck_kw)


def check_row(torch, op: OpInfo, args: tuple, dtype) -> None:
    """The checks of one row on one drawn argument tuple (the body of test_op_db.test_op)."""
    check_torch(torch, op.fn, *args, tol=op.tolerance(dtype), torch_fn=op.torch_fn)
    wants_grad = any(isinstance(a, tl.Tensor) and a.requires_grad for a in args)
    if op.grad and op.gradcheck and wants_grad:  # (gradcheck works on fresh float64 copies of the inputs)
        gradcheck(lambda *xs: op.fn(tl, *xs), args)


# ============================================================================ elements (domains)


def grid(offset, lo=-6, hi=6):
    """Half-integers in [lo/2, hi/2] shifted by `offset`: grids with different offsets never tie."""
    return lambda shape: hnp.arrays(np.int64, shape, elements=st.integers(lo, hi)).map(lambda a: a * 0.5 + offset)


def unique(shape):
    """Distinct values at least 0.01 apart: no ties, and an ε-step never changes the order."""
    return hnp.arrays(np.int64, shape, elements=st.integers(-300, 300), unique=True).map(lambda a: a * 0.01)


def unique_abs(shape):
    """Nonzero values with distinct magnitudes: no tie in |x|, no kink of |x| (for norm)."""
    mags = hnp.arrays(np.int64, shape, elements=st.integers(10, 300), unique=True).map(lambda a: a * 0.01)
    return mags.flatmap(lambda a: hnp.arrays(np.bool_, a.shape).map(lambda neg: np.where(neg, -a, a)))


def in_range(lo, hi):
    return lambda shape: S.arrays(shape, lo, hi)


def counts(shape):
    """0, 1, 2 as floats: truth values for all/any."""
    return hnp.arrays(np.int64, shape, elements=st.integers(0, 2)).map(lambda a: a.astype(np.float64))


# ============================================================================ argument strategies


def sides(empty=True, max_side=4):
    """A dim's size: 1 a quarter of the time (broadcasting, squeezing), 0 one time in 13 (when `empty`),
    else 2..max_side, so that an op that mixes up positions shows it (S.sides draws 1 half the time)."""
    big = [n for n in range(2, max_side + 1) for _ in range(3)]
    return st.sampled_from(([0] if empty else []) + [1, 1, 1] + big)


def shapes(min_dims=0, max_dims=4, empty=True, max_side=4):
    """Shapes of min_dims..max_dims dims of `sides`."""
    return st.lists(sides(empty, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def tensor(dtype, shape=None, elements=S.arrays, requires_grad=True):
    return S.tensors(shapes() if shape is None else shape, elements=elements, dtype=dtype,
                     requires_grad=requires_grad)


def index_tensor(shape, lo, hi):
    """An int64 Tensor of `shape` with values in [lo, hi] (no gradient)."""
    return hnp.arrays(np.int64, shape, elements=st.integers(lo, hi)).map(tl.tensor)


def dims(ndim, *, none=True, tuples=True):
    """None, an int (maybe negative) or a tuple of distinct dims, as torch takes them."""
    n = max(ndim, 1)  # a 0-d tensor takes dim 0 or -1, as in torch
    options = [st.none()] if none else []
    options.append(st.integers(-n, n - 1))
    if tuples:
        options.append(st.lists(st.integers(-n, n - 1), min_size=1, max_size=n, unique_by=lambda d: d % n).map(tuple))
    return st.one_of(*options)


def _axes(d, ndim):
    if d is None or not ndim:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((d,) if isinstance(d, int) else d))


def unary(dtype, elements, empty=True, min_dims=0):
    return st.tuples(tensor(dtype, shapes(min_dims, empty=empty), elements))


@st.composite
def broadcast_pair(draw, empty=True):
    """S.broadcastable_shapes, and one time in four a result dim of size 0 (operands: 0 or 1 there)."""
    a, b = map(list, draw(S.broadcastable_shapes()))
    n = max(len(a), len(b))
    if empty and n and draw(st.integers(0, 3)) == 0:
        k = draw(st.integers(1, n))  # counted from the right
        for s in (a, b):
            if len(s) >= k and s[-k] != 1:
                s[-k] = 0
    return tuple(a), tuple(b)


def _pair(elements):
    return elements if isinstance(elements, tuple) else (elements, elements)


@st.composite
def binary(draw, dtype, elements, forms=("op", "rop", "method", "fn"), scalar=True):
    """(a, b, form): b a broadcastable tensor (with or without grad) or a Python number."""
    ea, eb = _pair(elements)
    sa, sb = draw(broadcast_pair())
    a = draw(tensor(dtype, sa, ea))
    kind = draw(st.sampled_from(["tensor", "constant", "scalar"] if scalar else ["tensor", "constant"]))
    if kind == "scalar":  # a Python float, or an int when it is whole (3 * x)
        b = float(draw(eb(())))
        b = int(b) if b.is_integer() and draw(st.booleans()) else b
    else:
        b = draw(tensor(dtype, sb, eb, requires_grad=kind == "tensor"))
    return a, b, draw(st.sampled_from(forms))


def binary_fn(op, name):
    """fn(m, a, b, form) for a binary op: a OP b, b OP a, a.name(b) or m.name(a, b)."""
    def fn(m, a, b, form):
        if form == "op":
            return op(a, b)
        if form == "rop":
            return op(b, a)
        if form == "method":
            return getattr(a, name)(b)
        return getattr(m, name)(a, b)
    return fn


@st.composite
def reduction(draw, dtype, elements, *, none=True, tuples=True, empty_reduced=True, keepdim=True, max_dims=4):
    """(x, dim, keepdim); with empty_reduced=False no reduced dim has size 0."""
    shape = list(draw(shapes(max_dims=max_dims)))
    d = draw(dims(len(shape), none=none, tuples=tuples))
    if not empty_reduced:
        for a in _axes(d, len(shape)):
            shape[a] = max(shape[a], 1)
    x = draw(tensor(dtype, tuple(shape), elements))
    return x, d, draw(st.booleans()) if keepdim else False


@st.composite
def along_dim(draw, dtype, elements, min_dims=1, empty=True):
    """(x, dim): one dim, maybe negative."""
    x = draw(tensor(dtype, shapes(min_dims, empty=empty), elements))
    return x, draw(st.integers(-x.ndim, x.ndim - 1)) if x.ndim else 0


@st.composite
def var_args(draw, dtype, elements):
    """(x, dim, keepdim, correction) with more elements than the correction (else NaN, no gradcheck)."""
    x, d, k = draw(reduction(dtype, elements, empty_reduced=False))
    n = int(np.prod([x.shape[a] for a in _axes(d, x.ndim)]))
    if n < 2:  # std's gradient at var = 0 (one element) is 0/0 in torch too
        x, d = draw(tensor(dtype, (2, 3), elements)), draw(st.sampled_from([None, 0, -1, (0, 1)]))
    return x, d, k, draw(st.sampled_from([0, 1, 2] if n > 2 else [0, 1]))


@st.composite
def norm_args(draw, dtype, elements):
    """(x, p, dim, keepdim): p in 2, 'fro' (dim None), 1, inf, 3, 1.5, 0.5."""
    p = draw(st.sampled_from([2, "fro", 1, math.inf, 3, 1.5, 0.5]))
    x, d, k = draw(reduction(dtype, elements, none=True, empty_reduced=p != math.inf))
    return x, p, None if p == "fro" else d, k


# ---------------------------------------------------------------------------- comparisons, where, clamp


@st.composite
def where_args(draw, dtype, elements):
    """(cond, a, b): three mutually broadcastable shapes; b a tensor or a number."""
    sc, sa, sb = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, min_side=0, max_side=3)).input_shapes
    cond = tl.tensor(draw(hnp.arrays(np.bool_, sc)))
    a = draw(tensor(dtype, sa, elements))
    b = draw(st.one_of(tensor(dtype, sb, elements), st.floats(-2, 2)))
    return cond, a, b


@st.composite
def clamp_args(draw, dtype, elements):
    """(x, lo, hi, form): numbers or broadcast tensors on grids offset from x's (no ties, no kinks)."""
    sx, sb = draw(broadcast_pair())
    x = draw(tensor(dtype, sx, grid(0.0)))
    kind = draw(st.sampled_from(["number", "tensor", "tensor", "constant"]))
    lo_hi = []
    for offset in (0.25, 0.125):  # lo and hi never tie either
        if kind == "number":
            lo_hi.append(float(draw(grid(offset)(()))))
        else:
            lo_hi.append(draw(tensor(dtype, sb, grid(offset), requires_grad=kind == "tensor")))
    lo, hi = lo_hi
    which = draw(st.sampled_from(["both", "both", "min", "max"]))  # both: lo > hi half the time
    return x, (None if which == "max" else lo), (None if which == "min" else hi), draw(st.booleans())


def clamp_fn(m, x, lo, hi, clip):
    return (x.clip(lo, hi), m.clip(x, lo, hi)) if clip else (m.clamp(x, lo, hi), x.clamp(min=lo, max=hi))


COMPARISONS = [("lt", lambda a, b: a < b), ("le", lambda a, b: a <= b), ("gt", lambda a, b: a > b),
               ("ge", lambda a, b: a >= b), ("eq", lambda a, b: a == b), ("ne", lambda a, b: a != b)]


# ---------------------------------------------------------------------------- products


@st.composite
def matmul_args(draw, dtype, elements):
    shapes_ = draw(hnp.mutually_broadcastable_shapes(signature="(m?,n),(n,p?)->(m?,p?)", max_dims=2,
                                                     min_side=0, max_side=4)).input_shapes
    a, b = (draw(tensor(dtype, s, elements, requires_grad=draw(st.booleans()) or i == 0))
            for i, s in enumerate(shapes_))
    return a, b, draw(st.sampled_from(["op", "method", "fn"]))


def matmul_fn(m, a, b, form):
    return a @ b if form == "op" else a.matmul(b) if form == "method" else m.matmul(a, b)


@st.composite
def bmm_args(draw, dtype, elements):
    B, n, k, p = (draw(sides(max_side=3)) for _ in range(4))
    return draw(tensor(dtype, (B, n, k), elements)), draw(tensor(dtype, (B, k, p), elements))


@st.composite
def outer_args(draw, dtype, elements):
    return draw(tensor(dtype, shapes(1, 1), elements)), draw(tensor(dtype, shapes(1, 1), elements))


EINSUM = ["ij,jk->ik", "bij,bjk->bik", "ij->j", "ij->", "i->", "i,j->ij", "ij,ij->ij", "bqd,bkd->bqk", "ij->ji",
          "ij,jk", "i,i->", "ijk->ki", "ij,j->i", "ij,kl->ilk", "bhqd,bhkd->bhqk", "ij,ik->jk", "ij,jk->",
          "ijk,k->ij"]


@st.composite
def einsum_args(draw, dtype, elements):
    """(equation, as_list, *operands): sizes drawn per index letter, 0 included."""
    eq = draw(st.sampled_from(EINSUM))
    subs = eq.partition("->")[0].split(",")
    size = {c: draw(sides(max_side=3)) for c in sorted(set("".join(subs)))}
    xs = [draw(tensor(dtype, tuple(size[c] for c in s), elements)) for s in subs]
    return (eq, draw(st.booleans()), *xs)


def einsum_fn(m, eq, as_list, *xs):
    return m.einsum(eq, list(xs)) if as_list else m.einsum(eq, *xs)


# ---------------------------------------------------------------------------- indexing


@st.composite
def getitem_basic_args(draw, dtype, elements):
    """(x, key): ints, slices (positive steps: torch has no others), None, Ellipsis."""
    x = draw(tensor(dtype, shapes(), elements))
    key = draw(hnp.basic_indices(x.shape, allow_newaxis=True).filter(_positive_steps))
    return x, key


def _positive_steps(key):
    keys = key if isinstance(key, tuple) else (key,)
    return all(not isinstance(k, slice) or k.step is None or k.step > 0 for k in keys)


@st.composite
def getitem_int_args(draw, dtype, elements):
    """(x, i, j, form): integer index tensors (negative, repeated, empty) in four key forms."""
    x = draw(tensor(dtype, shapes(1, 3, empty=False), elements))
    n0 = x.shape[0]
    idx_shape = draw(shapes(1, 2))
    form = draw(st.sampled_from(["first", "list", "second", "pair"] if x.ndim >= 2 else ["first", "list"]))
    i = draw(index_tensor(idx_shape if form != "list" else draw(shapes(1, 1)), -n0, n0 - 1))
    j = draw(index_tensor(idx_shape, 0, x.shape[1] - 1)) if x.ndim >= 2 else None
    return x, i, j, form


def getitem_int_fn(m, x, i, j, form):
    return {"first": lambda: x[i], "list": lambda: x[i.tolist()], "second": lambda: x[:, j],
            "pair": lambda: x[i, j]}[form]()


@st.composite
def getitem_mask_args(draw, dtype, elements):
    x = draw(tensor(dtype, shapes(1, 3), elements))
    k = draw(st.integers(1, x.ndim))
    return x, tl.tensor(draw(hnp.arrays(np.bool_, x.shape[:k])))


@st.composite
def gather_args(draw, dtype, elements, scatter=False):
    """(x, dim, index[, src]): index no larger than x outside `dim`, values in range; src >= index."""
    x = draw(tensor(dtype, shapes(1, 3, empty=False), elements))
    d = draw(st.integers(-x.ndim, x.ndim - 1))
    a = d % x.ndim
    ishape = tuple(draw(st.integers(0, 4 if k == a and not scatter else n)) for k, n in enumerate(x.shape))
    index = draw(index_tensor(ishape, 0, x.shape[a] - 1))
    if not scatter:
        return x, d, index
    grad = draw(st.booleans())  # a src larger than index: torch's backward fails on it, so no grad then
    sshape = ishape if grad else tuple(n + draw(st.integers(0, 1)) for n in ishape)
    return x, d, index, draw(tensor(dtype, sshape, elements, requires_grad=grad))


@st.composite
def index_select_args(draw, dtype, elements):
    x = draw(tensor(dtype, shapes(1, 3, empty=False), elements))
    d = draw(st.integers(-x.ndim, x.ndim - 1))
    return x, d, draw(index_tensor(draw(shapes(1, 1)), 0, x.shape[d] - 1))


@st.composite
def take_along_dim_args(draw, dtype, elements):
    """(x, indices, dim): dim None (flattened) or indices broadcasting against x outside dim."""
    x = draw(tensor(dtype, shapes(1, 3), elements))
    if draw(st.booleans()) and x.data.size:
        return x, draw(index_tensor(draw(shapes(1, 2)), 0, x.data.size - 1)), None
    d = draw(st.integers(-x.ndim, x.ndim - 1))
    ishape = []
    for k, n in enumerate(x.shape):
        if k == d % x.ndim:
            ishape.append(draw(st.integers(0, 3)) if n else 0)
        else:
            ishape.append(draw(st.sampled_from([n, 1])))
    if 1 in x.shape and draw(st.booleans()):  # x broadcast along one of its size-1 dims (to 0 or 3)
        k = x.shape.index(1)
        if k != d % x.ndim:
            ishape[k] = draw(st.sampled_from([0, 3]))
    return x, draw(index_tensor(tuple(ishape), 0, max(x.shape[d] - 1, 0))), d


@st.composite
def masked_fill_args(draw, dtype, elements):
    """(x, mask, value): a mask broadcast against x; value a number or a 0-d tensor."""
    x = draw(tensor(dtype, shapes(1), elements))
    start = draw(st.integers(0, x.ndim))
    mask_shape = tuple(n if draw(st.booleans()) else 1 for n in x.shape[start:])
    mask = tl.tensor(draw(hnp.arrays(np.bool_, mask_shape)))
    value = draw(st.floats(-5, 5))
    return x, mask, tl.tensor(value, dtype=dtype) if draw(st.booleans()) else value


@st.composite
def tri_args(draw, dtype, elements):
    return draw(tensor(dtype, shapes(2, 4), elements)), draw(st.integers(-3, 3))


# ---------------------------------------------------------------------------- shape


@st.composite
def reshape_targets(draw, shape):
    """Another shape of the same size: dims shuffled and merged, 1s inserted, maybe one -1 (not if empty)."""
    out = []
    for n in draw(st.permutations(list(shape))):
        if out and draw(st.booleans()):
            out[-1] *= n
        else:
            out.append(n)
    for _ in range(draw(st.integers(0, 2))):
        out.insert(draw(st.integers(0, len(out))), 1)
    if out and 0 not in shape and draw(st.booleans()):
        out[draw(st.integers(0, len(out) - 1))] = -1
    return tuple(out)


@st.composite
def flatten_dims(draw, ndim):
    """(start_dim, end_dim) with start <= end, end sometimes negative."""
    start, end = sorted(draw(st.lists(st.integers(0, max(ndim - 1, 0)), min_size=2, max_size=2)))
    return start, end - max(ndim, 1) if draw(st.booleans()) else end


@st.composite
def expand_targets(draw, shape):
    """A shape that `shape` expands to: new leading dims, size-1 dims grown (to 0 too), some -1."""
    lead = draw(st.lists(st.integers(0, 3), min_size=0 if shape else 1, max_size=2))
    rest = [draw(st.sampled_from([-1, 0, 1, 2, 3])) if n == 1 else draw(st.sampled_from([-1, n])) for n in shape]
    return tuple(lead + rest)


def with_param(param, min_dims=0, empty=True):
    """(x, p) where p = draw(param(x)): a shape op's argument drawn for x's shape."""
    @st.composite
    def args(draw, dtype, elements):
        x = draw(tensor(dtype, shapes(min_dims, empty=empty), elements))
        return x, draw(param(x))
    return args


def _dim(x, extra=0):
    return st.integers(-x.ndim - extra, x.ndim - 1 + extra)


def _permutations(x):
    """Any permutation of x's dims, or a rotation (1, 2, ..., 0): for 3+ dims not its own inverse, so a
    backward that permutes back by the same dims shows; odd dims negative."""
    rotation = st.just(tuple(range(1, x.ndim)) + (0,))
    return st.one_of(st.permutations(range(x.ndim)), rotation).map(lambda p: tuple(d - x.ndim * (d % 2) for d in p))


def _flip_dims(x):
    return st.one_of(_dim(x), st.lists(_dim(x), min_size=1, max_size=x.ndim, unique_by=lambda d: d % x.ndim).map(tuple))


def _roll_params(x):
    """(shifts, dims): an int and None (flattened), an int and a dim, or a tuple of each."""
    shift = st.integers(-6, 6)
    one = st.tuples(shift, st.one_of(st.none(), _dim(x)) if x.ndim else st.none())
    if not x.ndim:
        return one
    many = st.lists(_dim(x), min_size=1, max_size=x.ndim, unique_by=lambda d: d % x.ndim).flatmap(
        lambda ds: st.tuples(st.lists(shift, min_size=len(ds), max_size=len(ds)).map(tuple), st.just(tuple(ds))))
    return st.one_of(one, many)


def _narrow_params(x):
    return _dim(x).flatmap(lambda d: st.integers(-x.shape[d], x.shape[d]).flatmap(
        lambda s: st.tuples(st.just(d), st.just(s), st.integers(0, x.shape[d] - (s % x.shape[d] if s < 0 else s)))))


def _split_params(x):
    """(dim, split_size_or_sections)."""
    def for_dim(d):
        n = x.shape[d]
        size = st.integers(1, n + 1)
        sections = st.lists(st.integers(0, n), max_size=3).map(
            lambda cuts: [b - a for a, b in zip([0] + sorted(cuts), sorted(cuts) + [n])])
        return st.tuples(st.just(d), st.one_of(size, sections))
    return _dim(x).flatmap(for_dim)


def _rest(shape, target):
    """reshape's -1: the rest of the size."""
    if -1 not in target:
        return target
    rest = int(np.prod([n for n in target if n != -1]))
    return tuple(int(np.prod(shape)) // rest if n == -1 else n for n in target)


def _kept(shape, target):
    """expand's -1: the size already there."""
    lead = len(target) - len(shape)
    return tuple(shape[i - lead] if n == -1 else n for i, n in enumerate(target))


@st.composite
def like_args(draw, dtype, elements, target, resolve):
    """(x, other) with other.shape = resolve(x.shape, target(x.shape)) (expand_as, view_as); other has no grad."""
    x = draw(tensor(dtype, shapes(), elements))
    return x, tl.zeros(resolve(x.shape, draw(target(x.shape))))


@st.composite
def cat_args(draw, dtype, elements, stack=False):
    """(dim, *tensors): same shapes except along dim (sizes 0..3 there; stack: all the same)."""
    base = list(draw(shapes(0 if stack else 1, 3)))
    d = draw(st.integers(-len(base) - stack, len(base) - 1 + stack))
    xs = []
    for _ in range(draw(st.integers(1, 3))):
        if not stack:
            base[d] = draw(st.integers(0, 3))
        xs.append(draw(tensor(dtype, tuple(base), elements, requires_grad=draw(st.booleans()) or not xs)))
    return (d, *xs)


@st.composite
def repeat_args(draw, dtype, elements):
    x = draw(tensor(dtype, shapes(0, 3), elements))
    extra = draw(st.integers(0 if x.ndim else 1, 2))
    return x, tuple(draw(st.integers(0, 3)) for _ in range(x.ndim + extra)), draw(st.booleans())


# ---------------------------------------------------------------------------- sorting and new tensors


@st.composite
def topk_args(draw, dtype, elements):
    x, d = draw(along_dim(dtype, elements))
    n = x.shape[d]
    return x, draw(st.integers(0, n)), d, draw(st.booleans())


@st.composite
def sort_args(draw, dtype, elements):
    x, d = draw(along_dim(dtype, elements))
    return x, d, draw(st.booleans())


@st.composite
def new_args(draw, dtype, elements):
    x = draw(tensor(dtype, shapes(), elements))
    return x, draw(shapes(0, 3)), draw(st.sampled_from([None, "float32", "float64", "int64"]))


def new_fn(m, x, size, dtype):
    dt = None if dtype is None else getattr(m, dtype)
    ones = x.new_ones(*size, dtype=dt) if size else x.new_ones(size, dtype=dt)  # torch's new_ones() needs a size
    return x.new_zeros(size, dtype=dt), ones, x.new_full(size, 2.5, dtype=dt), x.new_zeros(size)


@st.composite
def cast_args(draw, dtype, elements):
    return draw(tensor(dtype, shapes(), elements)), draw(st.sampled_from(["float32", "float64"]))


@st.composite
def bool_args(draw, dtype, elements):
    """(x, dim, keepdim) where x is float counts (0, 1, 2) or a bool tensor."""
    x, d, k = draw(reduction(dtype, counts))
    if draw(st.booleans()):
        x = tl.tensor(host(x) != 0)
    else:
        x = x.detach()
    return x, d, k


# ============================================================================ the table


def _f(name):
    """(m.name(x), x.name()): the function and the method of a unary op."""
    return lambda m, x: (getattr(m, name)(x), getattr(x, name)())


def _softplus_torch(torch, x, beta, threshold):  # neither torch.softplus nor Tensor.softplus exists
    y = torch.nn.functional.softplus(x, beta, threshold)
    return y, y


@st.composite
def softplus_args(draw, dtype, elements):
    x = draw(tensor(dtype, shapes(), elements))
    return x, draw(st.sampled_from([1.0, 0.5, 2.0])), draw(st.sampled_from([20.0, 1.0, 5.0]))


def _amax(name):
    """x.amax(dim, keepdim), and x.amax(keepdim=k) for dim None (torch takes no dim=None)."""
    return lambda m, x, d, k: getattr(x, name)(keepdim=k) if d is None else getattr(x, name)(d, k)


def _max(name):
    """x.max() or tuple(x.max(dim, keepdim)) (values, indices); and m.max(x, dim)."""
    def fn(m, x, d, k):
        if d is None:
            return getattr(x, name)(), getattr(m, name)(x)
        return (*getattr(x, name)(d, k), *getattr(m, name)(x, d, keepdim=k))
    return fn


def _arg(name):
    return lambda m, x, d, k: (getattr(x, name)(dim=d, keepdim=k), getattr(m, name)(x, d, k))


def _prod(m, x, d, k):
    return (x.prod(), m.prod(x)) if d is None else (x.prod(d, keepdim=k), m.prod(x, d, k))


LOOSE = {np.float32: dict(rtol=1e-4, atol=1e-4)}  # sums of products, composite formulas in float32

OPS = [
    # ------------------------------------------------------------------ arithmetic
    OpInfo("add", binary_fn(lambda a, b: a + b, "add"), binary),
    OpInfo("sub", binary_fn(lambda a, b: a - b, "sub"), binary),
    OpInfo("mul", binary_fn(lambda a, b: a * b, "mul"), binary),
    OpInfo("div", binary_fn(lambda a, b: a / b, "div"), binary, S.nonzero_arrays),
    OpInfo("pow", binary_fn(lambda a, b: a**b, "pow"), lambda dt, el: binary(dt, el, forms=("op", "method", "fn")),
           (S.positive_arrays, in_range(-2.0, 2.0)), tol=LOOSE),
    OpInfo("pow_int_exponent", lambda m, x, n: (x**n, m.pow(x, n)),
           lambda dt, el: st.tuples(tensor(dt, shapes(), el), st.sampled_from([0, 1, 2, 3, -1, -2])),
           S.nonzero_arrays, tol=LOOSE),
    OpInfo("rpow", lambda m, x, base: base**x, lambda dt, el: st.tuples(tensor(dt, shapes(), el), st.floats(0.5, 3)),
           tol=LOOSE),
    OpInfo("maximum", binary_fn(None, "maximum"), lambda dt, el: binary(dt, el, ("method", "fn"), scalar=False),
           (grid(0.0), grid(0.25))),
    OpInfo("minimum", binary_fn(None, "minimum"), lambda dt, el: binary(dt, el, ("method", "fn"), scalar=False),
           (grid(0.25), grid(0.0))),
    OpInfo("where", lambda m, c, a, b: m.where(c, a, b), where_args),
    OpInfo("clamp", clamp_fn, clamp_args, max_examples=20),  # lo > hi with tensor bounds: 1 example in 10
    *[OpInfo(name, binary_fn(op, name), binary, grid(0.0), grad=False) for name, op in COMPARISONS],
    # ------------------------------------------------------------------ elementwise
    OpInfo("neg", lambda m, x: (-x, m.neg(x), x.neg())),
    OpInfo("exp", _f("exp")),
    OpInfo("log", _f("log"), elements=S.positive_arrays),
    OpInfo("sqrt", _f("sqrt"), elements=S.positive_arrays),
    OpInfo("rsqrt", _f("rsqrt"), elements=S.positive_arrays),
    OpInfo("square", _f("square")),
    OpInfo("reciprocal", _f("reciprocal"), elements=S.nonzero_arrays),
    OpInfo("tanh", _f("tanh")),
    OpInfo("sigmoid", _f("sigmoid"), elements=in_range(-30.0, 30.0)),
    OpInfo("softplus", lambda m, x, beta, t: (ops.softplus(x, beta, t), x.softplus(beta, t)), softplus_args,
           grid(0.1, -20, 20), torch_fn=_softplus_torch),  # 0.1 off the grid: never at βx = threshold
    OpInfo("relu", _f("relu"), elements=S.nonzero_arrays),
    OpInfo("abs", lambda m, x: (m.abs(x), x.abs(), abs(x)), elements=S.nonzero_arrays),
    OpInfo("sin", _f("sin")),
    OpInfo("cos", _f("cos")),
    OpInfo("log1p", _f("log1p"), elements=in_range(-0.9, 3.0)),
    OpInfo("expm1", _f("expm1")),
    OpInfo("erf", _f("erf")),
    *[OpInfo(name, _f(name), gradcheck=False) for name in ("floor", "round", "sign", "trunc")],
    # ------------------------------------------------------------------ products
    OpInfo("matmul", matmul_fn, matmul_args, tol=LOOSE),
    OpInfo("bmm", lambda m, a, b: (m.bmm(a, b), a.bmm(b)), bmm_args, tol=LOOSE),
    OpInfo("outer", lambda m, a, b: (m.outer(a, b), a.outer(b)), outer_args),
    OpInfo("einsum", einsum_fn, einsum_args, tol=LOOSE, max_examples=15),
    # ------------------------------------------------------------------ reductions
    OpInfo("sum", lambda m, x, d, k: (x.sum(dim=d, keepdim=k), m.sum(x, d, k)), reduction),
    OpInfo("mean", lambda m, x, d, k: (x.mean(dim=d, keepdim=k), m.mean(x, d, k)), reduction),
    OpInfo("var", lambda m, x, d, k, c: (x.var(dim=d, keepdim=k, correction=c), m.var(x, d, correction=c)),
           var_args, unique, tol=LOOSE),
    OpInfo("std", lambda m, x, d, k, c: (x.std(dim=d, keepdim=k, correction=c), m.std(x, d, correction=c)),
           var_args, unique, tol=LOOSE),
    OpInfo("amax", _amax("amax"), lambda dt, el: reduction(dt, el, empty_reduced=False), unique),
    OpInfo("amin", _amax("amin"), lambda dt, el: reduction(dt, el, empty_reduced=False), unique),
    OpInfo("max", _max("max"), lambda dt, el: reduction(dt, el, tuples=False, empty_reduced=False), unique),
    OpInfo("min", _max("min"), lambda dt, el: reduction(dt, el, tuples=False, empty_reduced=False), unique),
    OpInfo("argmax", _arg("argmax"), lambda dt, el: reduction(dt, el, tuples=False, empty_reduced=False), unique,
           grad=False),
    OpInfo("argmin", _arg("argmin"), lambda dt, el: reduction(dt, el, tuples=False, empty_reduced=False), unique,
           grad=False),
    OpInfo("norm", lambda m, x, p, d, k: (x.norm(p, d, k), m.norm(x, p, d, k)), norm_args, unique_abs, tol=LOOSE),
    OpInfo("logsumexp", lambda m, x, d, k: (x.logsumexp(d, k), m.logsumexp(x, d, keepdim=k)),
           lambda dt, el: reduction(dt, el, none=False), tol=LOOSE),
    # |x| in [0.5, 1.5], at most 64 factors: no product underflows (torch's x-free formula result/x_i
    # then gives 0 where the exact gradient is not; zeros are test_ops' special case)
    OpInfo("prod", _prod, lambda dt, el: reduction(dt, el, tuples=False, max_dims=3),
           lambda shape: S.nonzero_arrays(shape, 0.5, 1.5), tol=LOOSE),
    OpInfo("cumsum", lambda m, x, d: (x.cumsum(d), m.cumsum(x, d)), lambda dt, el: along_dim(dt, el, min_dims=0),
           tol=LOOSE),
    OpInfo("all", lambda m, x, d, k: (x.all(dim=d, keepdim=k), m.all(x, d, k)), bool_args, grad=False),
    OpInfo("any", lambda m, x, d, k: (x.any(dim=d, keepdim=k), m.any(x, d, k)), bool_args, grad=False),
    OpInfo("softmax", lambda m, x, d: x.softmax(d), along_dim, tol=LOOSE),
    OpInfo("log_softmax", lambda m, x, d: x.log_softmax(d), along_dim, tol=LOOSE),
    # ------------------------------------------------------------------ indexing
    OpInfo("getitem_basic", lambda m, x, key: x[key], getitem_basic_args),
    OpInfo("getitem_int_arrays", getitem_int_fn, getitem_int_args),
    OpInfo("getitem_bool_mask", lambda m, x, mask: x[mask], getitem_mask_args),
    OpInfo("gather", lambda m, x, d, i: (x.gather(d, i), m.gather(x, d, i)), gather_args),
    OpInfo("scatter_add", lambda m, x, d, i, src: (x.scatter_add(d, i, src), m.scatter_add(x, d, i, src)),
           lambda dt, el: gather_args(dt, el, scatter=True)),
    OpInfo("index_select", lambda m, x, d, i: (x.index_select(d, i), m.index_select(x, d, i)), index_select_args),
    # torch's take_along_dim(dim=None) views a non-contiguous input and fails: contiguous() (tinyllm's is a no-op)
    OpInfo("take_along_dim", lambda m, x, i, d: (x.contiguous().take_along_dim(i, d),
                                                 m.take_along_dim(x.contiguous(), i, dim=d)),
           take_along_dim_args),
    OpInfo("masked_fill", lambda m, x, mask, v: (x.masked_fill(mask, v), m.masked_fill(x, mask, v)),
           masked_fill_args),
    OpInfo("tril", lambda m, x, k: (m.tril(x, diagonal=k), x.tril(k)), tri_args),
    OpInfo("triu", lambda m, x, k: (m.triu(x, diagonal=k), x.triu(k)), tri_args),
    # ------------------------------------------------------------------ shape
    OpInfo("reshape", lambda m, x, p: (x.reshape(p), x.reshape(*p) if p else x.reshape(p), m.reshape(x, p)),
           with_param(lambda x: reshape_targets(x.shape))),
    OpInfo("view", lambda m, x, p: x.contiguous().view(*p) if p else x.view(p),
           with_param(lambda x: reshape_targets(x.shape))),
    OpInfo("view_as", lambda m, x, o: (x.contiguous().view_as(o), x.reshape_as(o)),
           lambda dt, el: like_args(dt, el, reshape_targets, _rest)),
    OpInfo("flatten", lambda m, x, p: (x.flatten(*p), m.flatten(x, *p)), with_param(lambda x: flatten_dims(x.ndim))),
    OpInfo("transpose", lambda m, x, p: (x.transpose(*p), m.transpose(x, *p)),
           with_param(lambda x: st.tuples(_dim(x), _dim(x)), min_dims=1)),
    OpInfo("T", lambda m, x: x.T, lambda dt, el: st.tuples(tensor(dt, shapes(0, 2), el))),
    OpInfo("permute", lambda m, x, p: (x.permute(*p) if p else x.permute(p), x.permute(p), m.permute(x, p)),
           with_param(_permutations, min_dims=1), max_examples=15),
    OpInfo("expand", lambda m, x, p: (x.expand(*p), x.expand(p)), with_param(lambda x: expand_targets(x.shape))),
    OpInfo("expand_as", lambda m, x, o: x.expand_as(o), lambda dt, el: like_args(dt, el, expand_targets, _kept)),
    OpInfo("unsqueeze", lambda m, x, d: (x.unsqueeze(d), m.unsqueeze(x, d)), with_param(lambda x: _dim(x, 1))),
    OpInfo("squeeze", lambda m, x, d: (x.squeeze(), m.squeeze(x)) if d is None else (x.squeeze(d), m.squeeze(x, d)),
           with_param(lambda x: st.one_of(st.none(), _dim(x)), min_dims=1)),
    OpInfo("repeat", lambda m, x, r, varargs: x.repeat(*r) if varargs else x.repeat(r), repeat_args),
    OpInfo("flip", lambda m, x, d: (x.flip(d), m.flip(x, d if isinstance(d, tuple) else (d,))),
           with_param(_flip_dims, min_dims=1)),
    OpInfo("roll", lambda m, x, p: (x.roll(*p), m.roll(x, *p)), with_param(_roll_params)),
    OpInfo("cat", lambda m, d, *xs: (m.cat(list(xs), dim=d), m.cat(xs, d)), cat_args),
    OpInfo("stack", lambda m, d, *xs: m.stack(list(xs), dim=d), lambda dt, el: cat_args(dt, el, stack=True)),
    OpInfo("split", lambda m, x, p: (*x.split(p[1], dim=p[0]), *m.split(x, p[1], p[0])),
           with_param(_split_params, min_dims=1)),
    OpInfo("chunk", lambda m, x, p: (*x.chunk(p[1], dim=p[0]), *m.chunk(x, p[1], p[0])),
           with_param(lambda x: st.tuples(_dim(x), st.integers(1, 5)), min_dims=1)),
    OpInfo("unbind", lambda m, x, d: (*x.unbind(d), *m.unbind(x, d)), with_param(_dim, min_dims=1)),
    OpInfo("narrow", lambda m, x, p: (x.narrow(*p), m.narrow(x, *p)), with_param(_narrow_params, min_dims=1)),
    # ------------------------------------------------------------------ sorting
    OpInfo("sort", lambda m, x, d, desc: (*x.sort(dim=d, descending=desc), *m.sort(x, d, desc)), sort_args, unique),
    OpInfo("argsort", lambda m, x, d, desc: (x.argsort(dim=d, descending=desc), m.argsort(x, d, desc)), sort_args,
           unique, grad=False),
    OpInfo("topk", lambda m, x, k, d, largest: (*x.topk(k, dim=d, largest=largest), *m.topk(x, k, d, largest)),
           topk_args, unique),
    # ------------------------------------------------------------------ types and new tensors
    OpInfo("to_dtype", lambda m, x, t: (x.to(getattr(m, t)), x.double(), x.float()), cast_args, gradcheck=False),
    OpInfo("astype", lambda m, x, t: x.astype(t), cast_args, torch_fn=lambda torch, x, t: x.to(getattr(torch, t)),
           gradcheck=False),
    OpInfo("type_as", lambda m, x, o: x.type_as(o), lambda dt, el: st.tuples(
        tensor(dt, shapes(), el), st.sampled_from(["float32", "float64"]).map(lambda t: tl.zeros(1, dtype=t))),
           gradcheck=False),
    OpInfo("new_zeros_ones_full", new_fn, new_args, grad=False),
]
