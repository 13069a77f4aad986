"""The shared machinery of the host kernels: what every fused op's Numba fast path is built from.

Each fused op in this package is *defined* by its reference code, written
against the inputs' own array module (``xp = backend.of(x)``) so that it runs on
NumPy, CuPy and the strict test device. Its file then holds the same math a
second time, as loops that Numba compiles to SIMD machine code (minitorch's
lesson: jit the helper the reader already understood), and the tests check the
kernel against the reference. This file holds only what those kernels share:

    kernel, inline, ufunc   the Numba decorators (fast math, on-disk cache, no GIL)
    split, num_threads      one thread pool that runs a kernel over row ranges
    usable, disabled        when the fast path applies (float32 NumPy), and a switch for the tests
    exp32, erf32            e^x and erf as float32 polynomials that LLVM vectorises
    ZERO, HALF, ONE, TWO    float32 constants (a Python float would make Numba compute in float64)

Kernels beat NumPy for two reasons:

  * one pass over memory: a row's max, exps, sum and scaling happen while the
    row sits in cache, where NumPy makes five passes and three temporaries;
  * exp and erf are written as polynomials (Cephes ``expf``; the rational erf
    of Eigen/XLA) that LLVM vectorises, where libm's are scalar calls.

The kernels themselves live beside their references: softmax.py, cross_entropy.py,
activations.py, norms.py, embedding.py.
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
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# subtle: no parallel=True / prange. The matrix products between kernels run on
# BLAS's thread pool; Numba's OpenMP pool keeps spinning after each kernel and
# stalls the next BLAS call for a scheduler tick on a busy 2-core machine (a GPT
# block, benchmarks/bench_autograd.py: 15 ms / 460 ms with one thread against
# 56 ms / 540 ms with prange). Instead the kernels release the GIL (nogil) and
# `split` below hands row ranges of a big array to a plain thread pool, whose
# idle workers sleep.
kernel = functools.partial(numba.njit, fastmath=FASTMATH, cache=True, nogil=True)


# ----------------------------------------------------------------------------- threads

_MIN_SPLIT = 1 << 17  # elements: below this a hand-off to another thread costs more than it saves


_chosen_threads: int | None = None  # set_num_threads: a program's choice (tinyllm.runtime.ThreadTuner)


def set_num_threads(n: int | None) -> None:
    """Use n threads for the host kernels from now on (None: back to num_threads()'s default)."""
    global _chosen_threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"the kernel thread count must be an integer >= 1 or None, got {n!r}")
    _chosen_threads = n


def num_threads() -> int:
    """Threads for the host kernels: set_num_threads's choice, else TINYLLM_NUM_THREADS, else the cores
    this process may use."""
    if _chosen_threads is not None:
        return _chosen_threads
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
inline = functools.partial(numba.njit, inline="always", fastmath=FASTMATH, cache=True)

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


def contiguous(a):
    """a as a C-contiguous array (the kernels index rows directly); no copy if it already is."""
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------------------- exp and erf in float32

f32 = np.float32
ZERO, HALF, ONE, TWO = f32(0.0), f32(0.5), f32(1.0), f32(2.0)
_EXP_LO, _EXP_HI = f32(-87.3), f32(88.72)
_LOG2E, _LN2_HI, _LN2_LO = f32(1.4426950408889634), f32(0.693359375), f32(-2.12194440e-4)
_P0, _P1, _P2 = f32(1.9875691500e-4), f32(1.3981999507e-3), f32(8.3334519073e-3)
_P3, _P4, _P5 = f32(4.1665795894e-2), f32(1.6666665459e-1), f32(5.0000001201e-1)


@inline
def exp32(x):
    """e^x in float32 (Cephes expf): x = n·ln2 + r with |r| <= ln2/2, e^x = 2^n · e^r.

    e^r is a degree-6 polynomial; 2^n is built straight into the exponent bits,
    (n + 127) << 23. Relative error < 3e-7; exp32(-inf) = 0, exp32(NaN) = NaN,
    and inf from x > 88.37 (a little early: e^88.7 is still finite, never needed here).
    """
    xc = min(max(x, _EXP_LO), _EXP_HI)
    n = np.floor(xc * _LOG2E + HALF)
    r = xc - n * _LN2_HI - n * _LN2_LO  # ln2 split in two so n·ln2 is exact
    p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    p = p * r * r + r + ONE
    two_n = np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(np.float32)
    y = p * two_n
    return y if x >= _EXP_LO else (ZERO if x < _EXP_LO else x)  # NaN falls through


_A1, _A3, _A5 = f32(-1.60960333262415e-02), f32(-2.95459980854025e-03), f32(-7.34990630326855e-04)
_A7, _A9 = f32(-5.69250639462346e-05), f32(-2.10102402082508e-06)
_A11, _A13 = f32(2.77068142495902e-08), f32(-2.72614225801306e-10)
_B0, _B2, _B4 = f32(-1.42647390514189e-02), f32(-7.37332916720468e-03), f32(-1.68282697438203e-03)
_B6, _B8 = f32(-2.13374055278905e-04), f32(-1.45660718464996e-05)
_FOUR = f32(4.0)


@inline
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
            self._ufunc = numba.vectorize(self._signatures, fastmath=FASTMATH, cache=True)(self._fn)
        return self._ufunc(*args, **kwargs)


def ufunc(signatures):
    """Decorator: a float32 scalar function -> an elementwise Numba ufunc, compiled on first call."""
    return lambda fn: _LazyUfunc(signatures, fn)


@ufunc(["float32(float32)"])
def exp(x):
    """exp32 as a ufunc (the tests check it against np.exp)."""
    return exp32(x)


@ufunc(["float32(float32)"])
def erf(x):
    """erf32 as a ufunc (the tests check it against math.erf)."""
    return erf32(x)


