"""The special cases of the primitives: what the op table (tests/op_db.py) cannot draw.

Every op has a row in ``tests/op_db.py``, run by ``tests/test_op_db.py``: values, dtypes
and gradients against PyTorch, then float64 ``gradcheck``, on Hypothesis-drawn shapes
(size-1 and size-0 dims, broadcasting, non-contiguous views). The rows keep their inputs
off the ties, kinks and zeros where finite differences break down; this file checks those
points one by one, against torch: ties (maximum, amax, max(dim), sort), zero bases and
exponents, zero norms and products, clamp at its bounds, infinities in logsumexp and
softplus, empty reductions, NumPy-only indexing (negative steps), errors, and gradcheck itself.
"""

import numpy as np
import pytest
import strategies as S
from gradcheck import gradcheck
from op_db import check, check_torch, host

import tinyllm as tl
from tinyllm import ops
from tinyllm.function import Function

# ============================================================================ elementwise

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


def test_where_condition_from_comparison(torch):
    x = tl.tensor([-1.0, 0.5, 2.0, -3.0], requires_grad=True)
    check(torch, lambda m, x: m.where(x > 0, x * 2.0, -x), x)


def test_pow_zero_exponent_at_zero_base(torch):
    """d(a^0)/da = 0 everywhere, also at a = 0, where b·a^(b-1) is 0·inf (torch gives 0)."""
    for exponent in (0, 0.0):
        x = tl.tensor([0.0, 1.5, -2.0], dtype=tl.float64, requires_grad=True)
        check_torch(torch, lambda m, x: x**exponent, x)
        assert host(x.grad).tolist() == [0.0, 0.0, 0.0]
    a = tl.tensor([0.0, 0.0, 2.0], dtype=tl.float64, requires_grad=True)
    b = tl.tensor([0.0, 2.0, 0.0], dtype=tl.float64, requires_grad=True)
    check_torch(torch, lambda m, a, b: a**b, a, b)


@pytest.mark.parametrize("x", [[0.0, 1.0, 0.5], [-1.0, 2.0, 0.0]], ids=["at_bounds", "outside"])
def test_clamp_at_its_bounds(torch, x):
    """x == min or x == max passes the gradient (torch's >= and <=); lo > hi gives hi everywhere."""
    x = tl.tensor(x, requires_grad=True)
    check_torch(torch, lambda m, x: m.clamp(x, 0.0, 1.0), x)
    for lo, hi in [(1.0, 0.0), (0.5, 0.5)]:
        x.grad = None
        bounds = [tl.full((3,), v, requires_grad=True) for v in (lo, hi)]
        check_torch(torch, lambda m, x, lo, hi: m.clamp(x, lo, hi), x, *bounds)


def test_relu_abs_sign_at_zero(torch):
    x = tl.tensor([0.0, -0.0, 1.0], requires_grad=True)
    for fn in (lambda m, x: m.relu(x), lambda m, x: m.abs(x), lambda m, x: m.sign(x), lambda m, x: x.clamp(min=0.0)):
        x.grad = None
        check_torch(torch, fn, x)


def test_round_floor_trunc_at_halves(torch):
    """round: half to even, as torch; all four have zero gradient."""
    x = tl.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.7, 0.7], requires_grad=True)
    check_torch(torch, lambda m, x: (m.round(x), m.floor(x), m.trunc(x), m.sign(x)), x)
    assert host(x.grad).tolist() == [0.0] * 8


def test_sigmoid_softplus_far_out(torch):
    """No overflow for large |x|; softplus is x itself past the threshold, as torch."""
    x = tl.tensor([-100.0, -30.0, 0.0, 19.9, 20.0, 20.1, 100.0], dtype=tl.float64, requires_grad=True)
    with np.errstate(all="raise"):
        check_torch(torch, lambda m, x: m.sigmoid(x), x)
    x.grad = None
    check_torch(torch, lambda m, x: ops.softplus(x) if m is tl else torch.nn.functional.softplus(x), x)


# ============================================================================ matmul


