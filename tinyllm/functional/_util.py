"""Small helpers shared by the fused ops: argument checks that fail early and clearly."""

from __future__ import annotations

from tinyllm import backend
from tinyllm.tensor import Tensor


def as_tensor(x, name: str) -> Tensor:
    """A Tensor as is; a raw device array as a constant Tensor; anything else is an error."""
    if isinstance(x, Tensor):
        return x
    if backend.is_array(x):
        return Tensor(x)
    raise TypeError(f"{name} must be a tinyllm Tensor, got {type(x).__name__}; wrap data with tinyllm.tensor(...)")


def raw(x):
    """The array inside a Tensor (or the array itself)."""
    return x.data if isinstance(x, Tensor) else x


def axis(dim: int, ndim: int) -> int:
    """A dim in [-ndim, ndim) as a non-negative axis, with PyTorch's error otherwise."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n
