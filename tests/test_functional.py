"""tinyllm.functional: each fused op against its composition, PyTorch and finite differences.

Every op is checked three ways:

  (a) composition: the same math written with tinyllm.ops primitives (amax, exp,
      sum, log, getitem, matmul...), values and gradients, in float64;
  (b) PyTorch: ``fn(m, *tensors)`` runs once with ``m.F = tinyllm.functional``
      and once with ``m.F = torch.nn.functional`` (same names, same arguments),
      in float32 and float64, comparing values, dtypes and the gradients of a
      random weighting of the output;
  (c) gradcheck: float64 central differences (tests/gradcheck.py).

On the host in float32 the ops run Numba kernels; ``kernels.disabled()`` forces
the reference path and the two are compared. Inputs are made with tinyllm
creation functions on the default device (cpu or strict); results are compared
on the host through ``tinyllm.to_numpy``.
"""

import math

import numpy as np
import pytest
from gradcheck import gradcheck
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyllm
import tinyllm.functional as F
from tinyllm import backend, ops
from tinyllm.functional import kernels
from tinyllm.tensor import Tensor

f32, f64 = np.float32, np.float64
TOL = {f32: dict(rtol=2e-5, atol=2e-5), f64: dict(rtol=1e-9, atol=1e-11)}
given_ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def host(x) -> np.ndarray:
    return tinyllm.to_numpy(x.data if isinstance(x, Tensor) else x)


def rnd(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def leaf(a, dtype=f64):
    return tinyllm.tensor(np.asarray(a, dtype=dtype), requires_grad=True)


class Side:
    """One framework: m.F is its functional module, m.const(a) makes a constant tensor from host data."""

    def __init__(self, functional, const):
        self.F, self.const = functional, const


TL = Side(F, lambda a: tinyllm.tensor(a))


def compare_torch(torch, fn, arrays, dtype, tol=None):
    """fn(m, *tensors) in tinyllm and in torch from the same host arrays: values, dtypes, gradients."""
    tol = tol or TOL[dtype]
    th = Side(torch.nn.functional, lambda a: torch.tensor(a))
    xs = [leaf(a, dtype) for a in arrays]
    ts = [torch.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
    y, yt = fn(TL, *xs), fn(th, *ts)
    assert y.dtype == dtype
    np.testing.assert_allclose(host(y), yt.detach().numpy(), **tol)
    w = rnd(*y.shape, seed=1).astype(dtype)
    y.backward(tinyllm.tensor(w))
    yt.backward(torch.tensor(w))
    for i, (x, t) in enumerate(zip(xs, ts)):
        if t.grad is None:
            assert x.grad is None or not host(x.grad).any(), f"input {i}: torch has no gradient"
            continue
        assert x.grad.dtype == dtype, f"input {i}: grad dtype {x.grad.dtype}"
        np.testing.assert_allclose(host(x.grad), t.grad.numpy(), **tol, err_msg=f"grad of input {i}")


def compare_composed(fused, composed, arrays, dtype=f64, tol=None):
    """Fused op vs its composition from primitives: values and gradients of a random weighting."""
    tol = tol or TOL[dtype]
    xs, zs = [leaf(a, dtype) for a in arrays], [leaf(a, dtype) for a in arrays]
    y, z = fused(*xs), composed(*zs)
    np.testing.assert_allclose(host(y), host(z), **tol)
    w = tinyllm.tensor(rnd(*y.shape, seed=2).astype(dtype))
    y.backward(w)
    z.backward(w)
    for i, (x, t) in enumerate(zip(xs, zs)):
        np.testing.assert_allclose(host(x.grad), host(t.grad), **tol, err_msg=f"grad of input {i}")


def compare_kernel(fn, arrays, tol=dict(rtol=1e-5, atol=2e-6)):
    """float32: the Numba path (default on the host) against the reference path, values and grads."""
    out = []
    for use_kernels in (True, False):
        xs = [leaf(a, f32) for a in arrays]
        if use_kernels:
            y = fn(*xs)
            y.backward(tinyllm.tensor(rnd(*y.shape, seed=3).astype(f32)))
        else:
            with kernels.disabled():
                y = fn(*xs)
                y.backward(tinyllm.tensor(rnd(*y.shape, seed=3).astype(f32)))
        assert y.dtype == f32 and all(x.grad.dtype == f32 for x in xs)
        out.append([host(y)] + [host(x.grad) for x in xs])
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, **tol)


# ============================================================================ compositions from primitives


def softmax_ref(x, dim=-1):
    e = (x - x.amax(dim, keepdim=True)).exp()
    return e / e.sum(dim, keepdim=True)


def log_softmax_ref(x, dim=-1):
    z = x - x.amax(dim, keepdim=True)
    return z - z.exp().sum(dim, keepdim=True).log()


def gelu_ref(x):
    return x * 0.5 * (1 + ops.erf(x / math.sqrt(2)))


def gelu_tanh_ref(x):
    return 0.5 * x * (1 + ops.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))


