"""GGUF's block formats byte for byte: tinyllm's quantizers against the `gguf` package's, and the half floats.

The oracle is ``gguf.quants.quantize`` (gguf-py, whose Q8_0/Q4_0/Q5_0 are written to be bit-exact with
ggml-quants.c); those tests skip when it is not installed (``pip install gguf``). The rest needs nothing:
bytes worked out by hand from the format's definition, the Numba kernels against the array-module
references (on the strict device too), the round trip's error bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm
from tinyllm import backend
from tinyllm.quant import ggml
from tinyllm.quant.half import HALF_TABLE, f32_to_f16_bits, f32_to_f16_bits_reference

DEVICE = tinyllm.get_device()  # the suite's device (TINYLLM_DEVICE): cpu, strict or cuda

NAMES = ["q8_0", "q4_0", "q5_0"]


def _gguf_type(name):
    gguf = pytest.importorskip("gguf", reason="the gguf package is the oracle: pip install gguf")
    return gguf.GGMLQuantizationType[name.upper()], gguf.quants


def _adversarial() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    spike = np.zeros((2, 64), np.float32)
    spike[0, 5], spike[1, 40] = 1e4, -3e-3                   # one large value, the rest 0
    ties = np.zeros((1, 32), np.float32)
    ties[0, :12] = [127, 0.5, 1.5, 2.5, -0.5, -2.5, 126.5, -126.5, 3.5, 4.5, 0.25, 0.75]  # d = 1: x·id = x exactly
    q4_ties = np.zeros((1, 32), np.float32)
    q4_ties[0, :6] = [-8, -0.5, 0.5, 6.5, 7.5, 7.9999995]      # d = 1, id = 1: x + 8.5 on whole numbers
    scales = rng.standard_normal((8, 64)).astype(np.float32) * np.float32([[1e-30], [1e-7], [1e-5], [1], [60],
                                                                            [1e4], [1e6], [1e30]])
    return {"zeros": np.zeros((3, 96), np.float32), "negative_zeros": np.full((2, 32), -0.0, np.float32),
            "spike": spike, "ties": ties, "q4_ties": q4_ties,
            "scales": scales, "equal": np.full((2, 32), -2.5, np.float32),
            "normal": rng.standard_normal((16, 256)).astype(np.float32)}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", sorted(_adversarial()))
def test_bytes_equal_gguf(name, case):
    qtype, quants = _gguf_type(name)
    x = _adversarial()[case]
    want = quants.quantize(x, qtype)
    got = ggml.quantize(x, name)
    assert got.dtype == np.uint8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(backend.to_numpy(ggml.quantize_reference(backend.asarray(x, device=DEVICE), name)),
                                  want)
    # and back: the same floats as gguf's dequantize, bit for bit
    np.testing.assert_array_equal(ggml.dequantize(got, name, x.shape), quants.dequantize(want, qtype))


_rows = hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.sampled_from([32, 64, 96])),
                   elements=st.floats(-1e5, 1e5, width=32, allow_subnormal=False))


@given(x=_rows, name=st.sampled_from(NAMES))
def test_bytes_equal_gguf_random(x, name):
    qtype, quants = _gguf_type(name)
    np.testing.assert_array_equal(ggml.quantize(x, name), quants.quantize(x, qtype))


@given(x=_rows, name=st.sampled_from(NAMES))
def test_kernel_equals_reference_and_round_trip_error_is_half_a_step(x, name):
    raw = ggml.quantize(x, name)
    np.testing.assert_array_equal(raw, ggml.quantize_reference(x, name))
    y = ggml.dequantize(raw, name, x.shape)
    np.testing.assert_array_equal(y, ggml.dequantize_reference(raw, name, x.shape))
    # per block, with d = amax/levels the float32 scale and h its stored half: |x - h·q| <= |x - d·q| + |d - h|·|q|
    # <= d/2 (one step d at Q4_0/Q5_0's clipped positive end), and |d - h| <= max(2^-11·d, 2^-25): the half's rounding
    levels = {"q8_0": 127, "q4_0": 8, "q5_0": 16}[name]
    amax = np.abs(x).reshape(-1, 32).max(axis=1).astype(np.float64)
    d = amax / levels
    h = raw.reshape(-1, ggml.FORMATS[name].type_size)[:, :2].copy().view(np.float16).astype(np.float64)[:, 0]
    assert (np.abs(np.abs(h) - d) <= np.maximum(d * 2.0 ** -11, 2.0 ** -25) * 1.0001).all()
    step = d / 2 if name == "q8_0" else d
    err = np.abs(x.astype(np.float64) - y).reshape(-1, 32).max(axis=1)
    assert (err <= (step + np.abs(np.abs(h) - d) * 2 * levels) * 1.0001 + 1e-30).all()


def test_q8_0_bytes_by_hand():
    x = np.zeros((1, 32), np.float32)
    x[0, :4] = [127, 1, -2.5, 0.5]          # d = 127/127 = 1 (half 0x3C00), q = roundf(x): halves away from 0
    raw = ggml.quantize(x, "q8_0")
    assert raw.shape == (1, 34)
    assert list(raw[0, :6]) == [0x00, 0x3C, 127, 1, 0xFD, 1]  # -3 as a byte is 0xFD; 0.5 -> 1 (not 0)
    assert not raw[0, 6:].any()


def test_q4_0_bytes_by_hand():
    x = np.zeros((1, 32), np.float32)
    x[0, 0], x[0, 16], x[0, 1] = -8, 7, 3.4  # m = -8: d = -8/-8 = 1; q = min(15, ⌊x + 8.5⌋)
    raw = ggml.quantize(x, "q4_0")
    assert raw.shape == (1, 18) and list(raw[0, :2]) == [0x00, 0x3C]
    assert raw[0, 2] == 0 | (15 << 4)        # byte 0: q[0] = 0 (x = -8) low, q[16] = 15 (x = 7) high
    assert raw[0, 3] == 11 | (8 << 4)        # q[1] = ⌊11.9⌋ = 11, q[17] = 8 (x = 0)
    y = ggml.dequantize(raw, "q4_0", (1, 32))
    assert y[0, 0] == -8 and y[0, 16] == 7 and y[0, 1] == 3 and y[0, 2] == 0


def test_q5_0_fifth_bits_are_a_little_endian_uint32():
    x = np.zeros((1, 32), np.float32)
    x[0, 0], x[0, 31] = -16, 15                # d = 1: q[0] = 0, q[31] = 31 (fifth bit set), the rest 16
    raw = ggml.quantize(x, "q5_0")
    qh = int(raw[0, 2:6].view("<u4")[0])
    assert qh == 0xFFFFFFFE                    # every q but q[0] is >= 16
    np.testing.assert_array_equal(ggml.dequantize(raw, "q5_0", (1, 32)), x)


@pytest.mark.parametrize("name", NAMES)
def test_errors_say_what_to_do(name):
    with pytest.raises(ValueError, match="multiple of 32"):
        ggml.quantize(np.zeros((2, 48), np.float32), name)
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros((1, 32), np.float32)
        x[0, 3] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            ggml.quantize(x, name)
        with pytest.raises(ValueError, match="NaN or inf"):
            ggml.quantize_reference(backend.asarray(x, device=DEVICE), name)
    with pytest.raises(ValueError, match="takes 68 bytes"):
        ggml.dequantize(np.zeros(10, np.uint8), "q8_0", (2, 32))
    with pytest.raises(ValueError, match="unknown block format"):
        ggml.quantize(np.zeros((1, 32), np.float32), "q3_k")


def test_half_conversion_matches_numpy_on_every_half_and_the_ties_between():
    halves = HALF_TABLE[~np.isnan(HALF_TABLE)]
    finite = np.sort(halves[np.isfinite(halves)].astype(np.float64))
    mids = ((finite[1:] + finite[:-1]) / 2).astype(np.float32)   # exact ties: round to the even neighbour
    rng = np.random.default_rng(1)
    wide = (rng.standard_normal(20000) * 10.0 ** rng.uniform(-9, 6, 20000)).astype(np.float32)
    for x in (halves, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf)), wide,
              np.float32([65504, 65519.996, 65520, 1e9, np.inf, -np.inf, 2.0 ** -25, 2.0 ** -24, -0.0])):
        with np.errstate(over="ignore"):
            want = f32_to_f16_bits_reference(x)
        got = np.array([f32_to_f16_bits(v) for v in x], dtype=np.uint16)
        np.testing.assert_array_equal(got, want)
    assert np.isnan(np.uint16(f32_to_f16_bits(np.float32(np.nan))).view(np.float16))
