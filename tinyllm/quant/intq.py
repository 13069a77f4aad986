"""Integer weights with float scales: int8 per output channel, int4 per group of inputs.

A Linear's weight W (out, in) is stored as small integers q and float scales s, W ≈ s · (q - z):

    int8        symmetric, per row i (Jacob et al. 2018; LLM.int8's absmax):
                s_i = max_j |W_ij| / 127,   q_ij = round(W_ij / s_i) in -127..127            z = 0
    int8_asym   asymmetric, per row, a zero point so that [min, max] maps onto 0..255:
                s_i = (max_i - min_i) / 255, z_i = round(-min_i / s_i), q = clip(round(W/s) + z, 0, 255)
    int4        asymmetric, per row and group of g inputs (g = 32, 64, 128: GPTQ's and AWQ's
                "group size"), q in 0..15, two to a byte as ggml packs a block: byte j of a group
                holds q[j] in its low nibble and q[j + g/2] in its high one (a kernel then reads two
                contiguous halves of x, never every other number):
                s_ig = (max - min) / 15, z_ig = round(-min / s_ig) in 0..15
    int4_sym    symmetric groups: s_ig = max |W| / 7, q = round(W/s) + 8 in 1..15 (z = 8)

min and max are taken with 0 included (min <= 0 <= max), so a weight of exactly 0 stays 0 and a
row of zeros is all z. A scale of 0 (an all-zero row or group) is stored as 1 so nothing divides by 0.

Why groups: one outlier weight sets the scale of its whole row. With 16 levels, a row whose
largest |W| is 20x its typical weight leaves most weights on two or three levels; per group of
32, the outlier costs only its own group. The price: one scale (and zero) per g weights, here
float32 and uint8: 4 + 40/g bits a weight, 5.25 at g = 32, 4.31 at g = 128.

Example:
    >>> qw = quantize_int(np.float32([[0.5, -1.0, 0.25, 1.0]]), "int8")
    >>> qw.q, qw.scale                       # s = 1/127: q = round(W · 127)
    (array([[  64, -127,   32,  127]], dtype=int8), array([[0.00787402]], dtype=float32))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tinyllm import backend

INT_FORMATS = ("int8", "int8_asym", "int4", "int4_sym")
GROUP_SIZES = (32, 64, 128)


class IntWeight(NamedTuple):
    """q: int8 (out, in) | uint8 (out, in) | packed uint8 (out, in/2); scale, zero: float32 / uint8 (out, n_groups)."""

    fmt: str
    q: object
    scale: object
    zero: object      # None for the symmetric int8
    group_size: int   # in for the per-row formats


def levels(fmt: str) -> tuple[int, int]:
    """(lowest, highest) integer of a format."""
    return {"int8": (-127, 127), "int8_asym": (0, 255), "int4": (0, 15), "int4_sym": (1, 15)}[fmt]


def check_int_format(fmt: str, shape, group_size: int | None) -> int:
    """The group size a weight of `shape` gets (per-row formats: its row length); errors say what to do."""
    if fmt not in INT_FORMATS:
        raise ValueError(f"unknown integer format {fmt!r}; expected one of {INT_FORMATS}")
    if len(shape) != 2:
        raise ValueError(f"{fmt}: expected a (out, in) weight, got shape {tuple(shape)}")
    n_in = int(shape[1])
    if fmt.startswith("int8"):
        return n_in
    g = 128 if group_size is None else group_size
    if g not in GROUP_SIZES or n_in % g:
        raise ValueError(f"{fmt}: the group size must be one of {GROUP_SIZES} and divide the rows' length {n_in}, "
                         f"got {g}; pick another group size or keep this layer in int8/f32")
    return g


def quantize_int(w, fmt: str, group_size: int | None = None) -> IntWeight:
    """W (out, in) float -> IntWeight in format fmt (module docstring), with the array module of w."""
    g = check_int_format(fmt, w.shape, group_size)
    xp = backend.of(w)
    out, n_in = w.shape
    wg = w.astype(np.float32).reshape(out, n_in // g, g)  # (out, in) -> (out, groups, g)
    lo, hi = levels(fmt)
    if fmt in ("int8", "int4_sym"):
        amax = xp.abs(wg).max(axis=2)  # (out, groups)
        scale = amax / np.float32(hi if fmt == "int8" else 7)
        scale = xp.where(scale == 0, np.float32(1), scale)
        zero = None if fmt == "int8" else xp.full(scale.shape, 8, dtype=np.uint8)
    else:
        wmin = xp.minimum(wg.min(axis=2), np.float32(0))
        wmax = xp.maximum(wg.max(axis=2), np.float32(0))
        scale = (wmax - wmin) / np.float32(hi)
        scale = xp.where(scale == 0, np.float32(1), scale)
        zero = xp.clip(xp.rint(-wmin / scale), lo, hi).astype(np.uint8)
    scale = scale.astype(np.float32)
    z = 0 if zero is None else zero[..., None].astype(np.float32)
    q = xp.clip(xp.rint(wg / scale[..., None]) + z, lo, hi).reshape(out, n_in)
    if fmt == "int8":
        q = q.astype(np.int8)
    elif fmt == "int8_asym":
        q = q.astype(np.uint8)
    else:
        q = q.astype(np.uint8).reshape(out, n_in // g, 2, g // 2)  # (out, groups, halves, g/2)
        q = (q[:, :, 0] | (q[:, :, 1] * np.uint8(16))).reshape(out, n_in // 2)  # q[j] low, q[j + g/2] high
    return IntWeight(fmt, q, scale, zero, g)


def unpack_int4(packed, group_size: int):
    """(out, in/2) uint8 -> (out, in) uint8 in 0..15, in order (each group: the low nibbles, then the high)."""
    xp = backend.of(packed)
    g = packed.reshape(packed.shape[0], -1, 1, group_size // 2)  # (out, groups, 1, g/2)
    return xp.concatenate([g & np.uint8(15), g // np.uint8(16)], axis=2).reshape(packed.shape[0], -1)


def dequantize_int(iw: IntWeight):
    """IntWeight -> float32 (out, in): s · (q - z), group by group."""
    q = unpack_int4(iw.q, iw.group_size) if iw.fmt.startswith("int4") else iw.q
    out, n_in = q.shape
    qg = q.astype(np.float32).reshape(out, n_in // iw.group_size, iw.group_size)
    if iw.zero is not None:
        qg = qg - iw.zero[..., None].astype(np.float32)
    return (qg * iw.scale[..., None]).reshape(out, n_in)