def silu_ref(x):
    return x / (1 + (-x).exp())


def layer_norm_ref(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / (x.var(-1, keepdim=True, correction=0) + eps).sqrt() * w + b


def rms_norm_ref(x, w, eps):
    return x / ((x * x).mean(-1, keepdim=True) + eps).sqrt() * w


def sdpa_ref(q, k, v, keep=None, scale=None, bias=None):
    """softmax(q kᵀ · scale + bias, masked where keep is False) v, from primitives."""
    s = (q @ k.transpose(-2, -1)) * (scale or 1 / math.sqrt(q.shape[-1]))
    if bias is not None:
        s = s + bias
    if keep is not None:  # host bool array: True = take part
        s = s.masked_fill(tinyllm.tensor(~keep), -np.inf)
    return softmax_ref(s) @ v


def cross_entropy_ref(x, t, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """(N, C) logits and host int targets, from log_softmax_ref, getitem and sums."""
    N, C = x.shape
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    logp = log_softmax_ref(x, 1)
    rows = tinyllm.tensor(np.arange(N))
    loss = -logp[rows, tinyllm.tensor(safe)] * (1 - label_smoothing) - logp.mean(1) * label_smoothing
    loss = loss * tinyllm.tensor(valid.astype(x.dtype))
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / float(valid.sum())


# ============================================================================ softmax, log_softmax


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 7), -1), ((3, 7), 0), ((2, 3, 4), 1), ((2, 3, 33), -1)])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_vs_torch(torch, name, shape, dim, dtype):
    compare_torch(torch, lambda m, x: getattr(m.F, name)(x, dim=dim), [rnd(*shape, scale=3)], dtype)


@pytest.mark.parametrize("name,ref", [("softmax", softmax_ref), ("log_softmax", log_softmax_ref)])
def test_softmax_vs_composition_and_gradcheck(name, ref):
    fn = getattr(F, name)
    for shape, dim in [((4, 6), -1), ((3, 4, 5), 1), ((6,), 0)]:
        compare_composed(lambda x: fn(x, dim), lambda x: ref(x, dim), [rnd(*shape)])
        gradcheck(lambda x: fn(x, dim=dim), [leaf(rnd(*shape))])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_kernel_matches_reference(name):
    fn = getattr(F, name)
    compare_kernel(lambda x: fn(x, -1), [rnd(7, 50, scale=4)])
    compare_kernel(lambda x: fn(x.transpose(0, 1), -1), [rnd(9, 4)])  # non-contiguous input


@given_
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), data=st.data())
def test_softmax_random_shapes(torch, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    a = rnd(*shape, seed=len(shape), scale=5)
    for name in ("softmax", "log_softmax"):
        compare_torch(torch, lambda m, x: getattr(m.F, name)(x, dim=dim), [a], f32)


def test_softmax_stable_for_large_scores_and_keeps_nan():
    for dtype in (f32, f64):
        x = tinyllm.tensor(np.array([[1000.0, 1001.0, 1002.0], [-1e4, 0.0, 1e4]], dtype))
        np.testing.assert_allclose(host(F.softmax(x)), [[0.09003057, 0.24472847, 0.66524096], [0, 0, 1]], rtol=1e-6)
        np.testing.assert_allclose(host(F.log_softmax(x))[0], [-2.40760596, -1.40760596, -0.40760596], rtol=1e-6)
        y = F.softmax(tinyllm.tensor(np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]], dtype)))
        assert np.isnan(host(y)[0]).all() and np.isfinite(host(y)[1]).all()


def test_softmax_dtype_arg_0d_and_bad_dim():
    x = tinyllm.tensor([1.0, 2.0, 3.0])
    assert F.softmax(x, dtype="float64").dtype == f64
    assert host(F.softmax(tinyllm.tensor(2.0), dim=0)) == 1.0
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-1, 0\], but got 1\)"):
        F.softmax(x, dim=1)


# ============================================================================ cross_entropy


CE_CASES = [
    dict(reduction="mean"), dict(reduction="sum"), dict(reduction="none"),
    dict(reduction="mean", ignore_index=2), dict(reduction="none", ignore_index=-100),
    dict(reduction="mean", label_smoothing=0.1), dict(reduction="sum", label_smoothing=0.3, ignore_index=1),
    dict(reduction="none", label_smoothing=0.2, ignore_index=0),
]


