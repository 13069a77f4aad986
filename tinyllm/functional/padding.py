"""Constant padding: grow (or, with negative amounts, crop) the last dims of a tensor.

    pad = (left_last, right_last, left_2nd_last, right_2nd_last, ...)     torch's order: last dim first

    out[..., i] = input[..., i - left]   where that index is inside the input, `value` elsewhere

A negative amount crops instead. The gradient is the transpose of that copy:
grad_input is grad_out cut back to the input's region (the padded cells had no
input behind them; the cropped cells get 0).

    >>> F.pad(tinyllm.tensor([[1, 2], [3, 4]]), (1, 0, 0, 1))   # one column left, one row below
    tensor([[0, 1, 2],
            [0, 3, 4],
            [0, 0, 0]])
"""

from __future__ import annotations

import operator

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional._util import as_tensor

__all__ = ["pad"]


def _regions(shape, pad):
    """(output shape, the input's slices, the output's slices) that hold the copied values."""
    out_shape, src, dst = list(shape), [slice(None)] * len(shape), [slice(None)] * len(shape)
    for k in range(len(pad) // 2):
        d = len(shape) - 1 - k  # pad[0:2] is the last dim, pad[2:4] the one before...
        left, right = pad[2 * k], pad[2 * k + 1]
        if shape[d] + min(left, 0) + min(right, 0) < 0:  # crops come out of the input itself (torch's rule)
            raise ValueError(f"pad: padding ({left}, {right}) crops {-min(left, 0) - min(right, 0)} elements from "
                             f"dim {d} of size {shape[d]}; crop at most its size")
        n = shape[d] + left + right
        out_shape[d] = n
        # input index i lands at i + left; keep the i with 0 <= i + left < n
        lo, hi = max(0, -left), min(shape[d], n - left)
        src[d] = slice(lo, max(lo, hi))
        dst[d] = slice(lo + left, lo + left + max(0, hi - lo))
    return tuple(out_shape), tuple(src), tuple(dst)


class ConstantPad(Function):
    """out = value everywhere, then the input's (possibly cropped) region copied in.

    Example: x = [1, 2, 3], pad (1, -1): out = [0, 1, 2]; grad_x = [g1, g2, 0] for grad_out [g0, g1, g2].
    """

    @staticmethod
    def forward(ctx, x, pad, value):
        xp = backend.of(x)
        out_shape, src, dst = _regions(x.shape, pad)
        out = xp.full(out_shape, value, dtype=x.dtype)
        out[dst] = x[src]
        ctx.shape, ctx.src, ctx.dst = x.shape, src, dst
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # out[dst] = x[src], the rest constant:  ∂out[dst]/∂x[src] = 1, every other ∂/∂x = 0
        grad_x = backend.of(grad_out).zeros(ctx.shape, dtype=grad_out.dtype)
        grad_x[ctx.src] = grad_out[ctx.dst]
        return grad_x


def pad(input, pad, mode="constant", value=None):
    """torch.nn.functional.pad, constant mode: `pad` gives (left, right) amounts, last dim first; < 0 crops.

    value (default 0) fills the new cells. Modes "reflect", "replicate" and "circular" are not implemented.

    >>> F.pad(tinyllm.tensor([1.0, 2.0, 3.0]), (2, -1), value=9.0)
    tensor([9., 9., 1., 2.])
    """
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not implemented, only mode='constant' "
                                  "(negative amounts crop); build other modes from cat and flip")
    x = as_tensor(input, "pad: input")
    try:
        pad = tuple(operator.index(p) for p in pad)
    except TypeError:
        raise TypeError(f"pad: amounts must be integers, got {tuple(pad)!r}") from None
    if len(pad) % 2:
        raise ValueError(f"pad: padding length must be divisible by 2 (a (left, right) pair per dim), got {len(pad)}")
    if len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding length should be at most twice the input's dimension, but got {len(pad)} "
                         f"amounts for an input of dimension {x.ndim}")
    return ConstantPad.apply(x, pad=pad, value=0 if value is None else value)
