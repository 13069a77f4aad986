"""LayerNorm and RMSNorm: keeping each token's activations at a steady scale.

LayerNorm (Ba et al. 2016; GPT-2) centres and scales over the last dims:

    y = (x - mean(x)) / sqrt(var(x) + eps) · weight + bias      (biased variance)

RMSNorm (Zhang & Sennrich 2019; LLaMA) skips the centring and the bias:

    y = x / sqrt(mean(x²) + eps) · weight

Both normalize over ``normalized_shape`` (the trailing dims, usually (C,)),
as torch.nn.LayerNorm and torch.nn.RMSNorm. Initialization: weight = 1,
bias = 0, so a fresh norm is the plain normalization. The computation is a
fused op with a hand-derived backward (``tinyllm.functional``).

Example:
    >>> ln = LayerNorm(8)
    >>> ln
    LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> RMSNorm(8)                     # eps=None: the dtype's machine epsilon, as torch
    RMSNorm((8,), eps=None, elementwise_affine=True)
"""

from __future__ import annotations

from tinyllm import functional as F
from tinyllm.creation import empty
from tinyllm.nn import init
from tinyllm.nn.module import Module, Parameter


def _shape(normalized_shape) -> tuple:
    if isinstance(normalized_shape, int):
        return (normalized_shape,)
    return tuple(normalized_shape)


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` dims; ``weight`` = 1, ``bias`` = 0 at init.

    ``elementwise_affine=False`` has neither; ``bias=False`` only the weight.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(empty(self.normalized_shape, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(empty(self.normalized_shape, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    """x / sqrt(mean(x²) + eps) · weight over ``normalized_shape``; ``weight`` = 1 at init.

    ``eps=None`` means the machine epsilon of the input's dtype
    (``np.finfo(x.dtype).eps``), as torch.nn.RMSNorm.
    """

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(empty(self.normalized_shape, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
