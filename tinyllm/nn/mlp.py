"""MLP: the position-wise feed-forward network of a transformer block.

Vaswani et al. 2017 §3.3; GPT-2 names (nanoGPT). The same two-layer network
is applied to every token on its own:

    MLP(x) = act(x W_fc + b_fc) W_proj + b_proj      (C -> d_ff -> C, d_ff = 4C by default)

Attention moves information between tokens; the MLP is where most of the
parameters are (2·C·d_ff of the block's ≈ 12C²) and, on the usual reading,
where a token's vector is looked up against what the model has memorized.

Activations (``GPTConfig.activation``): "gelu" (exact, x·Φ(x), as nanoGPT),
"gelu_tanh" (GPT-2's tanh approximation, what its checkpoint was trained
with), "relu", "silu".

Gated MLPs, "swiglu" and "geglu" (Shazeer 2020; LLaMA's MLP is SwiGLU), add a
third projection, ``c_gate``, whose activation scales c_fc's output elementwise:

    MLP(x) = (act(x W_gate + b_gate) ⊙ (x W_fc + b_fc)) W_proj + b_proj      act = silu | gelu

(LLaMA's names: c_gate = gate_proj, c_fc = up_proj, c_proj = down_proj.) With
three matrices instead of two, d_ff defaults to 2/3 · 4C rounded up to a
multiple of 64 (GPTConfig), so the parameter count stays about 8C².
The gate is one fused op, tinyllm/functional/gated.py.

Example (C = 2, d_ff = 8): (B, T, 2) -> c_fc -> (B, T, 8) -> gelu -> c_proj -> (B, T, 2);
swiglu: c_gate and c_fc (B, T, 2) -> (B, T, 8) each, silu(gate) ⊙ up -> c_proj -> (B, T, 2).
"""

from __future__ import annotations

from tinyllm.nn.activation import GELU, GatedActivation, ReLU, SiLU
from tinyllm.nn.config import ACTIVATIONS, GATED_ACTIVATIONS, GPTConfig
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module


def make_activation(name: str) -> Module:
    """The activation module for a ``GPTConfig.activation`` name."""
    if name == "gelu":
        return GELU()
    if name == "gelu_tanh":
        return GELU(approximate="tanh")
    if name == "relu":
        return ReLU()
    if name == "silu":
        return SiLU()
    if name in GATED_ACTIVATIONS:
        return GatedActivation(name)
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


class MLP(Module):
    """(B, T, C) -> (B, T, C): c_fc (C -> d_ff), activation, c_proj (d_ff -> C), dropout.

    Gated (activation "swiglu", "geglu"): c_gate (C -> d_ff) too, and act(c_gate(x)) ⊙ c_fc(x) before c_proj.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.gated = config.activation in GATED_ACTIVATIONS
        if self.gated:
            self.c_gate = Linear(config.d_model, config.d_ff, bias=config.bias)
        self.c_fc = Linear(config.d_model, config.d_ff, bias=config.bias)
        self.act = make_activation(config.activation)
        self.c_proj = Linear(config.d_ff, config.d_model, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x):
        h = self.act(self.c_gate(x), self.c_fc(x)) if self.gated else self.act(self.c_fc(x))  # (B, T, d_ff)
        return self.dropout(self.c_proj(h))
