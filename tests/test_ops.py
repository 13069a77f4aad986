"""Every primitive in tinyllm/ops.py against finite differences and against PyTorch.

Each op is written once as ``fn(m, *tensors)`` with ``m`` either ``tinyllm``
or ``torch`` (the two share names: ``m.exp(x)``, ``x.sum(dim=1)``...). The
check runs it on both, compares values, dtypes and the gradients of a random
weighting of the outputs, then runs ``gradcheck`` (float64 central
differences). Hypothesis draws shapes with size-1 dims, broadcasting pairs and
non-contiguous (strided, reversed, transposed) inputs; dtypes are float32
(looser tolerance) and float64 (tight).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import strategies as S
import tinyllm as tl
from gradcheck import gradcheck
from tinyllm import ops
from tinyllm.function import Function

# the `torch` fixture is the same module for every example
given_ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                         HealthCheck.data_too_large])

TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-5), np.dtype(np.float64): dict(rtol=1e-9, atol=1e-11)}


def host(t):
    """A host copy of a Tensor's values (the explicit transfer)."""
    return np.array(tl.to_numpy(t.data))


def to_torch(torch, x):
    if isinstance(x, tl.Tensor):
        return torch.tensor(host(x), requires_grad=x.requires_grad)
    return x


def _list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def check_torch(torch, fn, *inputs, tol=None):
    """Run fn(tinyllm, *inputs) and fn(torch, *copies); compare values, dtypes and gradients."""
    t_inputs = [to_torch(torch, x) for x in inputs]
    outs, t_outs = _list(fn(tl, *inputs)), _list(fn(torch, *t_inputs))
    assert len(outs) == len(t_outs)
    floats = [x.dtype for x in inputs if isinstance(x, tl.Tensor) and x.dtype.kind == "f"]
    tol = tol or TOL[np.dtype(np.float32) if np.dtype(np.float32) in floats else np.dtype(np.float64)]
    for o, to in zip(outs, t_outs):
        expected = to.detach().numpy()
        assert o.shape == expected.shape, f"shape {o.shape}, torch gives {expected.shape}"
        assert o.dtype == expected.dtype, f"dtype {o.dtype}, torch gives {expected.dtype}"
        assert o.device == tl.get_device()
        np.testing.assert_allclose(host(o), expected, **tol)

    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(o.shape) for o in outs]
    pairs = [(o, to, w) for o, to, w in zip(outs, t_outs, weights) if to.requires_grad]
    assert [o.requires_grad for o in outs] == [to.requires_grad for to in t_outs]
    for o, _, w in pairs:
        o.backward(tl.tensor(w, dtype=o.dtype, device=o.device), retain_graph=True)
    if pairs:
        torch.autograd.backward([to for _, to, _ in pairs],
                                [torch.tensor(w, dtype=to.dtype) for _, to, w in pairs])
    for k, (x, tx) in enumerate(zip(inputs, t_inputs)):
        if not (isinstance(x, tl.Tensor) and x.requires_grad):
            continue
        expected = np.zeros(x.shape, x.dtype) if tx.grad is None else tx.grad.numpy()
        got = np.zeros(x.shape, x.dtype) if x.grad is None else host(x.grad)
        assert x.grad is None or (x.grad.dtype == x.dtype and x.grad.device == x.device), f"grad of input {k}"
        np.testing.assert_allclose(got, expected, err_msg=f"gradient of input {k}", **tol)


def check(torch, fn, *inputs, tol=None, **gradcheck_kw):
    """Against torch, then against central differences."""
    check_torch(torch, fn, *inputs, tol=tol)
    gradcheck(lambda *xs: fn(tl, *xs), inputs, **gradcheck_kw)


def grid(offset):
    """Half-integers shifted by `offset`: two grids with different offsets never tie."""
    return lambda shape: hnp.arrays(np.int64, shape, elements=st.integers(-6, 6)).map(lambda a: a * 0.5 + offset)


def unique(shape):
    """Distinct values at least 0.01 apart: no ties, and an ε-step never changes the argmax."""
    return hnp.arrays(np.int64, shape, elements=st.integers(-300, 300), unique=True).map(lambda a: a * 0.01)


def float_dtypes():
    return st.sampled_from(S.FLOAT_DTYPES)


# ============================================================================ elementwise

