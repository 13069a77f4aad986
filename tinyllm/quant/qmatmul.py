"""x Wᵀ with W quantized: kernels that read the blocks where they lie, never a float copy of W.

At batch 1 (one token of decoding) y = x Wᵀ reads every weight once and does one multiply-add
with it: the time is the time to stream W from memory. A float32 8192 x 8192 matrix is 268 MB;
in Q8_0 it is 71 MB, in Q4_0 38 MB. So a kernel that works on the bytes as stored, and unpacks
each block in registers, can beat float32 by the ratio of bytes, if its arithmetic keeps up
with the memory (benchmarks/bench_quant.py measures both).

    ggml formats (Q8_0, Q4_0), as llama.cpp's ggml_vec_dot_q8_0_q8_0 / _q4_0_q8_0:
        x is cut into blocks of 32 and quantized to Q8_0 too: x_b ≈ dx_b · qx_b, dx_b a half
        y_i = Σ_b  dw_ib · dx_b · Σ_{j<32} qw_ibj · qx_bj          (Q4_0: qw = nibble - 8)
        the inner sum is int8 x int8 in int32: exact, and what SIMD does fastest
    int8 (per row scale s_i, zero z_i or 0), x kept in float32:
        y_i = s_i · (Σ_j q_ij x_j - z_i · Σ_j x_j)
    int4 (per row and group g of inputs, scale s_ig, zero z_ig):
        y_i = Σ_g s_ig · (Σ_{j∈g} q_ij x_j - z_ig · Σ_{j∈g} x_j)    the group sums of x computed once

With a few rows of x (decoding a batch: B <= FEW_ROWS) the kernels above run, one output row
of W after another, every x row at once, so each block is read once. With many rows
(a prompt, B·T of them) the product is compute-bound and BLAS is faster than any loop here:
W is dequantized a tile of rows at a time (a few hundred KiB, in cache) and each tile goes
through BLAS, still without a float copy of the whole matrix.

The reference, ``qmatmul_reference``, is the definition on any array module: dequantize W,
quantize-dequantize x for the ggml formats, multiply. The kernels agree with it to float32
rounding (tests/test_quant_kernels.py).

Example:
    >>> qw = QuantizedWeight.from_float(w, "q8_0")       # tinyllm/quant/weight.py
    >>> qmatmul(x, qw)                                    # (B, in) float32 -> (B, out)
"""

from __future__ import annotations

import numba
import numpy as np

from tinyllm.functional import kernels
from tinyllm.functional.kernels import ZERO, inline, kernel
from tinyllm.quant import ggml
from tinyllm.quant.half import HALF_TABLE, f32_to_f16_bits

QK = ggml.QK
FEW_ROWS = 8      # up to this many rows of x the block kernels run; above, tiles through BLAS
TILE_BYTES = 1 << 20  # float32 bytes of one dequantized tile of W


# ----------------------------------------------------------------------------- reference (any array module)


def quantize_activations_reference(x):
    """x (B, K) -> the float32 x̃ that ggml's Q8_0 activations stand for: dequantize(quantize(x, "q8_0"))."""
    return ggml.dequantize_reference(ggml.quantize_reference(x, "q8_0"), "q8_0", x.shape)


def qmatmul_reference(x, qw):
    """x (B, in) @ dequantize(W)ᵀ -> (B, out); x quantized to Q8_0 first for the ggml formats."""
    if qw.is_ggml:
        x = quantize_activations_reference(x)
    return x @ qw.dequantize().T


# ----------------------------------------------------------------------------- the host kernels