def _targets(shape, C, ignore=None, seed=4):
    t = np.random.default_rng(seed).integers(0, C, size=shape)
    if ignore is not None:
        t.reshape(-1)[::3] = ignore
    return t


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("kw", CE_CASES)
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4), (2, 5, 2, 3), (5,)])
def test_cross_entropy_vs_torch(torch, shape, kw, dtype):
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0], *shape[2:])
    t = _targets(tshape, C, kw.get("ignore_index") if len(shape) > 1 else None)
    compare_torch(torch, lambda m, x: m.F.cross_entropy(x, m.const(t), **kw), [rnd(*shape, scale=2)], dtype)


@pytest.mark.parametrize("kw", CE_CASES)
def test_cross_entropy_vs_composition_and_gradcheck(kw):
    t = _targets((7,), 4, kw.get("ignore_index"))
    compare_composed(lambda x: F.cross_entropy(x, tinyllm.tensor(t), **kw),
                     lambda x: cross_entropy_ref(x, t, **kw), [rnd(7, 4, scale=2)])
    gradcheck(lambda x: F.cross_entropy(x, tinyllm.tensor(t), **kw), [leaf(rnd(7, 4))])


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("kw", [dict(), dict(reduction="none"), dict(reduction="sum", label_smoothing=0.2)])
def test_cross_entropy_probability_targets(torch, kw, dtype):
    p = np.random.default_rng(5).dirichlet(np.ones(5), size=(4, 3)).transpose(0, 2, 1)  # (N, C, d1)
    compare_torch(torch, lambda m, x, q: m.F.cross_entropy(x, q, **kw), [rnd(4, 5, 3), p], dtype)
    gradcheck(lambda x, q: F.cross_entropy(x, q, **kw), [leaf(rnd(4, 5, 3)), leaf(p)])


def test_cross_entropy_kernel_matches_reference():
    for kw in CE_CASES:
        t = _targets((9,), 40, kw.get("ignore_index"))
        compare_kernel(lambda x: F.cross_entropy(x, tinyllm.tensor(t), **kw), [rnd(9, 40, scale=3)])


def test_cross_entropy_llm_shapes_and_known_value():
    # the language-model way: logits (B, T, V) -> (B·T, V), targets (B, T) -> (B·T)
    B, T, V = 2, 3, 11
    logits, targets = leaf(rnd(B, T, V), f32), tinyllm.tensor(_targets((B, T), V))
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    loss.backward()
    assert loss.dtype == f32 and logits.grad.dtype == f32 and logits.grad.shape == (B, T, V)
    np.testing.assert_allclose(host(logits.grad).sum(-1), 0, atol=1e-6)  # Σ_c (p_c - onehot_c) = 0
    x = tinyllm.tensor([[2.0, 0.0, 0.0]])
    np.testing.assert_allclose(host(F.cross_entropy(x, tinyllm.tensor([0]))), math.log(1 + 2 * math.exp(-2)), rtol=1e-6)


def test_cross_entropy_all_ignored_is_nan_like_torch(torch):
    t = np.full(3, -100)
    with np.errstate(invalid="ignore"):
        x = leaf(rnd(3, 4))
        loss = F.cross_entropy(x, tinyllm.tensor(t))
        loss.backward()
    assert np.isnan(host(loss)) and torch.nn.functional.cross_entropy(torch.randn(3, 4), torch.tensor(t)).isnan()
    assert not host(x.grad).any()


