"""Arithmetic on two (or three) tensors: + - * / **, maximum/minimum, where, clamp, comparisons.

Binary ops broadcast as NumPy and PyTorch do; a backward may return a gradient of
the broadcast shape, which the engine sums back to the input's shape
(``tinyllm.autograd.unbroadcast``). Each backward opens with its derivative and
skips the inputs that need no gradient (``ctx.needs_input_grad``).

Comparisons (``lt le gt ge eq ne``) give bool tensors and no graph: a step
function has derivative 0 almost everywhere, so nothing would flow anyway.

    >>> x = tinyllm.tensor([-2.0, 0.5, 3.0], requires_grad=True)
    >>> y = x.clamp(0, 1)              # [0, 0.5, 1]: the gradient passes only where 0 <= x <= 1
    >>> y.sum().backward(); x.grad
    tensor([0., 1., 0.])
"""

from __future__ import annotations

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.ops.common import operand, operands, raw
from tinyllm.tensor import Tensor


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_out):
        # d(a+b)/da = 1, d(a+b)/db = 1
        return grad_out, grad_out


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad_out):
        # d(a-b)/da = 1, d(a-b)/db = -1
        return grad_out, -grad_out


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_out):
        # d(a*b)/da = b, d(a*b)/db = a
        a, b = ctx.saved
        n = ctx.needs_input_grad
        return (grad_out * b if n[0] else None), (grad_out * a if n[1] else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad_out):
        # d(a/b)/da = 1/b, d(a/b)/db = -a/b²
        a, b = ctx.saved
        n = ctx.needs_input_grad
        grad_a = grad_out / b if n[0] else None
        grad_b = -grad_out * a / (b * b) if n[1] else None
        return grad_a, grad_b


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(a^b)/da = b·a^(b-1),  d(a^b)/db = a^b·ln(a)
        a, b, out = ctx.saved
        n = ctx.needs_input_grad
        xp = backend.of(out)
        grad_a = grad_b = None
        if n[0]:
            grad_a = grad_out * b * a ** (b - 1)
            if not isinstance(b, (int, float)):  # subtle: b = 0 gives 0·0^(-1) = nan at a = 0; torch gives 0
                grad_a = xp.where(b == 0, grad_a.dtype.type(0), grad_a)
            elif b == 0:
                grad_a = xp.zeros_like(grad_a)
        if n[1]:
            a = xp.asarray(a, dtype=out.dtype)  # `a` may be a Python scalar (2 ** x); CuPy's where needs arrays
            log_a = xp.log(xp.where(a > 0, a, out.dtype.type(1)))  # subtle: 0 where a <= 0 (PyTorch: NaN for a < 0)
            grad_b = grad_out * out * log_a
        return grad_a, grad_b


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return backend.of(a, b).maximum(a, b)

    @staticmethod
    def backward(ctx, grad_out):
        # the larger input gets the gradient; on a tie each gets half (as PyTorch)
        a, b = ctx.saved
        share_a = ((a > b) + 0.5 * (a == b)).astype(grad_out.dtype)
        return grad_out * share_a, grad_out * (1 - share_a)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return backend.of(a, b).minimum(a, b)

    @staticmethod
    def backward(ctx, grad_out):
        # the smaller input gets the gradient; on a tie each gets half (as PyTorch)
        a, b = ctx.saved
        share_a = ((a < b) + 0.5 * (a == b)).astype(grad_out.dtype)
        return grad_out * share_a, grad_out * (1 - share_a)


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return backend.of(cond).where(cond, a, b)

    @staticmethod
    def backward(ctx, grad_out):
        # where(c, a, b): the gradient goes to a where c is true, to b elsewhere
        (cond,) = ctx.saved
        zero = grad_out.dtype.type(0)
        xp = backend.of(grad_out)
        return None, xp.where(cond, grad_out, zero), xp.where(cond, zero, grad_out)


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        xp = backend.of(x)
        ctx.save_for_backward(x, lo, hi)
        out = x if lo is None else xp.maximum(x, lo)
        out = out if hi is None else xp.minimum(out, hi)
        return out  # NumPy's promotion: a float64 tensor bound makes a float64 result, as in torch

    @staticmethod
    def backward(ctx, grad_out):
        # clamp(x, lo, hi) = x where lo <= x <= hi: there d/dx = 1, else 0. The bound that is
        # returned gets the gradient instead: lo where x < lo (and lo < hi), hi where x > hi or hi < lo.
        # subtle: tensor bounds broadcast against x, so the masks take the output's shape, not x's
        x, lo, hi = ctx.saved
        xp = backend.of(grad_out)
        zero = grad_out.dtype.type(0)
        if lo is None:
            keep = x <= hi
        else:
            keep = x >= lo if hi is None else (x >= lo) & (x <= hi)
        n = ctx.needs_input_grad
        grad_lo = grad_hi = None
        if n[1]:
            to_lo = (x < lo) if hi is None else (x < lo) & (lo < hi)
            grad_lo = xp.where(to_lo, grad_out, zero)
        if n[2]:
            to_hi = (x > hi) if lo is None else (x > hi) | (hi < lo)
            grad_hi = xp.where(to_hi, grad_out, zero)
        return xp.where(keep, grad_out, zero), grad_lo, grad_hi


