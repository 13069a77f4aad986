"""tinyllm.functional's losses, activations and utilities: what the op table cannot say.

The table (tests/op_db_functional.py) checks every op against torch on drawn shapes,
values, dtypes and gradients. Here: the numbers written out by hand (weighted means,
batchmean, the -100 clamp), torch's corner cases (every target ignored, p = 0 or 1,
logits of ±100), the legacy reduction flags, the errors and their advice, and that
nothing moves to the host on the strict device.
"""

import math

import numpy as np
import pytest

import tinyllm
import tinyllm.functional as F
from tinyllm import backend, ops
from tinyllm.tensor import Tensor

f32, f64 = np.float32, np.float64


def host(x) -> np.ndarray:
    return tinyllm.to_numpy(x.data if isinstance(x, Tensor) else x)


def leaf(a, dtype=f64):
    return tinyllm.tensor(np.asarray(a, dtype=dtype), requires_grad=True)


def both(torch, fn, *arrays, const=(), grads=True, **tol):
    """fn(m, *tensors), m = tinyllm.functional or torch.nn.functional, from the same host arrays:
    values and the gradients of sum(output). Float arrays require grad unless their index is in `const`."""
    tol = tol or dict(rtol=1e-9, atol=1e-12)
    wants = [grads and a.dtype.kind == "f" and i not in const for i, a in enumerate(arrays)]
    xs = [tinyllm.tensor(a, requires_grad=g) for a, g in zip(arrays, wants)]
    ts = [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, wants)]
    y, yt = fn(F, *xs), fn(torch.nn.functional, *ts)
    np.testing.assert_allclose(host(y), yt.detach().numpy(), **tol)
    if any(wants):
        y.sum().backward()
        yt.sum().backward()
        for x, t, g in zip(xs, ts, wants):
            if g:
                np.testing.assert_allclose(host(x.grad), t.grad.numpy(), **tol)
    return y


# ============================================================================ nll_loss and cross_entropy's weight


LOGP = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]]))


def test_nll_loss_weighted_mean_divides_by_the_weights_of_counted_targets(torch):
    t, w = np.array([0, 1, 2, 1]), np.array([1.0, 2.0, 0.5])
    loss = F.nll_loss(tinyllm.tensor(LOGP), tinyllm.tensor(t), weight=tinyllm.tensor(w), ignore_index=2)
    # targets 0, 1, 1 count (2 is ignored): (1·-log 0.7 + 2·-log 0.6 + 2·-log 0.25) / (1 + 2 + 2)
    by_hand = (-math.log(0.7) - 2 * math.log(0.6) - 2 * math.log(0.25)) / 5
    np.testing.assert_allclose(host(loss), by_hand, rtol=1e-12)
    for kw in [dict(), dict(ignore_index=1), dict(ignore_index=0, reduction="none"), dict(reduction="sum")]:
        both(torch, lambda m, x, t: m.nll_loss(x, t, **kw), LOGP, t)
        both(torch, lambda m, x, t, w: m.nll_loss(x, t, weight=w, **kw), LOGP, t, w, const=(2,))


