"""Half precision (IEEE 754 binary16) by hand: the scale of every GGUF block is one.

A float16 is 1 sign bit, 5 exponent bits (bias 15) and 10 mantissa bits:

    value = (-1)^s · 2^(e - 15) · 1.m         e = 1..30   (normal: 6.1e-5 .. 65504)
          = (-1)^s · 2^-14 · 0.m              e = 0       (subnormal, down to 2^-24 ≈ 6e-8)
          = ±inf, NaN                         e = 31

A float32 has 8 exponent bits (bias 127) and 23 mantissa bits, so float32 -> float16 moves the
exponent (127 - 15 = 112 apart) and drops 13 mantissa bits, rounding to nearest, ties to even,
as NumPy's ``astype(np.float16)`` and ggml's ``GGML_FP32_TO_FP16`` do. Numba has no float16
arithmetic, so the kernels that write a block's scale (tinyllm/quant/ggml.py, the activations
of tinyllm/quant/qmatmul.py) call ``f32_to_f16_bits`` below on integer bits; the ones that read
it look the 16 bits up in ``HALF_TABLE``, all 65,536 halves as float32 (ggml's
``ggml_table_f32_f16``: a 256 KiB table that stays in cache).

Example:
    >>> hex(f32_to_f16_bits(np.float32(1.0)))     # s=0, e=15, m=0
    '0x3c00'
    >>> f32_to_f16_bits(np.float32(65520.0))      # past 65504 + half an ulp: rounds to inf
    31744
    >>> HALF_TABLE[0x3555]                        # 1/3 in half: 0.33325195
"""

from __future__ import annotations

import numba
import numpy as np

# the reference: every uint16 bit pattern read as a half, as float32 (NaNs included, payloads kept)
HALF_TABLE = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)

_u32 = np.uint32


@numba.njit(cache=True, nogil=True)
def f32_to_f16_bits(f):
    """The float16 bits (as an int) of the float32 f, rounded to nearest, ties to even.

    Integer arithmetic only, so no compiler flag can change the rounding:
        normal half     subtract 112 from the exponent, then add 0xFFF + (bit 13) and drop 13 bits:
                        a carry out of the mantissa moves the exponent up, as rounding should
        subnormal half  the 24-bit significand shifted right by 126 - e, rounded by hand
    """
    x = np.float32(f).view(np.uint32)
    sign = (x >> _u32(16)) & _u32(0x8000)
    a = x & _u32(0x7FFFFFFF)
    if a > _u32(0x7F800000):                 # NaN: a quiet NaN
        return int(sign | _u32(0x7E00))
    if a >= _u32(0x477FF000):                # >= 65520 (65504 + half an ulp) and inf: inf
        return int(sign | _u32(0x7C00))
    if a >= _u32(0x38800000):                # >= 2^-14: a normal half
        a = a - _u32(0x38000000)             # the exponent's bias, 127 -> 15 (112 << 23)
        a = a + _u32(0xFFF) + ((a >> _u32(13)) & _u32(1))   # round to nearest, ties to even
        return int(sign | (a >> _u32(13)))
    if a <= _u32(0x33000000):                # <= 2^-25: rounds to zero (2^-25 itself is a tie, to even 0)
        return int(sign)
    e = a >> _u32(23)
    m = (a & _u32(0x7FFFFF)) | _u32(0x800000)  # the 24-bit significand: value = m · 2^(e - 150)
    shift = _u32(126) - e                    # in units of 2^-24: m · 2^(e - 126)
    h = m >> shift
    rest = m & ((_u32(1) << shift) - _u32(1))
    tie = _u32(1) << (shift - _u32(1))
    if rest > tie or (rest == tie and (h & _u32(1))):
        h += _u32(1)
    return int(sign | h)


def f32_to_f16_bits_reference(x):
    """float32 array -> its float16 bits as uint16, by the array module (NumPy, CuPy, strict)."""
    return x.astype(np.float32).astype(np.float16).view(np.uint16)