UNARY = [
    ("neg", lambda m, x: -x, S.arrays),
    ("exp", lambda m, x: m.exp(x), S.arrays),
    ("exp_method", lambda m, x: x.exp(), S.arrays),
    ("log", lambda m, x: m.log(x), S.positive_arrays),
    ("sqrt", lambda m, x: m.sqrt(x), S.positive_arrays),
    ("tanh", lambda m, x: m.tanh(x), S.arrays),
    ("relu", lambda m, x: m.relu(x), S.nonzero_arrays),
    ("abs", lambda m, x: m.abs(x), S.nonzero_arrays),
    ("abs_builtin", lambda m, x: abs(x), S.nonzero_arrays),
    ("pow_int", lambda m, x: x**3, S.arrays),
    ("pow_float", lambda m, x: x**1.5, S.positive_arrays),
    ("pow_negative", lambda m, x: x**-2, S.nonzero_arrays),
    ("rpow", lambda m, x: 2.0**x, S.arrays),
    ("add_scalar", lambda m, x: x + 2.5, S.arrays),
    ("radd_scalar", lambda m, x: 2.5 + x, S.arrays),
    ("sub_scalar", lambda m, x: x - 1.5, S.arrays),
    ("rsub_scalar", lambda m, x: 1.5 - x, S.arrays),
    ("mul_scalar", lambda m, x: x * -2.0, S.arrays),
    ("rmul_int", lambda m, x: 3 * x, S.arrays),
    ("div_scalar", lambda m, x: x / 4.0, S.arrays),
    ("rdiv_scalar", lambda m, x: 3.0 / x, S.nonzero_arrays),
    ("square_same_input", lambda m, x: x * x, S.arrays),
]


@pytest.mark.parametrize("name,fn,elements", UNARY, ids=[u[0] for u in UNARY])
@given_
@given(data=st.data())
def test_unary(torch, name, fn, elements, data):
    x = data.draw(S.tensors(elements=elements), label="x")
    check(torch, fn, x)


BINARY = [
    ("add", lambda m, a, b: a + b, S.arrays, S.arrays),
    ("sub", lambda m, a, b: a - b, S.arrays, S.arrays),
    ("mul", lambda m, a, b: a * b, S.arrays, S.arrays),
    ("div", lambda m, a, b: a / b, S.arrays, S.nonzero_arrays),
    ("pow", lambda m, a, b: a**b, S.positive_arrays, lambda s: S.arrays(s, -2.0, 2.0)),
    ("maximum", lambda m, a, b: m.maximum(a, b), grid(0.0), grid(0.25)),
    ("maximum_method", lambda m, a, b: a.maximum(b), grid(0.25), grid(0.0)),
]


@pytest.mark.parametrize("name,fn,ea,eb", BINARY, ids=[b[0] for b in BINARY])
@given_
@given(data=st.data())
def test_binary_broadcasting(torch, name, fn, ea, eb, data):
    shape_a, shape_b = data.draw(S.broadcastable_shapes(), label="shapes")
    dtype = data.draw(float_dtypes(), label="dtype")
    a = data.draw(S.tensors(shape_a, elements=ea, dtype=dtype), label="a")
    b = data.draw(S.tensors(shape_b, elements=eb, dtype=dtype), label="b")
    check(torch, fn, a, b)


@given_
@given(data=st.data())
def test_binary_one_side_constant(torch, data):
    """Only one operand needs grad: the other gets none, and none is computed for it."""
    shape_a, shape_b = data.draw(S.broadcastable_shapes(), label="shapes")
    a = data.draw(S.tensors(shape_a, dtype=np.float64), label="a")
    b = data.draw(S.tensors(shape_b, elements=S.nonzero_arrays, dtype=np.float64, requires_grad=False), label="b")
    for fn in (lambda m, a, b: a * b, lambda m, a, b: a / b, lambda m, a, b: b - a):
        a.grad = None
        check(torch, fn, a, b)
        assert b.grad is None


def test_pow_tensor_exponent_zero_base(torch):
    """d(a^b)/db = a^b ln a is taken as 0 where a = 0, as PyTorch does (and where a < 0,
    where PyTorch gives nan)."""
    a = tl.tensor([0.0, 0.5, 3.0], dtype=tl.float64)
    b = tl.tensor([2.0, 2.0, 2.0], dtype=tl.float64, requires_grad=True)
    check_torch(torch, lambda m, a, b: a**b, a, b)
    assert host(b.grad)[0] == 0.0
    a = tl.tensor([-2.0, 3.0], dtype=tl.float64)
    b = tl.tensor([2.0, 2.0], dtype=tl.float64, requires_grad=True)
    (a**b).sum().backward()
    assert host(b.grad)[0] == 0.0


