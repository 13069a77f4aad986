"""What every op file needs: operands made Tensors, dims made axes, shapes made tuples.

    operand(2.0)                -> 2.0             (a Python scalar stays a weak scalar)
    operand([1.0, 2.0], like=x) -> Tensor on x's device, in x's float dtype
    axes(-1, ndim=3)            -> (2,)
    axes(None, ndim=3)          -> (0, 1, 2)
    shape_arg(((2, 3),))        -> (2, 3)          (reshape(x, (2, 3)) and reshape(x, 2, 3) alike)
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.tensor import Tensor


def operand(x, like=None):
    """An operand of a binary op: Tensors pass; Python scalars stay scalars (so float32 stays
    float32 under NumPy 2's promotion); anything else becomes a constant Tensor on the device of
    `like` (the other operand), floats in its float dtype, so `x + [1.0, 2.0]` neither leaves x's
    device nor upcasts it. Arrays stay on their own device."""
    if isinstance(x, Tensor) or type(x) in (int, float, bool):
        return x
    if isinstance(x, np.generic) and not backend.is_array(x):
        return x.item()  # subtle: np.float64(2) is a *strong* float64 in NumPy 2; as a Python float it is weak
    if backend.is_array(x):  # an array stays where it is: mixing devices fails in the op, as in torch
        return Tensor(x)
    if isinstance(like, Tensor):  # lists and nested sequences: constants on the other operand's device
        dtype = like.dtype if np.asarray(x).dtype.kind == "f" and like.dtype.kind == "f" else None
        return Tensor(backend.asarray(x, dtype=dtype, device=like.device))
    return Tensor(backend.asarray(x))


def operands(a, b):
    """Both operands of a binary op, each made a Tensor/scalar relative to the other."""
    return operand(a, b if isinstance(b, Tensor) else None), operand(b, a if isinstance(a, Tensor) else None)


def tensor_arg(x) -> Tensor:
    """A Tensor as is; anything else (scalar, list, array) as a constant Tensor."""
    return x if isinstance(x, Tensor) else Tensor(backend.asarray(x))


def raw(x):
    """The array inside a Tensor; anything else unchanged."""
    return x.data if isinstance(x, Tensor) else x


def axis(dim: int, ndim: int) -> int:
    """A dim in [-ndim, ndim) as a non-negative axis, with PyTorch's error otherwise (a 0-d tensor takes 0, -1)."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def axes(dim, ndim: int) -> tuple:
    """dim (None | int | tuple) -> a tuple of non-negative axes (None: all)."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    out = tuple(axis(d, ndim) for d in dim) if ndim else ()
    if len(set(out)) != len(out):
        raise ValueError(f"dim {dim} names an axis twice")
    return out


def shape_arg(shape) -> tuple:
    """reshape(x, 2, 3) and reshape(x, (2, 3)) alike: the sizes as one tuple."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def count(shape, axes_) -> int:
    """How many elements a reduction over `axes_` of `shape` combines."""
    return int(np.prod([shape[a] for a in axes_]))
