"""Attention with one thing changed: Q/K/V ablations for the transformer lab (§4).

Each variant is CausalSelfAttention (same parameters, same names, same fused
c_attn) with a single line of the computation changed, so a model can swap
them in and train on an equal budget. Per head, with x the block's normalized
input (B, T, C) and q, k, v its projections (B, nh, T, hs):

    baseline    S = q kᵀ / √hs                       GPT-2 (Vaswani et al. 2017, eq. 1)
    swap_qk     S = k qᵀ / √hs                       the two projections trade roles
    tie_qk      S = q qᵀ / √hs                       one projection for both: S is symmetric
    identity_v  out = P x_h                          V frozen to the identity: a head moves its
                                                     own hs channels of x, unmixed
    zero_q      S = 0                                every query the same: P is uniform over the
                                                     causal window (a running mean of v)
    shuffle_k   S[i, j] = q_i · k_{π_i(j)} / √hs     each query's keys permuted at random within
                                                     its causal window, afresh every call
    no_scale    S = q kᵀ                             no 1/√hs

and then, always, P = softmax(S + causal mask) row by row, out = P v, y = c_proj(heads side by side).

Example: in a (T = 3) causal window, zero_q gives the weights
    [[1, 0, 0], [1/2, 1/2, 0], [1/3, 1/3, 1/3]]
whatever the input; tie_qk gives S = Sᵀ before the mask.

``use_variant(model, "tie_qk")`` swaps the attention of every block of a GPT
for the variant, keeping its weights; ``record_attention(model)`` makes each
attention keep its last weights P (for entropy plots).
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import backend
from tinyllm import functional as F
from tinyllm.creation import zeros_like
from tinyllm.nn import attention
from tinyllm.nn.attention import CausalSelfAttention
from tinyllm.nn.config import GPTConfig

VARIANTS = {
    "baseline": "S = q kᵀ/√hs (GPT-2)",
    "swap_qk": "S = k qᵀ/√hs: Q and K trade roles",
    "tie_qk": "S = q qᵀ/√hs: one projection for Q and K",
    "identity_v": "V = x: the value projection frozen to the identity",
    "zero_q": "q = 0: uniform attention over the causal window",
    "shuffle_k": "keys permuted at random within each causal window",
    "no_scale": "S = q kᵀ: no 1/√hs",
}


class VariantAttention(CausalSelfAttention):
    """CausalSelfAttention with one change (see the module docstring); ``variant`` names it.

    ``seed`` (an int or a tuple of ints) seeds shuffle_k's permutations. With ``record = True`` the forward
    keeps the attention weights P (B, nh, T, T) of its last call, as a host array, in ``last_weights``.
    """

    def __init__(self, config: GPTConfig, variant: str = "baseline", seed=0):
        super().__init__(config)
        if variant not in VARIANTS:
            raise ValueError(f"unknown attention variant {variant!r}; choose from {list(VARIANTS)}")
        if self.n_kv_head != self.n_head:
            raise ValueError(f"VariantAttention needs n_kv_head == n_head (multi-head attention), got "
                             f"n_head={self.n_head}, n_kv_head={self.n_kv_head}; set n_kv_head=None")
        if self.dropout:
            raise ValueError(f"VariantAttention has no attention dropout; build it with dropout=0, got {self.dropout}")
        if config.pos_encoding in ("rope", "alibi"):
            raise ValueError(f"VariantAttention changes q, k, v before any position is applied inside attention; "
                             f"use a model with pos_encoding 'learned', 'sinusoidal' or 'none', got "
                             f"{config.pos_encoding!r}")
        self.variant = variant
        self.rng = np.random.default_rng(list(seed) if isinstance(seed, tuple) else seed)

    @property
    def scale(self) -> float:
        return 1.0 if self.variant == "no_scale" else 1.0 / math.sqrt(self.head_dim)

    def qkv(self, x, offset: int = 0):
        """The variant's q, k, v for x (B, T, C), each (B, nh, T, hs) (no RoPE: see __init__)."""
        B, T, C = x.shape
        nh, hs = self.n_head, self.head_dim
        fused = self.c_attn(x).reshape(B, T, 3 * nh, hs).transpose(1, 2)  # (B,T,3C) -> (B,3nh,T,hs)
        q, k, v = fused[:, :nh], fused[:, nh:2 * nh], fused[:, 2 * nh:]   # (B, nh, T, hs) each
        if self.variant == "swap_qk":
            q, k = k, q
        elif self.variant == "tie_qk":
            k = q
        elif self.variant == "zero_q":
            q = zeros_like(q)
        elif self.variant == "identity_v":
            v = x.reshape(B, T, nh, hs).transpose(1, 2)  # (B,T,C) -> (B,nh,T,hs): head h gets channels h·hs..(h+1)·hs
        return q, k, v

    def scores(self, q, k):
        """S (B, nh, T, T) before the causal mask; shuffle_k draws its permutations here."""
        S = (q @ k.transpose(-2, -1)) * self.scale  # (B,nh,T,hs) @ (B,nh,hs,T) -> (B,nh,T,T)
        if self.variant == "shuffle_k":
            B, nh, T, _ = S.shape
            xp = backend.of(S.data)
            perm = backend.asarray(causal_permutations(self.rng, (B, nh), T), device=backend.device_of(S.data))
            b, h, i = (xp.arange(n).reshape(shape) for n, shape in
                       ((B, (B, 1, 1, 1)), (nh, (1, nh, 1, 1)), (T, (1, 1, T, 1))))
            S = S[b, h, i, perm]  # S[b, h, i, j] <- S[b, h, i, π_i(j)]: one gather, its backward a scatter-add
        return S

    def weights(self, q, k):
        """P = softmax(S + causal mask) (B, nh, T, T): row i sums to 1 over j <= i."""
        S = self.scores(q, k)
        T = S.shape[-1]
        xp = backend.of(S.data)
        future = xp.triu(xp.ones((T, T), dtype=bool), k=1)  # (T, T), True where j > i
        return F.softmax(S.masked_fill(future, -math.inf), dim=-1)

    def forward(self, x, cache=None, layer: int = 0):
        if cache is not None:
            raise ValueError("VariantAttention does not take a KV cache (a lab-4 experiment); generate with "
                             "use_cache=False")
        B, T, C = x.shape
        q, k, v = self.qkv(x)
        if self.variant == "shuffle_k" or self.record:  # the steps one by one, P in hand
            P = self.weights(q, k)
            if self.record:
                self.last_weights = backend.to_numpy(P.data)
            y = P @ v  # (B,nh,T,T) @ (B,nh,T,hs) -> (B,nh,T,hs)
        else:  # the same math, fused
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B,nh,T,hs) -> (B,T,nh,hs) -> (B,T,C)
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, " + super().extra_repr()