@numba.njit(cache=True, nogil=True)
def _quantize_activations(x, xq, xd, table):
    # x (B, K) float32 -> xq (B, K) int8, xd (B, K/32) float32: Q8_0 per block of 32, d rounded to a half.
    # No fast-math: the same bytes as ggml.quantize(x, "q8_0") (a fast-math / 127 would be a · (1/127))
    for r in range(x.shape[0]):
        for b in range(x.shape[1] // QK):
            amax = ZERO
            for j in range(b * QK, b * QK + QK):
                amax = max(amax, abs(x[r, j]))
            d = amax / np.float32(127)
            inv = np.float32(1) / d if d > 0 else ZERO
            xd[r, b] = table[f32_to_f16_bits(d)]
            for j in range(b * QK, b * QK + QK):
                v = x[r, j] * inv
                a = abs(v)
                fl = np.floor(a)
                q = np.int32(fl + np.floor(np.float32(2) * (a - fl)))  # roundf: halves away from zero
                xq[r, j] = np.int8(-q if v < 0 else q)


# subtle: Numba types int8 · int8 as int64 (Python's integers), and LLVM then vectorizes 64-bit lanes.
# Cutting the running sum back to int32 at each step (s = np.int32(s + ...)) lets LLVM narrow the whole
# loop to 32-bit lanes and emit the dot-product instructions ggml writes by hand (vpmaddwd; vpdpwssd
# with AVX-512 VNNI). The sum of a block is exact either way (32 · 127 · 128 < 2^31). And each block goes
# through a small inlined helper on slices (`wb[j]`, j from 0): indices LLVM can prove >= 0, where
# `w[i, at + j]` keeps Numba's negative-index wrap-around and turns the loads into gathers.


@inline
def _dot_i8(wb, xb):
    # Σ_j wb[j] · xb[j] over one block, int8 x int8 in int32
    s = np.int32(0)
    for j in range(wb.size):
        s = np.int32(s + np.int32(wb[j]) * np.int32(xb[j]))
    return s


@inline
def _dot_nibbles_i8(wb, xlo, xhi):
    # Σ_j lo(wb[j]) · xlo[j] + hi(wb[j]) · xhi[j] in int32: the nibbles 0..15 of each byte against int8 x
    s = np.int32(0)
    for j in range(wb.size):
        s = np.int32(s + np.int32(wb[j] & 15) * np.int32(xlo[j]) + np.int32(wb[j] >> 4) * np.int32(xhi[j]))
    return s


@inline
def _dot_nibbles(wb, xlo, xhi):
    # the same against float32 x (the int4 format): the nibbles split in float, exact for bytes 0..255
    s = ZERO
    for j in range(wb.size):
        byte = np.float32(wb[j])
        hi = np.floor(byte * np.float32(0.0625))
        s += (byte - np.float32(16) * hi) * xlo[j] + hi * xhi[j]
    return s


@inline
def _half(table, lo, hi):
    return table[np.int32(lo) | (np.int32(hi) << 8)]


@kernel
def _q8_0_rows(xq, xd, w8, wraw, table, out):
    # out[r, i] = Σ_b dw_ib dx_rb Σ_j qw_ibj qx_rbj; a block is 34 bytes: d (2), 32 x int8
    for i in range(wraw.shape[0]):
        wi, ri = w8[i], wraw[i]
        for r in range(xq.shape[0]):
            xr = xq[r]
            acc = ZERO
            for b in range(xd.shape[1]):
                s = _dot_i8(wi[b * 34 + 2:b * 34 + 34], xr[b * QK:b * QK + QK])
                acc += _half(table, ri[b * 34], ri[b * 34 + 1]) * xd[r, b] * np.float32(s)
            out[r, i] = acc


@kernel
def _q4_0_rows(xq, xd, xsum, wraw, table, out):
    # a block is 18 bytes: d (2), 16 bytes, byte j = q[j] | q[j+16] << 4; weight = d · (q - 8), so
    # Σ_j (q_j - 8) qx_j = Σ_j q_j qx_j - 8 · Σ_j qx_j, the second sum (xsum) the same for every row of W
    for i in range(wraw.shape[0]):
        ri = wraw[i]
        for r in range(xq.shape[0]):
            xr = xq[r]
            acc = ZERO
            for b in range(xd.shape[1]):
                s = _dot_nibbles_i8(ri[b * 18 + 2:b * 18 + 18], xr[b * QK:b * QK + 16], xr[b * QK + 16:b * QK + QK])
                s = np.float32(s) - np.float32(8) * xsum[r, b]  # Σ (q - 8) qx
                acc += _half(table, ri[b * 18], ri[b * 18 + 1]) * xd[r, b] * s
            out[r, i] = acc


@kernel
def _int8_rows(x, xsum, q, scale, zero, out):
    # out[r, i] = s_i (Σ_j q_ij x_rj - z_i Σ_j x_rj); q int8 or uint8, zero (out, 1) or empty (symmetric)
    for i in range(q.shape[0]):
        qi = q[i]
        for r in range(x.shape[0]):
            xr = x[r]
            s = ZERO
            for j in range(qi.size):
                s += np.float32(qi[j]) * xr[j]
            if zero.size:
                s -= np.float32(zero[i, 0]) * xsum[r, 0]
            out[r, i] = s * scale[i, 0]


@kernel
def _int4_rows(x, xsum, q, scale, zero, out):
    # out[r, i] = Σ_g s_ig (Σ_{j∈g} q_ij x_rj - z_ig Σ_{j∈g} x_rj); a group of g is g/2 bytes,
    # byte j = q[j] | q[j + g/2] << 4
    n_groups = scale.shape[1]
    h = q.shape[1] // n_groups  # bytes per group = g/2
    for i in range(q.shape[0]):
        qi = q[i]
        for r in range(x.shape[0]):
            xr = x[r]
            acc = ZERO
            for g in range(n_groups):
                s = _dot_nibbles(qi[g * h:g * h + h], xr[2 * g * h:2 * g * h + h], xr[2 * g * h + h:2 * g * h + 2 * h])
                acc += scale[i, g] * (s - np.float32(zero[i, g]) * xsum[r, g])
            out[r, i] = acc


_NO_ZERO = np.zeros((0, 1), np.uint8)


def quantize_activations(x):
    """x (B, K) float32 on the host -> (xq int8 (B, K), xd float32 (B, K/32)): ggml's Q8_0 of each row."""
    B, K = x.shape
    xq, xd = np.empty((B, K), np.int8), np.empty((B, K // QK), np.float32)
    _quantize_activations(x, xq, xd, HALF_TABLE)
    return xq, xd


def _few_rows(x, qw):
    """The block kernels, the rows of W shared out between the threads."""
    out = np.empty((x.shape[0], qw.shape[0]), np.float32)
    a = qw.arrays
    if qw.is_ggml:
        xq, xd = quantize_activations(x)
        raw = a["blocks"]
        if qw.fmt == "q8_0":
            w8 = raw.view(np.int8)
            run = lambda i, j: _q8_0_rows(xq, xd, w8[i:j], raw[i:j], HALF_TABLE, out[:, i:j])  # noqa: E731
        else:
            xsum = xq.reshape(x.shape[0], -1, QK).sum(axis=2, dtype=np.int32).astype(np.float32)  # (B, blocks)
            run = lambda i, j: _q4_0_rows(xq, xd, xsum, raw[i:j], HALF_TABLE, out[:, i:j])  # noqa: E731
    else:
        q, scale = a["q"], a["scale"]
        gsum = x.reshape(x.shape[0], scale.shape[1], -1).sum(axis=2)  # (B, groups): Σ of x over each group
        if qw.fmt == "int8":  # symmetric: no zero point (an empty array tells the kernel)
            run = lambda i, j: _int8_rows(x, gsum, q[i:j], scale[i:j], _NO_ZERO, out[:, i:j])  # noqa: E731
        else:
            kern, zero = (_int8_rows if qw.fmt == "int8_asym" else _int4_rows), a["zero"]
            run = lambda i, j: kern(x, gsum, q[i:j], scale[i:j], zero[i:j], out[:, i:j])  # noqa: E731
    kernels.split(run, qw.shape[0], qw.shape[0] * qw.shape[1])
    return out


def _tiles(x, qw):
    """Many rows: dequantize W a tile of rows at a time and let BLAS multiply (compute-bound regime)."""
    if qw.is_ggml:
        xq, xd = quantize_activations(x)
        x = (xq.reshape(x.shape[0], -1, QK) * xd[..., None]).reshape(x.shape)  # what the Q8_0 blocks stand for
    n_out = qw.shape[0]
    out = np.empty((x.shape[0], n_out), np.float32)
    rows = max(16, TILE_BYTES // (4 * qw.shape[1]))
    for i in range(0, n_out, rows):
        j = min(i + rows, n_out)
        np.matmul(x, qw.dequantize_rows(i, j).T, out=out[:, i:j])
    return out


def has_kernel(qw) -> bool:
    """Whether the block kernels read this format (Q5_0 goes through tiles at every batch size)."""
    return qw.fmt != "q5_0"


def qmatmul(x, qw):
    """x (B, in) -> x Wᵀ (B, out) for a QuantizedWeight: the kernels for float32 host arrays, else the reference."""
    if x.ndim != 2 or x.shape[1] != qw.shape[1]:
        raise ValueError(f"qmatmul: x must be (B, {qw.shape[1]}) for a {qw.shape} weight, got {tuple(x.shape)}")
    if not kernels.usable(x) or qw.device != "cpu":
        return qmatmul_reference(x, qw)
    x = kernels.contiguous(x)
    if x.shape[0] <= FEW_ROWS and has_kernel(qw):
        return _few_rows(x, qw)
    return _tiles(x, qw)


def bytes_moved(qw, batch: int = 1) -> int:
    """Bytes a product reads and writes at minimum: W as stored, x and y in float32."""
    return qw.nbytes + 4 * batch * (qw.shape[0] + qw.shape[1])

