"""MoE: a mixture-of-experts feed-forward layer, a drop-in for the MLP (§8).

Shazeer et al. 2017; GShard (Lepikhin et al. 2020); Switch Transformer (Fedus
et al. 2021); ST-MoE (Zoph et al. 2022); Mixtral (Jiang et al. 2024). E experts,
each an MLP of the block's shape (C -> d_ff -> C); a linear router picks k of them
per token; only those k run on it:

    l       = x W_routerᵀ                         (N, E) router logits, no bias (Switch)
    p       = softmax(l)                          (N, E)
    e[n]    = top-k experts of p[n]               (N, k)
    g[n, j] = p[n, e[n, j]] / Σ_i p[n, e[n, i]]   gates; renormalized to sum 1 when k > 1 (Mixtral)
    y[n]    = Σ_j g[n, j] · expert_{e[n, j]}(x[n])

So a token costs k experts' work while the layer holds E experts' parameters:
top-1 of 8 has 8x the MLP's parameters at about the MLP's cost per token.

Gates, k = 1: Switch keeps the raw probability g = p[n, e[n]] (not renormalized),
and so does this layer by default: a single renormalized gate is always 1, and the
LM loss would then send the router no gradient at all (it would learn only from
the balance loss). With k > 1 the gates are renormalized (Mixtral): the output is a
convex mix of the chosen experts whatever the router's mass on the others.
``renormalize=True/False`` overrides either choice.

Capacity (Switch): with ``capacity_factor`` set, in training each expert takes at
most ceil(capacity_factor · k·N / E) of the batch's N·k slots; the overflow is
dropped: that token gets nothing from that expert (in a block, x + 0: it rides
the residual). In eval mode (evaluation, generation) nothing is dropped. Which
slots win is tinyllm/functional/moe.py's priority: first choices, then token order
within the whole batch (rows one after another), so a token's fate can depend on
the other rows, and with k > 1 on later tokens of its own row (chapter 8 measures it).

Losses, read by the GPT after each forward (tinyllm/nn/gpt.py adds them to the loss in training):
    balance_loss   Switch's E · Σ_e f_e · P_e      1 = balanced, E = every token on one expert
    z_loss         ST-MoE's mean (logsumexp l)²
    aux_loss       aux_loss_coef · balance_loss + z_loss_coef · z_loss   (defaults 1e-2 and 1e-3, the papers')

``dense=True`` runs every expert on every token and weights the outputs by the
same gates (zero for experts not chosen): the same output as the sparse path, at
E experts' cost; the reference, and the comparison of the benchmark.

After each call ``stats`` holds a MoEStats: tokens per expert, dropped slots,
the router's entropy.

Example (C = 4, d_ff = 8, E = 4 experts, top-1):
    >>> moe = MoE(4, 8, n_expert=4)
    >>> moe(tinyllm.randn(2, 3, 4)).shape               # (B, T, C) -> (B, T, C), like the MLP
    (2, 3, 4)
    >>> moe.stats.tokens_per_expert                      # the 6 tokens, by expert, e.g.
    [2, 1, 0, 3]
    >>> [n for n, _ in moe.named_parameters()][:3]
    ['router.weight', 'experts.0.c_fc.weight', 'experts.0.c_fc.bias']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinyllm import backend
from tinyllm import functional as F
from tinyllm.creation import zeros
from tinyllm.functional.moe import (
    capacity_of,
    combine,
    dispatch,
    load_balancing_loss,
    route,
    router_entropy,
    router_z_loss,
    top_k_experts,
)
from tinyllm.nn.config import GATED_ACTIVATIONS, GPTConfig
from tinyllm.nn.container import ModuleList
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.linear import Linear
from tinyllm.nn.mlp import make_activation
from tinyllm.nn.module import Module
from tinyllm.ops import cat
from tinyllm.tensor import Tensor


class Expert(Module):
    """One expert: the MLP's c_fc (C -> d_ff), activation, c_proj (d_ff -> C); dropout is the MoE's, once.

    A gated activation ("swiglu", "geglu") adds c_gate (C -> d_ff), as in MLP: act(c_gate(x)) ⊙ c_fc(x).
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu", bias: bool = True):
        super().__init__()
        self.gated = activation in GATED_ACTIVATIONS
        if self.gated:
            self.c_gate = Linear(d_model, d_ff, bias=bias)
        self.c_fc = Linear(d_model, d_ff, bias=bias)
        self.act = make_activation(activation)
        self.c_proj = Linear(d_ff, d_model, bias=bias)

    def forward(self, x):
        h = self.act(self.c_gate(x), self.c_fc(x)) if self.gated else self.act(self.c_fc(x))  # (N, d_ff)
        return self.c_proj(h)


