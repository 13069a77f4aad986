"""The backend: the strict device's refusals, devices and their selection, seeding, NumPy/CuPy differences.

The strict-device tests create strict arrays explicitly, so they run whatever
TINYLLM_DEVICE says; the 'cuda' tests skip without CuPy and a GPU.
"""

import contextvars
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import tinyllm as tl
from tinyllm import backend
from tinyllm.backend import StrictArray, StrictTransferError

DEVICE = tl.get_device()


@pytest.fixture
def sx():
    """A (2, 3) float32 array on the strict device."""
    return backend.asarray(np.arange(6, dtype=np.float32).reshape(2, 3), device="strict")


# ============================================================================ strict device: refusals


def test_strict_transfer_error_is_a_type_error():
    assert issubclass(StrictTransferError, TypeError)  # what CuPy raises in the same places


@pytest.mark.parametrize("convert", [
    np.asarray, np.array, lambda x: np.array(x, dtype=np.float64), np.ascontiguousarray,
], ids=["asarray", "array", "array_dtype", "ascontiguousarray"])
def test_strict_refuses_implicit_conversion(sx, convert):
    with pytest.raises(StrictTransferError, match="implicit transfer"):
        convert(sx)


@pytest.mark.parametrize("ufunc", [np.exp, np.add, np.maximum, np.negative, np.isnan], ids=lambda u: u.__name__)
def test_strict_refuses_numpy_ufuncs(sx, ufunc):
    args = (sx,) * ufunc.nin
    with pytest.raises(StrictTransferError, match=f"np.{ufunc.__name__}"):
        ufunc(*args)


@pytest.mark.parametrize("fn", [
    np.sum, np.mean, np.transpose, lambda x: np.concatenate([x, x]), lambda x: np.where(x > 1, x, 0),
    lambda x: np.einsum("ij->i", x), lambda x: np.allclose(x, x),
], ids=["sum", "mean", "transpose", "concatenate", "where", "einsum", "allclose"])
def test_strict_refuses_numpy_functions(sx, fn):
    with pytest.raises(TypeError):
        fn(sx)


@pytest.mark.parametrize("mix", [
    lambda x, h: x + h, lambda x, h: h + x, lambda x, h: x * h, lambda x, h: h @ x.T, lambda x, h: x > h,
    lambda x, h: backend.strict.maximum(x, h), lambda x, h: backend.strict.concatenate([x, h]),
    lambda x, h: x.__setitem__(0, h[0]), lambda x, h: x[np.array([0, 1])],
], ids=["add", "radd", "mul", "rmatmul", "compare", "module_fn", "module_list", "setitem", "index"])
def test_strict_refuses_mixing_with_host_arrays(sx, mix):
    h = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(TypeError):
        mix(sx, h)


def test_strict_refuses_iteration_and_buffer_protocols(sx):
    with pytest.raises(StrictTransferError, match="iteration"):
        list(sx)
    with pytest.raises(StrictTransferError):
        for _ in sx:
            pass
    with pytest.raises(StrictTransferError):
        sx.__array_interface__


def test_strict_refuses_inside_tensors():
    x = tl.tensor([1.0, 2.0], device="strict")
    with pytest.raises(TypeError):
        np.exp(x.data)
    with pytest.raises(TypeError):
        x + np.ones(2)  # a host array is not a Python scalar: refused, as CuPy would


def test_strict_allows_numpy_scalars_and_python_scalars(sx):
    for y in (sx * np.float32(2), np.float32(2) * sx, sx + np.int64(1), sx * 2.0, 3 - sx, sx / np.float64(2)):
        assert type(y) is StrictArray and y.shape == (2, 3)
    assert (sx * np.float32(2)).dtype == np.float32
    np.testing.assert_array_equal(tl.to_numpy(np.float32(2) * sx), np.arange(6).reshape(2, 3) * 2)


def test_strict_results_stay_on_the_device(sx):
    xp = backend.of(sx)
    assert xp is backend.strict
    for y in (xp.exp(sx), sx.sum(), sx.max(axis=0), sx[0], sx.T, sx.reshape(3, 2), sx @ sx.T, xp.zeros(3),
              xp.where(sx > 2, sx, 0), sx.astype(np.float64), sx[backend.asarray([0, 0, 1], device="strict")]):
        assert type(y) is StrictArray
    assert type(sx.sum()) is StrictArray and sx.sum().shape == ()  # 0-d arrays, not NumPy scalars (as CuPy)
    assert xp.float32 is np.float32 and xp.pi == np.pi  # types and constants pass through


# ============================================================================ strict device: explicit transfers