def test_nll_loss_of_log_softmax_is_cross_entropy():
    x = np.random.default_rng(0).standard_normal((5, 4, 3))
    t = np.random.default_rng(1).integers(0, 4, (5, 3))
    w = tinyllm.tensor([0.5, 1.0, 2.0, 1.5])
    a, b = leaf(x), leaf(x)
    la = F.nll_loss(F.log_softmax(a, 1), tinyllm.tensor(t), weight=w, ignore_index=3)
    lb = F.cross_entropy(b, tinyllm.tensor(t), weight=w, ignore_index=3)
    np.testing.assert_allclose(host(la), host(lb), rtol=1e-12)
    la.backward()
    lb.backward()
    np.testing.assert_allclose(host(a.grad), host(b.grad), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("fn", ["nll_loss", "cross_entropy"])
def test_every_target_ignored_gives_nan_and_zero_gradient_like_torch(torch, fn):
    x, t = leaf(LOGP), np.full(4, 2)
    with np.errstate(invalid="ignore"):
        loss = getattr(F, fn)(x, tinyllm.tensor(t), ignore_index=2, weight=tinyllm.tensor([1.0, 2.0, 3.0]))
        loss.backward()
    xt = torch.tensor(LOGP, requires_grad=True)
    lt = getattr(torch.nn.functional, fn)(xt, torch.tensor(t), ignore_index=2,
                                          weight=torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    lt.backward()
    assert np.isnan(host(loss)) and lt.isnan()
    np.testing.assert_array_equal(host(x.grad), xt.grad.numpy())  # zeros


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("kw", [dict(), dict(ignore_index=1), dict(label_smoothing=0.2),
                                dict(label_smoothing=0.3, ignore_index=0, reduction="none"),
                                dict(reduction="sum", label_smoothing=0.1)])
def test_cross_entropy_weight_as_torch_with_ignore_index_and_smoothing(torch, kw, dtype):
    rng = np.random.default_rng(3)
    for shape in [(6, 4), (3, 4, 2), (4,)]:
        x = rng.standard_normal(shape).astype(dtype) * 2
        t = rng.integers(0, 4, () if len(shape) == 1 else (shape[0], *shape[2:]))
        w = rng.uniform(0.2, 3.0, 4).astype(dtype)
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == f32 else dict(rtol=1e-10, atol=1e-12)
        if t.ndim == 0 and kw.get("ignore_index") == int(t):
            continue  # the one target ignored: NaN, tested above
        both(torch, lambda m, x, t, w: m.cross_entropy(x, t, weight=w, **kw), x, t, w, const=(2,), **tol)


def test_cross_entropy_weight_with_probability_targets(torch):
    rng = np.random.default_rng(4)
    x, q, w = rng.standard_normal((5, 3)), rng.dirichlet(np.ones(3), 5), np.array([0.5, 2.0, 1.0])
    for kw in [dict(), dict(label_smoothing=0.25), dict(reduction="none")]:
        both(torch, lambda m, x, q, w: m.cross_entropy(x, q, weight=w, **kw), x, q, w, const=(2,))


def test_cross_entropy_weight_ones_is_the_unweighted_loss_and_the_kernel_path_stays():
    x = np.random.default_rng(5).standard_normal((9, 40)).astype(f32)
    t = tinyllm.tensor(np.random.default_rng(6).integers(0, 40, 9))
    a, b = leaf(x, f32), leaf(x, f32)
    la = F.cross_entropy(a, t, label_smoothing=0.1)
    lb = F.cross_entropy(b, t, label_smoothing=0.1, weight=tinyllm.ones(40))
    la.backward()
    lb.backward()
    np.testing.assert_allclose(host(la), host(lb), rtol=1e-6)
    np.testing.assert_allclose(host(a.grad), host(b.grad), rtol=1e-5, atol=1e-7)


def test_class_weight_errors():
    x, t = tinyllm.randn(4, 3), tinyllm.tensor([0, 1, 2, 0])
    for fn in (F.cross_entropy, F.nll_loss):
        with pytest.raises(ValueError, match=r"one value per class, shape \(3,\), but got shape \(2,\)"):
            fn(x, t, weight=tinyllm.ones(2))
        with pytest.raises(TypeError, match="weight must be floating-point"):
            fn(x, t, weight=tinyllm.tensor([1, 2, 3]))
        with pytest.raises(RuntimeError, match=r"not differentiable with respect to weight.*weight.detach\(\)"):
            fn(x, t, weight=tinyllm.ones(3, requires_grad=True))
        with tinyllm.no_grad():
            fn(x, t, weight=tinyllm.ones(3, requires_grad=True))  # no graph: a constant like any other
    with pytest.raises(IndexError, match=r"nll_loss: target 3 at position 1 is out of range for 3 classes"):
        F.nll_loss(x.cpu(), tinyllm.tensor([0, 3, 1, 2], device="cpu"))
    with pytest.raises(TypeError, match="nll_loss: target must hold integer class ids"):
        F.nll_loss(x, tinyllm.tensor([0.0, 1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"expected target of shape \(4,\)"):
        F.nll_loss(x, tinyllm.tensor([0, 1]))


# ============================================================================ reductions


@pytest.mark.filterwarnings("ignore:size_average and reduce args will be deprecated")
def test_reduction_errors_and_torchs_legacy_flags(torch):
    x, y = np.random.default_rng(7).standard_normal((2, 3)), np.random.default_rng(8).standard_normal((2, 3))
    for size_average, reduce in [(None, False), (False, None), (True, True), (False, True), (True, None)]:
        for name in ("mse_loss", "l1_loss", "smooth_l1_loss"):
            both(torch, lambda m, a, b: getattr(m, name)(a, b, size_average=size_average, reduce=reduce), x, y)
    with pytest.raises(ValueError, match=r"mse_loss: reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"):
        F.mse_loss(tinyllm.tensor(x), tinyllm.tensor(y), reduction="avg")
    with pytest.raises(ValueError, match="batchmean"):
        F.kl_div(tinyllm.tensor(x), tinyllm.tensor(y), reduction="batch")
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.mse_loss(tinyllm.tensor(x), tinyllm.tensor(y), reduction="batchmean")  # only kl_div has it


# ============================================================================ regression


def test_regression_losses_by_hand_and_their_relations():
    x, y = tinyllm.tensor([0.5, 3.0, -1.0]), tinyllm.tensor([0.0, 0.0, 0.0])
    np.testing.assert_allclose(host(F.mse_loss(x, y, reduction="none")), [0.25, 9.0, 1.0])
    np.testing.assert_allclose(host(F.smooth_l1_loss(x, y, reduction="none")), [0.125, 2.5, 0.5])
    np.testing.assert_allclose(host(F.huber_loss(x, y, reduction="none", delta=2.0)), [0.125, 4.0, 0.5])
    np.testing.assert_allclose(host(F.smooth_l1_loss(x, y, beta=0.0)), host(F.l1_loss(x, y)))
    for d in (0.5, 1.0, 2.0):  # huber = δ · smooth_l1(β = δ)
        np.testing.assert_allclose(host(F.huber_loss(x, y, delta=d)), d * host(F.smooth_l1_loss(x, y, beta=d)),
                                   rtol=1e-6)


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_regression_weights_and_broadcasting(torch):
    rng = np.random.default_rng(9)
    x, y, w = rng.standard_normal((3, 4)), rng.standard_normal((4,)), rng.uniform(0.1, 2, (3, 4))
    for name in ("mse_loss", "l1_loss", "huber_loss"):
        for reduction in ("mean", "sum", "none"):
            both(torch, lambda m, a, b, c: getattr(m, name)(a, b, reduction=reduction, weight=c), x, y, w)
    # mse/l1's weighted mean divides by Σw; huber's by the count (torch 2.x)
    xt, yt, wt = tinyllm.tensor(x), tinyllm.tensor(np.broadcast_to(y, x.shape).copy()), tinyllm.tensor(w)
    np.testing.assert_allclose(host(F.mse_loss(xt, yt, weight=wt)), (w * (x - y) ** 2).sum() / w.sum())
    np.testing.assert_allclose(host(F.huber_loss(xt, yt, weight=wt)), host(F.huber_loss(xt, yt, reduction="none")
                                                                        * wt).mean())
    with pytest.warns(UserWarning):  # torch warns about the broadcast; tinyllm just broadcasts
        both(torch, lambda m, a, b: m.mse_loss(a, b), x, y)


def test_regression_errors():
    x = tinyllm.randn(3)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match="delta must be > 0"):
        F.huber_loss(x, x, delta=0.0)
    with pytest.raises(ValueError, match=r"weight must have the input's shape \(3,\), got \(1,\)"):
        F.mse_loss(x, x, weight=tinyllm.ones(1))
    with pytest.raises(TypeError, match=r"input must be floating-point.*input.float\(\)"):
        F.l1_loss(tinyllm.tensor([1, 2]), tinyllm.tensor([1, 2]))
    with pytest.raises(TypeError, match="must be a tinyllm Tensor"):
        F.mse_loss([1.0, 2.0], x)
    # an integer target takes the input's dtype (torch's promotion; NumPy's would give float64)
    assert F.mse_loss(tinyllm.tensor([1.0, 2.0]), tinyllm.tensor([1, 4])).dtype == f32


# ============================================================================ binary cross-entropy


def test_binary_cross_entropy_clamps_log_at_minus_100_and_keeps_torchs_gradient(torch):
    p, y = np.array([0.0, 1.0, 1.0, 0.0, 0.3]), np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    loss = both(torch, lambda m, p, y: m.binary_cross_entropy(p, y, reduction="none"), p, y, grads=False)
    np.testing.assert_allclose(host(loss), [100.0, 100.0, 0.0, 0.0, -math.log(0.3)])
    # the gradient at p = 0, 1 is finite: (p - y) / max(p(1 - p), 1e-12), as torch
    pl, pt = leaf(p), torch.tensor(p, requires_grad=True)
    F.binary_cross_entropy(pl, tinyllm.tensor(y)).backward()
    torch.nn.functional.binary_cross_entropy(pt, torch.tensor(y)).backward()
    g = host(pl.grad)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, pt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g[:2], [-1 / 5e-12, 1 / 5e-12])


def test_binary_cross_entropy_target_gradient_and_weight(torch):
    rng = np.random.default_rng(10)
    p, y, w = rng.uniform(0.05, 0.95, (3, 4)), rng.uniform(0, 1, (3, 4)), rng.uniform(0.1, 2, (4,))
    for reduction in ("mean", "sum", "none"):
        both(torch, lambda m, p, y, w: m.binary_cross_entropy(p, y, weight=w, reduction=reduction), p, y, w,
             const=(2,))


def test_binary_cross_entropy_errors():
    p = tinyllm.tensor([0.2, 0.9], device="cpu")
    with pytest.raises(ValueError, match="between 0 and 1.*binary_cross_entropy_with_logits"):
        F.binary_cross_entropy(tinyllm.tensor([1.5, 0.5], device="cpu"), tinyllm.tensor([1.0, 0.0], device="cpu"))
    with pytest.raises(ValueError, match="target should be between 0 and 1"):
        F.binary_cross_entropy(p, tinyllm.tensor([2.0, 0.0], device="cpu"))
    for fn in (F.binary_cross_entropy, F.binary_cross_entropy_with_logits):
        with pytest.raises(ValueError, match=r"target shape \(2, 1\) differs from input shape \(2,\)"):
            fn(p, tinyllm.tensor([[1.0], [0.0]], device="cpu"))
        with pytest.raises(ValueError, match=r"weight of shape \(3,\) does not broadcast to the input's shape \(2,\)"):
            fn(p, p, weight=tinyllm.ones(3, device="cpu"))
        with pytest.raises(RuntimeError, match="not differentiable with respect to weight"):
            fn(p, p, weight=tinyllm.ones(2, requires_grad=True, device="cpu"))
    with pytest.raises(RuntimeError, match="not differentiable with respect to pos_weight"):
        F.binary_cross_entropy_with_logits(p, p, pos_weight=tinyllm.ones(2, requires_grad=True, device="cpu"))


def test_binary_cross_entropy_with_logits_is_stable_and_weighted_as_torch(torch):
    x = np.array([[-100.0, -20.0, 0.0, 20.0, 100.0], [3.0, -3.0, 0.5, -0.5, 40.0]])
    y = np.array([[1.0, 0.0, 1.0, 1.0, 0.0], [0.2, 0.7, 1.0, 0.0, 1.0]])
    w, pw = np.array([1.0, 0.5, 2.0, 1.0, 3.0]), np.array([2.0, 1.0, 0.5, 4.0, 1.0])
    loss = both(torch, lambda m, x, y: m.binary_cross_entropy_with_logits(x, y, reduction="none"), x, y)
    tiny = math.log1p(math.exp(-20))  # log(1 + e^{-20}) = 2.06e-9, not rounded away to 0
    # (at x = -20, y = 0 torch's (1 - y)x - log σ(x) = -20 + 20.000000002 keeps 6 digits; so does tinyllm's)
    np.testing.assert_allclose(host(loss)[0], [100.0, tiny, math.log(2), tiny, 100.0], rtol=1e-6)
    both(torch, lambda m, x, y, w: m.binary_cross_entropy_with_logits(x, y, weight=w), x, y, w, const=(2,))
    both(torch, lambda m, x, y, pw: m.binary_cross_entropy_with_logits(x, y, pos_weight=pw), x, y, pw, const=(2,))
    both(torch, lambda m, x, y, w, pw: m.binary_cross_entropy_with_logits(x, y, w, pos_weight=pw, reduction="sum"),
         x, y, w, pw, const=(2, 3))
    for dtype in (f32, f64):  # float32 too: no σ(x) rounded to 0 or 1 on the way
        xs = tinyllm.tensor(x.astype(dtype))
        out = F.binary_cross_entropy_with_logits(xs, tinyllm.tensor(y.astype(dtype)), reduction="none")
        assert out.dtype == dtype and np.isfinite(host(out)).all()


def test_binary_cross_entropy_with_logits_equals_bce_of_sigmoid():
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((4, 3)), rng.uniform(0, 1, (4, 3))
    a = F.binary_cross_entropy_with_logits(tinyllm.tensor(x), tinyllm.tensor(y))
    b = F.binary_cross_entropy(F.sigmoid(tinyllm.tensor(x)), tinyllm.tensor(y))
    np.testing.assert_allclose(host(a), host(b), rtol=1e-12)


# ============================================================================ kl_div


def test_kl_div_batchmean_is_the_kl_per_sample(torch):
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])  # target (teacher); a zero: 0 log 0 = 0
    q = np.array([[0.25, 0.25, 0.5], [0.2, 0.6, 0.2]])  # input (student), as log-probabilities
    kl = [sum(pi * math.log(pi / qi) for pi, qi in zip(pr, qr) if pi > 0) for pr, qr in zip(p, q)]
    x, y = tinyllm.tensor(np.log(q)), tinyllm.tensor(p)
    np.testing.assert_allclose(host(F.kl_div(x, y, reduction="batchmean")), sum(kl) / 2, rtol=1e-12)
    np.testing.assert_allclose(host(F.kl_div(x, y, reduction="mean")), sum(kl) / 6, rtol=1e-12)
    np.testing.assert_allclose(host(F.kl_div(x, y, reduction="sum")), sum(kl), rtol=1e-12)
    np.testing.assert_allclose(host(F.kl_div(x, y, reduction="none")).sum(1), kl, rtol=1e-12)
    # log_target: the same numbers from log p (where p > 0)
    np.testing.assert_allclose(host(F.kl_div(x[1:], y[1:].log(), reduction="batchmean", log_target=True)), kl[1])
    for reduction in ("batchmean", "sum", "none"):
        both(torch, lambda m, a, b: m.kl_div(a, b, reduction=reduction), np.log(q), p, const=(1,))
    # the input's gradient is finite where the target is 0 (it is -y = 0 there)
    xl = leaf(np.log(q))
    F.kl_div(xl, y, reduction="sum").backward()
    np.testing.assert_allclose(host(xl.grad), -p)
    # a 0-d input: batchmean is the sum (torch)
    np.testing.assert_allclose(host(F.kl_div(tinyllm.tensor(-1.0), tinyllm.tensor(0.5), reduction="batchmean")),
                               0.5 * (math.log(0.5) + 1.0), rtol=1e-6)


