"""Tensor and backward(): accumulation, graph freeing, deep graphs, no_grad, devices, dtypes, creation.

Runs on the default device (TINYLLM_DEVICE); values are compared on the host
through tinyllm.to_numpy / Tensor.tolist.
"""

import sys
import time

import numpy as np
import pytest

import tinyllm as tl

DEVICE = tl.get_device()
OTHER = "strict" if DEVICE == "cpu" else "cpu"


def host(t):
    return np.array(tl.to_numpy(t.data))


# ============================================================================ backward


def test_gradients_accumulate_across_backward_calls_as_torch(torch):
    x = tl.tensor([1.0, -2.0, 3.0], requires_grad=True)
    tx = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    for v in (x, tx):
        (v * 2.0).sum().backward()
        (v * v).sum().backward()
    np.testing.assert_allclose(host(x.grad), tx.grad.numpy())
    assert x.grad.tolist() == [4.0, -2.0, 8.0]
    x.zero_grad()
    assert x.grad is None
    (x * 1.0).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_graph_is_freed_after_backward():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    # a graph shared by two losses: the first backward frees the shared part
    h = x * 3.0
    (h * 2.0).sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        (h * 4.0).sum().backward()


def test_retain_graph_allows_a_second_backward():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]  # 2x, twice
    with pytest.raises(RuntimeError):
        y.backward()


def test_backward_through_a_10000_op_chain():
    assert sys.getrecursionlimit() < 10_000 * 2  # a recursive topological sort would overflow
    x = tl.tensor([0.5, -1.0], dtype=tl.float64, requires_grad=True)
    y = x
    t0 = time.perf_counter()
    for i in range(10_000):
        y = y * 1.0001 if i % 2 else y + 0.5
    y.sum().backward()
    assert time.perf_counter() - t0 < 10
    np.testing.assert_allclose(host(x.grad), [1.0001**5000] * 2, rtol=1e-10)