def test_maximum_ties_share_the_gradient(torch):
    a = tl.tensor([1.0, 2.0, 5.0], requires_grad=True)
    b = tl.tensor([1.0, 3.0, 4.0], requires_grad=True)
    check_torch(torch, lambda m, a, b: m.maximum(a, b), a, b)
    np.testing.assert_array_equal(host(a.grad) + host(b.grad) > 0, [True, True, True])


@given_
@given(data=st.data())
def test_where(torch, data):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3), label="shapes")
    sc, sa, sb = shapes.input_shapes
    dtype = data.draw(float_dtypes(), label="dtype")
    cond = tl.tensor(data.draw(hnp.arrays(np.bool_, sc), label="cond"))
    a = data.draw(S.tensors(sa, dtype=dtype), label="a")
    b = data.draw(S.tensors(sb, dtype=dtype), label="b")
    check(torch, lambda m, c, a, b: m.where(c, a, b), cond, a, b)
    a.grad = None
    check(torch, lambda m, c, a: m.where(c, a, 0.0), cond, a)


def test_where_condition_from_comparison(torch):
    x = tl.tensor([-1.0, 0.5, 2.0, -3.0], requires_grad=True)
    check(torch, lambda m, x: m.where(x > 0, x * 2.0, -x), x)


# ============================================================================ matmul


@given_
@given(data=st.data())
def test_matmul(torch, data):
    """1-D and 2-D operands, batched, batch dims that broadcast."""
    shape_a, shape_b = data.draw(S.matmul_shapes(), label="shapes")
    dtype = data.draw(float_dtypes(), label="dtype")
    a = data.draw(S.tensors(shape_a, dtype=dtype), label="a")
    b = data.draw(S.tensors(shape_b, dtype=dtype), label="b")
    check(torch, lambda m, a, b: a @ b, a, b)