def causal_permutations(rng: np.random.Generator, lead: tuple, T: int) -> np.ndarray:
    """int64 (*lead, T, T): row i is a random permutation of 0..i followed by i+1..T-1 in order.

    With T = 3 a draw might be [[0, 1, 2], [1, 0, 2], [2, 0, 1]].
    """
    # subtle: each query's keys are shuffled only among the keys it may see (j <= i). One
    # permutation of all T positions would hand query i the key of a later token: the
    # model would read the future through its attention weights and "win" by cheating.
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    keys = np.where(j <= i, rng.random((*lead, T, T)), 2.0 + j)  # random inside the window, ordered after it
    return np.argsort(keys, axis=-1, kind="stable")


def use_variant(model, variant: str, seed: int = 0):
    """Replace the attention of every block of a GPT by VariantAttention(variant), keeping its weights.

    Returns the model. Block l's permutations (shuffle_k) are seeded by (seed, l).
    The new attention has the same parameter names, so state dicts of the model load either way.
    """
    for layer, block in enumerate(model.transformer.h):
        old = block.attn
        new = VariantAttention(model.config, variant, seed=(seed, layer))
        new.load_state_dict(old.state_dict())
        new.train(old.training)
        block.attn = new
    return model


def record_attention(model, on: bool = True) -> list:
    """Turn weight recording on (or off) in every VariantAttention of `model`; returns them, block order."""
    if not any(isinstance(m, VariantAttention) for m in model.modules()):
        raise ValueError("record_attention: the model has no VariantAttention; call use_variant(model, ...) first")
    return attention.record_attention(model, on)