def test_cross_entropy_errors():
    x = tinyllm.randn(4, 3)
    # class ids are range-checked on the host (on a device the check would cost a sync per step)
    with pytest.raises(IndexError, match=r"target 3 at position 1 is out of range for 3 classes"):
        F.cross_entropy(x.cpu(), tinyllm.tensor([0, 3, 1, 2], device="cpu"))
    with pytest.raises(IndexError, match=r"target -1 at position \(0, 1\)"):
        F.cross_entropy(tinyllm.randn(2, 3, 2, device="cpu"), tinyllm.tensor([[0, -1], [1, 2]], device="cpu"))
    with pytest.raises(ValueError, match="expected target of shape"):
        F.cross_entropy(x, tinyllm.tensor([0, 1]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(x, tinyllm.tensor([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, tinyllm.tensor([0, 1, 2, 0]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"weight should hold one value per class, shape \(3,\)"):
        F.cross_entropy(x, tinyllm.tensor([0, 1, 2, 0]), weight=tinyllm.ones(4))
    with pytest.raises(TypeError, match="integer class ids"):
        F.cross_entropy(x, tinyllm.tensor([True, False, True, True]))


# ============================================================================ activations


ACTS = [("gelu", dict(), gelu_ref), ("gelu", dict(approximate="tanh"), gelu_tanh_ref), ("silu", dict(), silu_ref)]


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("name,kw,ref", ACTS)
def test_activation_vs_torch(torch, name, kw, ref, dtype):
    x = np.concatenate([rnd(200, scale=3), [0.0, -40.0, 40.0, -100.0, 100.0, 1e-4, -5.5, 5.5]])
    compare_torch(torch, lambda m, x: getattr(m.F, name)(x, **kw), [x], dtype)
    compare_torch(torch, lambda m, x: getattr(m.F, name)(x, **kw), [rnd(2, 3, 4)], dtype)


@pytest.mark.parametrize("name,kw,ref", ACTS)
def test_activation_vs_composition_and_gradcheck(name, kw, ref):
    fn = getattr(F, name)
    compare_composed(lambda x: fn(x, **kw), ref, [rnd(3, 5, scale=2)])
    gradcheck(lambda x: fn(x, **kw), [leaf(rnd(4, 3, scale=2))])


@pytest.mark.parametrize("name,kw,ref", ACTS)
def test_activation_kernel_matches_reference(name, kw, ref):
    fn = getattr(F, name)
    compare_kernel(lambda x: fn(x, **kw), [np.concatenate([rnd(1000, scale=4), [0.0, -90.0, 90.0, 4.5, -4.5]])])
    compare_kernel(lambda x: fn(x.transpose(0, 1), **kw), [rnd(5, 3)])


def test_activation_known_values_and_errors():
    y = F.gelu(tinyllm.tensor([-1.0, 0.0, 1.0]))
    np.testing.assert_allclose(host(y), [-0.15865525, 0.0, 0.84134475], rtol=1e-6)
    assert F.relu is ops.relu
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        F.gelu(tinyllm.randn(3), approximate="erf")
    with pytest.raises(TypeError, match="floating-point"):
        F.silu(tinyllm.tensor([1, 2]))


# ============================================================================ layer_norm, rms_norm


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("shape,ns,affine", [((4, 6), (6,), True), ((2, 3, 8), (8,), False),
                                             ((2, 3, 4), (3, 4), True), ((5, 40), (40,), True)])
def test_layer_norm_vs_torch(torch, shape, ns, affine, dtype):
    pshape = (ns,) if isinstance(ns, int) else ns
    if affine:
        arrays = [rnd(*shape, scale=3) + 1, rnd(*pshape, seed=5), rnd(*pshape, seed=6)]
        compare_torch(torch, lambda m, x, w, b: m.F.layer_norm(x, ns, w, b, eps=1e-5), arrays, dtype)
    else:
        compare_torch(torch, lambda m, x: m.F.layer_norm(x, ns), [rnd(*shape)], dtype)


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("shape,ns,affine,eps", [((4, 6), (6,), True, None), ((2, 3, 8), (8,), False, 1e-6),
                                                 ((2, 3, 4), (3, 4), True, 1e-5)])
def test_rms_norm_vs_torch(torch, shape, ns, affine, eps, dtype):
    pshape = (ns,) if isinstance(ns, int) else ns
    if affine:
        arrays = [rnd(*shape, scale=3), rnd(*pshape, seed=5)]
        compare_torch(torch, lambda m, x, w: m.F.rms_norm(x, ns, w, eps=eps), arrays, dtype)
    else:
        compare_torch(torch, lambda m, x: m.F.rms_norm(x, ns, eps=eps), [rnd(*shape)], dtype)


def test_norms_vs_composition_and_gradcheck():
    arrays = [rnd(3, 5, scale=2) + 1, rnd(5, seed=1), rnd(5, seed=2)]
    compare_composed(lambda x, w, b: F.layer_norm(x, (5,), w, b), layer_norm_ref, arrays)
    compare_composed(lambda x, w: F.rms_norm(x, (5,), w, eps=1e-6), lambda x, w: rms_norm_ref(x, w, 1e-6),
                     arrays[:2])
    gradcheck(lambda x, w, b: F.layer_norm(x, (4,), w, b),
              [leaf(rnd(3, 4)), leaf(rnd(4, seed=1)), leaf(rnd(4, seed=2))])
    gradcheck(lambda x: F.layer_norm(x, (2, 3)), [leaf(rnd(2, 2, 3))])
    gradcheck(lambda x, w: F.rms_norm(x, (4,), w), [leaf(rnd(3, 4)), leaf(rnd(4, seed=1))])


def test_norms_kernel_matches_reference():
    x, w, b = rnd(37, 24, scale=2) + 0.5, rnd(24, seed=1), rnd(24, seed=2)
    compare_kernel(lambda x, w, b: F.layer_norm(x, (24,), w, b), [x, w, b], dict(rtol=1e-4, atol=1e-5))
    compare_kernel(lambda x: F.layer_norm(x, (24,)), [x], dict(rtol=1e-4, atol=1e-5))
    compare_kernel(lambda x, w: F.rms_norm(x, (24,), w), [x, w], dict(rtol=1e-4, atol=1e-5))
    compare_kernel(lambda x: F.rms_norm(x.transpose(0, 1), (37,)), [x], dict(rtol=1e-4, atol=1e-5))


def test_norms_errors():
    x = tinyllm.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"given normalized_shape=\[5\], expected input with shape \[\*, 5\]"):
        F.layer_norm(x, (5,))
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        F.layer_norm(x, 4, weight=tinyllm.ones(3))
    assert F.layer_norm(x, 4).shape == (2, 3, 4)  # an int normalized_shape is fine (as nn.LayerNorm)
    with pytest.raises(TypeError, match="weight has dtype float64 but input has float32"):
        F.rms_norm(x, (4,), weight=tinyllm.ones(4, dtype="float64"))


# ============================================================================ embedding


@pytest.mark.parametrize("dtype", [f32, f64])
def test_embedding_vs_torch(torch, dtype):
    ids = np.array([[1, 4, 1], [0, 9, 1]])  # repeated ids must accumulate
    compare_torch(torch, lambda m, w: m.F.embedding(m.const(ids), w), [rnd(10, 5)], dtype)
    compare_torch(torch, lambda m, w: m.F.embedding(m.const(ids), w, padding_idx=1), [rnd(10, 5)], dtype)


def test_embedding_vs_composition_kernel_and_gradcheck():
    ids = np.array([3, 0, 3, 3, 2])
    compare_composed(lambda w: F.embedding(tinyllm.tensor(ids), w), lambda w: w[tinyllm.tensor(ids)], [rnd(4, 3)])
    compare_kernel(lambda w: F.embedding(tinyllm.tensor(ids.reshape(5, 1)), w), [rnd(4, 3)], dict(rtol=0, atol=0))
    gradcheck(lambda w: F.embedding(tinyllm.tensor(ids), w), [leaf(rnd(4, 3))])


def test_embedding_errors():
    W = tinyllm.randn(512, 4)
    ids = np.zeros(20, dtype=np.int64)
    ids[12] = 731
    # ids are range-checked on the host (on a device the check would cost a sync per step)
    with pytest.raises(ValueError, match=r"expected token ids in \[0, num_embeddings=512\), got 731 at position 12"):
        F.embedding(tinyllm.tensor(ids, device="cpu"), W.cpu())
    with pytest.raises(ValueError, match=r"got -1 at position \(1, 0\)"):
        F.embedding(tinyllm.tensor([[0, 1], [-1, 2]], device="cpu"), W.cpu())
    with pytest.raises(TypeError, match="integer token ids"):
        F.embedding(tinyllm.tensor([0.0, 1.0]), W)
    assert F.embedding([[1, 2]], W).shape == (1, 2, 4)  # plain lists of ids are fine


# ============================================================================ dropout


def test_dropout_seeded_and_statistics():
    x = tinyllm.ones(200_000, requires_grad=True)
    tinyllm.manual_seed(7)
    y = F.dropout(x, p=0.3)
    tinyllm.manual_seed(7)
    y2 = F.dropout(x, p=0.3)
    a = host(y)
    np.testing.assert_array_equal(a, host(y2))
    assert set(np.unique(a).tolist()) == {0.0, np.float32(1 / 0.7)}
    assert abs((a != 0).mean() - 0.7) < 0.005
    y.backward(tinyllm.ones(200_000))
    np.testing.assert_array_equal(host(x.grad), a)  # grad = mask / (1 - p) = y for x = 1
    assert y.dtype == f32 and x.grad.dtype == f32


def test_dropout_same_mask_on_cpu_and_strict():
    out = []
    for device in ("cpu", "strict"):
        tinyllm.manual_seed(3)
        out.append(host(F.dropout(tinyllm.ones(50, device=device), p=0.5)))
    np.testing.assert_array_equal(*out)


def test_dropout_identity_edges_and_errors():
    x = tinyllm.randn(4, 5, dtype="float64", requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    y = F.dropout(x, 1.0)
    y.sum().backward()
    assert y.dtype == f64 and not host(y).any() and not host(x.grad).any()
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"dropout probability has to be between 0 and 1, but got {p}"):
            F.dropout(x, p)


def test_dropout_gradcheck():
    def fn(x):
        tinyllm.manual_seed(11)  # the same mask for every evaluation
        return F.dropout(x, 0.4)

    gradcheck(fn, [leaf(rnd(3, 4))])


# ============================================================================ linear


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("xshape,bias", [((4, 3), True), ((2, 5, 3), False), ((3,), True), ((2, 2, 2, 3), True)])
def test_linear_vs_torch(torch, xshape, bias, dtype):
    arrays = [rnd(*xshape), rnd(6, 3, seed=1)] + ([rnd(6, seed=2)] if bias else [])
    compare_torch(torch, lambda m, *a: m.F.linear(*a), arrays, dtype)


def test_linear_vs_composition_and_gradcheck():
    arrays = [rnd(2, 4, 3), rnd(5, 3, seed=1), rnd(5, seed=2)]
    compare_composed(F.linear, lambda x, w, b: x @ w.T + b, arrays)
    gradcheck(F.linear, [leaf(a) for a in arrays])
    x = leaf(rnd(3, 4)).transpose(0, 1)  # non-contiguous input
    gradcheck(lambda x, w: F.linear(x, w), [x, leaf(rnd(2, 3, seed=1))])


def test_linear_errors():
    with pytest.raises(ValueError, match=r"input has 4 features .* expects in_features=3"):
        F.linear(tinyllm.randn(2, 4), tinyllm.randn(5, 3))
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\)"):
        F.linear(tinyllm.randn(2, 3), tinyllm.randn(5, 3), tinyllm.randn(3))
    with pytest.raises(TypeError, match="input has dtype float32 but weight has float64"):
        F.linear(tinyllm.randn(2, 3), tinyllm.randn(5, 3, dtype="float64"))


# ============================================================================ scaled_dot_product_attention

SDPA = "scaled_dot_product_attention"


def _qkv(B=2, H=3, L=5, S=5, E=4, Ev=4, Hk=None, seed=0):
    Hk = Hk or H
    return [rnd(B, H, L, E, seed=seed), rnd(B, Hk, S, E, seed=seed + 1), rnd(B, Hk, S, Ev, seed=seed + 2)]


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("shape,kw", [
    (dict(), dict()),
    (dict(), dict(is_causal=True)),
    (dict(L=3, S=6), dict(is_causal=True)),  # top-left aligned, as torch
    (dict(L=6, S=3), dict(is_causal=True)),
    (dict(L=4, S=7, Ev=2), dict(scale=0.3)),
    (dict(H=6, Hk=2), dict(enable_gqa=True, is_causal=True)),
    (dict(L=1, S=9, H=4, Hk=2), dict(enable_gqa=True)),  # a decode step: K, V used in place, no copies
    (dict(L=2, S=9), dict(scale=0.5)),
])
def test_sdpa_vs_torch(torch, shape, kw, dtype):
    compare_torch(torch, lambda m, q, k, v: getattr(m.F, SDPA)(q, k, v, **kw), _qkv(**shape), dtype,
                  tol=dict(rtol=1e-4, atol=1e-5) if dtype == f32 else None)


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_masks_vs_torch(torch, causal, dtype):
    L, S = 4, 5
    keep = np.random.default_rng(9).random((2, 1, L, S)) > 0.4
    keep[0, 0, 1] = False  # a query that sees no key at all: zeros, not NaN (torch)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == f32 else None
    compare_torch(torch, lambda m, q, k, v: getattr(m.F, SDPA)(q, k, v, attn_mask=m.const(keep), is_causal=causal),
                  _qkv(L=L, S=S), dtype, tol)
    # a float mask is added to the scores and gets a gradient (broadcast dims summed); torch refuses
    # a float mask with is_causal=True, so it gets the causal mask added to the float one instead
    causal_bias = np.where(np.tril(np.ones((L, S), dtype=bool)), 0.0, -np.inf).astype(dtype)

    def fn(m, q, k, v, b):
        if causal and m is not TL:
            return m.F.scaled_dot_product_attention(q, k, v, attn_mask=b + m.const(causal_bias))
        return m.F.scaled_dot_product_attention(q, k, v, attn_mask=b, is_causal=causal)

    compare_torch(torch, fn, _qkv(L=L, S=S) + [rnd(3, L, S, seed=8)], dtype, tol)


def test_sdpa_vs_composition_and_gradcheck():
    L, S = 4, 6
    tril = np.tril(np.ones((L, S), dtype=bool))
    compare_composed(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                     lambda q, k, v: sdpa_ref(q, k, v, keep=tril), _qkv(L=L, S=S))
    compare_composed(lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b, scale=0.7),
                     lambda q, k, v, b: sdpa_ref(q, k, v, scale=0.7, bias=b), _qkv(L=L, S=S) + [rnd(L, S)])
    gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
              [leaf(a) for a in _qkv(B=1, H=2, L=3, S=3, E=2, Ev=3)])
    gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
              [leaf(a) for a in _qkv(B=1, H=4, Hk=2, L=3, S=2, E=2, Ev=2)])


