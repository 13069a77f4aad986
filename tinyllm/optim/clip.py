"""Gradient clipping by global norm (Pascanu, Mikolov & Bengio 2013).

One bad batch can produce a gradient many times larger than usual, and a step
along it undoes much of training. Clipping rescales *all* gradients together
(keeping the direction) when their joint norm exceeds a threshold:

    total = || ( ||g_1||_p, ||g_2||_p, ... ) ||_p        (= the p-norm of all grads concatenated)
    c     = min(1, max_norm / (total + 1e-6))
    g_i  <-  c g_i

exactly as ``torch.nn.utils.clip_grad_norm_`` (the 1e-6 guards a zero norm;
with p = inf the norms are max |g|). The returned total is the norm *before*
clipping: worth logging, since spikes in it announce instabilities.

Example: grads (3, 4) and (0,), max_norm = 1:
    total = 5, c = 1 / 5.000001, grads -> (0.6, 0.8) and (0,)

The coefficient is applied as a 0-d array, so the grads never leave their
device (no host synchronization), as in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import backend
from tinyllm.tensor import Tensor


def _norm(xp, x, norm_type: float):
    """The p-norm of an array, flattened, as a 0-d array."""
    if norm_type == math.inf:
        return xp.max(xp.abs(x)) if x.size else xp.zeros((), dtype=x.dtype)
    if norm_type == 2.0:
        return xp.sqrt(xp.sum(x * x))
    if norm_type == 1.0:
        return xp.sum(xp.abs(x))
    s = x.dtype.type
    return xp.sum(xp.abs(x) ** s(norm_type)) ** s(1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the grads of `parameters` in place so their total norm is at most `max_norm`.

    Returns the total norm before clipping, a 0-d Tensor on the grads' device.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    norm_type = float(norm_type)
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        xp = backend.xp_for(None)
        return Tensor(xp.zeros((), dtype=np.float32))
    xp = backend.of(*grads)

    norms = [_norm(xp, g, norm_type) for g in grads]
    dtype = np.result_type(*[n.dtype for n in norms])
    total = _norm(xp, xp.stack([n.astype(dtype) for n in norms]), norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):  # a host sync, only when asked
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is non-finite, so it cannot be "
            "clipped; to skip this check pass error_if_nonfinite=False"
        )

    s = total.dtype.type
    coef = xp.minimum(s(max_norm) / (total + s(1e-6)), s(1.0))  # c = min(1, max_norm / (total + 1e-6))
    for g in grads:
        g *= coef.astype(g.dtype)
    return Tensor(xp.asarray(total))  # subtle: NumPy reductions give host scalars; make it a 0-d array