# ============================================================================ activations


def test_activations_are_the_primitives_or_compositions_of_them():
    assert F.sigmoid is ops.sigmoid and F.tanh is ops.tanh and F.softplus is ops.softplus and F.relu is ops.relu


def test_logsigmoid_is_stable_where_log_of_sigmoid_is_not():
    x = tinyllm.tensor([-1000.0, -120.0, -20.0, 0.0, 50.0])
    with np.errstate(divide="ignore"):
        naive = host(F.sigmoid(x).log())
    assert np.isinf(naive[0])
    np.testing.assert_allclose(host(F.logsigmoid(x)), [-1000.0, -120.0, -20.000000002, -math.log(2), 0.0], rtol=1e-7,
                               atol=1e-20)
    xl = leaf([-1000.0, 0.0, 1000.0])
    F.logsigmoid(xl).sum().backward()  # d log σ(x)/dx = 1 - σ(x) = σ(-x)
    np.testing.assert_allclose(host(xl.grad), [1.0, 0.5, 0.0])


def test_leaky_relu_and_glu_details():
    x = leaf([-2.0, 0.0, 3.0])
    y = F.leaky_relu(x, 0.1)
    y.sum().backward()
    np.testing.assert_allclose(host(y), [-0.2, 0.0, 3.0])
    np.testing.assert_allclose(host(x.grad), [0.1, 0.1, 1.0])  # at 0 the slope is negative_slope, as torch
    np.testing.assert_allclose(host(F.glu(tinyllm.tensor([[1.0, 2.0, 0.0, 100.0]]))), [[0.5, 2.0]])
    with pytest.raises(RuntimeError, match="halving dimension must be even, but dimension 1 is size 3"):
        F.glu(tinyllm.randn(2, 3))
    with pytest.raises(RuntimeError, match="does not support scalars"):
        F.glu(tinyllm.tensor(1.0))
    with pytest.raises(TypeError, match="must be floating-point"):
        F.leaky_relu(tinyllm.tensor([1, 2]))


