"""Vectors by length and angle: normalize to unit length, and the cosine of the angle between two.

    normalize(x, p, dim)          = x / max(‖x‖_p, eps)                          along dim
    cosine_similarity(a, b, dim)  = Σ (a / max(‖a‖, eps)) (b / max(‖b‖, eps))  = cos ∠(a, b)

Unit vectors are where dot products become angles: embedding search, contrastive
losses (CLIP, SimCLR), QK-norm. Both are compositions of tinyllm.ops primitives
(norm, clamp, div, sum), so their gradients come from the autograd.

    >>> F.cosine_similarity(tinyllm.tensor([[1.0, 0.0]]), tinyllm.tensor([[1.0, 1.0]]))   # cos 45°
    tensor([0.70710677])
"""

from __future__ import annotations

import numpy as np

from tinyllm import ops
from tinyllm.functional._util import as_tensor
from tinyllm.ops.common import axis

__all__ = ["cosine_similarity", "normalize"]


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """torch.nn.functional.normalize: x / max(‖x‖_p, eps) along `dim` (eps keeps a zero vector 0, not NaN).

    >>> F.normalize(tinyllm.tensor([[3.0, 4.0], [0.0, 0.0]]))
    tensor([[0.6, 0.8],
            [0. , 0. ]])
    """
    if out is not None:
        raise TypeError("normalize: tinyllm has no out= arguments; assign the result instead (y = F.normalize(x))")
    x = as_tensor(input, "normalize: input")
    if x.dtype.kind != "f":
        raise TypeError(f"normalize: input must be floating-point, got dtype {x.dtype}; use input.float()")
    d = axis(dim, x.ndim)
    return x / ops.norm(x, p, d, keepdim=True).clamp(min=eps)  # (..., n, ...) / (..., 1, ...)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """torch.nn.functional.cosine_similarity: Σ_dim (x1/‖x1‖)(x2/‖x2‖), each norm clamped at eps.

    x1 and x2 broadcast together first; `dim` counts in the broadcast shape, and is removed.

    # subtle: each vector is divided by its own norm before the product, as torch does since 1.12:
    # the result stays in [-1, 1] and ‖x1‖·‖x2‖ cannot overflow. (torch clamps the norms under
    # no_grad, so for 0 < ‖x‖ < eps its gradient still goes through the norm; here it stops at the clamp.
    # Below eps the two differ, at exactly 0 they agree.)

    >>> F.cosine_similarity(tinyllm.tensor([[1.0, 0.0], [0.0, 2.0]]), tinyllm.tensor([[2.0, 0.0], [1.0, 0.0]]))
    tensor([1., 0.])
    """
    a, b = as_tensor(x1, "cosine_similarity: x1"), as_tensor(x2, "cosine_similarity: x2")
    for name, t in (("x1", a), ("x2", b)):
        if t.dtype.kind != "f":
            raise TypeError(f"cosine_similarity: {name} must be floating-point, got dtype {t.dtype}; "
                            f"use {name}.float()")
    try:
        shape = tuple(np.broadcast_shapes(tuple(a.shape), tuple(b.shape)))
    except ValueError:
        raise ValueError(f"cosine_similarity: x1 of shape {tuple(a.shape)} and x2 of shape {tuple(b.shape)} "
                         "do not broadcast together") from None
    a, b = a.expand(*shape), b.expand(*shape)
    d = axis(dim, len(shape))
    a_unit = a / ops.norm(a, 2, d, keepdim=True).clamp(min=eps)
    b_unit = b / ops.norm(b, 2, d, keepdim=True).clamp(min=eps)
    return (a_unit * b_unit).sum(d)