def test_explicit_transfers_are_allowed_and_counted(sx):
    backend.reset_transfer_stats()
    assert backend.transfer_stats() == {"explicit": 0, "scalar": 0}
    h = tl.to_numpy(sx)
    assert type(h) is np.ndarray and h.tolist() == [[0, 1, 2], [3, 4, 5]]
    t = tl.Tensor(sx)
    assert type(t.numpy()) is np.ndarray
    sx.get()  # CuPy's name for the same copy
    assert backend.transfer_stats()["explicit"] == 3
    float(sx.sum()), int(sx[0, 1]), bool(sx[1, 1]), sx.sum().item(), t.sum().item()
    assert backend.transfer_stats() == {"explicit": 3, "scalar": 5}
    backend.reset_transfer_stats()
    assert backend.transfer_stats() == {"explicit": 0, "scalar": 0}


def test_cpu_transfers_are_free():
    backend.reset_transfer_stats()
    x = np.ones(3)
    assert tl.to_numpy(x) is x
    assert backend.transfer_stats()["explicit"] == 0


def test_asarray_moves_between_devices():
    h = np.array([1.0, 2.0])
    s = backend.asarray(h, device="strict")
    assert type(s) is StrictArray and backend.device_of(s) == "strict"
    h[0] = 5.0
    assert tl.to_numpy(s)[0] == 1.0  # the device owns a copy
    c = backend.asarray(s, device="cpu")
    assert type(c) is np.ndarray and c.tolist() == [1.0, 2.0]
    assert backend.asarray(s, device="strict") is s
    assert backend.asarray(s, dtype=np.float32, device="strict").dtype == np.float32
    assert backend.asarray([1, 2], device="strict").dtype == np.int64


# ============================================================================ devices


def test_use_device_nests_and_restores():
    start = tl.get_device()
    with tl.use_device("strict") as name:
        assert name == "strict" and tl.get_device() == "strict"
        assert tl.zeros(2).device == "strict"
        with tl.use_device("cpu"):
            assert tl.get_device() == "cpu" and type(tl.ones(2).data) is np.ndarray
        assert tl.get_device() == "strict"
    assert tl.get_device() == start
    with pytest.raises(KeyError):
        with tl.use_device("cpu" if start == "strict" else "strict"):
            raise KeyError
    assert tl.get_device() == start


def test_set_device_holds_for_its_context():
    def inner():
        tl.set_device("strict")
        return tl.get_device(), tl.randn(2).device

    assert contextvars.copy_context().run(inner) == ("strict", "strict")
    assert tl.get_device() == DEVICE


@pytest.mark.parametrize("bad", ["gpu", "CPU", "cuda:0"])
def test_unknown_device_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match=r"unknown device .*expected one of \('cpu', 'cuda', 'strict'\)"):
        with tl.use_device(bad):
            pass
    with pytest.raises(ValueError, match="unknown device"):
        tl.zeros(2, device=bad)
    with pytest.raises(ValueError, match="unknown device"):
        backend.xp_for("tpu")
    with pytest.raises(ValueError, match="unknown device"):
        backend.check_device(bad)


def test_check_device_returns_a_known_name():
    assert [backend.check_device(d) for d in backend.DEVICES] == ["cpu", "cuda", "strict"]


def _run(code, device):
    env = dict(os.environ, TINYLLM_DEVICE=device)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_tinyllm_device_env_var_sets_the_default():
    code = "import tinyllm as tl; print(tl.get_device(), tl.zeros(1).device, type(tl.randn(2).data).__name__)"
    assert _run(code, "strict").stdout.split() == ["strict", "strict", "StrictArray"]
    assert _run(code, "cpu").stdout.split() == ["cpu", "cpu", "ndarray"]
    bad = _run("import tinyllm", "tpu")
    assert bad.returncode != 0 and "ValueError: unknown device 'tpu'" in bad.stderr


def test_device_of_and_of():
    h, s = np.zeros(2), backend.asarray([0.0, 1.0], device="strict")
    assert backend.device_of(h) == "cpu" and backend.device_of(np.float32(1)) == "cpu"
    assert backend.device_of(s) == "strict"
    with pytest.raises(TypeError, match="not an array"):
        backend.device_of([1, 2])
    assert backend.of(h) is np and backend.of(h, h, 1.0) is np
    assert backend.of(s) is backend.strict and backend.of(2, s, None) is backend.strict
    assert backend.of() is backend.xp_for(DEVICE) and backend.of(1.0) is backend.xp_for(DEVICE)
    with pytest.raises(RuntimeError, match="different devices"):
        backend.of(h, s)
    assert backend.is_array(h) and backend.is_array(s) and not backend.is_array([1]) and not backend.is_array(1.0)


def test_strict_module_refuses_host_arrays_except_constructors():
    h = np.ones(3)
    with pytest.raises(StrictTransferError, match="mixing a host NumPy array"):
        backend.strict.exp(h)
    for make in (backend.strict.asarray, backend.strict.array, backend.strict.ascontiguousarray):
        assert type(make(h)) is StrictArray
    assert type(backend.strict.linalg.norm(backend.strict.asarray(h))) is StrictArray  # submodules wrapped too


# ============================================================================ random numbers