@pytest.mark.parametrize("shape_a,shape_b", [
    ((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
    ((3,), (5, 3, 2)), ((5, 2, 3), (3,)), ((2, 1, 2, 3), (4, 3, 2)), ((1, 2, 3), (4, 3, 1)),
], ids=str)
def test_matmul_shapes(torch, shape_a, shape_b):
    a = tl.randn(*shape_a, dtype=tl.float64, requires_grad=True)
    b = tl.randn(*shape_b, dtype=tl.float64, requires_grad=True)
    check(torch, lambda m, a, b: m.matmul(a, b), a, b)


# ============================================================================ reductions


@st.composite
def dims(draw, ndim):
    """None, an int (maybe negative) or a tuple of distinct dims, as torch takes them."""
    kind = draw(st.sampled_from(["none", "int", "tuple"])) if ndim else "none"
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if draw(st.booleans()) else a for a in axes)


def _all_dims(d, x):
    """torch.amax takes no dim=None: pass every dim instead."""
    return tuple(range(x.ndim)) if d is None else d


REDUCTIONS = [
    ("sum", lambda m, x, d, k: x.sum(dim=d, keepdim=k), S.arrays),
    ("sum_fn", lambda m, x, d, k: m.sum(x, dim=d, keepdim=k), S.arrays),
    ("mean", lambda m, x, d, k: x.mean(dim=d, keepdim=k), S.arrays),
    ("amax", lambda m, x, d, k: x.amax(dim=_all_dims(d, x) if m is not tl else d, keepdim=k), unique),
]


@pytest.mark.parametrize("name,fn,elements", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
@given_
@given(data=st.data())
def test_reductions(torch, name, fn, elements, data):
    x = data.draw(S.tensors(elements=elements), label="x")
    d = data.draw(dims(x.ndim), label="dim")
    keepdim = data.draw(st.booleans(), label="keepdim")
    check(torch, lambda m, x: fn(m, x, d, keepdim), x)


@given_
@given(data=st.data())
def test_var(torch, data):
    x = data.draw(S.tensors(), label="x")
    d = data.draw(dims(x.ndim), label="dim")
    keepdim = data.draw(st.booleans(), label="keepdim")
    count = int(np.prod([x.shape[a] for a in ops.common.axes(d, x.ndim)]))
    correction = data.draw(st.sampled_from([0, 1] if count > 1 else [0]), label="correction")
    check(torch, lambda m, x: x.var(dim=d, keepdim=keepdim, correction=correction), x)


def test_var_unbiased_flag(torch):
    x = tl.randn(4, 5, dtype=tl.float64, requires_grad=True)
    check(torch, lambda m, x: x.var(dim=1, unbiased=False), x)
    x.grad = None
    check(torch, lambda m, x: m.var(x, 0, keepdim=True), x)


@given_
@given(data=st.data())
def test_max_with_dim_gives_values_and_indices(torch, data):
    x = data.draw(S.tensors(S.shapes(min_dims=1), elements=unique), label="x")
    d = data.draw(st.integers(-x.ndim, x.ndim - 1), label="dim")
    keepdim = data.draw(st.booleans(), label="keepdim")
    check(torch, lambda m, x: tuple(x.max(dim=d, keepdim=keepdim)), x)
    x.grad = None
    check_torch(torch, lambda m, x: x.argmax(dim=d, keepdim=keepdim), x)
    assert x.grad is None  # no gradient through an index
    result = x.max(d, keepdim)  # a namedtuple, as torch.max
    assert result.values.shape == result.indices.shape and result.indices.dtype == np.int64


def test_max_without_dim_and_argmax(torch):
    x = tl.tensor([[1.0, 7.0, 3.0], [7.0, 2.0, 0.0]], requires_grad=True)
    check(torch, lambda m, x: x.max(), x)  # ties share the gradient, as torch.max()
    assert x.argmax().item() == 1
    assert tl.argmax(x, dim=1).tolist() == [1, 0]


def test_amax_ties_share_the_gradient(torch):
    x = tl.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    check_torch(torch, lambda m, x: x.amax(dim=1), x)
    g = host(x.grad)
    assert g[0, 0] == 0 and g[0, 1] == g[0, 2] != 0 and g[1, 0] == g[1, 1] == g[1, 2] != 0


def test_reduction_keeps_float32(torch):
    x = tl.randn(3, 4, requires_grad=True)
    for fn in (lambda x: x.sum(), lambda x: x.mean(dim=0), lambda x: x.var(), lambda x: x.amax(1)):
        y = fn(x)
        y.sum().backward()
        assert y.dtype == np.float32 and x.grad.dtype == np.float32


# ============================================================================ shape


@st.composite
def reshape_targets(draw, shape):
    """Another shape of the same size: dims shuffled and merged, 1s inserted, maybe one -1."""
    out = []
    for n in draw(st.permutations(list(shape))):
        if out and draw(st.booleans()):
            out[-1] *= n
        else:
            out.append(n)
    for _ in range(draw(st.integers(0, 2))):
        out.insert(draw(st.integers(0, len(out))), 1)
    if out and draw(st.booleans()):
        out[draw(st.integers(0, len(out) - 1))] = -1
    return tuple(out)


@st.composite
def flatten_dims(draw, ndim):
    """(start_dim, end_dim) with start <= end, end sometimes negative."""
    start, end = sorted(draw(st.lists(st.integers(0, max(ndim - 1, 0)), min_size=2, max_size=2)))
    return start, end - max(ndim, 1) if draw(st.booleans()) else end


@st.composite
def expand_targets(draw, shape):
    """A shape that `shape` expands to: new leading dims, size-1 dims grown, some -1."""
    lead = draw(st.lists(st.integers(1, 3), min_size=0 if shape else 1, max_size=2))
    rest = [draw(st.sampled_from([-1, 1, 2, 3])) if n == 1 else draw(st.sampled_from([-1, n])) for n in shape]
    return tuple(lead + rest)


SHAPE_OPS = [
    ("reshape", lambda x: reshape_targets(x.shape), lambda m, x, p: x.reshape(p)),
    ("reshape_varargs", lambda x: reshape_targets(x.shape), lambda m, x, p: x.reshape(*p)),
    ("reshape_fn", lambda x: reshape_targets(x.shape), lambda m, x, p: m.reshape(x, p)),
    ("view", lambda x: reshape_targets(x.shape), lambda m, x, p: x.contiguous().view(*p)),
    ("flatten", lambda x: flatten_dims(x.ndim), lambda m, x, p: x.flatten(*p)),
    ("transpose", lambda x: st.tuples(st.integers(-x.ndim, x.ndim - 1), st.integers(-x.ndim, x.ndim - 1)),
     lambda m, x, p: x.transpose(*p)),
    ("transpose_fn", lambda x: st.tuples(st.integers(-x.ndim, x.ndim - 1), st.integers(-x.ndim, x.ndim - 1)),
     lambda m, x, p: m.transpose(x, *p)),
    ("permute", lambda x: st.permutations(range(x.ndim)).map(tuple), lambda m, x, p: x.permute(*p)),
    ("permute_tuple", lambda x: st.permutations(range(x.ndim)).map(lambda p: tuple(d - x.ndim for d in p)),
     lambda m, x, p: x.permute(p)),
    ("expand", lambda x: expand_targets(x.shape), lambda m, x, p: x.expand(*p)),
    ("unsqueeze", lambda x: st.integers(-x.ndim - 1, x.ndim), lambda m, x, p: x.unsqueeze(p)),
    ("unsqueeze_fn", lambda x: st.integers(-x.ndim - 1, x.ndim), lambda m, x, p: m.unsqueeze(x, p)),
    ("squeeze", lambda x: st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)),
     lambda m, x, p: x.squeeze() if p is None else x.squeeze(p)),
]


