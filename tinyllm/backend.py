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

import numpy as np

# the strict device lives in strict.py; its names are re-exported here (backend.StrictArray, ...)
from tinyllm.strict import (  # noqa: F401
    StrictArray,
    StrictTransferError,
    reset_transfer_stats,
    strict,
    transfer_stats,
)
from tinyllm.strict import scatter_add as strict_scatter_add

DEVICES = ("cpu", "cuda", "strict")


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


def check_device(name) -> str:
    """name, if it is a device tinyllm knows ('cpu', 'cuda', 'strict'); else a ValueError that lists them."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; expected one of {DEVICES}")
    return name


_default_device = contextvars.ContextVar(
    "tinyllm_device", default=check_device(os.environ.get("TINYLLM_DEVICE", "cpu"))
)


def get_device() -> str:
    """The default device for new arrays: 'cpu', 'cuda' or 'strict'."""
    return _default_device.get()


@contextlib.contextmanager
def use_device(name: str):
    """Make `name` the default device for creation inside a with-block."""
    token = _default_device.set(check_device(name))
    try:
        yield name
    finally:
        _default_device.reset(token)


def set_device(name: str) -> None:
    """Set the default device for the rest of this context (prefer use_device)."""
    _default_device.set(check_device(name))


def xp_for(device: str | None = None):
    """The array module of a device name (default device if None)."""
    device = check_device(device or get_device())
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
        return x.get()  # counted as an explicit transfer, as CuPy's .get()
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    if type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


def asarray(x, dtype=None, device: str | None = None):
    """Put host data (lists, NumPy arrays, scalars) or any device array on `device`."""
    device = check_device(device or get_device())
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
        strict_scatter_add(target, index, values)
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
    device = check_device(device or get_device())
    g = _generator(device)
    if device == "cuda":
        raise NotImplementedError("saving the CuPy generator state is not supported; reseed with manual_seed")
    return g.bit_generator.state


def set_rng_state(state: dict, device: str | None = None) -> None:
    device = check_device(device or get_device())
    g = _generator(device)
    g.bit_generator.state = state


def randn(shape, dtype=np.float32, device: str | None = None):
    """Standard normal samples drawn directly in float32 or float64 (NumPy's generator on cpu/strict)."""
    device = check_device(device or get_device())
    g = _generator(device)
    out = g.standard_normal(shape, dtype=np.float64 if np.dtype(dtype) == np.float64 else np.float32)
    return StrictArray(out) if device == "strict" else out


def rand(shape, dtype=np.float32, device: str | None = None):
    """Uniform samples in [0, 1)."""
    device = check_device(device or get_device())
    g = _generator(device)
    out = g.random(shape, dtype=np.float64 if np.dtype(dtype) == np.float64 else np.float32)
    return StrictArray(out) if device == "strict" else out


def randint(low: int, high: int, shape, device: str | None = None):
    """Integers in [low, high), int64."""
    device = check_device(device or get_device())
    g = _generator(device)
    out = g.integers(low, high, size=shape, dtype=np.int64)
    return StrictArray(out) if device == "strict" else out