@pytest.mark.parametrize("draw", [
    lambda d: tl.randn(3, 4, device=d), lambda d: tl.rand(5, device=d), lambda d: tl.randint(0, 100, (6,), device=d),
    lambda d: tl.randn(4, dtype=tl.float64, device=d),
], ids=["randn", "rand", "randint", "randn64"])
def test_manual_seed_gives_the_same_numbers_on_cpu_and_strict(draw):
    tl.manual_seed(123)
    cpu_a, cpu_b = draw("cpu"), draw("cpu")
    strict_a, strict_b = draw("strict"), draw("strict")
    np.testing.assert_array_equal(tl.to_numpy(cpu_a.data), tl.to_numpy(strict_a.data))
    np.testing.assert_array_equal(tl.to_numpy(cpu_b.data), tl.to_numpy(strict_b.data))
    assert not np.array_equal(tl.to_numpy(cpu_a.data), tl.to_numpy(cpu_b.data))  # the stream advances
    tl.manual_seed(123)
    np.testing.assert_array_equal(tl.to_numpy(draw(DEVICE).data), tl.to_numpy(cpu_a.data))
    tl.manual_seed(124)
    assert not np.array_equal(tl.to_numpy(draw(DEVICE).data), tl.to_numpy(cpu_a.data))


def test_rng_state_round_trip():
    tl.manual_seed(7)
    state = backend.get_rng_state()
    a = tl.to_numpy(tl.randn(5).data).copy()
    tl.randn(3)
    backend.set_rng_state(state)
    np.testing.assert_array_equal(tl.to_numpy(tl.randn(5).data), a)


# ============================================================================ NumPy/CuPy differences


@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_scatter_add_accumulates_repeated_indices(device):
    target = backend.xp_for(device).zeros(4)
    idx = backend.asarray([0, 2, 0, 0, 3], device=device)
    backend.scatter_add(target, idx, backend.asarray([1.0, 2.0, 3.0, 4.0, 5.0], device=device))
    assert tl.to_numpy(target).tolist() == [8.0, 0.0, 2.0, 5.0]  # plain `t[idx] += v` would give 4 at 0
    grid = backend.xp_for(device).zeros((2, 3))
    rows, cols = backend.asarray([1, 1, 0], device=device), backend.asarray([2, 2, 0], device=device)
    backend.scatter_add(grid, (rows, cols), backend.asarray([1.0, 1.0, 1.0], device=device))
    assert tl.to_numpy(grid).tolist() == [[1, 0, 0], [0, 0, 2]]
    grid2 = backend.xp_for(device).zeros((2, 3))
    backend.scatter_add(grid2, (slice(None), cols), backend.asarray(np.ones((2, 3)), device=device))
    assert tl.to_numpy(grid2).tolist() == [[1, 0, 2], [1, 0, 2]]


@pytest.mark.parametrize("device", ["cpu", "strict"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_matches_math_erf(device, dtype):
    xs = np.concatenate([np.linspace(-4, 4, 41), [0.0, 1e-8, -6.0, 6.0]]).astype(dtype)
    out = backend.erf(backend.asarray(xs, device=device))
    assert backend.device_of(out) == device and out.dtype == dtype and out.shape == xs.shape
    expected = [math.erf(float(v)) for v in xs]
    np.testing.assert_allclose(tl.to_numpy(out), expected, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-7)


# ============================================================================ cuda (skipped without CuPy and a GPU)


def _cupy_importable():
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_cupy_importable(), reason="CuPy is installed: the missing-CuPy message cannot be shown")
def test_cuda_without_cupy_says_how_to_install():
    assert not backend.cuda_available()
    with pytest.raises(RuntimeError, match="CuPy"):
        backend.xp_for("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not backend.cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_cuda_device_basics():
    import cupy

    x = tl.randn(3, 4, device="cuda", requires_grad=True)
    assert x.device == "cuda" and backend.of(x.data) is cupy
    y = (x.to("cpu") * 2.0).to("cuda")
    assert y.device == "cuda"
    y.sum().backward()
    np.testing.assert_allclose(tl.to_numpy(x.grad.data), 2.0)
    t = cupy.zeros(3)
    backend.scatter_add(t, cupy.asarray([0, 0, 2]), cupy.ones(3))
    assert tl.to_numpy(t).tolist() == [2.0, 0.0, 1.0]
    e = backend.erf(cupy.asarray([0.5], dtype=cupy.float32))
    assert abs(float(e[0]) - math.erf(0.5)) < 1e-6 and e.dtype == np.float32


@pytest.mark.gpu
@pytest.mark.skipif(not backend.cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_cuda_matches_cpu_on_a_small_graph():
    tl.manual_seed(0)
    a = tl.randn(4, 3, dtype=tl.float64)
    results = []
    for device in ("cpu", "cuda"):
        x = a.to(device).detach().requires_grad_()
        (tl.tanh(x @ x.T).sum() * 0.5).backward()
        results.append(tl.to_numpy(x.grad.data))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-10)