# ============================================================================ one_hot, normalize, cosine, pad


def test_one_hot(torch):
    t = np.array([[0, 3], [2, 2]])
    out = F.one_hot(tinyllm.tensor(t))
    assert out.dtype == np.int64 and out.shape == (2, 2, 4) and not out.requires_grad
    np.testing.assert_array_equal(host(out), torch.nn.functional.one_hot(torch.tensor(t)).numpy())
    assert F.one_hot(tinyllm.tensor(np.zeros(0, np.int64)), 3).shape == (0, 3)
    cpu = dict(device="cpu")
    with pytest.raises(ValueError, match="must be non-negative"):
        F.one_hot(tinyllm.tensor([1, -1], **cpu), 3)
    with pytest.raises(ValueError, match="smaller than num_classes=3, got 3; pass a larger num_classes"):
        F.one_hot(tinyllm.tensor([1, 3], **cpu), 3)
    with pytest.raises(ValueError, match="empty tensor; pass num_classes"):
        F.one_hot(tinyllm.tensor(np.zeros(0, np.int64)))
    with pytest.raises(TypeError, match=r"integer class ids, got dtype float32; use tensor.long\(\)"):
        F.one_hot(tinyllm.tensor([1.0]), 2)


def test_normalize_and_cosine_similarity_of_zero_vectors_are_zero_not_nan(torch):
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    both(torch, lambda m, a: m.normalize(a), x)
    np.testing.assert_allclose(host(F.normalize(tinyllm.tensor(x))), [[0.6, 0.8], [0.0, 0.0]])
    a, b = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]), np.array([[2.0, 0.0], [1.0, 2.0], [-1.0, -1.0]])
    out = both(torch, lambda m, a, b: m.cosine_similarity(a, b), a, b)
    np.testing.assert_allclose(host(out), [1.0, 0.0, -1.0])
    with pytest.raises(ValueError, match=r"x1 of shape \(2, 3\) and x2 of shape \(4,\) do not broadcast"):
        F.cosine_similarity(tinyllm.randn(2, 3), tinyllm.randn(4))
    with pytest.raises(TypeError, match="no out= arguments"):
        F.normalize(tinyllm.randn(2, 3), out=tinyllm.randn(2, 3))


