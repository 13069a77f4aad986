"""Weight initialization: filling Parameters with random numbers of the right scale.

Training starts from random weights, and their scale matters: if each layer
multiplies the size of its activations by more (or less) than 1, a deep
network's signal explodes (or vanishes) before the first step. The classic
recipes choose the spread of the weights from the fan-in / fan-out of a layer
(the number of inputs / outputs each unit sees):

    Glorot & Bengio 2010 ("xavier"):  Var(w) = gain² · 2 / (fan_in + fan_out)
    He et al. 2015 ("kaiming"):       Var(w) = gain² / fan      (fan = fan_in by default)

A uniform U(-b, b) has variance b²/3, hence the bounds b = sqrt(3·Var) below.
GPT-style models use a plain N(0, 0.02²) instead (``normal_(w, std=0.02)``).

Every function works in place, under ``no_grad``, on the tensor's own device
and dtype, and returns the tensor (PyTorch names, trailing underscore). The
random numbers come from ``tinyllm.backend``'s per-device generators, so
``tinyllm.manual_seed(s)`` makes them repeatable, and 'cpu' and 'strict'
draw the same numbers:

    >>> w = Parameter(tinyllm.empty(256, 64))
    >>> kaiming_uniform_(w, a=math.sqrt(5))   # torch.nn.Linear's default: U(-1/8, 1/8)
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import backend
from tinyllm.tensor import Tensor, no_grad


def _sample_dtype(tensor: Tensor):
    # the generators draw float32 or float64; other floats (float16) are cast on assignment
    return np.float64 if tensor.dtype == np.float64 else np.float32


@no_grad()
def _fill(tensor: Tensor, values) -> Tensor:
    tensor.data[...] = values  # in place: the Parameter keeps its array, dtype and device
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with samples of U(a, b)."""
    u = backend.rand(tensor.shape, dtype=_sample_dtype(tensor), device=tensor.device)
    return _fill(tensor, a + (b - a) * u)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples of N(mean, std²)."""
    z = backend.randn(tensor.shape, dtype=_sample_dtype(tensor), device=tensor.device)
    return _fill(tensor, mean + std * z)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0) -> Tensor:
    """Fill with N(mean, std²) samples restricted to [a, b] (absolute bounds, as torch).

    By rejection: draw, and redraw the samples that fell outside, until none do.
    """
    if not a < b:
        raise ValueError(f"trunc_normal_ needs a < b, got a={a}, b={b}")
    dtype, device = _sample_dtype(tensor), tensor.device
    xp = backend.xp_for(device)
    out = mean + std * backend.randn(tensor.shape, dtype=dtype, device=device)
    for _ in range(1000):
        bad = (out < a) | (out > b)
        if not bool(bad.any()):
            break
        out = xp.where(bad, mean + std * backend.randn(tensor.shape, dtype=dtype, device=device), out)
    else:
        raise ValueError(f"trunc_normal_: [{a}, {b}] holds almost none of N({mean}, {std}²); check the bounds")
    return _fill(tensor, out)


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activations' variance at 1 through a nonlinearity (torch's table).

    calculate_gain("relu") -> sqrt(2): ReLU zeroes half the signal, so the weights make up for it.
    """
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel): (in·k, out·k)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """U(-b, b) with b = gain · sqrt(6 / (fan_in + fan_out))   (Glorot & Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """N(0, std²) with std = gain · sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """U(-b, b) with b = gain · sqrt(3 / fan)   (He et al. 2015).

    With a=sqrt(5) (leaky_relu gain sqrt(1/3)) this is b = 1/sqrt(fan_in),
    torch.nn.Linear's default.
    """
    gain = calculate_gain(nonlinearity, a)
    bound = gain * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """N(0, std²) with std = gain / sqrt(fan)."""
    gain = calculate_gain(nonlinearity, a)
    return normal_(tensor, 0.0, gain / math.sqrt(_fan(tensor, mode)))
