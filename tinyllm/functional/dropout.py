"""Dropout (Srivastava et al. 2014): zero each activation with probability p while training.

    y = x ⊙ m / (1 - p),    m_i ~ Bernoulli(1 - p)

The 1/(1 - p) ("inverted dropout") keeps E[y] = x, so at evaluation time the
layer is simply the identity. The mask is drawn from the input's device
generator (``tinyllm.backend.rand``), so ``tinyllm.manual_seed`` makes it
reproducible; only the mask (1 byte per element) is kept for backward.
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional._util import as_tensor


def dropout_mask(shape, p, device):
    """A fresh keep-mask: True with probability 1 - p (uniform u >= p)."""
    return backend.rand(shape, dtype=np.float32, device=device) >= p


class Dropout(Function):
    """Keep each element with probability 1 - p and scale the survivors by 1/(1 - p).

    Example: x = [1, 2, 3, 4], p = 0.5, mask [1, 0, 1, 0] -> y = [2, 0, 6, 0];
    grad_x = grad_out ⊙ [2, 0, 2, 0].
    """

    @staticmethod
    def forward(ctx, x, p):
        xp = backend.of(x)
        if p == 1:  # everything dropped (avoid 0 · inf)
            keep, scale = xp.zeros(x.shape, dtype=bool), 0.0
        else:
            keep, scale = dropout_mask(x.shape, p, backend.device_of(x)), 1.0 / (1.0 - p)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        y = x * keep
        y *= scale
        return y

    @staticmethod
    def backward(ctx, grad_out):
        # y = x · m / (1-p):  ∂y/∂x = m / (1-p)
        (keep,) = ctx.saved
        grad_x = grad_out * keep
        grad_x *= ctx.scale
        return grad_x


def dropout(input, p=0.5, training=True, inplace=False):
    """torch.nn.functional.dropout: zero elements with probability p, scale the rest by 1/(1-p).

    training=False or p=0 returns the input unchanged. `inplace` is accepted for
    compatibility; the result is always a new tensor.

    >>> tinyllm.manual_seed(0)
    >>> F.dropout(tinyllm.ones(6), p=0.5)       # each element 0 or 1/(1-p) = 2
    tensor([2., 2., 2., 0., 0., 0.])
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = as_tensor(input, "dropout: input")
    if not training or p == 0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: input must be floating-point, got dtype {x.dtype}")
    return Dropout.apply(x, p=float(p))