def test_sdpa_kernel_matches_reference():
    keep = np.random.default_rng(2).random((5, 7)) > 0.3
    keep[2] = False
    for kw in (dict(), dict(is_causal=True), dict(attn_mask=tinyllm.tensor(keep))):
        compare_kernel(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw), _qkv(L=5, S=7))


def test_sdpa_dropout_matches_composition_with_the_same_mask():
    q, k, v = _qkv(B=1, H=2, L=4, S=4)
    p = 0.3
    tinyllm.manual_seed(21)
    xs = [leaf(a) for a in (q, k, v)]
    y = F.scaled_dot_product_attention(*xs, dropout_p=p, is_causal=True)
    tinyllm.manual_seed(21)
    keep = Tensor(backend.rand((1, 2, 4, 4), dtype=np.float32) >= p)
    zs = [leaf(a) for a in (q, k, v)]
    s = (zs[0] @ zs[1].transpose(-2, -1)) * 0.5
    P = softmax_ref(s.masked_fill(tinyllm.tensor(~np.tril(np.ones((4, 4), dtype=bool))), -np.inf))
    z = (P * keep.astype("float64") / (1 - p)) @ zs[2]
    np.testing.assert_allclose(host(y), host(z), rtol=1e-10)
    w = tinyllm.tensor(rnd(1, 2, 4, 4, seed=3))
    y.backward(w)
    z.backward(w)
    for a, b in zip(xs, zs):
        np.testing.assert_allclose(host(a.grad), host(b.grad), rtol=1e-9, atol=1e-12)