@pytest.mark.parametrize("name,params,fn", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
@given_
@given(data=st.data())
def test_shape_ops(torch, name, params, fn, data):
    min_dims = 1 if name.startswith(("transpose", "squeeze", "permute", "view", "reshape_varargs")) else 0
    x = data.draw(S.tensors(S.shapes(min_dims=min_dims)), label="x")
    p = data.draw(params(x), label="param")
    check(torch, lambda m, x: fn(m, x, p), x)


def test_T_2d(torch):
    x = tl.randn(2, 3, dtype=tl.float64, requires_grad=True)
    check(torch, lambda m, x: x.T * 2.0, x)


def test_shape_op_errors():
    x = tl.randn(2, 3)
    with pytest.raises(ValueError, match="permutation"):
        x.permute(0, 0)
    with pytest.raises(ValueError):
        x.reshape(4, 2)


# ============================================================================ indexing


def _positive_steps(key):
    keys = key if isinstance(key, tuple) else (key,)
    return all(not isinstance(k, slice) or k.step is None or k.step > 0 for k in keys)


@given_
@given(data=st.data())
def test_getitem_basic(torch, data):
    """Ints, slices (negative steps too), None and Ellipsis: values as NumPy, grads by gradcheck."""
    x = data.draw(S.tensors(S.shapes(min_dims=1)), label="x")
    key = data.draw(hnp.basic_indices(x.shape, allow_newaxis=True), label="key")
    y = x[key]
    expected = host(x)[key]
    assert y.shape == expected.shape
    np.testing.assert_array_equal(host(y), expected)
    gradcheck(lambda x: x[key], [x])
    if _positive_steps(key):  # torch has no negative steps
        check_torch(torch, lambda m, x: x[key], x)


@pytest.mark.parametrize("key", [
    (slice(None, None, -1),), (slice(None, None, -2), slice(1, None)), (Ellipsis, slice(None, 0, -1)),
    (1, slice(None, None, -3)),
], ids=str)
def test_getitem_negative_steps(key):
    x = tl.randn(4, 5, dtype=tl.float64, requires_grad=True)
    y = x[key]
    np.testing.assert_array_equal(host(y), host(x)[key])
    w = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(tl.tensor(w))
    expected = np.zeros(x.shape)
    expected[key] = w
    np.testing.assert_array_equal(host(x.grad), expected)
    gradcheck(lambda x: x[key], [x])


@given_
@given(data=st.data())
def test_getitem_integer_arrays_with_repeats(torch, data):
    """An element picked k times gets the sum of k gradients (a scatter-add)."""
    x = data.draw(S.tensors(S.shapes(min_dims=1, max_dims=3), dtype=np.float64), label="x")
    n0 = x.shape[0]
    idx_shape = data.draw(S.shapes(min_dims=1, max_dims=2), label="idx_shape")
    idx = data.draw(hnp.arrays(np.int64, idx_shape, elements=st.integers(-n0, n0 - 1)), label="idx")
    form = data.draw(st.sampled_from(["first", "list", "second", "pair"]), label="form")
    if form in ("second", "pair") and x.ndim < 2:
        form = "first"
    if form == "first":
        keys = (tl.tensor(idx), torch.tensor(idx))
    elif form == "list":
        keys = (idx.reshape(-1).tolist(),) * 2
    elif form == "second":
        n1 = x.shape[1]
        j = idx % n1
        keys = ((slice(None), tl.tensor(j)), (slice(None), torch.tensor(j)))
    else:
        j = idx % x.shape[1]
        keys = ((tl.tensor(idx), tl.tensor(j)), (torch.tensor(idx), torch.tensor(j)))
    check(torch, lambda m, x: x[keys[0] if m is tl else keys[1]], x)


def test_getitem_repeated_index_accumulates():
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[tl.tensor([0, 2, 0, 0])].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]


