"""Making tensors: from data, filled with a constant, or random.

Creation is the one place that reads the default device (``backend.get_device()``,
set by ``tinyllm.use_device`` or ``TINYLLM_DEVICE``); every op after that takes
its array module from its inputs. Floats default to float32, Python ints to
int64, as in PyTorch.

    >>> tinyllm.tensor([[1, 2], [3, 4]]).dtype
    dtype('int64')
    >>> tinyllm.zeros(2, 3).dtype
    dtype('float32')
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.tensor import Tensor


def _dtype(dtype, default=np.float32):
    return np.dtype(default if dtype is None else dtype)


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def tensor(data, dtype=None, requires_grad: bool = False, device: str | None = None) -> Tensor:
    """A new leaf tensor holding a copy of `data` (nested lists, NumPy/CuPy arrays, scalars, Tensors)."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None:
        if backend.is_array(data) or isinstance(data, np.generic):  # NumPy scalars keep their dtype, as torch
            dtype = data.dtype
        else:
            probe = np.asarray(data)
            if probe.dtype == np.float64:
                dtype = np.float32  # Python floats -> float32, as torch.tensor
            elif probe.dtype.kind in "iu":
                dtype = np.int64
            else:
                dtype = probe.dtype
            data = probe
    if backend.is_array(data) and backend.device_of(data) == (device or backend.get_device()):
        arr = data.astype(dtype, copy=True)
    else:
        arr = backend.asarray(data, dtype=dtype, device=device)
        if arr is data:
            arr = arr.copy()
    if requires_grad and np.dtype(arr.dtype).kind != "f":
        raise TypeError(f"only floating-point tensors can require grad, got dtype {arr.dtype}")
    return Tensor(arr, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, device=None) -> Tensor:
    """A tensor of `size` filled with `fill_value`; the dtype follows the value as in torch.full
    (bool -> bool, int -> int64, float -> float32) unless given."""
    size = tuple(size) if isinstance(size, (tuple, list)) else (size,)
    if dtype is None:
        kind = {bool: np.bool_, int: np.int64}.get(type(fill_value), np.float32)
        dtype = kind
    xp = backend.xp_for(device)
    return Tensor(xp.full(size, fill_value, dtype=np.dtype(dtype)), requires_grad=requires_grad)


def zeros(*size, dtype=None, requires_grad=False, device=None) -> Tensor:
    return full(_size(size), 0, _dtype(dtype), requires_grad, device)


def ones(*size, dtype=None, requires_grad=False, device=None) -> Tensor:
    return full(_size(size), 1, _dtype(dtype), requires_grad, device)


def empty(*size, dtype=None, requires_grad=False, device=None) -> Tensor:
    xp = backend.xp_for(device)
    return Tensor(xp.empty(_size(size), dtype=_dtype(dtype)), requires_grad=requires_grad)


def randn(*size, dtype=None, requires_grad=False, device=None) -> Tensor:
    """Samples of N(0, 1) from the device's generator (see ``tinyllm.manual_seed``)."""
    data = backend.randn(_size(size), dtype=_dtype(dtype), device=device)
    return Tensor(data, requires_grad=requires_grad)


def rand(*size, dtype=None, requires_grad=False, device=None) -> Tensor:
    """Samples of U[0, 1) from the device's generator."""
    data = backend.rand(_size(size), dtype=_dtype(dtype), device=device)
    return Tensor(data, requires_grad=requires_grad)


def randint(low, high, size, device=None) -> Tensor:
    """Integers in [low, high), int64."""
    return Tensor(backend.randint(low, high, tuple(size), device=device))


def arange(start, end=None, step=1, dtype=None, device=None) -> Tensor:
    """Like torch.arange: integers give int64, any float argument gives float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if is_int else np.float32
    xp = backend.xp_for(device)
    return Tensor(xp.arange(start, end, step, dtype=np.dtype(dtype)))


def _like(x: Tensor, dtype, device):
    return (x.shape, x.dtype if dtype is None else dtype, device or x.device)


def zeros_like(x, dtype=None, requires_grad=False, device=None) -> Tensor:
    shape, dtype, device = _like(x, dtype, device)
    return zeros(shape, dtype=dtype, requires_grad=requires_grad, device=device)


def ones_like(x, dtype=None, requires_grad=False, device=None) -> Tensor:
    shape, dtype, device = _like(x, dtype, device)
    return ones(shape, dtype=dtype, requires_grad=requires_grad, device=device)


def full_like(x, fill_value, dtype=None, requires_grad=False, device=None) -> Tensor:
    shape, dtype, device = _like(x, dtype, device)
    return full(shape, fill_value, dtype=dtype, requires_grad=requires_grad, device=device)


def randn_like(x, dtype=None, requires_grad=False, device=None) -> Tensor:
    shape, dtype, device = _like(x, dtype, device)
    return randn(shape, dtype=dtype, requires_grad=requires_grad, device=device)


def rand_like(x, dtype=None, requires_grad=False, device=None) -> Tensor:
    shape, dtype, device = _like(x, dtype, device)
    return rand(shape, dtype=dtype, requires_grad=requires_grad, device=device)
