"""fake_quantize: round to a grid in the forward pass, let the gradient through in the backward.

Quantization-aware training (Jacob et al. 2018; Bengio et al. 2013 for the estimator) trains a
model while its weights are seen through the quantizer that will store them:

    q   = clamp(round(x / s) + z, q_min, q_max)         the integer each x would be stored as
    out = (q - z) · s                                   the number it stands for

round has derivative 0 almost everywhere, which would stop all learning. The straight-through
estimator (STE) pretends the rounding is the identity, so the gradient passes unchanged where x
lies inside the grid and is zero where the clamp cut it (as torch.fake_quantize_per_channel_affine):

    grad_x = grad_out · 1[q_min <= round(x / s) + z <= q_max]

s and z broadcast against x: one per tensor, per row (x (out, in), s (out, 1)) or per group of a
row (reshape x to (out, groups, g) and give s (out, groups, 1)). They are constants here (no
gradient); QAT recomputes them from the weights at every step (tinyllm/quant/qat.py).
round is half to even (np.rint), as torch's; the result equals tinyllm.quant.intq's
dequantize(quantize(x)) when s and z are that format's.

Example:
    >>> F.fake_quantize(tinyllm.tensor([0.26, -1.0, 3.0]), scale=0.5, zero_point=0, quant_min=-2, quant_max=1)
    tensor([ 0.5, -1. ,  0.5])          # 0.26/0.5 -> 1 (0.52 rounds to 1); 3.0/0.5 = 6 is clamped to 1
    # and the gradient is [1, 1, 0]: the clamped one gets none
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional._util import as_tensor, raw


class FakeQuantize(Function):
    @staticmethod
    def forward(ctx, x, scale, zero_point, quant_min, quant_max):
        xp = backend.of(x)
        q = xp.rint(x / scale) + zero_point
        inside = (q >= quant_min) & (q <= quant_max)
        ctx.save_for_backward(inside)
        return ((xp.clip(q, quant_min, quant_max) - zero_point) * scale).astype(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        # straight-through: d out / d x = 1 where x is inside the grid, 0 where the clamp cut it
        (inside,) = ctx.saved
        return grad_out * inside, None, None, None, None


def fake_quantize(x, scale, zero_point=0, quant_min: int = -128, quant_max: int = 127):
    """x rounded to the grid (q - z) · s, q = clamp(round(x/s) + z, quant_min, quant_max); STE gradient.

    scale, zero_point: numbers or arrays that broadcast against x (the module docstring);
    scale must be > 0 everywhere.
    """
    x = as_tensor(x, "fake_quantize: x")
    if quant_min >= quant_max:
        raise ValueError(f"fake_quantize: quant_min={quant_min} must be < quant_max={quant_max}")
    s, z = raw(scale), raw(zero_point)
    if backend.is_array(s):
        if not bool((s > 0).all()):
            raise ValueError("fake_quantize: every scale must be > 0 (a scale of 0 has no grid; use 1 for an "
                             "all-zero row, as tinyllm.quant.intq does)")
    elif not s > 0:
        raise ValueError(f"fake_quantize: scale must be > 0, got {s}")
    if backend.is_array(s):
        s = s.astype(x.dtype)
    if backend.is_array(z):
        z = z.astype(x.dtype)
    else:
        z = np.dtype(x.dtype).type(z)
    return FakeQuantize.apply(x, s, z, quant_min, quant_max)