def test_sdpa_errors():
    q, k, v = (tinyllm.randn(2, 4, 5, 8) for _ in range(3))
    with pytest.raises(ValueError, match="same last dim"):
        F.scaled_dot_product_attention(q, tinyllm.randn(2, 4, 5, 6), v)
    with pytest.raises(ValueError, match="enable_gqa=True"):
        F.scaled_dot_product_attention(q, tinyllm.randn(2, 2, 5, 8), tinyllm.randn(2, 2, 5, 8))
    with pytest.raises(ValueError, match="multiple of key/value heads"):
        F.scaled_dot_product_attention(q, tinyllm.randn(2, 3, 5, 8), tinyllm.randn(2, 3, 5, 8), enable_gqa=True)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 5\) does not broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tinyllm.ones(3, 5, dtype="bool"))
    with pytest.raises(TypeError, match="share one floating dtype"):
        F.scaled_dot_product_attention(q, k, v.double())


# ============================================================================ across ops: kernels, dtypes, devices


def test_exp32_and_erf32_accuracy():
    """The polynomial exp and erf of the host kernels, against float64 NumPy and math.erf."""
    x = np.linspace(-87, 88, 200_001, dtype=np.float32)
    np.testing.assert_allclose(kernels.exp(x), np.exp(x.astype(np.float64)), rtol=3e-7)
    specials = np.array([-np.inf, -100.0, np.nan, 0.0, np.inf], dtype=np.float32)
    with np.errstate(invalid="ignore"):  # NaN in, NaN out (and the FPU's invalid flag)
        np.testing.assert_array_equal(kernels.exp(specials), [0.0, 0.0, np.nan, 1.0, np.inf])
    x = np.linspace(-6, 6, 20_001, dtype=np.float32)
    np.testing.assert_allclose(kernels.erf(x), [math.erf(v) for v in x.tolist()], rtol=0, atol=4e-7)


