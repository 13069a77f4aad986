"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019).

Adam (Kingma & Ba 2015) keeps two running averages per parameter: the mean of
the gradient m and the mean of its square v, and steps by m / sqrt(v), so each
coordinate moves about η regardless of the gradient's scale. AdamW adds weight
decay *outside* that rescaling ("Decoupled Weight Decay Regularization",
ICLR 2019): adding λp to the gradient instead (L2, as SGD does) would be divided
by sqrt(v), decaying the weights with large gradients least.

The update at step t = 1, 2, ..., per parameter p with gradient g
(exactly torch.optim.AdamW):

    p  <-  p (1 - η λ)                     decoupled weight decay
    m  <-  β1 m + (1 - β1) g               first moment
    v  <-  β2 v + (1 - β2) g²              second moment
    m̂  =   m / (1 - β1^t)                  bias correction: m and v start at 0
    v̂  =   v / (1 - β2^t)
    p  <-  p - η m̂ / (sqrt(v̂) + ε)

Example (first step, λ = 0): m̂ = g and v̂ = g², so p moves by η g / (|g| + ε),
i.e. by almost exactly η against the sign of g, whatever g's size:
    p = 1.0, g = 250.0, η = 0.1   ->   p ≈ 0.9
"""

from __future__ import annotations

import math

from tinyllm import backend
from tinyllm.optim.optimizer import Optimizer


class AdamW(Optimizer):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)``, as torch.optim.AdamW."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict) -> None:
        if group["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {group['lr']} (must be >= 0)")
        if group["eps"] < 0.0:
            raise ValueError(f"Invalid epsilon value: {group['eps']} (must be >= 0)")
        beta1, beta2 = group["betas"]
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {beta1} (must be in [0, 1))")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {beta2} (must be in [0, 1))")
        if group["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']} (must be >= 0)")

    def _update(self, param, grad, group, p) -> None:
        xp = backend.of(param)
        s = param.dtype.type  # Python floats -> scalars of the parameter's dtype (float32 stays float32)
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]

        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {
                "step": 0, "exp_avg": xp.zeros_like(param), "exp_avg_sq": xp.zeros_like(param),
            }
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]

        if wd != 0:
            param *= s(1.0 - lr * wd)                           # p = p (1 - η λ)
        m *= s(beta1)                                           # m = β1 m + (1 - β1) g
        m += grad * s(1.0 - beta1)
        v *= s(beta2)                                           # v = β2 v + (1 - β2) g²
        v += grad * grad * s(1.0 - beta2)

        # subtle: the corrections are folded into scalars (as torch does), so that
        #   η m̂ / (sqrt(v̂) + ε) = (η / c1) m / (sqrt(v) / sqrt(c2) + ε)   with ck = 1 - βk^t
        step_size = lr / (1.0 - beta1 ** t)
        denom = xp.sqrt(v) / s(math.sqrt(1.0 - beta2 ** t)) + s(eps)
        param -= m / denom * s(step_size)                       # p = p - η m̂ / (sqrt(v̂) + ε)
