"""GGUF's block formats Q8_0, Q4_0 and Q5_0, byte for byte as ggml writes them.

ggml (Gerganov; ``ggml-quants.c``, ``quantize_row_q8_0_ref`` and friends) cuts each row of a
matrix into blocks of 32 numbers and stores each block as one scale d (a float16, tinyllm/quant/half.py)
and 32 small integers q, so that x ≈ d · q:

    Q8_0   d = max|x| / 127               q = round(x / d)            in -127..127    34 bytes: d, 32 x int8
    Q4_0   d = m / -8, m = the x of        q = min(15, ⌊x/d + 8.5⌋)    in 0..15        18 bytes: d, 16 x (2 nibbles)
           largest |x| (sign kept)        x ≈ d · (q - 8)
    Q5_0   d = m / -16                    q = min(31, ⌊x/d + 16.5⌋)   in 0..31        22 bytes: d, 4 bytes of 5th
                                          x ≈ d · (q - 16)                             bits, 16 x (2 nibbles)

(8.5, 34 bytes / 32 numbers = 8.5 bits a number for Q8_0; 4.5 for Q4_0; 5.5 for Q5_0.)
round is C's roundf, halves away from zero (not NumPy's round, halves to even). Q4_0 divides by
the signed extreme m so that m itself lands on q = 0 exactly (d·(0 - 8) = m) and the other
end of the range gets the 16th level. The nibbles of a block are not in order: byte j holds
q[j] in its low four bits and q[j + 16] in its high four, so one 16-byte load and two masks
give two halves of the block. Q5_0 keeps the low nibbles the same way and gathers the 32
fifth bits into a little-endian uint32 (bit j is q[j]'s).

    block of Q4_0 (18 bytes):  [d lo][d hi][q0|q16<<4][q1|q17<<4] ... [q15|q31<<4]

Every step is float32 as in ggml: d = amax / 127 is a float32 division, the reciprocal
id = 1/d is taken from the float32 d, not from its rounded half (so a block whose d rounds
to half 0 still writes its q), and x · id is a float32 product. The Numba kernels below are
compiled without fast-math so that the compiler may not fuse x · id + 8.5 into one rounding
or turn / 127 into · (1/127): either would change a byte now and then.

``quantize(x, "q8_0")`` -> uint8 (..., n_blocks · 34), the bytes a GGUF file holds for x;
``dequantize(raw, "q8_0", shape)`` -> float32. The reference versions run on any array module
(NumPy, CuPy, the strict device); the Numba ones on host float32; tests/test_quant_formats.py
checks both byte-equal to the ``gguf`` package's ``gguf.quants.quantize``.

Example:
    >>> raw = quantize(np.linspace(-1, 1, 32, dtype=np.float32)[None], "q4_0")   # (1, 32) -> (1, 18)
    >>> raw[0, :2].view(np.float16), raw[0, 2]            # d = 1/-8, byte 0 = q0 | q16 << 4
    (array([-0.125], dtype=float16), 128)
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from tinyllm import backend
from tinyllm.functional import kernels
from tinyllm.quant.half import HALF_TABLE, f32_to_f16_bits

QK = 32  # numbers in a block, for the three formats here


class BlockFormat(NamedTuple):
    name: str
    block_size: int   # numbers per block
    type_size: int    # bytes per block
    ggml_type: int    # the GGMLQuantizationType number in a GGUF file


FORMATS = {
    "q4_0": BlockFormat("q4_0", QK, 2 + QK // 2, 2),
    "q5_0": BlockFormat("q5_0", QK, 2 + 4 + QK // 2, 6),
    "q8_0": BlockFormat("q8_0", QK, 2 + QK, 8),
}


def block_format(name: str) -> BlockFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown block format {name!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[name]


def _check(x, name: str) -> BlockFormat:
    fmt = block_format(name)
    if x.ndim < 1 or x.shape[-1] % fmt.block_size:
        raise ValueError(f"{name}: the rows of x must be a multiple of {fmt.block_size} long (ggml cuts them in "
                         f"blocks of {fmt.block_size}), got shape {tuple(x.shape)}; pad the rows or keep this "
                         f"tensor in f16/f32")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: x must be a float array, got dtype {x.dtype}")
    xp = backend.of(x)
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{name}: x holds NaN or inf; a block's scale would be NaN/inf and every number in it "
                         f"lost. Find where the weights went non-finite before quantizing")
    return fmt


# ----------------------------------------------------------------------------- reference (any array module)


def _roundf(v):
    """C's roundf on an array: halves away from zero (2.5 -> 3, -2.5 -> -3), as np_roundf in gguf-py."""
    xp = backend.of(v)
    a = xp.abs(v)
    fl = xp.floor(a)
    return xp.sign(v) * (fl + xp.floor(2 * (a - fl)))  # a - fl is exact: the fraction, 2·it >= 1 iff >= ½


