"""CausalSelfAttention: multi-head (and grouped-query) self-attention of a decoder.

Vaswani et al. 2017, "Attention Is All You Need" §3.2; GPT-2's layout (nanoGPT).
Each token's vector x (C = d_model) is projected to a query, a key and a value
per head; each head attends over the tokens at or before its position; the
heads' outputs are concatenated and projected back:

    [q | k | v] = x W_attn + b_attn                    one fused product ("c_attn")
    head_h      = softmax(q_h k_gᵀ / √hs + causal) v_g  g = h // (nh / nkv)
    y           = concat(head_1 .. head_nh) W_proj + b_proj  ("c_proj")

With nkv = nh this is multi-head attention; with nkv < nh several query heads
share one key/value head (grouped-query attention, Ainslie et al. 2023; nkv = 1
is multi-query, Shazeer 2019), so the fused projection has
C + 2·nkv·hs outputs instead of 3C, and the KV cache shrinks by nh / nkv.

The layout of c_attn's outputs is GPT-2's: all query heads, then all key
heads, then all value heads, each head a run of hs numbers, so GPT-2's
checkpoint loads without reordering.

Example (C = 4, nh = 2, nkv = 1, hs = 2): c_attn maps 4 -> 4 + 2·1·2 = 8;
outputs 0-3 are q (heads 0, 1), 4-5 are k, 6-7 are v.
"""

from __future__ import annotations

from tinyllm import functional as F
from tinyllm.nn.config import GPTConfig
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module


class CausalSelfAttention(Module):
    """(B, T, C) -> (B, T, C): causal multi-head / grouped-query self-attention, fused QKV."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.kv_heads, config.head_dim
        self.dropout = config.dropout
        C, hs = config.d_model, config.head_dim
        self.c_attn = Linear(C, C + 2 * self.n_kv_head * hs, bias=config.bias)  # q (C) | k (nkv·hs) | v (nkv·hs)
        self.c_proj = Linear(C, C, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)

    def forward(self, x):
        B, T, C = x.shape
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        # subtle: one reshape + one transpose + three slices of the head axis, instead of splitting
        # q, k, v first and reshaping each: fewer ops, and backward writes the three gradients
        # into one (B, nh+2nkv, T, hs) buffer (IndexGrad) before a single copy back to (B, T, ·).
        qkv = self.c_attn(x).reshape(B, T, nh + 2 * nkv, hs).transpose(1, 2)  # (B,T,·) -> (B,nh+2nkv,T,hs)
        q = qkv[:, :nh]                  # (B, nh, T, hs)
        k = qkv[:, nh:nh + nkv]          # (B, nkv, T, hs)
        v = qkv[:, nh + nkv:]            # (B, nkv, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True, enable_gqa=nkv != nh)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B,nh,T,hs) -> (B,T,nh,hs) -> (B,T,C): heads side by side
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self) -> str:
        return f"n_head={self.n_head}, n_kv_head={self.n_kv_head}, head_dim={self.head_dim}"
