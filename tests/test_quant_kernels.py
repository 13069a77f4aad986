"""The quantized matrix products: every kernel against the reference (dequantize, then multiply), and the formats.

The reference is the definition: x̃ Wᵀ with W dequantized and, for the ggml formats, x̃ = x quantized to
Q8_0 and back (what ggml's CPU kernels multiply by). The kernels read the blocks as stored and must give
the same numbers up to float32 summation order.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm
from tinyllm import backend
from tinyllm.functional import kernels
from tinyllm.quant import ggml, intq
from tinyllm.quant.qmatmul import FEW_ROWS, qmatmul, qmatmul_reference, quantize_activations
from tinyllm.quant.weight import FORMATS, QuantizedWeight

DEVICE = tinyllm.get_device()


def _close(got, want, x, w, qw=None):
    """Equal up to float32 rounding of sums of K terms: relative to Σ_j |x_j| |w_ij|, and with a zero point z to
    Σ_j |x_j| (|w_ij| + z_i s_i): the kernels sum s·q·x and subtract s·z·Σx, which cancel (int4_sym: z = 8)."""
    if qw is not None and "zero" in qw.arrays:
        zs = backend.to_numpy(qw.arrays["zero"]).astype(np.float32) * backend.to_numpy(qw.arrays["scale"])
        w = np.abs(w) + np.repeat(zs, qw.group_size, axis=1)  # (out, groups) -> (out, in)
    scale = np.abs(x) @ np.abs(w).T + 1e-30
    assert np.all(np.abs(got - want) <= 2e-6 * scale), float(np.max(np.abs(got - want) / scale))


@given(fmt=st.sampled_from(FORMATS), batch=st.sampled_from([1, 2, FEW_ROWS, FEW_ROWS + 3]),
       n_out=st.integers(1, 40), blocks=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_kernels_equal_the_reference(fmt, batch, n_out, blocks, seed):
    rng = np.random.default_rng(seed)
    group = 32 if fmt.startswith("int4") else None
    w = rng.standard_normal((n_out, 32 * blocks)).astype(np.float32)
    w[:, rng.integers(0, w.shape[1])] *= 20  # an outlier input channel
    x = rng.standard_normal((batch, w.shape[1])).astype(np.float32)
    qw = QuantizedWeight.from_float(w, fmt, group_size=group)
    want = qmatmul_reference(x, qw)
    _close(qmatmul(x, qw), want, x, qw.dequantize(), qw)
    with kernels.disabled():  # the switch the tests use: the reference path
        np.testing.assert_array_equal(qmatmul(x, qw), want)


def test_activations_are_quantized_as_ggml_quantizes_q8_0():
    x = np.random.default_rng(0).standard_normal((3, 128)).astype(np.float32) * 5
    x[1, 7] = 0.5 * np.abs(x[1, :32]).max()  # and a tie or two: roundf halves away from zero
    xq, xd = quantize_activations(x)
    np.testing.assert_array_equal((xq.reshape(3, -1, 32) * xd[..., None]).reshape(3, 128),
                                  ggml.dequantize(ggml.quantize(x, "q8_0"), "q8_0", x.shape))


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_reference_runs_on_the_device(fmt):
    rng = np.random.default_rng(1)
    w, x = rng.standard_normal((8, 64)).astype(np.float32), rng.standard_normal((2, 64)).astype(np.float32)
    host = QuantizedWeight.from_float(w, fmt, group_size=32)
    dev = QuantizedWeight.from_float(backend.asarray(w, device=DEVICE), fmt, group_size=32)
    assert dev.device == DEVICE
    for k, a in host.arrays.items():
        np.testing.assert_array_equal(backend.to_numpy(dev.arrays[k]), a)
    y = dev.matmul(backend.asarray(x, device=DEVICE))
    assert backend.device_of(y) == DEVICE
    _close(backend.to_numpy(y), qmatmul_reference(x, host), x, host.dequantize())


@pytest.mark.parametrize("fmt", FORMATS)
def test_error_is_what_the_format_promises(fmt):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((64, 256)).astype(np.float32)
    qw = QuantizedWeight.from_float(w, fmt, group_size=32)
    err = np.abs(qw.dequantize() - w)
    # at most half a step of the grid, step = range / levels of its row, group or block; a whole step where
    # the grid is shifted (a zero point rounded to an integer) or cut (Q4_0/Q5_0's 16th level); and the
    # ggml formats' scale is a half: 2^-11 relative, times up to 127 levels
    group = 256 if fmt.startswith("int8") else 32
    wg = w.reshape(64, -1, group)
    amax = np.abs(wg).max(axis=2)
    span = np.maximum(wg.max(axis=2), 0) - np.minimum(wg.min(axis=2), 0)
    step, half = {"q8_0": (amax / 127, 0.5), "q5_0": (amax / 16, 1), "q4_0": (amax / 8, 1), "int8": (amax / 127, 0.5),
                  "int8_asym": (span / 255, 1), "int4": (span / 15, 1), "int4_sym": (amax / 7, 0.5)}[fmt]
    bound = step * half + (amax * 2.0 ** -11 if fmt in ggml.FORMATS else 0) + 1e-6
    assert (err.reshape(64, -1, group).max(axis=2) <= bound).all()
    assert qw.bits_per_weight == pytest.approx({"q8_0": 8.5, "q5_0": 5.5, "q4_0": 4.5, "int8": 8 + 32 / 256,
                                                "int8_asym": 8 + 40 / 256, "int4": 4 + 40 / 32,
                                                "int4_sym": 4 + 40 / 32}[fmt])


def test_int4_packs_each_group_as_two_halves():
    w = np.zeros((1, 32), np.float32)
    w[0, :] = np.arange(32) - 16.0  # min -16, max 15: s = 31/15, z = round(16/s) = 8
    iw = intq.quantize_int(w, "int4", group_size=32)
    q = intq.unpack_int4(iw.q, 32)
    assert iw.q.shape == (1, 16) and q.shape == (1, 32)
    assert iw.q[0, 0] == q[0, 0] | (q[0, 16] << 4)  # byte j: q[j] low, q[j + 16] high
    assert q[0, 0] == 0 and q[0, 31] == 15 and iw.zero[0, 0] == 8
    np.testing.assert_allclose(intq.dequantize_int(iw), w, atol=iw.scale[0, 0] / 2 + 1e-6)


def test_zero_rows_and_errors():
    w = np.zeros((3, 64), np.float32)
    for fmt in FORMATS:
        qw = QuantizedWeight.from_float(w, fmt, group_size=32)
        np.testing.assert_array_equal(qw.dequantize(), w)
        np.testing.assert_array_equal(qw.matmul(np.ones((1, 64), np.float32)), np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="group size must be one of"):
        QuantizedWeight.from_float(np.zeros((2, 96), np.float32), "int4", group_size=64)
    with pytest.raises(ValueError, match="unknown weight format"):
        QuantizedWeight.from_float(w, "int3")
    with pytest.raises(ValueError, match=r"x must be \(B, 64\)"):
        QuantizedWeight.from_float(w, "q8_0").matmul(np.ones((1, 32), np.float32))
