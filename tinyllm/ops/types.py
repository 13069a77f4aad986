"""Casts and device moves: the identity on values, so the gradient is cast or moved back.

    >>> x = tinyllm.randn(3, requires_grad=True)
    >>> y = x.double()               # float64 values; y's gradient is cast back to float32 for x
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.function import Function


class AsType(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad_out):
        # a cast is the identity on values: cast the gradient back
        return grad_out.astype(ctx.dtype)


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        ctx.device = backend.device_of(x)
        return backend.asarray(x, device=device)

    @staticmethod
    def backward(ctx, grad_out):
        # a copy between devices is the identity: copy the gradient back
        return backend.asarray(grad_out, device=ctx.device)


def astype(x, dtype):
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    return AsType.apply(x, dtype=dtype)


def to_device(x, device):
    return ToDevice.apply(x, device=device)