OPS = {
    "softmax": (lambda x: F.softmax(x, -1), [(3, 5)]),
    "log_softmax": (lambda x: F.log_softmax(x, 0), [(3, 5)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, tinyllm.tensor([0, 4, 2]), label_smoothing=0.1), [(3, 5)]),
    "gelu": (F.gelu, [(3, 5)]),
    "silu": (F.silu, [(3, 5)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (5,), w, b), [(3, 5), (5,), (5,)]),
    "rms_norm": (lambda x, w: F.rms_norm(x, (5,), w), [(3, 5), (5,)]),
    "embedding": (lambda w: F.embedding(tinyllm.tensor([1, 1, 0]), w), [(3, 5)]),
    "dropout": (lambda x: F.dropout(x, 0.5), [(3, 5)]),
    "linear": (F.linear, [(3, 5), (2, 5), (2,)]),
    "sdpa": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.1),
             [(2, 3, 5), (2, 4, 5), (2, 4, 5)]),
}


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("name", list(OPS))
def test_dtype_preserved(name, dtype):
    fn, shapes = OPS[name]
    xs = [leaf(rnd(*s, seed=i), dtype) for i, s in enumerate(shapes)]
    y = fn(*xs)
    y.backward(tinyllm.tensor(np.ones(y.shape, dtype)))
    assert y.dtype == dtype and all(x.grad.dtype == dtype for x in xs), name