@given_
@given(data=st.data())
def test_getitem_bool_mask(torch, data):
    x = data.draw(S.tensors(S.shapes(min_dims=1, max_dims=3)), label="x")
    k = data.draw(st.integers(1, x.ndim), label="mask_dims")
    mask = data.draw(hnp.arrays(np.bool_, x.shape[:k]), label="mask")
    check(torch, lambda m, x: x[tl.tensor(mask) if m is tl else torch.tensor(mask)], x)


@given_
@given(data=st.data())
def test_cat(torch, data):
    base = data.draw(S.shapes(min_dims=1, max_dims=3), label="shape")
    d = data.draw(st.integers(-len(base), len(base) - 1), label="dim")
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3), label="sizes")
    dtype = data.draw(float_dtypes(), label="dtype")
    xs = []
    for n in sizes:
        shape = list(base)
        shape[d] = n
        xs.append(data.draw(S.tensors(tuple(shape), dtype=dtype)))
    check(torch, lambda m, *xs: m.cat(list(xs), dim=d), *xs)


@given_
@given(data=st.data())
def test_stack(torch, data):
    shape = data.draw(S.shapes(max_dims=3), label="shape")
    d = data.draw(st.integers(-len(shape) - 1, len(shape)), label="dim")
    n = data.draw(st.integers(1, 3), label="n")
    xs = [data.draw(S.tensors(shape, dtype=np.float64)) for _ in range(n)]
    check(torch, lambda m, *xs: m.stack(xs, dim=d), *xs)


@given_
@given(data=st.data())
def test_split_and_chunk(torch, data):
    x = data.draw(S.tensors(S.shapes(min_dims=1, max_dims=3, max_side=6)), label="x")
    d = data.draw(st.integers(-x.ndim, x.ndim - 1), label="dim")
    n = x.shape[d]
    kind = data.draw(st.sampled_from(["size", "sections", "chunk"]), label="kind")
    if kind == "size":
        size = data.draw(st.integers(1, n + 1), label="size")
        fn = lambda m, x: m.split(x, size, dim=d)  # noqa: E731
    elif kind == "sections":
        cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3), label="cuts"))
        sections = [b - a for a, b in zip([0] + cuts, cuts + [n])]
        fn = lambda m, x: x.split(sections, dim=d)  # noqa: E731
    else:
        chunks = data.draw(st.integers(1, 5), label="chunks")
        fn = lambda m, x: x.chunk(chunks, dim=d)  # noqa: E731
    check(torch, fn, x)


def test_split_errors():
    x = tl.randn(5)
    with pytest.raises(ValueError, match="add up"):
        x.split([2, 2])
    with pytest.raises(ValueError, match="positive"):
        x.split(0)
    with pytest.raises(ValueError):
        tl.cat([])


# ============================================================================ masks and types


@given_
@given(data=st.data())
def test_masked_fill(torch, data):
    x = data.draw(S.tensors(S.shapes(min_dims=1)), label="x")
    mask_shape = tuple(n if data.draw(st.booleans()) else 1 for n in x.shape[data.draw(st.integers(0, x.ndim)):])
    mask = data.draw(hnp.arrays(np.bool_, mask_shape), label="mask")
    value = data.draw(st.floats(-5, 5), label="value")
    check(torch, lambda m, x: x.masked_fill(tl.tensor(mask) if m is tl else torch.tensor(mask), value), x)


