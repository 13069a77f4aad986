"""Host kernels: the fast path of the fused ops, compiled by Numba.

Each fused op in this package is *defined* by its reference code, written
against the inputs' own array module (``xp = backend.of(x)``) so that it runs
on NumPy, CuPy and the strict test device. This file holds the same math a
second time, as loops that Numba compiles to SIMD machine code (minitorch's
lesson: jit the helper the reader already understood); the tests check each
kernel against its reference.

Elementwise ops are Numba ufuncs (``numba.vectorize``), row-wise ones (softmax,
norms, cross-entropy) loops over rows. They beat NumPy for two reasons:

  * one pass over memory: a row's max, exps, sum and scaling happen while the
    row sits in cache, where NumPy makes five passes and three temporaries;
  * exp and erf are written as polynomials (Cephes ``expf``; the rational erf
    of Eigen/XLA) that LLVM vectorises, where libm's are scalar calls.

The ops call them only for float32 NumPy arrays (``usable``); float64, the
strict device and CuPy take the reference path.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

# subtle: fast math allows reassociation (vectorised sums), FMA and approximate
# functions, but not 'nnan'/'ninf': masked attention scores are -inf and must
# give exactly 0 after exp, and a NaN must stay a NaN.
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
# subtle: no parallel=True / prange. The matrix products between kernels run on
# BLAS's thread pool; Numba's OpenMP pool keeps spinning after each kernel and
# stalls the next BLAS call for a scheduler tick on a busy 2-core machine (a GPT
# block, benchmarks/bench_autograd.py: 15 ms / 460 ms with one thread against
# 56 ms / 540 ms with prange). Instead the kernels release the GIL (nogil) and
# `split` below hands row ranges of a big array to a plain thread pool, whose
# idle workers sleep.
_kernel = functools.partial(numba.njit, fastmath=_FAST, cache=True, nogil=True)


# ----------------------------------------------------------------------------- threads

_MIN_SPLIT = 1 << 17  # elements: below this a hand-off to another thread costs more than it saves


def num_threads() -> int:
    """Threads for the host kernels: TINYLLM_NUM_THREADS, else the cores this process may use."""
    n = os.environ.get("TINYLLM_NUM_THREADS")
    return max(1, int(n)) if n else len(os.sched_getaffinity(0))


@functools.lru_cache(maxsize=None)
def _pool(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=n, thread_name_prefix="tinyllm-kernel")


def split(fn, rows: int, size: int, multiple: int = 1) -> None:
    """Run fn(start, stop) over [0, rows) in one contiguous part per thread.

    `size` (elements in all) decides whether splitting pays; each part starts at a
    multiple of `multiple` (e.g. whole (L, S) score blocks for a causal softmax).
    fn must only write its own rows; Numba kernels and ufuncs release the GIL, so
    the parts really run at the same time.
    """
    if size < _MIN_SPLIT:  # checked first: most calls are small, and num_threads reads the environment
        fn(0, rows)
        return
    n = min(num_threads(), rows // max(1, multiple))
    if n <= 1:
        fn(0, rows)
        return
    step = -(-rows // (n * multiple)) * multiple
    parts = [(i, min(i + step, rows)) for i in range(0, rows, step)]
    futures = [_pool(n).submit(fn, a, b) for a, b in parts[1:]]
    fn(*parts[0])  # this thread takes the first part
    for f in futures:
        f.result()
_inline = functools.partial(numba.njit, inline="always", fastmath=_FAST, cache=True)

_enabled = contextvars.ContextVar("tinyllm_host_kernels", default=True)


def usable(*arrays) -> bool:
    """True when the Numba path applies: every array a float32 NumPy array (None skipped)."""
    return _enabled.get() and all(
        a is None or (type(a) is np.ndarray and a.dtype == np.float32) for a in arrays
    )


@contextlib.contextmanager
def disabled():
    """Force the reference path inside a with-block (the tests compare the two)."""
    token = _enabled.set(False)
    try:
        yield
    finally:
        _enabled.reset(token)


def _c(a):
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------------------- exp and erf in float32

f32 = np.float32
_ZERO, _HALF, _ONE, _TWO = f32(0.0), f32(0.5), f32(1.0), f32(2.0)
_EXP_LO, _EXP_HI = f32(-87.3), f32(88.72)
_LOG2E, _LN2_HI, _LN2_LO = f32(1.4426950408889634), f32(0.693359375), f32(-2.12194440e-4)
_P0, _P1, _P2 = f32(1.9875691500e-4), f32(1.3981999507e-3), f32(8.3334519073e-3)
_P3, _P4, _P5 = f32(4.1665795894e-2), f32(1.6666665459e-1), f32(5.0000001201e-1)


@_inline
def exp32(x):
    """e^x in float32 (Cephes expf): x = n·ln2 + r with |r| <= ln2/2, e^x = 2^n · e^r.

    e^r is a degree-6 polynomial; 2^n is built straight into the exponent bits,
    (n + 127) << 23. Relative error < 3e-7; exp32(-inf) = 0, exp32(NaN) = NaN,
    and inf from x > 88.37 (a little early: e^88.7 is still finite, never needed here).
    """
    xc = min(max(x, _EXP_LO), _EXP_HI)
    n = np.floor(xc * _LOG2E + _HALF)
    r = xc - n * _LN2_HI - n * _LN2_LO  # ln2 split in two so n·ln2 is exact
    p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    p = p * r * r + r + _ONE
    two_n = np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(np.float32)
    y = p * two_n
    return y if x >= _EXP_LO else (_ZERO if x < _EXP_LO else x)  # NaN falls through


_A1, _A3, _A5 = f32(-1.60960333262415e-02), f32(-2.95459980854025e-03), f32(-7.34990630326855e-04)
_A7, _A9 = f32(-5.69250639462346e-05), f32(-2.10102402082508e-06)
_A11, _A13 = f32(2.77068142495902e-08), f32(-2.72614225801306e-10)
_B0, _B2, _B4 = f32(-1.42647390514189e-02), f32(-7.37332916720468e-03), f32(-1.68282697438203e-03)
_B6, _B8 = f32(-2.13374055278905e-04), f32(-1.45660718464996e-05)
_FOUR = f32(4.0)


@_inline
def erf32(x):
    """erf in float32: x·p(x²)/q(x²) on [-4, 4] (Eigen/XLA's rational fit), ±1 outside.

    |error| < 4e-7, a few float32 ulps: the same accuracy as PyTorch's float32 erf.
    """
    x = min(max(x, -_FOUR), _FOUR)
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = (((_B8 * x2 + _B6) * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


class _LazyUfunc:
    """A numba.vectorize ufunc built on its first call."""

    # subtle: numba.vectorize with signatures compiles (or loads its cache) when it decorates,
    # i.e. at import, which made `import tinyllm` cost about a second; this defers that work
    # to the first call, as @njit does by itself.
    def __init__(self, signatures, fn):
        self._signatures, self._fn, self._ufunc = signatures, fn, None
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        if self._ufunc is None:
            self._ufunc = numba.vectorize(self._signatures, fastmath=_FAST, cache=True)(self._fn)
        return self._ufunc(*args, **kwargs)


def _ufunc(signatures):
    return lambda fn: _LazyUfunc(signatures, fn)


@_ufunc(["float32(float32)"])
def exp(x):
    """exp32 as a ufunc (the tests check it against np.exp)."""
    return exp32(x)


@_ufunc(["float32(float32)"])
def erf(x):
    """erf32 as a ufunc (the tests check it against math.erf)."""
    return erf32(x)


# ----------------------------------------------------------------------------- softmax over rows

_NEG_INF = f32(-np.inf)


@_kernel
def _softmax_rows_(x, causal_L, zero_empty):
    # row r: max, exps and their sum, then scale, all in place
    M, N = x.shape
    for r in range(M):
        n = N if causal_L == 0 else min(r % causal_L + 1, N)  # causal: query i = r % L sees keys j <= i
        m = _NEG_INF
        for j in range(n):
            m = max(m, x[r, j])
        if zero_empty and m == _NEG_INF:
            m = _ZERO  # every key masked: exps are all 0, the row becomes 0 (torch's SDPA)
        s = _ZERO
        for j in range(n):
            e = exp32(x[r, j] - m)
            x[r, j] = e
            s += e
        inv = _ONE / s if (s > _ZERO or not zero_empty) else _ZERO
        for j in range(n):
            x[r, j] *= inv
        for j in range(n, N):
            x[r, j] = _ZERO


def softmax_rows_(x, causal_L=0, zero_empty=False):
    """Softmax of each row of a C-contiguous 2-D float32 array, in place.

    causal_L > 0: row r is query i = r % causal_L of a (..., L, S) score block
    and sees columns j <= i only; the others get probability 0.
    zero_empty: a row whose entries are all -inf gives zeros instead of NaN.

    # subtle: in place on purpose. Reading x and writing a second array that
    # is secretly x defeats LLVM's runtime alias check and the loop runs
    # unvectorised, 2x slower; one array cannot alias.
    """
    split(lambda a, b: _softmax_rows_(x[a:b], causal_L, zero_empty), x.shape[0], x.size, max(1, causal_L))
    return x


@_kernel
def _softmax_backward_rows_(y, g):
    M, N = y.shape
    for r in range(M):
        d = _ZERO
        for j in range(N):
            d += g[r, j] * y[r, j]
        for j in range(N):
            g[r, j] = y[r, j] * (g[r, j] - d)


def softmax_backward_rows_(y, g):
    """g <- y * (g - Σ_j g_j y_j) per row, in place on g (a C-contiguous float32 array)."""
    y = _c(y)
    split(lambda a, b: _softmax_backward_rows_(y[a:b], g[a:b]), y.shape[0], y.size)
    return g


@_kernel
def _max_logsum_rows(x, m_out, logs_out):
    M, N = x.shape
    for r in range(M):
        m = _NEG_INF
        for j in range(N):
            m = max(m, x[r, j])
        s = _ZERO
        for j in range(N):
            s += exp32(x[r, j] - m)
        m_out[r], logs_out[r] = m, np.log(s)


def max_logsum_rows(x):
    """Per row: m = max_j x_j and log Σ_j e^{x_j - m} (so logsumexp = m + that); shapes (M,)."""
    x = _c(x)
    m, logs = np.empty(x.shape[0], dtype=x.dtype), np.empty(x.shape[0], dtype=x.dtype)
    _max_logsum_rows(x, m, logs)
    return m, logs


@_kernel
def _log_softmax_rows(x, out):
    M, N = x.shape
    for r in range(M):
        m = _NEG_INF
        for j in range(N):
            m = max(m, x[r, j])
        s = _ZERO
        for j in range(N):
            d = x[r, j] - m
            out[r, j] = d
            s += exp32(d)
        logs = np.log(s)
        # subtle: a second pass over the stored x - m; written as (x - m) - logs in one
        # expression, reassociation may compute x - (m + logs) and round at |x|'s scale
        for j in range(N):
            out[r, j] -= logs


def log_softmax_rows(x):
    """(x - m) - log Σ e^{x - m} per row."""
    x = _c(x)
    out = np.empty_like(x)
    _log_softmax_rows(x, out)
    return out


@_kernel
def _log_softmax_backward_rows(y, g, out):
    M, N = y.shape
    for r in range(M):
        s = _ZERO
        for j in range(N):
            s += g[r, j]
        for j in range(N):
            out[r, j] = g[r, j] - exp32(y[r, j]) * s


def log_softmax_backward_rows(y, g):
    """grad_x = g - exp(y) · Σ_j g_j per row, y = log_softmax(x)."""
    y, g = _c(y), _c(g)
    out = np.empty_like(y)
    _log_softmax_backward_rows(y, g, out)
    return out


@_kernel
def _cross_entropy_backward_rows(x, m, logs, target, scale, confidence, smooth, out):
    M, N = x.shape
    for r in range(M):
        s, mr, lr = scale[r], m[r], logs[r]
        sub = smooth * s
        for j in range(N):
            out[r, j] = exp32((x[r, j] - mr) - lr) * s - sub
        out[r, target[r]] -= confidence * s


def cross_entropy_backward_rows(x, m, logs, target, scale, confidence, smooth):
    """grad[r] = (softmax(x[r]) - q[r]) * scale[r], q = confidence·onehot(target) + smooth."""
    out = np.empty_like(x)
    _cross_entropy_backward_rows(_c(x), m, logs, _c(target), scale, f32(confidence), f32(smooth), out)
    return out


# ----------------------------------------------------------------------------- activations (elementwise)

_SQRT1_2, _INV_SQRT_2PI = f32(0.7071067811865476), f32(0.3989422804014327)
_K0, _K1 = f32(0.7978845608028654), f32(0.044715)  # sqrt(2/pi), the tanh-GELU cubic
_K1x3 = f32(3 * 0.044715)


@_ufunc(["float32(float32)"])
def gelu(v):
    """x Φ(x) = ½x(1 + erf(x/√2))."""
    return _HALF * v * (_ONE + erf32(v * _SQRT1_2))


@_ufunc(["float32(float32, float32)"])
def gelu_backward(v, g):
    """g · (Φ(x) + x φ(x))."""
    cdf = _HALF * (_ONE + erf32(v * _SQRT1_2))
    pdf = exp32(-_HALF * v * v) * _INV_SQRT_2PI
    return g * (cdf + v * pdf)


@_ufunc(["float32(float32)"])
def gelu_tanh(v):
    """½x(1 + tanh u) = x σ(2u), u = √(2/π)(x + 0.044715x³): no 1 + tanh cancellation for x < 0."""
    return v / (_ONE + exp32(-_TWO * _K0 * (v + _K1 * v * v * v)))


@_ufunc(["float32(float32, float32)"])
def gelu_tanh_backward(v, g):
    """g · (σ + 2xσ(1 - σ)·√(2/π)(1 + 3·0.044715x²)), σ = σ(2u)."""
    s = _ONE / (_ONE + exp32(-_TWO * _K0 * (v + _K1 * v * v * v)))
    return g * (s + _TWO * v * s * (_ONE - s) * _K0 * (_ONE + _K1x3 * v * v))


@_ufunc(["float32(float32)"])
def silu(v):
    """x σ(x)."""
    return v / (_ONE + exp32(-v))


@_ufunc(["float32(float32, float32)"])
def silu_backward(v, g):
    """g · σ(x)(1 + x(1 - σ(x)))."""
    s = _ONE / (_ONE + exp32(-v))
    return g * s * (_ONE + v * (_ONE - s))


_ELEMENTWISE = {"gelu": (gelu, gelu_backward), "gelu_tanh": (gelu_tanh, gelu_tanh_backward),
                "silu": (silu, silu_backward)}


def activation(name, x, grad_out=None):
    """name(x), or with grad_out the input gradient grad_out * name'(x); name in gelu, gelu_tanh, silu."""
    forward, backward = _ELEMENTWISE[name]
    shape = x.shape
    x = _c(x).reshape(-1)
    out = np.empty_like(x)
    if grad_out is None:
        split(lambda a, b: forward(x[a:b], out=out[a:b]), x.size, x.size)
    else:
        g = _c(grad_out).reshape(-1)
        split(lambda a, b: backward(x[a:b], g[a:b], out=out[a:b]), x.size, x.size)
    return out.reshape(shape)


# ----------------------------------------------------------------------------- norms over rows


@_kernel
def _layer_norm_fwd(x, w, b, eps, out, mean, rstd):
    M, N = x.shape
    for r in range(M):
        s = _ZERO
        for j in range(N):
            s += x[r, j]
        mu = s / np.float32(N)
        v = _ZERO
        for j in range(N):
            d = x[r, j] - mu
            v += d * d
        rs = _ONE / np.sqrt(v / np.float32(N) + eps)
        for j in range(N):
            out[r, j] = (x[r, j] - mu) * rs * w[j] + b[j]
        mean[r], rstd[r] = mu, rs


@_kernel
def _layer_norm_bwd(x, mean, rstd, w, g, gx, gw, gb):
    M, N = x.shape
    for r in range(M):
        mu, rs = mean[r], rstd[r]
        a = _ZERO
        b = _ZERO
        for j in range(N):
            xh = (x[r, j] - mu) * rs
            gh = g[r, j] * w[j]
            a += gh
            b += gh * xh
            gw[j] += g[r, j] * xh
            gb[j] += g[r, j]
        a /= np.float32(N)
        b /= np.float32(N)
        for j in range(N):
            xh = (x[r, j] - mu) * rs
            gx[r, j] = rs * (g[r, j] * w[j] - a - xh * b)


@_kernel
def _rms_norm_fwd(x, w, eps, out, rstd):
    M, N = x.shape
    for r in range(M):
        s = _ZERO
        for j in range(N):
            s += x[r, j] * x[r, j]
        rs = _ONE / np.sqrt(s / np.float32(N) + eps)
        for j in range(N):
            out[r, j] = x[r, j] * rs * w[j]
        rstd[r] = rs


@_kernel
def _rms_norm_bwd(x, rstd, w, g, gx, gw):
    M, N = x.shape
    for r in range(M):
        rs = rstd[r]
        b = _ZERO
        for j in range(N):
            xh = x[r, j] * rs
            b += g[r, j] * w[j] * xh
            gw[j] += g[r, j] * xh
        b /= np.float32(N)
        for j in range(N):
            gx[r, j] = rs * (g[r, j] * w[j] - x[r, j] * rs * b)


def layer_norm_forward(x2, w, b, eps):
    """(M, N) rows -> (y, mean, rstd); w, b of shape (N,)."""
    x2 = _c(x2)
    M = x2.shape[0]
    out = np.empty_like(x2)
    mean, rstd = np.empty(M, np.float32), np.empty(M, np.float32)
    w, b = _c(w), _c(b)
    split(lambda i, j: _layer_norm_fwd(x2[i:j], w, b, f32(eps), out[i:j], mean[i:j], rstd[i:j]), M, x2.size)
    return out, mean, rstd


def layer_norm_backward(x2, mean, rstd, w, g2):
    """-> (grad_x, grad_w, grad_b) for (M, N) rows."""
    x2, g2 = _c(x2), _c(g2)
    M, N = x2.shape
    gx = np.empty_like(x2)
    gw, gb = np.zeros(N, np.float32), np.zeros(N, np.float32)
    _layer_norm_bwd(x2, mean, rstd, _c(w), g2, gx, gw, gb)
    return gx, gw, gb


def rms_norm_forward(x2, w, eps):
    """(M, N) rows -> (y, rstd); w of shape (N,)."""
    x2 = _c(x2)
    out = np.empty_like(x2)
    rstd = np.empty(x2.shape[0], np.float32)
    w = _c(w)
    split(lambda i, j: _rms_norm_fwd(x2[i:j], w, f32(eps), out[i:j], rstd[i:j]), x2.shape[0], x2.size)
    return out, rstd


def rms_norm_backward(x2, rstd, w, g2):
    """-> (grad_x, grad_w) for (M, N) rows."""
    x2, g2 = _c(x2), _c(g2)
    M, N = x2.shape
    gx = np.empty_like(x2)
    gw = np.zeros(N, np.float32)
    _rms_norm_bwd(x2, rstd, _c(w), g2, gx, gw)
    return gx, gw


# ----------------------------------------------------------------------------- embedding


@numba.njit(fastmath=_FAST, cache=True)
def _embedding_backward(ids, g, out):
    # serial on purpose: two rows with the same id add into the same output row
    for i in range(ids.size):
        row = ids[i]
        for j in range(g.shape[1]):
            out[row, j] += g[i, j]


def embedding_backward(ids, g2, num_embeddings):
    """grad_w (V, C) with grad_w[v] = Σ_{i: ids[i] = v} g2[i] (backend.scatter_add, 25x faster)."""
    out = np.zeros((num_embeddings, g2.shape[1]), dtype=g2.dtype)
    _embedding_backward(_c(ids), _c(g2), out)
    return out