@pytest.mark.parametrize("name", list(OPS))
def test_strict_device_no_host_transfers(name):
    """On the strict device (arrays that refuse NumPy, like CuPy), forward + backward move nothing to the host."""
    fn, shapes = OPS[name]
    with tinyllm.use_device("strict"):
        xs = [leaf(rnd(*s, seed=i), f32) for i, s in enumerate(shapes)]
        backend.reset_transfer_stats()
        y = fn(*xs)
        y.backward(tinyllm.ones(*y.shape))
    assert backend.transfer_stats()["explicit"] == 0
    assert all(x.grad.device == "strict" for x in xs)


def test_sdpa_batch_dims_must_broadcast_to_the_query():
    q = tinyllm.randn(1, 2, 4, 8)
    kv = tinyllm.randn(3, 2, 4, 8)
    with pytest.raises(ValueError, match="must broadcast to those of query"):
        F.scaled_dot_product_attention(q, kv, kv)
    with pytest.raises(ValueError, match="must broadcast to those of query"):
        F.scaled_dot_product_attention(tinyllm.randn(2, 4, 8), tinyllm.randn(2, 4, 8), tinyllm.randn(2, 4, 8),
                                       attn_mask=tinyllm.ones(3, 1, 4, 4, dtype=bool))
    out = F.scaled_dot_product_attention(tinyllm.randn(3, 2, 4, 8), tinyllm.randn(1, 2, 4, 8), tinyllm.randn(2, 4, 8))
    assert out.shape == (3, 2, 4, 8)  # key/value broadcast up to the query: fine


def test_cross_entropy_target_on_another_device_is_a_clear_error():
    other = "strict" if tinyllm.get_device() == "cpu" else "cpu"
    with pytest.raises(RuntimeError, match="target is on"):
        F.cross_entropy(tinyllm.randn(4, 3), tinyllm.tensor([0, 1, 2, 0], device=other))


# ============================================================================ cross_entropy's class weights


def cross_entropy_weighted_ref(x, t, w, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """(N, C) logits, host int targets and weights, from primitives: q = (1-ε) w_t onehot(t) + (ε/C) w."""
    N, C = x.shape
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    w_t = np.where(valid, w[safe], 0.0)
    logp = log_softmax_ref(x, 1)
    rows = tinyllm.tensor(np.arange(N))
    nll = -logp[rows, tinyllm.tensor(safe)] * tinyllm.tensor(w_t)
    smooth = -(logp * tinyllm.tensor(w)).sum(1) * tinyllm.tensor(valid.astype(float)) / C
    loss = nll * (1 - label_smoothing) + smooth * label_smoothing
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / float(w_t.sum())


@pytest.mark.parametrize("kw", CE_CASES)
def test_cross_entropy_weight_vs_composition_and_gradcheck(kw):
    t = _targets((7,), 4, kw.get("ignore_index"))
    w = np.array([0.5, 2.0, 1.0, 3.0])
    compare_composed(lambda x: F.cross_entropy(x, tinyllm.tensor(t), weight=tinyllm.tensor(w), **kw),
                     lambda x: cross_entropy_weighted_ref(x, t, w, **kw), [rnd(7, 4, scale=2)])
    gradcheck(lambda x: F.cross_entropy(x, tinyllm.tensor(t), weight=tinyllm.tensor(w), **kw), [leaf(rnd(7, 4))])


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("kw", CE_CASES)
def test_cross_entropy_weight_vs_torch(torch, kw, dtype):
    w = np.array([0.5, 2.0, 1.0, 3.0, 0.25])
    for shape in [(6, 5), (2, 5, 2, 3)]:
        t = _targets((shape[0], *shape[2:]), 5, kw.get("ignore_index"))
        compare_torch(torch, lambda m, x: m.F.cross_entropy(x, m.const(t), weight=m.const(w.astype(dtype)), **kw),
                      [rnd(*shape, scale=2)], dtype)