def _reciprocal(d):
    """1/d, and 0 where d is 0 (an all-zero block writes q = 0, or q = 8 for Q4_0)."""
    xp = backend.of(d)
    zero = d == 0
    return xp.where(zero, d.dtype.type(0), 1 / xp.where(zero, d.dtype.type(1), d))


def _signed_extreme(b):
    """The x of largest |x| in each block, sign kept; the first one on a tie (ggml's strict <)."""
    xp = backend.of(b)
    i = xp.abs(b).argmax(axis=1)[:, None]  # (n, 1)
    return xp.take_along_axis(b, i, axis=1)


def _half_bytes(d):
    """(n, 1) float32 scales -> (n, 2) uint8, each one's float16 in little-endian order."""
    return d.astype(np.float16).view(np.uint8)


def _nibbles(q):
    """(n, 32) values 0..15 -> (n, 16) bytes, q[j] | q[j+16] << 4."""
    return q[:, :QK // 2] | (q[:, QK // 2:] * np.uint8(16))


def quantize_reference(x, name: str):
    """float (..., K) -> uint8 (..., K/32 · type_size), ggml's bytes, with the array module of x."""
    fmt = _check(x, name)
    xp = backend.of(x)
    b = x.astype(np.float32).reshape(-1, QK)  # (..., K) -> (n_blocks, 32)
    if name == "q8_0":
        d = xp.abs(b).max(axis=1, keepdims=True) / np.float32(127)
        q = _roundf(b * _reciprocal(d)).astype(np.int8).view(np.uint8)
        out = xp.concatenate([_half_bytes(d), q], axis=1)
    else:
        levels = 8 if name == "q4_0" else 16
        d = _signed_extreme(b) / np.float32(-levels)
        v = xp.trunc(b * _reciprocal(d) + np.float32(levels + 0.5))
        q = xp.minimum(v, np.float32(2 * levels - 1)).astype(np.uint8)  # (n, 32) in 0..2·levels-1
        if name == "q4_0":
            out = xp.concatenate([_half_bytes(d), _nibbles(q)], axis=1)
        else:  # q5_0: bit 4 of q[j] is bit j of a little-endian uint32
            high = (q // np.uint8(16)).astype(np.uint32)  # (n, 32) in {0, 1}
            qh = xp.left_shift(high, xp.arange(QK, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)  # (n,)
            out = xp.concatenate([_half_bytes(d), qh[:, None].view(np.uint8), _nibbles(q & np.uint8(15))], axis=1)
    return out.reshape(*x.shape[:-1], x.shape[-1] // QK * fmt.type_size)


def dequantize_reference(raw, name: str, shape):
    """uint8 ggml blocks -> float32 array of `shape`: d · q (d · (q - 8) for Q4_0, d · (q - 16) for Q5_0)."""
    fmt = _check_raw(raw, name, shape)
    xp = backend.of(raw)
    blocks = raw.reshape(-1, fmt.type_size)  # (n_blocks, type_size)
    d = blocks[:, :2].view(np.float16).astype(np.float32)  # (n, 1)
    if name == "q8_0":
        q = blocks[:, 2:].view(np.int8).astype(np.float32)
    else:
        qs = blocks[:, fmt.type_size - QK // 2:]
        q = xp.concatenate([qs & np.uint8(15), qs // np.uint8(16)], axis=1).astype(np.int32)  # (n, 32)
        if name == "q5_0":
            qh = blocks[:, 2:6].view(np.uint32)  # (n, 1)
            q = q + (xp.right_shift(qh, xp.arange(QK, dtype=np.uint32)) & np.uint32(1)).astype(np.int32) * 16
        q = (q - (8 if name == "q4_0" else 16)).astype(np.float32)
    return (d * q).reshape(shape)


def _check_raw(raw, name: str, shape) -> BlockFormat:
    fmt = block_format(name)
    shape = tuple(int(s) for s in shape)
    if raw.dtype != np.uint8:
        raise TypeError(f"{name}: raw blocks must be uint8, got {raw.dtype}")
    if not shape or shape[-1] % fmt.block_size:
        raise ValueError(f"{name}: shape {shape} must end in a multiple of {fmt.block_size}")
    n = int(np.prod(shape)) // fmt.block_size * fmt.type_size
    if raw.size != n:
        raise ValueError(f"{name}: a {shape} tensor takes {n} bytes of blocks, got {raw.size}")
    return fmt


# ----------------------------------------------------------------------------- the host kernels (no fast-math)


@numba.njit(cache=True, nogil=True)
def _put_half(out, at, d):
    h = f32_to_f16_bits(d)
    out[at] = h & 0xFF
    out[at + 1] = h >> 8


@numba.njit(cache=True, nogil=True)
def _quantize_q8_0(x, out):
    # x (n, 32) float32 -> out (n, 34): per block d = amax/127, q = roundf(x · (1/d))
    for i in range(x.shape[0]):
        amax = np.float32(0)
        for j in range(QK):
            amax = max(amax, abs(x[i, j]))
        d = amax / np.float32(127)
        inv = np.float32(1) / d if d != 0 else np.float32(0)
        _put_half(out[i], 0, d)
        for j in range(QK):
            v = x[i, j] * inv
            a = abs(v)
            fl = np.floor(a)
            r = np.int32(fl + np.floor(np.float32(2) * (a - fl)))  # roundf: halves away from zero
            out[i, 2 + j] = np.uint8((-r if v < 0 else r) & 0xFF)  # int8 two's complement


@numba.njit(cache=True, nogil=True)
def _quantize_q4_q5(x, out, levels):
    # x (n, 32) -> out (n, type_size): d = m / -levels, q = min(2·levels - 1, trunc(x/d + levels + ½))
    half = QK // 2
    start = out.shape[1] - half  # the nibbles: after d (Q4_0), after d and the fifth bits (Q5_0)
    for i in range(x.shape[0]):
        amax, m = abs(x[i, 0]), x[i, 0]  # the first of largest |x|, sign kept (an all -0 block: d = +0, as gguf)
        for j in range(1, QK):
            if amax < abs(x[i, j]):
                amax, m = abs(x[i, j]), x[i, j]
        d = m / np.float32(-levels)
        inv = np.float32(1) / d if d != 0 else np.float32(0)
        _put_half(out[i], 0, d)
        qh = np.uint32(0)
        for j in range(half):
            q0 = min(2 * levels - 1, np.int32(x[i, j] * inv + np.float32(levels + 0.5)))
            q1 = min(2 * levels - 1, np.int32(x[i, j + half] * inv + np.float32(levels + 0.5)))
            out[i, start + j] = np.uint8((q0 & 15) | ((q1 & 15) << 4))
            qh |= np.uint32((q0 >> 4) & 1) << np.uint32(j)
            qh |= np.uint32((q1 >> 4) & 1) << np.uint32(j + half)
        if levels == 16:
            for k in range(4):
                out[i, 2 + k] = np.uint8((qh >> np.uint32(8 * k)) & np.uint32(0xFF))


@kernels.kernel
def _dequantize_blocks(raw, table, kind, out):
    # raw (n, type_size) -> out (n, 32); kind 0: Q8_0, 1: Q4_0, 2: Q5_0
    half = QK // 2
    start = raw.shape[1] - half
    for i in range(raw.shape[0]):
        d = table[np.int32(raw[i, 0]) | (np.int32(raw[i, 1]) << 8)]
        if kind == 0:
            for j in range(QK):
                out[i, j] = d * np.float32(np.int8(raw[i, 2 + j]))
        else:
            qh = np.uint32(0)
            for k in range(4 if kind == 2 else 0):
                qh |= np.uint32(raw[i, 2 + k]) << np.uint32(8 * k)
            zero = 8 if kind == 1 else 16
            for j in range(half):
                b = np.int32(raw[i, start + j])
                h0 = np.int32((qh >> np.uint32(j)) & np.uint32(1)) << 4
                h1 = np.int32((qh >> np.uint32(j + half)) & np.uint32(1)) << 4
                out[i, j] = d * np.float32(((b & 15) | h0) - zero)
                out[i, j + half] = d * np.float32(((b >> 4) | h1) - zero)


_KIND = {"q8_0": 0, "q4_0": 1, "q5_0": 2}


def quantize(x, name: str):
    """float (..., K) -> uint8 (..., K/32 · type_size): the bytes ggml writes for x in format `name`.

    The Numba kernel on the host, the reference on a device; K must be a multiple of 32, and NaN
    or inf are refused (``ValueError``).
    """
    if backend.device_of(x) != "cpu":
        return quantize_reference(x, name)
    fmt = _check(x, name)
    b = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, QK)
    out = np.empty((b.shape[0], fmt.type_size), np.uint8)
    if name == "q8_0":
        kernels.split(lambda i, j: _quantize_q8_0(b[i:j], out[i:j]), b.shape[0], b.size)
    else:
        levels = 8 if name == "q4_0" else 16
        kernels.split(lambda i, j: _quantize_q4_q5(b[i:j], out[i:j], levels), b.shape[0], b.size)
    return out.reshape(*x.shape[:-1], x.shape[-1] // QK * fmt.type_size)


def dequantize(raw, name: str, shape):
    """uint8 blocks of format `name` -> float32 array of `shape` (the Numba kernel on the host)."""
    if backend.device_of(raw) != "cpu":
        return dequantize_reference(raw, name, shape)
    fmt = _check_raw(raw, name, shape)
    blocks = np.ascontiguousarray(raw).reshape(-1, fmt.type_size)
    out = np.empty((blocks.shape[0], QK), np.float32)
    kernels.split(lambda i, j: _dequantize_blocks(blocks[i:j], HALF_TABLE, _KIND[name], out[i:j]),
                  blocks.shape[0], out.size)
    return out.reshape(tuple(int(s) for s in shape))
