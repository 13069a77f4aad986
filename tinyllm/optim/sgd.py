"""SGD: stochastic gradient descent, with momentum and Nesterov momentum.

The update, per parameter p with gradient g, learning rate η, momentum μ,
dampening τ and weight decay λ (exactly torch.optim.SGD):

    g  <-  g + λ p                        (L2 weight decay, coupled to the gradient)
    b  <-  g                              at the first step
    b  <-  μ b + (1 - τ) g                after that  (the momentum buffer)
    d  <-  g + μ b   if nesterov  else  b
    p  <-  p - η d

With μ = 0 this is plain gradient descent, p <- p - η g. Momentum is Polyak's
heavy ball (1964); the Nesterov form is the one of Sutskever et al. 2013,
"On the importance of initialization and momentum in deep learning".

Example (one step of plain SGD on L = p²/2, so g = p):
    p = 1.0, η = 0.1   ->   p = 1.0 - 0.1 * 1.0 = 0.9
"""

from __future__ import annotations

from tinyllm.optim.optimizer import Optimizer


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False)``, as torch.optim.SGD."""

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict) -> None:
        if group["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {group['lr']} (must be >= 0)")
        if group["momentum"] < 0.0:
            raise ValueError(f"Invalid momentum value: {group['momentum']} (must be >= 0)")
        if group["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']} (must be >= 0)")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")

    def _update(self, param, grad, group, p) -> None:
        s = param.dtype.type  # Python floats -> scalars of the parameter's dtype (float32 stays float32)
        lr, mu, tau, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]

        d = grad
        if wd != 0:
            d = d + param * s(wd)                                # g + λ p
        if mu != 0:
            state = self.state.setdefault(p, {})
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()        # b = g at the first step
            else:
                buf *= s(mu)                                     # b = μ b + (1 - τ) g
                buf += d * s(1.0 - tau)
            d = d + buf * s(mu) if group["nesterov"] else buf
        param -= d * s(lr)                                       # p = p - η d