@dataclass(frozen=True)
class MoEStats:
    """What one MoE call did (host numbers, ready for JSON).

    tokens_per_expert  kept slots per expert (tokens each expert computed)
    routed             slots that chose each expert, before the capacity cut
    dropped            slots cut by the capacity (0 in eval mode)
    capacity           the per-expert limit, or None
    router_entropy     mean entropy of the router's distribution, nats (log E = uniform, 0 = certain)
    """

    tokens_per_expert: list
    routed: list
    dropped: int
    capacity: int | None
    router_entropy: float

    def to_dict(self) -> dict:
        return asdict(self)


class MoE(Module):
    """(..., C) -> (..., C): a router and n_expert MLPs, top_k of them per token (module docstring)."""

    def __init__(self, d_model: int, d_ff: int, n_expert: int, top_k: int = 1, activation: str = "gelu",
                 bias: bool = True, capacity_factor: float | None = None, aux_loss_coef: float = 0.01,
                 z_loss_coef: float = 0.001, renormalize: bool | None = None, dense: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        if not (isinstance(n_expert, int) and n_expert >= 1):
            raise ValueError(f"MoE: n_expert must be a positive integer, got {n_expert!r}")
        if not (isinstance(top_k, int) and 1 <= top_k <= n_expert):
            raise ValueError(f"MoE: top_k must be an integer in [1, n_expert={n_expert}], got {top_k!r}")
        if capacity_factor is not None and not capacity_factor > 0:
            raise ValueError(f"MoE: capacity_factor must be > 0 (e.g. 1.25, Switch's) or None, got {capacity_factor!r}")
        self.n_expert, self.top_k, self.capacity_factor = n_expert, top_k, capacity_factor
        self.aux_loss_coef, self.z_loss_coef = aux_loss_coef, z_loss_coef
        self.renormalize = top_k > 1 if renormalize is None else bool(renormalize)
        self.dense = dense
        self.router = Linear(d_model, n_expert, bias=False)
        self.experts = ModuleList([Expert(d_model, d_ff, activation, bias) for _ in range(n_expert)])
        self.dropout = Dropout(dropout)
        self.stats = self.balance_loss = self.z_loss = self.aux_loss = None

    @classmethod
    def from_config(cls, config: GPTConfig) -> MoE:
        """The MoE layer a GPT block of `config` holds (its n_expert, expert_top_k, moe_* fields)."""
        return cls(config.d_model, config.d_ff, config.n_expert, top_k=config.expert_top_k,
                   activation=config.activation, bias=config.bias, capacity_factor=config.expert_capacity_factor,
                   aux_loss_coef=config.moe_aux_loss_coef, z_loss_coef=config.moe_z_loss_coef,
                   dropout=config.dropout)

    def forward(self, x):
        shape, C = x.shape, x.shape[-1]
        xf = x.reshape(-1, C)  # (..., C) -> (N, C): routing is per token
        N, E, k = xf.shape[0], self.n_expert, self.top_k
        logits = self.router(xf)  # (N, E)
        probs = F.softmax(logits, dim=-1)
        experts = top_k_experts(logits.data, k)  # (N, k) ids, a constant: choosing has no gradient
        gates = probs.gather(1, Tensor(experts))  # (N, k)
        if self.renormalize:
            gates = gates / gates.sum(dim=-1, keepdim=True)
        capacity = capacity_of(N, k, E, self.capacity_factor) if self.training else None
        routing = route(experts, E, capacity)
        y = self._dense(xf, gates, routing) if self.dense else self._sparse(xf, gates, routing)
        self.balance_loss = load_balancing_loss(probs, routing)
        self.z_loss = router_z_loss(logits)
        self.aux_loss = self.balance_loss * self.aux_loss_coef + self.z_loss * self.z_loss_coef
        self.stats = MoEStats(routing.counts.tolist(), routing.routed.tolist(), routing.dropped, routing.capacity,
                              router_entropy(logits.data))
        return self.dropout(y.reshape(*shape))  # (N, C) -> (..., C)

    def _sparse(self, xf, gates, routing):
        """Each expert on its own tokens only: dispatch, one dense MLP per block, combine."""
        xs = dispatch(xf, routing)  # (S, C), block e = the tokens of expert e
        off = routing.offsets
        ys = [self.experts[e](xs[off[e]:off[e + 1]]) for e in range(self.n_expert) if off[e + 1] > off[e]]
        ys = ys[0] if len(ys) == 1 else cat(ys, dim=0)  # (S, C)
        return combine(ys, gates, routing)  # (N, C)

    def _dense(self, xf, gates, routing):
        """Every expert on every token, weighted by w (N, E): the gate where chosen (and kept), else 0."""
        xp = backend.of(xf.data)
        N, k = gates.shape
        kept = xp.zeros(N * k, dtype=bool)
        kept[routing.slots] = True  # (N·k,) the slots the capacity kept
        gates = gates * Tensor(kept.reshape(N, k).astype(gates.dtype))
        w = zeros(N, self.n_expert, dtype=gates.dtype, device=xf.device).scatter_add(
            1, Tensor(routing.experts), gates)  # (N, E)
        y = None
        for e, expert in enumerate(self.experts):
            term = expert(xf) * w[:, e:e + 1]  # (N, C) ⊙ (N, 1)
            y = term if y is None else y + term
        return y

    def extra_repr(self) -> str:
        return (f"n_expert={self.n_expert}, top_k={self.top_k}, capacity_factor={self.capacity_factor}, "
                f"renormalize={self.renormalize}, dense={self.dense}")


# ------------------------------------------------------------------ a model's MoE layers


def moe_layers(model) -> list:
    """(name, MoE) for every MoE module of model, in order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MoE)]


def with_moe_losses(model, loss):
    """(the loss to minimize, its parts) after a forward with targets; GPT.forward calls it.

    In training mode: the LM loss plus every MoE layer's aux_loss (Switch adds one per layer); in eval
    mode the LM loss alone, the number that compares with a dense model. ``parts`` (detached 0-d
    Tensors): "lm", and with MoE layers "moe_aux" (the weighted sum training adds), "moe_balance" and
    "moe_z" (the unweighted losses, averaged over the layers: balance 1 = even).
    """
    parts = {"lm": loss.detach()}
    layers = [m for _, m in moe_layers(model) if m.aux_loss is not None]
    if not layers:
        return loss, parts
    aux, balance, z = layers[0].aux_loss, layers[0].balance_loss, layers[0].z_loss
    for m in layers[1:]:
        aux, balance, z = aux + m.aux_loss, balance + m.balance_loss, z + m.z_loss
    parts.update(moe_aux=aux.detach(), moe_balance=(balance / len(layers)).detach(), moe_z=(z / len(layers)).detach())
    return (loss + aux if model.training else loss), parts


def inactive_parameters(model) -> int:
    """Parameters a token does not run through: in each MoE layer, n_expert - top_k experts' worth."""
    return sum((m.n_expert - m.top_k) * sum(p.numel() for p in m.experts[0].parameters()) for _, m in moe_layers(model))


def moe_report(model) -> dict:
    """The last forward's routing, per MoE layer, for a log: {name: stats dict} plus the layers' mean
    balance and z losses ("balance", "z"); {} for a model without MoE layers."""
    layers = [(name, m) for name, m in moe_layers(model) if m.stats is not None]
    if not layers:
        return {}
    losses = [(float(backend.to_numpy(m.balance_loss.data)), float(backend.to_numpy(m.z_loss.data)))
              for _, m in layers]
    return {"balance": float(np.mean([b for b, _ in losses])), "z": float(np.mean([z for _, z in losses])),
            "layers": {name: m.stats.to_dict() for name, m in layers}}
