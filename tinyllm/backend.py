"""Backend: which array module holds the numbers, and on which device.

tinyllm computes on raw arrays of one of three devices:

    "cpu"     NumPy arrays
    "cuda"    CuPy arrays (the optional ``gpu`` extra)
    "strict"  a test device: NumPy underneath, but its arrays behave like CuPy's.
              Implicit conversion to NumPy (``np.asarray(x)``, ``np.exp(x)``,
              ``x + numpy_array``) raises ``TypeError``, exactly where code
              would break on a GPU. Explicit ``to_numpy(x)`` is allowed and counted.

The rules (see DESIGN.md, "The backend swap"):

  * Inside an op the array module comes from the inputs: ``xp = of(x)``.
  * Only creation (``zeros``, ``randn``, parameter init, batches) reads the
    default device, held in a ContextVar and set by ``use_device(...)`` or the
    ``TINYLLM_DEVICE`` environment variable.
  * Every difference between NumPy and CuPy (scatter-add, random generators,
    copy to host, erf) sits behind one named function here; ops never test
    ``xp is numpy``.

Example:
    >>> with use_device("strict"):
    ...     x = zeros((2, 3))          # a StrictArray
    >>> of(x).exp(x).shape             # the module comes from the array
    (2, 3)
    >>> import numpy as np; np.exp(x)  # raises TypeError: implicit transfer
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import types

import numpy as np

DEVICES = ("cpu", "cuda", "strict")


# ----------------------------------------------------------------------------- strict device


class StrictTransferError(TypeError):
    """Raised when a strict-device array is silently converted to NumPy."""


def _refuse(what: str):
    raise StrictTransferError(
        f"implicit transfer of a 'strict' device array to NumPy ({what}); a CuPy array "
        "would refuse this too. Keep the computation on the array's own module "
        "(xp = tinyllm.backend.of(x)) or call tinyllm.to_numpy(x) explicitly."
    )


def _unwrap(v, allow_host: bool):
    """StrictArray -> ndarray; refuse host ndarrays where CuPy would."""
    if type(v) is StrictArray:
        return v._a
    if isinstance(v, np.ndarray) and not allow_host and v.ndim > 0:
        raise StrictTransferError(
            "mixing a host NumPy array with a 'strict' device array; move it first "
            "with tinyllm.backend.asarray(x, device=...) (CuPy refuses this too)"
        )
    if isinstance(v, (tuple, list)):
        return type(v)(_unwrap(u, allow_host) for u in v)
    if isinstance(v, dict):  # keyword arguments, e.g. out=
        return {k: _unwrap(u, allow_host) for k, u in v.items()}
    return v


def _wrap(v):
    """ndarray (or NumPy scalar) -> StrictArray; CuPy returns 0-d arrays, not scalars."""
    if isinstance(v, np.ndarray):
        return StrictArray(v)
    if isinstance(v, np.generic):
        return StrictArray(np.asarray(v))
    if isinstance(v, tuple):
        return tuple(_wrap(u) for u in v)
    if isinstance(v, list):
        return [_wrap(u) for u in v]
    return v


class StrictArray:
    """A NumPy array in a box that refuses to be opened implicitly (like a CuPy array)."""

    __slots__ = ("_a",)
    __array_priority__ = 1000

    def __init__(self, a: np.ndarray):
        self._a = a

    # --- what NumPy would use to convert us: refuse all of it
    def __array__(self, dtype=None, copy=None):
        _refuse("__array__, e.g. np.asarray(x)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # `np.float32(2) * x` lands here; CuPy accepts NumPy *scalars*, so do we.
        # Any NumPy function applied to a device array (np.exp(x)) is refused.
        if method == "__call__" and not kwargs and any(isinstance(v, np.generic) for v in inputs):
            if all(isinstance(v, (StrictArray, np.generic, int, float, bool)) for v in inputs):
                return _wrap(ufunc(*_unwrap(inputs, False)))
        _refuse(f"NumPy ufunc np.{ufunc.__name__}")

    def __array_function__(self, func, types, args, kwargs):
        _refuse(f"NumPy function np.{func.__name__}")

    def __iter__(self):
        _refuse("iteration over a device array; use tinyllm.to_numpy(x) first")

    # --- scalar conversions synchronize with the device; CuPy allows them, we count them
    def _scalar(self, kind):
        _STATS["scalar"] += 1
        return kind(self._a)

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __bool__(self):
        return self._scalar(bool)

    def __index__(self):
        return self._scalar(int)

    def item(self):
        _STATS["scalar"] += 1
        return self._a.item()

    def get(self):  # CuPy's explicit copy to host
        return to_numpy(self)

    # --- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    T = property(lambda self: StrictArray(self._a.T))
    flags = property(lambda self: self._a.flags)

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    # --- methods: forward to NumPy, unwrap arguments, wrap results
    def __getattr__(self, name):
        if name in ("__array_interface__", "__array_struct__", "__dlpack__", "__cuda_array_interface__"):
            _refuse(name)
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            return _wrap(attr(*_unwrap(args, False), **_unwrap(kwargs, False)))

        return method

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, False)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, False)] = _unwrap(value, False)


def _binary(op):
    def forward(self, other):
        return _wrap(op(self._a, _unwrap(other, False)))

    def reflected(self, other):
        return _wrap(op(_unwrap(other, False), self._a))

    return forward, reflected


def _inplace(op):
    def f(self, other):
        op(self._a, _unwrap(other, False))
        return self

    return f


import operator as _op  # noqa: E402

for _name, _fn in [("add", _op.add), ("sub", _op.sub), ("mul", _op.mul), ("truediv", _op.truediv),
                   ("floordiv", _op.floordiv), ("mod", _op.mod), ("pow", _op.pow),
                   ("matmul", _op.matmul), ("and", _op.and_), ("or", _op.or_), ("xor", _op.xor)]:
    _f, _r = _binary(_fn)
    setattr(StrictArray, f"__{_name}__", _f)
    setattr(StrictArray, f"__r{_name}__", _r)
    setattr(StrictArray, f"__i{_name}__", _inplace(getattr(_op, f"i{_name}")))
for _name, _fn in [("lt", _op.lt), ("le", _op.le), ("gt", _op.gt), ("ge", _op.ge),
                   ("eq", _op.eq), ("ne", _op.ne)]:
    setattr(StrictArray, f"__{_name}__", _binary(_fn)[0])
StrictArray.__neg__ = lambda self: StrictArray(-self._a)
StrictArray.__pos__ = lambda self: StrictArray(+self._a)
StrictArray.__abs__ = lambda self: StrictArray(abs(self._a))
StrictArray.__invert__ = lambda self: StrictArray(~self._a)
StrictArray.__hash__ = None


class _StrictModule(types.ModuleType):
    """The array module of the strict device: NumPy's namespace, wrapped.

    Functions unwrap StrictArray arguments, refuse host arrays (except in the
    explicit host->device constructors ``asarray``/``array``), and wrap results.
    Types (``float32``...) and constants pass through unchanged.
    """

    _HOST_OK = frozenset({"asarray", "array", "ascontiguousarray", "frombuffer"})

    def __init__(self, np_module, name="tinyllm.strict"):
        super().__init__(name)
        self._np = np_module

    def __getattr__(self, name):
        attr = getattr(self._np, name)
        if isinstance(attr, types.ModuleType):  # np.linalg, np.random...
            sub = _StrictModule(attr, f"{self.__name__}.{name}")
            setattr(self, name, sub)
            return sub
        if isinstance(attr, type) or not callable(attr):
            return attr
        allow_host = name in self._HOST_OK

        @functools.wraps(attr)
        def fn(*args, **kwargs):
            return _wrap(attr(*_unwrap(args, allow_host), **_unwrap(kwargs, allow_host)))

        fn.at = getattr(attr, "at", None)  # ufunc.at is reached through scatter_add below
        setattr(self, name, fn)
        return fn


strict = _StrictModule(np)

# Transfers off the strict device: explicit ones (to_numpy) and scalar syncs (float(x), x.item()).
_STATS = {"explicit": 0, "scalar": 0}


def transfer_stats() -> dict:
    """Counts of strict-device transfers to the host since the last reset."""
    return dict(_STATS)


def reset_transfer_stats() -> None:
    _STATS["explicit"] = 0
    _STATS["scalar"] = 0


# ----------------------------------------------------------------------------- cupy (optional)


@functools.lru_cache(maxsize=None)
def _cupy():
    try:
        import cupy  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "device 'cuda' needs CuPy: pip install 'tinyllm[gpu]' (or the cupy-cudaXXx "
            "wheel that matches your CUDA), on a machine with an NVIDIA GPU"
        ) from e
    return cupy


def cuda_available() -> bool:
    try:
        cp = _cupy()
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


# ----------------------------------------------------------------------------- devices


def _check_device(name) -> str:
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; expected one of {DEVICES}")
    return name


_default_device = contextvars.ContextVar(
    "tinyllm_device", default=_check_device(os.environ.get("TINYLLM_DEVICE", "cpu"))
)


def get_device() -> str:
    """The default device for new arrays: 'cpu', 'cuda' or 'strict'."""
    return _default_device.get()


@contextlib.contextmanager
def use_device(name: str):
    """Make `name` the default device for creation inside a with-block."""
    token = _default_device.set(_check_device(name))
    try:
        yield name
    finally:
        _default_device.reset(token)


def set_device(name: str) -> None:
    """Set the default device for the rest of this context (prefer use_device)."""
    _default_device.set(_check_device(name))


def xp_for(device: str | None = None):
    """The array module of a device name (default device if None)."""
    device = _check_device(device or get_device())
    if device == "cpu":
        return np
    if device == "strict":
        return strict
    return _cupy()


def device_of(x) -> str:
    """The device an array lives on."""
    if type(x) is StrictArray:
        return "strict"
    if isinstance(x, (np.ndarray, np.generic)):
        return "cpu"
    if type(x).__module__.startswith("cupy"):
        return "cuda"
    raise TypeError(f"not an array of a tinyllm device: {type(x).__name__}")


def of(*arrays):
    """The array module (numpy / cupy / strict) of the given arrays; they must agree."""
    device = None
    for a in arrays:
        if a is None or isinstance(a, (int, float, bool)):
            continue
        d = device_of(a)
        if device is not None and d != device:
            raise RuntimeError(f"arrays on different devices: {device!r} and {d!r}; move one with .to(device)")
        device = d
    return xp_for(device or get_device())


def is_array(x) -> bool:
    return type(x) is StrictArray or isinstance(x, np.ndarray) or type(x).__module__.startswith("cupy")


# ----------------------------------------------------------------------------- transfers


def to_numpy(x) -> np.ndarray:
    """Explicit copy to host. On 'strict' it is allowed and counted."""
    if type(x) is StrictArray:
        _STATS["explicit"] += 1
        return x._a
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    if type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


def asarray(x, dtype=None, device: str | None = None):
    """Put host data (lists, NumPy arrays, scalars) or any device array on `device`."""
    device = _check_device(device or get_device())
    if is_array(x) and device_of(x) != device:
        x = to_numpy(x)
    if device == "cpu":
        return np.asarray(x, dtype=dtype)
    if device == "strict":
        if type(x) is StrictArray:
            return x if dtype is None or x.dtype == dtype else StrictArray(x._a.astype(dtype))
        return StrictArray(np.array(x, dtype=dtype))  # a copy: the device owns its memory
    return _cupy().asarray(x, dtype=dtype)


# ----------------------------------------------------------------------------- NumPy/CuPy differences


def scatter_add(target, index, values) -> None:
    """In place: target[index] += values, accumulating repeated indices.

    (Plain ``target[index] += values`` keeps only the last write per index.)
    """
    d = device_of(target)
    if d == "cpu":
        np.add.at(target, index, values)
    elif d == "strict":
        np.add.at(target._a, _unwrap(index, False), _unwrap(values, False))
    else:
        import cupyx

        cupyx.scatter_add(target, index, values)


@functools.lru_cache(maxsize=None)
def _erf_kernel():
    import math

    import numba

    @numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
    def erf(x):
        return math.erf(x)

    return erf


def erf(x):
    """The error function, elementwise, in the dtype of x (NumPy has none; Numba does)."""
    d = device_of(x)
    if d == "cuda":
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x)
    if d == "strict":
        return StrictArray(_erf_kernel()(x._a))
    return _erf_kernel()(x)


# ----------------------------------------------------------------------------- host memory


def keep_host_memory(pad_bytes: int = 256 << 20) -> bool:
    """Ask the C library's malloc to keep freed memory for reuse instead of returning it to the OS.

    A training step allocates and frees the same big arrays every step. By default
    glibc hands the top of its heap back to the kernel once enough of it is free,
    and serves arrays above a threshold with fresh mmaps; either way the next step
    touches new pages, and the kernel zeroes each 4 KiB page in a page fault. For
    a GPT block (benchmarks/profile_autograd.py --no-keep-memory) that was ~1,600
    faults and ~7 ms of system time per 22 ms step at (12, 64, 128); with this, none. PyTorch's
    CUDA caching allocator does the same for GPU memory.

    It sets, process-wide: M_TOP_PAD (keep `pad_bytes` spare at the heap top),
    M_TRIM_THRESHOLD (trim only above 2·pad_bytes free) and M_MMAP_THRESHOLD
    (32 MiB, glibc's maximum: smaller arrays come from the reusable heap).
    Peak memory is unchanged; memory is just not given back between steps.
    Explicit, never at import: the CLI's commands and the benchmarks call it.
    Returns False where the C library has no mallopt (macOS, musl): nothing changes.
    """
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or None).mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    ok = mallopt(M_TOP_PAD, int(pad_bytes))
    ok &= mallopt(M_TRIM_THRESHOLD, int(2 * pad_bytes))
    ok &= mallopt(M_MMAP_THRESHOLD, 32 << 20)
    return bool(ok)


# ----------------------------------------------------------------------------- random numbers

_generators: dict = {}


def manual_seed(seed: int) -> None:
    """Seed one generator per device. 'cpu' and 'strict' share the algorithm
    (NumPy's PCG64), so the same seed gives the same numbers on both."""
    _generators.clear()
    _generators["seed"] = int(seed)


def _generator(device: str):
    g = _generators.get(device)
    if g is None:
        seed = _generators.get("seed")
        if device == "cuda":
            g = _cupy().random.default_rng(seed)
        else:
            g = np.random.default_rng(seed)
        _generators[device] = g
    return g


def get_rng_state(device: str | None = None) -> dict:
    """JSON-able state of a device's generator (for checkpoints)."""
    device = _check_device(device or get_device())
    g = _generator(device)
    if device == "cuda":
        raise NotImplementedError("saving the CuPy generator state is not supported; reseed with manual_seed")
    return g.bit_generator.state


def set_rng_state(state: dict, device: str | None = None) -> None:
    device = _check_device(device or get_device())
    g = _generator(device)
    g.bit_generator.state = state


def randn(shape, dtype=np.float32, device: str | None = None):
    """Standard normal samples drawn directly in float32 or float64 (NumPy's generator on cpu/strict)."""
    device = _check_device(device or get_device())
    g = _generator(device)
    out = g.standard_normal(shape, dtype=np.float64 if np.dtype(dtype) == np.float64 else np.float32)
    return StrictArray(out) if device == "strict" else out


def rand(shape, dtype=np.float32, device: str | None = None):
    """Uniform samples in [0, 1)."""
    device = _check_device(device or get_device())
    g = _generator(device)
    out = g.random(shape, dtype=np.float64 if np.dtype(dtype) == np.float64 else np.float32)
    return StrictArray(out) if device == "strict" else out


def randint(low: int, high: int, shape, device: str | None = None):
    """Integers in [low, high), int64."""
    device = _check_device(device or get_device())
    g = _generator(device)
    out = g.integers(low, high, size=shape, dtype=np.int64)
    return StrictArray(out) if device == "strict" else out
