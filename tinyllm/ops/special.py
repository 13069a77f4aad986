"""Special functions and steps, element by element: y_i = f(x_i), dL/dx_i = dL/dy_i · f'(x_i).

    sin cos               the periodic pair: each one's derivative is (±) the other
    log1p expm1           ln(1 + x) and e^x - 1, accurate for small x (where 1 + x rounds to 1)
    erf                   (2/√π) ∫_0^x e^{-t²} dt, the exact GELU's ingredient (``backend.erf``:
                          NumPy has none, so a Numba kernel on the host, cupyx on a GPU)
    floor round sign trunc    piecewise constant: zero gradient, as in torch

    >>> x = tinyllm.tensor([1e-10, 1.0], dtype=tinyllm.float64, requires_grad=True)
    >>> x.log1p()                            # log(1 + 1e-10) would round 1 + 1e-10 first
    tensor([1.00000000e-10, 6.93147181e-01], dtype=float64, grad_fn=<Log1p>)
"""

from __future__ import annotations

import math

from tinyllm import backend
from tinyllm.function import Function


class Sin(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.of(x).sin(x)

    @staticmethod
    def backward(ctx, grad_out):
        # d(sin x)/dx = cos x
        (x,) = ctx.saved
        return grad_out * backend.of(x).cos(x)


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.of(x).cos(x)

    @staticmethod
    def backward(ctx, grad_out):
        # d(cos x)/dx = -sin x
        (x,) = ctx.saved
        return -grad_out * backend.of(x).sin(x)


class Log1p(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.of(x).log1p(x)

    @staticmethod
    def backward(ctx, grad_out):
        # d ln(1 + x)/dx = 1/(1 + x)
        (x,) = ctx.saved
        return grad_out / (1 + x)


class Expm1(Function):
    @staticmethod
    def forward(ctx, x):
        out = backend.of(x).expm1(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(e^x - 1)/dx = e^x = y + 1
        (out,) = ctx.saved
        return grad_out * (out + 1)


class Erf(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.erf(x)

    @staticmethod
    def backward(ctx, grad_out):
        # d erf(x)/dx = (2/√π) e^{-x²}
        (x,) = ctx.saved
        return grad_out * (2 / math.sqrt(math.pi)) * backend.of(x).exp(-x * x)


class Step(Function):
    """floor, round, sign, trunc: piecewise constant, so the gradient is 0 (as torch gives)."""

    @staticmethod
    def forward(ctx, x, name):
        return getattr(backend.of(x), name)(x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad_out):
        # d(step(x))/dx = 0 wherever it is defined
        return backend.of(grad_out).zeros_like(grad_out)


def sin(x):
    return Sin.apply(x)


def cos(x):
    return Cos.apply(x)


def log1p(x):
    """ln(1 + x), accurate for small x."""
    return Log1p.apply(x)


def expm1(x):
    """e^x - 1, accurate for small x."""
    return Expm1.apply(x)


def erf(x):
    return Erf.apply(x)


def floor(x):
    return Step.apply(x, name="floor")


def round(x):  # noqa: A001 - the PyTorch name (ties to even, as torch and NumPy)
    return Step.apply(x, name="round")


def sign(x):
    return Step.apply(x, name="sign")


def trunc(x):
    return Step.apply(x, name="trunc")
