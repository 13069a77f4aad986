"""Activation functions as modules, for ``Sequential`` (as torch.nn.GELU, ...).

Each wraps the function of the same name in ``tinyllm.functional``:

    GELU(approximate="none")   x·Φ(x)                          (Hendrycks & Gimpel 2016)
    ReLU()                     max(x, 0)
    SiLU()                     x·σ(x)                          (a.k.a. swish)
    Tanh()                     tanh x
    GatedActivation("swiglu")  silu(g) ⊙ u, two inputs (gate, up)  (Shazeer 2020; "geglu": gelu(g) ⊙ u)

Example:
    >>> Sequential(Linear(2, 8), GELU(), Linear(8, 1))
"""

from __future__ import annotations

from tinyllm import functional as F
from tinyllm.functional.gated import GATED, gated
from tinyllm.nn.module import Module


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class SiLU(Module):
    def forward(self, x):
        return F.silu(x)


class GatedActivation(Module):
    """forward(gate, up) = act(gate) ⊙ up, the gate of a gated MLP (tinyllm/functional/gated.py)."""

    def __init__(self, name: str = "swiglu"):
        super().__init__()
        if name not in GATED:
            raise ValueError(f"GatedActivation: name must be one of {sorted(GATED)}, got {name!r}")
        self.name = name

    def forward(self, gate, up):
        return gated(self.name, gate, up)

    def extra_repr(self) -> str:
        return f"{self.name!r}"


class Tanh(Module):
    def forward(self, x):
        return x.tanh()
