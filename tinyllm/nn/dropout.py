"""Dropout: zero random activations while training, do nothing at evaluation.

Srivastava et al. 2014. In training mode each element is kept with
probability 1 - p and scaled by 1/(1 - p), so the expected value is
unchanged and evaluation needs no rescaling ("inverted dropout"):

    y = x · m / (1 - p),   m ~ Bernoulli(1 - p)     (training)
    y = x                                           (model.eval())

The mask comes from the generator of the input's device (``tinyllm.manual_seed``).

Example:
    >>> drop = Dropout(0.1)
    >>> drop.eval()(x) is x      # the identity at evaluation
"""

from __future__ import annotations

from tinyllm import functional as F
from tinyllm.nn.module import Module


class Dropout(Module):
    """Zero each element with probability p during training (``module.training``)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace  # accepted for torch compatibility; the result is always a new tensor

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