def test_same_input_twice():
    x = tl.tensor([3.0, -1.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == [6.0, -2.0]
    x.grad = None
    (x + x + x).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_diamond_graph_as_torch(torch):
    """a feeds b and c, both feed d: a's gradient is the sum over both paths."""
    def f(m, a):
        b = a * 2.0
        c = m.exp(a) + 1.0
        d = b * c
        e = d * b  # b used twice, at different depths
        return (e + c).sum()

    a = tl.tensor([0.5, -0.25, 1.0], dtype=tl.float64, requires_grad=True)
    ta = torch.tensor([0.5, -0.25, 1.0], dtype=torch.float64, requires_grad=True)
    f(tl, a).backward()
    f(torch, ta).backward()
    np.testing.assert_allclose(host(a.grad), ta.grad.numpy(), rtol=1e-12)


def test_each_node_is_backpropagated_once_with_its_full_gradient():
    """A node reached by many paths runs its backward once, after all paths added up."""
    calls = []

    class Spy(tl.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, grad_out):
            calls.append(tl.to_numpy(grad_out).copy())
            return grad_out

    x = tl.tensor([1.0], requires_grad=True)
    h = Spy.apply(x)
    y = h
    for _ in range(5):
        y = y + h
    y.sum().backward()
    assert len(calls) == 1 and calls[0].tolist() == [6.0]
    assert x.grad.tolist() == [6.0]


def test_retain_grad_keeps_non_leaf_gradients():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    h.retain_grad()
    g = x * 2.0
    (h * g).sum().backward()
    assert h.grad.tolist() == [2.0, 4.0]  # d(h·g)/dh = g
    assert g.grad is None  # not asked for
    assert x.grad.tolist() == [12.0, 24.0]  # 3g + 2h = 12x


def test_backward_errors():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2.0).backward(tl.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        tl.tensor([1.0]).sum().backward()
    y = x * 2.0
    y.backward(tl.tensor([1.0, 10.0]))  # an explicit dL/dy
    assert x.grad.tolist() == [2.0, 20.0]


def test_leaf_grad_is_a_plain_tensor_on_the_same_device():
    x = tl.randn(3, requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.device == x.device == DEVICE
    assert not x.grad.requires_grad and x.grad.is_leaf


# ============================================================================ no_grad, detach


def test_no_grad_context_manager():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    with tl.no_grad():
        assert not tl.is_grad_enabled()
        y = x * 2.0
        with tl.enable_grad():
            z = x * 2.0
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf


def test_no_grad_restores_after_an_exception():
    with pytest.raises(KeyError):
        with tl.no_grad():
            raise KeyError
    assert tl.is_grad_enabled()


def test_no_grad_decorator():
    @tl.no_grad()
    def step(x):
        assert not tl.is_grad_enabled()
        return x * 2.0

    x = tl.tensor([1.0], requires_grad=True)
    assert not step(x).requires_grad
    assert not step(x).requires_grad  # the decorator can be used again
    assert tl.is_grad_enabled() and (x * 2.0).requires_grad


def test_detach():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 3.0).detach()
    assert not d.requires_grad and d.is_leaf
    y = (d * x).sum()  # d is a constant now
    y.backward()
    assert x.grad.tolist() == [3.0, 6.0]
    assert x.detach().data is x.data  # no copy


def test_inplace_updates_need_no_grad():
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w -= 0.1
    with tl.no_grad():
        w -= tl.tensor([0.5, 0.5])
        w *= 2.0
    assert w.tolist() == [1.0, 3.0] and w.requires_grad


# ============================================================================ conversion and devices


def test_item():
    assert tl.tensor([2.5]).item() == 2.5 and isinstance(tl.tensor(2.5).item(), float)
    assert tl.tensor([[7]]).item() == 7 and isinstance(tl.tensor([[7]]).item(), int)
    s = tl.tensor([1.0, 2.0], requires_grad=True).sum()
    assert s.item() == 3.0  # works on tensors that need grad (as torch)
    with pytest.raises(ValueError, match="one element"):
        tl.tensor([1.0, 2.0]).item()


def test_numpy_refuses_requires_grad():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    out = x.detach().numpy()
    assert type(out) is np.ndarray and out.tolist() == [1.0, 2.0] and out.dtype == np.float32
    assert x.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("dtype", [tl.float32, tl.float64])
def test_to_device_and_back_carries_the_gradient(dtype):
    x = tl.tensor([1.0, -2.0, 3.0], dtype=dtype, requires_grad=True)
    assert x.to(DEVICE) is x
    y = x.to(OTHER)
    assert y.device == OTHER and y.requires_grad and y.dtype == dtype
    z = (y * y).to(DEVICE) * 2.0  # computed on the other device, back again
    assert z.device == DEVICE
    z.sum().backward()
    assert x.grad.device == DEVICE and x.grad.dtype == dtype
    assert x.grad.tolist() == [4.0, -8.0, 12.0]


def test_mixing_devices_in_an_op_raises():
    a = tl.ones(2)
    b = a.to(OTHER)
    with pytest.raises((RuntimeError, TypeError)):
        a + b


def test_cpu_method_and_device_property():
    x = tl.ones(2)
    assert x.device == DEVICE
    c = x.cpu()
    assert c.device == "cpu" and type(c.data) is np.ndarray


def test_requires_grad_only_for_floats():
    with pytest.raises(TypeError, match="floating-point"):
        tl.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        tl.zeros(3, dtype=tl.int64, requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        tl.arange(3).requires_grad_()
    x = tl.tensor([1.5, 2.5], requires_grad=True)
    i = x.long()
    assert i.dtype == np.int64 and not i.requires_grad
    assert not (x > 2.0).requires_grad and (x > 2.0).dtype == np.bool_
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2.0).requires_grad_(False)


def test_repr():
    assert repr(tl.tensor([1.0, 2.0])).startswith("tensor([1., 2.]")
    r = repr(tl.tensor([1.0, 2.0], requires_grad=True))
    assert "requires_grad=True" in r
    r = repr(tl.tensor([1.0, 2.0], requires_grad=True) * 2.0)
    assert "grad_fn=<Mul>" in r and "requires_grad" not in r
    assert "dtype=float64" in repr(tl.tensor([1.0], dtype=tl.float64))
    assert "dtype" not in repr(tl.tensor([1, 2])) and "dtype" not in repr(tl.tensor([1.0]))
    assert ("device='strict'" in repr(tl.ones(1))) == (DEVICE == "strict")


def test_len_shape_numel_and_identity_hash():
    x = tl.zeros(2, 3, 4)
    assert len(x) == 2 and x.shape == (2, 3, 4) and x.size() == (2, 3, 4) and x.size(1) == 3
    assert x.numel() == 24 and x.ndim == 3 and x.dim() == 3
    y = tl.zeros(2, 3, 4)
    assert len({x: 1, y: 2}) == 2  # hashed by identity, like torch


def test_comparisons_give_bool_tensors():
    x = tl.tensor([1.0, 2.0, 3.0])
    assert (x < 2.0).tolist() == [True, False, False]
    assert (x >= tl.tensor([1.0, 3.0, 2.0])).tolist() == [True, False, True]
    assert x.eq(2.0).tolist() == [False, True, False] and x.ne(2.0).tolist() == [True, False, True]


# ============================================================================ creation


def test_tensor_dtype_inference():
    assert tl.tensor([1.0, 2.0]).dtype == np.float32  # Python floats -> float32
    assert tl.tensor(1.5).dtype == np.float32 and tl.tensor(1.5).shape == ()
    assert tl.tensor([1, 2]).dtype == np.int64
    assert tl.tensor([True, False]).dtype == np.bool_
    assert tl.tensor([[1, 2.5]]).dtype == np.float32
    assert tl.tensor(np.array([1.0], dtype=np.float64)).dtype == np.float64  # NumPy keeps its dtype
    assert tl.tensor(np.float64(1.0)).dtype == np.float64
    assert tl.tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    assert tl.tensor([1, 2], dtype=tl.float64).dtype == np.float64
    assert tl.tensor([1.0]).device == DEVICE
    assert tl.tensor([1.0], device=OTHER).device == OTHER


def test_tensor_copies_its_data():
    src = np.array([1.0, 2.0], dtype=np.float32)
    t = tl.tensor(src)
    src[0] = 99.0
    assert t.tolist() == [1.0, 2.0]
    u = tl.tensor(t)
    with tl.no_grad():
        u += 1.0
    assert t.tolist() == [1.0, 2.0] and u.tolist() == [2.0, 3.0]


def test_filled_creation():
    z = tl.zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == np.float32 and z.device == DEVICE and not np.any(host(z))
    assert tl.zeros((2, 3)).shape == (2, 3) and tl.ones([4]).shape == (4,)
    assert np.all(host(tl.ones(2, dtype=tl.float64)) == 1) and tl.ones(2, dtype=tl.float64).dtype == np.float64
    f = tl.full((2, 2), 7.5)
    assert f.dtype == np.float32 and np.all(host(f) == 7.5)
    assert tl.full(3, 2, dtype=tl.int64).tolist() == [2, 2, 2]
    assert tl.zeros(2, requires_grad=True).requires_grad
    assert tl.empty(2, 3).shape == (2, 3)


def test_random_creation():
    r = tl.randn(1000)
    assert r.dtype == np.float32 and r.device == DEVICE
    h = host(r)
    assert abs(h.mean()) < 0.15 and 0.85 < h.std() < 1.15
    u = host(tl.rand(1000, dtype=tl.float64))
    assert u.dtype == np.float64 and u.min() >= 0 and u.max() < 1 and 0.4 < u.mean() < 0.6
    i = tl.randint(3, 7, (500,))
    assert i.dtype == np.int64 and set(i.tolist()) == {3, 4, 5, 6}
    assert tl.randn(2, 3, requires_grad=True).requires_grad


@pytest.mark.parametrize("args,kwargs,dtype,values", [
    ((4,), {}, np.int64, [0, 1, 2, 3]),
    ((1, 7, 2), {}, np.int64, [1, 3, 5]),
    ((3.0,), {}, np.float32, [0.0, 1.0, 2.0]),
    ((0, 1, 0.25), {}, np.float32, [0.0, 0.25, 0.5, 0.75]),
    ((3,), {"dtype": tl.float64}, np.float64, [0.0, 1.0, 2.0]),
    ((5, 0, -2), {}, np.int64, [5, 3, 1]),
], ids=str)
def test_arange_dtypes_as_torch(torch, args, kwargs, dtype, values):
    t = tl.arange(*args, **kwargs)
    assert t.dtype == dtype and t.tolist() == values and t.device == DEVICE
    expected = torch.arange(*args, **({"dtype": torch.float64} if kwargs else {}))
    assert str(expected.dtype) == f"torch.{np.dtype(dtype).name}" and expected.tolist() == values


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "randn_like", "rand_like", "full_like"])
def test_like_functions(name):
    x = tl.zeros(2, 3, dtype=tl.float64)
    args = (x, 4.0) if name == "full_like" else (x,)
    y = getattr(tl, name)(*args)
    assert y.shape == (2, 3) and y.dtype == np.float64 and y.device == DEVICE and not y.requires_grad
    z = getattr(tl, name)(*args, dtype=tl.float32, requires_grad=True)
    assert z.dtype == np.float32 and z.requires_grad
    assert getattr(tl, name)(*args, device=OTHER).device == OTHER
    if name == "full_like":
        assert np.all(host(y) == 4.0)
    if name == "ones_like":
        assert np.all(host(y) == 1.0)