@pytest.mark.parametrize("shape_a,shape_b", [
    ((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
    ((3,), (5, 3, 2)), ((5, 2, 3), (3,)), ((2, 1, 2, 3), (4, 3, 2)), ((1, 2, 3), (4, 3, 1)),
], ids=str)
def test_matmul_shapes(torch, shape_a, shape_b):
    a = tl.randn(*shape_a, dtype=tl.float64, requires_grad=True)
    b = tl.randn(*shape_b, dtype=tl.float64, requires_grad=True)
    check(torch, lambda m, a, b: m.matmul(a, b), a, b)


# ============================================================================ reductions


def test_var_unbiased_flag(torch):
    x = tl.randn(4, 5, dtype=tl.float64, requires_grad=True)
    check(torch, lambda m, x: x.var(dim=1, unbiased=False), x)
    x.grad = None
    check(torch, lambda m, x: m.var(x, 0, keepdim=True), x)


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


def test_max_with_dim_gives_the_gradient_to_the_index_it_returns(torch):
    """max(x, dim) is a gather at its indices (torch): one of tied maxima gets the gradient;
    amax and max() share it among them instead."""
    x = tl.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    check_torch(torch, lambda m, x: tuple(x.max(dim=1)), x)
    np.testing.assert_array_equal(host(x.grad) != 0, [[False, True, False], [True, False, False]])
    result = x.min(0, keepdim=True)  # a namedtuple, as torch.min
    assert result.values.shape == result.indices.shape == (1, 3) and result.indices.dtype == np.int64


@pytest.mark.parametrize("p", [2, 1, float("inf"), 3, 1.5], ids=str)
def test_norm_of_zeros_has_zero_gradient(torch, p):
    """‖0‖ = 0: the gradient sign(x)|x|^(p-1)/‖x‖^(p-1) is 0/0; torch (and tinyllm) take 0."""
    x = tl.tensor([[0.0, 0.0], [3.0, -4.0]], dtype=tl.float64, requires_grad=True)
    check_torch(torch, lambda m, x: x.norm(p, dim=1), x)


def test_prod_with_zeros_is_exact(torch):
    """Π_{j≠i} x_j without dividing by x_i: one zero in a row, two zeros, none."""
    x = tl.tensor([[0.0, 2.0, 3.0], [0.0, 2.0, 0.0], [1.5, -2.0, 3.0]], dtype=tl.float64, requires_grad=True)
    check(torch, lambda m, x: x.prod(1), x)
    x.grad = None
    check_torch(torch, lambda m, x: x.prod(), x)


def test_logsumexp_with_infinities(torch):
    """Masked rows: -inf entries drop out; an all -inf row gives -inf (and a NaN gradient, as torch)."""
    x = tl.tensor([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0]],
                  dtype=tl.float64, requires_grad=True)
    check_torch(torch, lambda m, x: x.logsumexp(1), x)


def test_empty_reductions(torch):
    """Reductions over nothing give their identity (sum 0, prod 1, logsumexp -inf, all True, any False)."""
    x = tl.zeros(0, 3, requires_grad=True)
    fns = (lambda m, x: x.sum(0), lambda m, x: x.prod(0), lambda m, x: x.logsumexp(0), lambda m, x: x.norm(dim=0),
           lambda m, x: x.cumsum(0), lambda m, x: x.sum())
    for fn in fns:
        check_torch(torch, fn, x)
    assert x.all().item() is True and x.any().item() is False


def test_sort_topk_argmax_ties_as_torch(torch):
    """Ties keep their order (a stable sort, descending too); argmax/argmin take the first."""
    x = tl.tensor([1.0, 3.0, 3.0, 1.0, 2.0], requires_grad=True)
    for fn in (lambda m, x: tuple(x.sort()), lambda m, x: tuple(x.sort(descending=True)),
               lambda m, x: tuple(x.topk(2)), lambda m, x: (x.argmax(), x.argmin())):
        x.grad = None
        check_torch(torch, fn, x)


# ============================================================================ shape


def test_shape_op_errors():
    x = tl.randn(2, 3)
    with pytest.raises(ValueError, match="permutation"):
        x.permute(0, 0)
    with pytest.raises(ValueError):
        x.reshape(4, 2)


# ============================================================================ indexing


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


def test_getitem_repeated_index_accumulates():
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[tl.tensor([0, 2, 0, 0])].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]


def test_split_errors():
    x = tl.randn(5)
    with pytest.raises(ValueError, match="add up"):
        x.split([2, 2])
    with pytest.raises(ValueError, match="positive"):
        x.split(0)
    with pytest.raises(ValueError):
        tl.cat([])


# ============================================================================ masks and types


def test_masked_fill_minus_inf_then_exp(torch):
    """The causal-attention pattern: fill with -inf, exp gives 0 there and no gradient."""
    x = tl.randn(3, 3, requires_grad=True)
    causal = np.triu(np.ones((3, 3), dtype=bool), k=1)
    check_torch(torch, lambda m, x: m.exp(x.masked_fill(tl.tensor(causal) if m is tl else torch.tensor(causal),
                                                         float("-inf"))), x)
    assert np.all(host(x.grad)[causal] == 0)


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
