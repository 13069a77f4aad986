"""Routing for a mixture of experts: which expert each token goes to, and moving the tokens there and back.

A mixture-of-experts layer (Shazeer et al. 2017) holds E MLPs ("experts") and a
router, and runs each token through only k of them. Token-choice top-k routing
(GShard, Lepikhin et al. 2020; Switch Transformer, Fedus et al. 2021), for N
tokens x (N, C) and router logits l = x W_routerᵀ (N, E):

    p[n]    = softmax(l[n])                     (N, E)   router probabilities
    e[n]    = the k experts of largest p[n]     (N, k)   ties go to the lower expert id
    g[n]    = p[n, e[n]]                        (N, k)   the gates (the layer renormalizes them, nn/moe.py)
    y[n]    = Σ_j g[n, j] · expert_{e[n, j]}(x[n])

The point is to *skip* the work: expert e must compute only the tokens routed to
it. The N·k (token, choice) pairs are "slots", slot s = n·k + j, and:

    route     sort the slots by expert, so that each expert's slots form one block;
              with a capacity c, each expert keeps only its first c slots: first
              choices before second choices, then in token order (GShard's priority);
              the others are dropped (their token gets nothing from that expert)
    dispatch  xs = x[token of each kept slot]               (S, C), S = kept slots, block by block
    experts   ys[block e] = expert_e(xs[block e])           plain dense products, one per expert
    combine   y[n] = Σ_j g[n, j] · ys[slot n·k + j]         (N, C), a dropped slot adds 0

Dispatch is a gather and combine a scatter, so their backwards are a scatter and a
gather; since every slot appears once, both are plain assignments plus a sum over
the k choices (no scatter-add with repeated indices):

    dispatch backward   grad_x[n] = Σ_j grad_xs[slot n·k + j]            (kept slots only)
    combine backward    grad_ys[slot] = g[n, j] · grad_y[n],   grad_g[n, j] = <grad_y[n], ys[slot n·k + j]>

The two auxiliary losses that keep routing healthy:

    balance   E · Σ_e f_e · P_e         Switch Transformer eq. 4: f_e = share of the N·k slots that chose e
                                        (before any drop), P_e = mean_n p[n, e]. 1 when both are uniform,
                                        E when every token picks the same expert. f is a count (no gradient);
                                        the gradient flows through P and pushes probability off busy experts.
    z         mean_n (log Σ_e e^{l[n,e]})²   ST-MoE (Zoph et al. 2022) eq. 5: keeps the router's logits
                                        small, so its softmax stays in a range float32 rounds well.

Example (N = 3 tokens, E = 2 experts, k = 1, capacity 1):
    >>> r = route(np.array([[1], [0], [1]]), n_expert=2, capacity=1)
    >>> r.slots, r.counts, r.routed, r.dropped       # expert 0: slot 1; expert 1: slot 0 (slot 2 is dropped)
    (array([1, 0]), array([1, 1]), array([1, 2]), 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional._util import as_tensor
from tinyllm.tensor import Tensor


def top_k_experts(logits, k: int):
    """(N, k) int64 ids of the k largest logits of each row (N, E), largest first; ties: the lower id first.

    top_k_experts(np.array([[0.1, 2.0, 0.5]]), 2) -> [[1, 2]]
    """
    xp = backend.of(logits)
    return xp.argsort(-logits, axis=-1, kind="stable")[:, :k].astype(np.int64)  # (N, E) -> (N, k)


def capacity_of(n_tokens: int, top_k: int, n_expert: int, capacity_factor: float | None) -> int | None:
    """Slots each expert may keep: ceil(capacity_factor · k·N / E) (Switch eq. 3, GShard), None without a factor.

    capacity_of(4096, 1, 8, 1.25) -> 640: a perfectly balanced batch sends 512 tokens to each expert.
    """
    if capacity_factor is None:
        return None
    return max(1, math.ceil(capacity_factor * top_k * n_tokens / n_expert))


@dataclass(frozen=True)
class Routing:
    """Where the slots of one batch go (see the module docstring); made by ``route``.

    experts (N, k)  the chosen expert ids (device array); slot s = n·k + j is expert experts[n, j]
    slots (S,)      the kept slots, grouped by expert (block e = slots[offsets[e]:offsets[e+1]])
    counts (E,)     host ints: kept slots per expert, the block sizes
    routed (E,)     host ints: slots that chose each expert, before the capacity cut
    capacity        the per-expert limit, or None (nothing dropped)
    """

    experts: object
    slots: object
    counts: np.ndarray
    routed: np.ndarray
    capacity: int | None

    @property
    def n_tokens(self) -> int:
        return self.experts.shape[0]

    @property
    def top_k(self) -> int:
        return self.experts.shape[1]

    @property
    def offsets(self) -> np.ndarray:
        """(E + 1,) host ints: block e of the kept slots is [offsets[e], offsets[e + 1])."""
        return np.concatenate([[0], np.cumsum(self.counts)])

    @property
    def dropped(self) -> int:
        """Slots cut by the capacity (a token with k > 1 may lose only some of its choices)."""
        return int(self.routed.sum() - self.counts.sum())


def route(experts, n_expert: int, capacity: int | None = None) -> Routing:
    """Group the N·k slots of `experts` (N, k) by expert, keeping at most `capacity` per expert.

    Priority within an expert (who stays when it is over capacity): first choices (j = 0) before
    second choices, then the earlier token (n) first, as GShard and Switch dispatch. One host
    transfer: the E block sizes, which the experts' slicing needs.
    """
    xp = backend.of(experts)
    N, k = experts.shape
    e = experts.reshape(-1)  # (N·k,): slot s = n·k + j goes to e[s]
    s = xp.arange(N * k)
    key = (e * k + s % k) * N + s // k  # (expert, choice j, token n), all distinct: the priority order
    order = xp.argsort(key)  # (N·k,) slots grouped by expert, each group in priority order
    routed_d = xp.bincount(e, minlength=n_expert)  # (E,)
    routed = backend.to_numpy(routed_d).astype(np.int64)
    if capacity is None or capacity >= routed.max(initial=0):
        return Routing(experts, order, routed, routed, capacity)
    starts = xp.cumsum(routed_d) - routed_d  # (E,) where each expert's group begins in `order`
    rank = s - starts[e[order]]  # place of each sorted slot within its expert's group
    return Routing(experts, order[rank < capacity], np.minimum(routed, capacity), routed, capacity)


def route_reference(experts: np.ndarray, n_expert: int, capacity: int | None = None) -> list[list[int]]:
    """The kept slots of each expert, as Python lists, by a plain loop (what ``route`` must equal)."""
    N, k = experts.shape
    kept = [[] for _ in range(n_expert)]
    for j in range(k):  # first choices first ...
        for n in range(N):  # ... then token order
            e = int(experts[n, j])
            if capacity is None or len(kept[e]) < capacity:
                kept[e].append(n * k + j)
    return kept


class Dispatch(Function):
    """xs = x[slots // k]: each kept slot's token row, grouped by expert. (N, C) -> (S, C)."""

    @staticmethod
    def forward(ctx, x, slots, k):
        ctx.slots, ctx.k, ctx.N = slots, k, x.shape[0]
        return x[slots // k]  # (S, C)

    @staticmethod
    def backward(ctx, grad_out):
        # xs[i] = x[slots[i] // k]: grad_x[n] = Σ_j (grad_xs of slot n·k + j, when kept); each slot once
        xp = backend.of(grad_out)
        N, k, C = ctx.N, ctx.k, grad_out.shape[1]
        g = xp.zeros((N * k, C), dtype=grad_out.dtype)
        g[ctx.slots] = grad_out  # a plain assignment: the kept slots are distinct
        return g if k == 1 else g.reshape(N, k, C).sum(axis=1), None  # (N·k, C) -> (N, C)


class Combine(Function):
    """y[n] = Σ_j gates[n, j] · ys[slot n·k + j] (a dropped slot adds 0). ys (S, C), gates (N, k) -> (N, C)."""

    @staticmethod
    def forward(ctx, ys, gates, slots):
        xp = backend.of(ys)
        N, k = gates.shape
        C = ys.shape[1]
        full = xp.zeros((N * k, C), dtype=ys.dtype)
        full[slots] = ys  # (N·k, C): each slot's expert output where it was kept, 0 where dropped
        full = full.reshape(N, k, C)
        y = full[:, 0] * gates[:, 0:1]  # (N, C) ⊙ (N, 1)
        for j in range(1, k):
            y += full[:, j] * gates[:, j:j + 1]
        ctx.save_for_backward(full, gates)
        ctx.slots = slots
        return y

    @staticmethod
    def backward(ctx, grad_out):
        # y[n] = Σ_j g[n,j] full[n,j]:  grad_full[n,j] = g[n,j] grad_y[n] (kept slots -> grad_ys),
        #                               grad_g[n,j] = <grad_y[n], full[n,j]>
        full, gates = ctx.saved
        N, k, C = full.shape
        need_ys, need_g, _ = ctx.needs_input_grad
        grad_ys = grad_g = None
        if need_ys:
            grad_full = grad_out[:, None, :] * gates[:, :, None]  # (N, k, C)
            grad_ys = grad_full.reshape(N * k, C)[ctx.slots]  # (S, C)
        if need_g:
            grad_g = (full * grad_out[:, None, :]).sum(axis=-1)  # (N, k)
        return grad_ys, grad_g, None


def dispatch(x, routing: Routing) -> Tensor:
    """The rows of x (N, C) that the kept slots of `routing` need, grouped by expert: (S, C)."""
    x = as_tensor(x, "dispatch: x")
    if x.ndim != 2 or x.shape[0] != routing.n_tokens:
        raise ValueError(f"dispatch: x must be (N, C) with N = {routing.n_tokens} tokens, got {tuple(x.shape)}")
    return Dispatch.apply(x, routing.slots, routing.top_k)


def combine(ys, gates, routing: Routing) -> Tensor:
    """Σ over each token's k choices of gate · expert output: ys (S, C) from the experts, gates (N, k) -> (N, C)."""
    ys, gates = as_tensor(ys, "combine: ys"), as_tensor(gates, "combine: gates")
    S = int(routing.counts.sum())
    if ys.ndim != 2 or ys.shape[0] != S:
        raise ValueError(f"combine: ys must be (S, C) with S = {S} kept slots, got {tuple(ys.shape)}")
    if tuple(gates.shape) != tuple(routing.experts.shape):
        raise ValueError(f"combine: gates must be (N, k) = {tuple(routing.experts.shape)}, got {tuple(gates.shape)}")
    return Combine.apply(ys, gates, routing.slots)


def load_balancing_loss(probs, routing: Routing) -> Tensor:
    """Switch Transformer's auxiliary loss E · Σ_e f_e · P_e (module docstring); probs (N, E) -> ().

    f_e counts every slot that chose e, dropped ones included (it measures the router, not the capacity).
    Example: every token sure of expert 0 (p = [1, 0]) -> 2 · (1·1 + 0·0) = 2; uniform p, even split -> 1.
    """
    probs = as_tensor(probs, "load_balancing_loss: probs")
    E = probs.shape[1]
    f = backend.asarray(routing.routed / max(1, routing.routed.sum()), dtype=probs.dtype,
                        device=backend.device_of(probs.data))  # (E,) a constant: counts have no gradient
    return (probs.mean(dim=0) * Tensor(f)).sum() * E


def router_z_loss(logits) -> Tensor:
    """ST-MoE's router z-loss mean_n (logsumexp_e l[n, e])², logits (N, E) -> ()."""
    logits = as_tensor(logits, "router_z_loss: logits")
    return logits.logsumexp(dim=-1).square().mean()


def router_entropy(logits) -> float:
    """Mean over tokens of the router distribution's entropy, in nats: H = logsumexp(l) - Σ_e p_e l_e.

    0 when every token is sure of one expert, log E when the router is uniform. A host float.
    """
    l_ = logits.data if isinstance(logits, Tensor) else logits
    xp = backend.of(l_)
    m = l_.max(axis=-1, keepdims=True)
    z = xp.exp(l_ - m)
    total = z.sum(axis=-1, keepdims=True)
    p = z / total
    h = (xp.log(total) + m)[:, 0] - (p * l_).sum(axis=-1)  # (N,)
    return float(backend.to_numpy(h.mean()))