def test_pad_crops_with_negative_amounts(torch):
    x = np.arange(12.0).reshape(3, 4)
    cases = [(1, 2), (-1, -2), (2, -3), (0, 0, -1, 1), (-4, 1), (1, 1, 1, 1)]
    for p in cases:
        both(torch, lambda m, a: m.pad(a, p, value=7.0), x)
    np.testing.assert_array_equal(host(F.pad(tinyllm.tensor(x), (-1, -2))), x[:, 1:2])
    np.testing.assert_array_equal(host(F.pad(tinyllm.tensor(x), (0, 0, -1, 1))), np.vstack([x[1:], np.zeros((1, 4))]))
    xl = leaf(x)
    F.pad(xl, (-1, 2)).sum().backward()  # the cropped column gets no gradient
    np.testing.assert_array_equal(host(xl.grad), np.tile([0.0, 1.0, 1.0, 1.0], (3, 1)))
    ints = F.pad(tinyllm.tensor([1, 2]), (1, 1), value=2.7)  # an int tensor keeps its dtype, value truncated
    np.testing.assert_array_equal(host(ints), torch.nn.functional.pad(torch.tensor([1, 2]), (1, 1), value=2.7).numpy())


def test_pad_errors():
    x = tinyllm.randn(2, 3)
    with pytest.raises(ValueError, match="divisible by 2"):
        F.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match="at most twice the input's dimension, but got 6 amounts"):
        F.pad(x, (1,) * 6)
    with pytest.raises(ValueError, match="crops 4 elements from dim 1 of size 3"):
        F.pad(x, (-2, -2))
    with pytest.raises(NotImplementedError, match="mode 'reflect' is not implemented, only mode='constant'"):
        F.pad(x, (1, 1), mode="reflect")
    with pytest.raises(TypeError, match="amounts must be integers"):
        F.pad(x, (1.5, 1))