def test_masked_fill_minus_inf_then_exp(torch):
    """The causal-attention pattern: fill with -inf, exp gives 0 there and no gradient."""
    x = tl.randn(3, 3, requires_grad=True)
    causal = np.triu(np.ones((3, 3), dtype=bool), k=1)
    check_torch(torch, lambda m, x: m.exp(x.masked_fill(tl.tensor(causal) if m is tl else torch.tensor(causal),
                                                         float("-inf"))), x)
    assert np.all(host(x.grad)[causal] == 0)


@pytest.mark.parametrize("fn_name", ["tril", "triu"])
@given_
@given(data=st.data())
def test_tril_triu(torch, fn_name, data):
    x = data.draw(S.tensors(S.shapes(min_dims=2, max_dims=4)), label="x")
    k = data.draw(st.integers(-3, 3), label="diagonal")
    check(torch, lambda m, x: getattr(m, fn_name)(x, diagonal=k), x)


@given_
@given(data=st.data())
def test_astype_roundtrip(torch, data):
    x = data.draw(S.tensors(dtype=np.float32), label="x")
    check_torch(torch, lambda m, x: x.double() * 3.0, x)
    assert x.grad.dtype == np.float32
    y = data.draw(S.tensors(dtype=np.float64), label="y")
    check_torch(torch, lambda m, y: y.float() * 3.0, y)
    assert y.grad.dtype == np.float64


def test_astype_and_to_dtype():
    x = tl.tensor([1.5, -2.5], requires_grad=True)
    assert x.astype("float32") is x  # a no-op cast records nothing
    y = x.to(tl.float64)
    assert y.dtype == np.float64 and y.requires_grad
    i = x.long()
    assert i.dtype == np.int64 and i.tolist() == [1, -2] and not i.requires_grad
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [3.0, -5.0]


# ============================================================================ gradcheck itself


class _WrongExp(Function):
    @staticmethod
    def forward(ctx, x):
        out = tl.backend.of(x).exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (out,) = ctx.saved
        return grad_out * out * 1.01  # 1% off


class _Swapped(Function):
    @staticmethod
    def forward(ctx, x):
        return x * x.dtype.type(2)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out[::-1] * grad_out.dtype.type(2)  # right values, wrong places


@pytest.mark.parametrize("n", [5, 300], ids=["elementwise", "directions"])
def test_gradcheck_catches_wrong_gradients(n):
    x = tl.randn(n, dtype=tl.float64, requires_grad=True)
    assert gradcheck(lambda x: ops.exp(x), [x])
    with pytest.raises(AssertionError, match="gradcheck"):
        gradcheck(lambda x: _WrongExp.apply(x), [x])
    with pytest.raises(AssertionError, match="gradcheck"):
        gradcheck(lambda x: _Swapped.apply(x), [x])


def test_gradcheck_handles_tuples_constants_and_float32():
    x = tl.randn(4, 3, requires_grad=True)  # float32: checked in a float64 copy
    idx = tl.tensor([0, 0, 2])
    assert gradcheck(lambda x, i: (x[i] * 2.0, x.sum(dim=0)), [x, idx])
    assert x.grad is None  # the caller's tensor is left alone
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(lambda i: i, [idx])


def test_strategies_make_noncontiguous_views():
    from hypothesis import find

    x = find(S.tensors(S.shapes(min_dims=2), contiguous=False),
             lambda t: min(t.shape) > 1 and not t.data.flags.c_contiguous)
    assert not np.isnan(host(x)).any()  # the NaN filler is outside the view


def test_python_constants_follow_the_tensor_device_and_dtype():
    x = tl.ones(3, requires_grad=True)
    for y in (x + [1.0, 2.0, 3.0], [1.0, 2.0, 3.0] * x, x * np.float64(2), np.float64(2) * x, x ** np.float64(2)):
        assert y.dtype == np.float32 and y.device == x.device
    (2.0 ** x).sum().backward()  # a scalar base: the exponent's gradient 2^x ln 2
    np.testing.assert_allclose(tl.to_numpy(x.grad.data), 2 * np.log(2), rtol=1e-6)


def test_var_of_one_element_is_nan_not_an_error():
    v = tl.tensor([1.5], requires_grad=True)
    r = v.var()
    r.backward()
    assert np.isnan(r.item()) and np.isnan(tl.to_numpy(v.grad.data)).all()