def add(a, b):
    return Add.apply(*operands(a, b))


def sub(a, b):
    return Sub.apply(*operands(a, b))


def mul(a, b):
    return Mul.apply(*operands(a, b))


def div(a, b):
    return Div.apply(*operands(a, b))


def pow(a, b):  # noqa: A001 - the PyTorch name
    return Pow.apply(*operands(a, b))


def maximum(a, b):
    return Maximum.apply(*operands(a, b))


def minimum(a, b):
    return Minimum.apply(*operands(a, b))


def where(condition, a, b):
    """Elementwise `a if condition else b`; `condition` is a bool array or Tensor (no gradient)."""
    return Where.apply(condition, *operands(a, b))  # a Tensor condition stays one: in-place changes are tracked


def clamp(x, min=None, max=None):  # noqa: A002 - torch's argument names
    """torch.clamp: each element limited to [min, max]; bounds are numbers or tensors (broadcast).

    clamp([-2, 0.5, 3], 0, 1) -> [0, 0.5, 1]
    """
    if min is None and max is None:
        raise ValueError("clamp: give at least one of min and max")
    lo = None if min is None else operand(min, x)
    hi = None if max is None else operand(max, x)
    if isinstance(lo, (int, float)) and x.dtype.kind == "f":
        lo = x.dtype.type(lo)  # subtle: keep x's dtype (np.maximum with a Python float is fine, CuPy's too)
    if isinstance(hi, (int, float)) and x.dtype.kind == "f":
        hi = x.dtype.type(hi)
    return Clamp.apply(x, lo, hi)


clip = clamp


# ----------------------------------------------------------------------------- comparisons (no gradient)


def _compare(a, b, op):
    a, b = operands(a, b)
    return Tensor(op(raw(a), raw(b)))


def lt(a, b):
    """a < b elementwise, a bool tensor."""
    return _compare(a, b, lambda x, y: x < y)


def le(a, b):
    """a <= b elementwise, a bool tensor."""
    return _compare(a, b, lambda x, y: x <= y)


def gt(a, b):
    """a > b elementwise, a bool tensor."""
    return _compare(a, b, lambda x, y: x > y)


def ge(a, b):
    """a >= b elementwise, a bool tensor."""
    return _compare(a, b, lambda x, y: x >= y)


def eq(a, b):
    """a == b elementwise, a bool tensor."""
    return _compare(a, b, lambda x, y: x == y)


def ne(a, b):
    """a != b elementwise, a bool tensor."""
    return _compare(a, b, lambda x, y: x != y)