# ============================================================================ the strict device


STRICT_CASES = {
    "nll_loss": lambda x, y: F.nll_loss(F.log_softmax(x, 1), tinyllm.tensor([0, 2, 1]), ignore_index=1,
                                        weight=tinyllm.tensor([1.0, 2.0, 3.0])),
    "cross_entropy_weight": lambda x, y: F.cross_entropy(x, tinyllm.tensor([0, 2, 1]), ignore_index=1,
                                                         weight=tinyllm.tensor([1.0, 2.0, 3.0]), label_smoothing=0.1),
    "mse_loss": lambda x, y: F.mse_loss(x, y),
    "smooth_l1_loss": lambda x, y: F.smooth_l1_loss(x, y, beta=0.5),
    "huber_loss": lambda x, y: F.huber_loss(x, y, weight=tinyllm.ones(3, 3)),
    "bce": lambda x, y: F.binary_cross_entropy(F.sigmoid(x), F.sigmoid(y)),
    "bce_logits": lambda x, y: F.binary_cross_entropy_with_logits(x, F.sigmoid(y), pos_weight=tinyllm.ones(3)),
    "kl_div": lambda x, y: F.kl_div(F.log_softmax(x, -1), F.softmax(y, -1), reduction="batchmean"),
    "glu_leaky_logsigmoid": lambda x, y: F.glu(F.leaky_relu(x)[:2], 0) * F.logsigmoid(y[:1]),
    "normalize_cosine": lambda x, y: F.normalize(x) + F.cosine_similarity(x, y)[:, None],
    "pad": lambda x, y: F.pad(x, (1, -1, 0, 2)),
    "one_hot": lambda x, y: ops.astype(F.one_hot(tinyllm.tensor([[0, 2]]), 3), "float32") * x[:1, None],
}


@pytest.mark.parametrize("name", list(STRICT_CASES))
def test_strict_device_no_host_transfers(name):
    with tinyllm.use_device("strict"):
        x = leaf(np.random.default_rng(0).standard_normal((3, 3)), f32)
        y = leaf(np.random.default_rng(1).standard_normal((3, 3)), f32)
        backend.reset_transfer_stats()
        out = STRICT_CASES[name](x, y)
        out.backward(tinyllm.ones(*out.shape))
    assert backend.transfer_stats()["explicit"] == 0
    assert x.grad.device == "strict" and out.dtype == f32
