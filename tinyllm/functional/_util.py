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




REDUCTIONS = ("mean", "sum", "none")


def reduction_arg(reduction, size_average, reduce, name, allowed=REDUCTIONS):
    """The reduction to apply: `reduction`, or torch's mapping of the deprecated size_average/reduce flags.

    reduce=False -> "none"; else size_average=False -> "sum"; else "mean" (a None flag counts as True).
    """
    if size_average is not None or reduce is not None:
        reduction = "none" if reduce is False else ("sum" if size_average is False else "mean")
    if reduction not in allowed:
        raise ValueError(f"{name}: reduction must be one of {allowed}, got {reduction!r}")
    return reduction


def target_tensor(target, x, name):
    """The target as a Tensor on x's device (host data is moved there; another device's array is an error)."""
    if not isinstance(target, Tensor):
        target = Tensor(backend.asarray(target, device=x.device)) if not backend.is_array(target) else Tensor(target)
    if target.device != x.device:
        raise RuntimeError(f"{name}: target is on {target.device!r} but input is on {x.device!r}; "
                           f"move it with target.to({x.device!r})")
    return target
