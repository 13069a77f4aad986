"""Functions of one tensor, element by element: y_i = f(x_i), so dL/dx_i = dL/dy_i · f'(x_i).

Each op saves whichever of x and y makes f' cheapest (exp saves y, since
(e^x)' = e^x; log saves x, since (ln x)' = 1/x) and its backward opens with f'.

    neg exp log sqrt rsqrt square reciprocal tanh sigmoid relu abs softplus

(sin cos log1p expm1 erf and the steps floor round sign trunc are in special.py.)

    >>> x = tinyllm.tensor([0.0, 2.0], requires_grad=True)
    >>> x.sigmoid().sum().backward(); x.grad        # σ'(x) = σ(x)(1 - σ(x))
    tensor([0.25      , 0.10499359])
"""

from __future__ import annotations

from tinyllm import backend
from tinyllm.function import Function


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad_out):
        # d(-x)/dx = -1
        return -grad_out


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        out = backend.of(x).exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(e^x)/dx = e^x
        (out,) = ctx.saved
        return grad_out * out


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.of(x).log(x)

    @staticmethod
    def backward(ctx, grad_out):
        # d(ln x)/dx = 1/x
        (x,) = ctx.saved
        return grad_out / x


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        out = backend.of(x).sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(√x)/dx = 1/(2√x)
        (out,) = ctx.saved
        return grad_out / (2 * out)


class Rsqrt(Function):
    @staticmethod
    def forward(ctx, x):
        out = 1 / backend.of(x).sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(x^-½)/dx = -½ x^-3/2 = -½ y³
        (out,) = ctx.saved
        return grad_out * (-0.5 * out * out * out)


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_out):
        # d(x²)/dx = 2x
        (x,) = ctx.saved
        return grad_out * (2 * x)


class Reciprocal(Function):
    @staticmethod
    def forward(ctx, x):
        out = 1 / x
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(1/x)/dx = -1/x² = -y²
        (out,) = ctx.saved
        return -grad_out * out * out


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        out = backend.of(x).tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(tanh x)/dx = 1 - tanh²x
        (out,) = ctx.saved
        return grad_out * (1 - out * out)


def sigmoid_array(x):
    """σ(x) = 1/(1 + e^{-x}) on a raw array, written with e^{-|x|} <= 1 so it never overflows."""
    xp = backend.of(x)
    e = xp.exp(-xp.abs(x))  # e^{-|x|} in (0, 1]
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))  # σ(x) for x >= 0; e^x/(1 + e^x) below


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        out = sigmoid_array(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # dσ/dx = σ(1 - σ)
        (out,) = ctx.saved
        return grad_out * out * (1 - out)


class ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        out = backend.of(x).maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(max(x,0))/dx = 1 if x > 0 else 0
        (out,) = ctx.saved
        return grad_out * (out > 0)


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.of(x).abs(x)

    @staticmethod
    def backward(ctx, grad_out):
        # d|x|/dx = sign(x)  (0 at 0, as PyTorch)
        (x,) = ctx.saved
        return grad_out * backend.of(x).sign(x)


class Softplus(Function):
    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = backend.of(x)
        bx = x * beta
        ctx.save_for_backward(bx)
        ctx.threshold = threshold
        # log(1 + e^{bx}) = max(bx, 0) + log1p(e^{-|bx|}): no overflow for large bx
        soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
        return xp.where(bx > threshold, x, soft).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad_out):
        # d/dx (1/β) log(1 + e^{βx}) = σ(βx); 1 where βx > threshold (the linear part)
        (bx,) = ctx.saved
        xp = backend.of(bx)
        return grad_out * xp.where(bx > ctx.threshold, bx.dtype.type(1), sigmoid_array(bx))


def neg(x):
    return Neg.apply(x)


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def rsqrt(x):
    """1/√x."""
    return Rsqrt.apply(x)


def square(x):
    return Square.apply(x)


def reciprocal(x):
    return Reciprocal.apply(x)


def tanh(x):
    return Tanh.apply(x)


def sigmoid(x):
    """σ(x) = 1/(1 + e^{-x}); sigmoid([0.]) -> [0.5]."""
    return Sigmoid.apply(x)


def relu(x):
    return ReLU.apply(x)


def abs(x):  # noqa: A001
    return Abs.apply(x)


def softplus(x, beta=1.0, threshold=20.0):
    """(1/β) log(1 + e^{βx}), and x itself where βx > threshold (torch's numerics)."""
    return Softplus.apply(x, beta=beta, threshold=threshold)
