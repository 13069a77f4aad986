"""Linear: the affine map y = x Wᵀ + b, the layer a transformer is mostly made of.

Every projection in a GPT (q, k, v, the attention output, both MLP matrices,
the language-model head) is a Linear. The weight is stored as (out_features,
in_features), PyTorch's layout, so checkpoints load without transposes.

Initialization (PyTorch's default, Linear.reset_parameters): with
fan_in = in_features,

    W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))     kaiming_uniform_(W, a=sqrt(5))
    b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))

so each output starts with variance about 1/3 of its inputs'. GPT-style
models re-initialize with N(0, 0.02²) instead (see tinyllm.nn.init).

Example:
    >>> fc = Linear(4, 8)
    >>> fc(tinyllm.randn(2, 4)).shape        # (B, in) -> (B, out)
    (2, 8)
    >>> fc
    Linear(in_features=4, out_features=8, bias=True)
"""

from __future__ import annotations

import math

from tinyllm import functional as F
from tinyllm.creation import empty
from tinyllm.nn import init
from tinyllm.nn.module import Module, Parameter


class Linear(Module):
    """y = x @ weight.T + bias, over the last dimension: (*, in_features) -> (*, out_features).

    Parameters: ``weight`` (out_features, in_features), ``bias`` (out_features,)
    or None when ``bias=False``. Created on ``device`` (default: the default
    device) in ``dtype`` (default float32).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: W and b ~ U(-1/sqrt(in_features), 1/sqrt(in_features))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # bound = gain·sqrt(3/fan_in) = 1/sqrt(fan_in)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