# ============================================================================ dtypes


SCALAR_OPS = [
    lambda x: x + 1.5, lambda x: 1.5 + x, lambda x: x - 2, lambda x: 2 - x, lambda x: x * 0.1,
    lambda x: 0.1 * x, lambda x: x / 3.0, lambda x: 3.0 / x, lambda x: x**2, lambda x: x**0.5,
    lambda x: 2.0**x, lambda x: tl.maximum(x, 0.5), lambda x: tl.where(x > 1.0, x, 0.0),
    lambda x: x.masked_fill(x > 1.0, -1e9), lambda x: x.mean(), lambda x: x.var(), lambda x: -x,
    lambda x: tl.exp(x) + tl.log(x) + tl.sqrt(x) + tl.tanh(x), lambda x: x @ x, lambda x: x[tl.tensor([0, 0])],
    lambda x: tl.tril(x.reshape(1, 3) * x.reshape(3, 1)), lambda x: tl.cat([x, x]) * 2,
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", range(len(SCALAR_OPS)))
def test_python_scalars_keep_the_dtype(k, dtype):
    """float32 never silently becomes float64 (values or gradients); float64 stays float64."""
    x = tl.tensor([0.5, 1.0, 2.0], dtype=dtype, requires_grad=True)
    y = SCALAR_OPS[k](x)
    assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == dtype


def test_mixed_precision_promotes_as_torch(torch):
    a = tl.ones(2) + tl.ones(2, dtype=tl.float64)
    assert a.dtype == np.float64 == np.dtype(str(torch.ones(2).add(torch.ones(2, dtype=torch.float64)).dtype)[6:])
    x = tl.ones(2, requires_grad=True)
    (x * tl.ones(2, dtype=tl.float64)).sum().backward()
    assert x.grad.dtype == np.float32  # the gradient has the leaf's dtype


def test_index_gradients_accumulate_with_other_uses(torch):
    # x is used whole, through overlapping slices, through a repeated integer index and through split:
    # the IndexGrad buffer must merge all of them in any order.
    x_host = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    w_host = np.linspace(-1, 1, 12).reshape(3, 4)

    def f(m, x, w):
        a, b = x.split([1, 2], dim=0)
        idx = m.tensor([0, 2, 2]) if m is torch else tl.tensor([0, 2, 2])
        return (x * w).sum() + (x[:, 1:3] ** 2).sum() + a.sum() * 3 + (b * b).sum() + x[idx].sum() + x[1:].sum()

    x = tl.tensor(x_host, requires_grad=True)
    f(tl, x, tl.tensor(w_host)).backward()
    tx = torch.tensor(x_host, requires_grad=True)
    f(torch, tx, torch.tensor(w_host)).backward()
    np.testing.assert_allclose(tl.to_numpy(x.grad.data), tx.grad.numpy(), rtol=1e-12)


def test_leaf_gradients_are_not_shared_arrays():
    # a + b hands the same array to both leaves; an in-place change to one grad must not touch the other
    a = tl.ones(3, requires_grad=True)
    b = tl.ones(3, requires_grad=True)
    (a + b).backward(tl.ones(3))
    with tl.no_grad():
        a.grad *= 5
    np.testing.assert_array_equal(tl.to_numpy(b.grad.data), np.ones(3, np.float32))
