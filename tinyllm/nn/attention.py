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

Positions (GPTConfig.pos_encoding, tinyllm/nn/positional/): "rope" rotates q
and k by their absolute positions before the product; "alibi" adds
-m_h·|i - j| to the scores; the others act on the embeddings, not here.

With a KVCache (tinyllm/inference/kv_cache.py) the T new tokens sit at
positions offset .. offset+T-1 (offset = what the cache holds): their k, v are
stored, and their queries attend over all offset + T cached keys; query i may
see key j when j <= offset + i. A single new token (a decode step, no gradient
wanted) takes ``_decode_step``: the same math on raw arrays, since at one
token the per-op wrappers cost more than the arithmetic.

Long context (§7). ``GPTConfig.attention`` picks the kernel: "full" is
scaled_dot_product_attention with the mask built here; "memory_efficient" and
"flash" (tinyllm/functional/) take the causal mask, the window and ALiBi's
slopes as arguments and never build an (T, S) array. All three compute the same
numbers. ``GPTConfig.window`` = W hides keys more than W - 1 positions back
(Mistral's sliding window); the cache is then a RollingKVCache that keeps the
last W - 1 positions only. Either way the T queries are the last T of the S keys
the cache hands back, so query i sits at key position S - T + i: masks and ALiBi
depend on distances only, not on where the cache starts.

Example (C = 4, nh = 2, nkv = 1, hs = 2): c_attn maps 4 -> 4 + 2·1·2 = 8;
outputs 0-3 are q (heads 0, 1), 4-5 are k, 6-7 are v.
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm import functional as F
from tinyllm.autograd import is_grad_enabled
from tinyllm.functional.softmax import softmax_forward
from tinyllm.inference.decode import group_scores
from tinyllm.nn.config import GPTConfig
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module
from tinyllm.nn.positional import alibi_bias, alibi_slopes, apply_rope, rope_cos_sin
from tinyllm.nn.positional.rope import rotate
from tinyllm.nn.prefix_lm import prefix_lm_mask
from tinyllm.tensor import Tensor


class CausalSelfAttention(Module):
    """(B, T, C) -> (B, T, C): causal multi-head / grouped-query self-attention, fused QKV.

    ``causal = False`` lets every query see every key (the bidirectional ablation of §2).
    ``record = True`` keeps each forward's attention probabilities, a host float32 array
    (B, n_head, T_q, T_k), in ``last_weights`` (see record_attention).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.kv_heads, config.head_dim
        self.dropout = config.dropout
        self.pos_encoding, self.rope_theta = config.pos_encoding, config.rope_theta
        C, hs = config.d_model, config.head_dim
        self.c_attn = Linear(C, C + 2 * self.n_kv_head * hs, bias=config.bias)  # q (C) | k (nkv·hs) | v (nkv·hs)
        self.c_proj = Linear(C, C, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)
        self.causal = config.causal
        self.attention, self.window = config.attention, config.window
        self.alibi_slopes = alibi_slopes(config.n_head) if config.pos_encoding == "alibi" else None  # host (nh,)
        self.record = False
        self.last_weights = None

    def qkv(self, x, offset: int = 0):
        """q (B, nh, T, hs), k, v (B, nkv, T, hs) of x (B, T, C) at positions offset.., RoPE applied."""
        B, T, C = x.shape
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        # subtle: one reshape + one transpose + three slices of the head axis, instead of splitting
        # q, k, v first and reshaping each: fewer ops, and backward writes the three gradients
        # into one (B, nh+2nkv, T, hs) buffer (IndexGrad) before a single copy back to (B, T, ·).
        qkv = self.c_attn(x).reshape(B, T, nh + 2 * nkv, hs).transpose(1, 2)  # (B,T,·) -> (B,nh+2nkv,T,hs)
        q = qkv[:, :nh]                  # (B, nh, T, hs)
        k = qkv[:, nh:nh + nkv]          # (B, nkv, T, hs)
        v = qkv[:, nh + nkv:]            # (B, nkv, T, hs)
        if self.pos_encoding == "rope":
            cos, sin = rope_cos_sin(np.arange(offset, offset + T), hs, self.rope_theta)  # (T, hs) each
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def _mask(self, T: int, S: int, offset: int, device: str, dtype):
        """(attn_mask, is_causal) for T queries at positions offset.. over S keys at 0..S-1; a float mask has `dtype`.

        With a window, keys j <= offset + i - window are hidden too. The last mask made is kept
        (training asks for the same one at every layer and step).
        """
        key = (T, S, offset, device, np.dtype(dtype), self.causal, self.window)
        if self.__dict__.get("_mask_key") == key:
            return self.__dict__["_mask_value"]
        bias = None
        if self.pos_encoding == "alibi":
            bias = alibi_bias(self.n_head, np.arange(offset, offset + T), np.arange(S))  # (nh, T, S)
        # subtle: sdpa's is_causal is aligned top-left (query i sees keys j <= i); with cached keys
        # in front (offset > 0) the diagonal moves right by offset, so an explicit mask is needed,
        # except for one query (decode), which sees every key anyway.
        if self.causal and offset > 0 and T > 1:
            hidden = np.arange(S)[None, :] > (np.arange(T) + offset)[:, None]  # (T, S): key after query
            bias = np.where(hidden, -np.inf, 0.0) if bias is None else np.where(hidden[None], -np.inf, bias)
        if self.causal and self.window is not None and offset + T - 1 - self.window >= 0:  # some key out of reach
            hidden = np.arange(S)[None, :] <= (np.arange(T) + offset - self.window)[:, None]  # (T, S)
            bias = np.where(hidden, -np.inf, 0.0) if bias is None else np.where(hidden[None], -np.inf, bias)
        is_causal = self.causal and offset == 0
        if bias is not None:
            bias = Tensor(backend.asarray(bias, dtype=dtype, device=device))  # the model's float type
        # subtle: kept in __dict__, not as a buffer: derived from the config, never saved or moved
        self.__dict__["_mask_key"], self.__dict__["_mask_value"] = key, (bias, is_causal)
        return bias, is_causal

    def forward(self, x, cache=None, layer: int = 0, prefix_len=None):
        """prefix_len: None, or (B,) ints: row b's first prefix_len[b] positions see one another (nn/prefix_lm.py)."""
        B, T, C = x.shape
        if cache is not None and T == 1 and self.causal and not self.record and not is_grad_enabled() \
                and not (self.training and self.dropout):
            return self._decode_step(x, cache, layer)
        if cache is not None and not self.causal:
            raise ValueError("CausalSelfAttention: a KV cache needs causal attention (causal=True): without the mask "
                             "every token's keys and values depend on the tokens after it, so nothing can be kept")
        offset = 0 if cache is None else cache.length
        q, k, v = self.qkv(x, offset)
        if cache is not None:  # store the new k, v; attend over everything cached (constants: no graph)
            k_all, v_all = cache.write(layer, k.data, v.data)  # (B, nkv, offset+T, hs)
            k, v = Tensor(k_all), Tensor(v_all)
        S = k.shape[2]  # the queries are the last T of the S keys (a rolling cache hands back only recent ones)
        if self.attention != "full" and prefix_len is None and not self.record:
            y = self._tiled(q, k, v, S - T)  # (B, nh, T, hs): no (T, S) array anywhere
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))
        mask, is_causal = self._mask(T, S, S - T, x.device, q.dtype)
        if prefix_len is not None and self.causal:  # a prefix LM: the prefix is read bidirectionally
            mask, is_causal = prefix_lm_mask(prefix_len, T, S, mask, q.dtype, x.device), False
        if self.record:
            self.last_weights = attention_probabilities(q, k, mask, is_causal)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=is_causal, enable_gqa=self.n_kv_head != self.n_head)  # (B,nh,T,hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B,nh,T,hs) -> (B,T,nh,hs) -> (B,T,C): heads side by side
        return self.resid_dropout(self.c_proj(y))

    def _tiled(self, q, k, v, offset: int):
        """memory_efficient_attention or flash_attention of q (B, nh, T, hs) over k, v (B, nkv, S, hs)."""
        if self.training and self.dropout:
            raise ValueError(f"CausalSelfAttention: attention={self.attention!r} applies no dropout to the attention "
                             f"weights; train with dropout=0 or attention='full' (in eval mode all kernels agree)")
        kernel = F.flash_attention if self.attention == "flash" else F.memory_efficient_attention
        return kernel(q, k, v, is_causal=self.causal, window=self.window if self.causal else None,
                      offset=offset if self.causal else 0, alibi_slopes=self.alibi_slopes,
                      enable_gqa=self.n_kv_head != self.n_head)

    def _decode_step(self, x, cache, layer: int):
        """forward for one new token per row over a KV cache, on raw arrays (no graph is wanted).

        The same math as forward, written out: a decode step is ~1M multiply-adds spread over
        ~20 small ops, so the Tensor wrappers around each op are most of its time. The cache
        tests check it against a full recompute (tests/test_kv_cache.py).
        """
        B, _, C = x.shape
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        pos = cache.length  # the new token's position
        qkv = self.c_attn(x).data.reshape(B, nh + 2 * nkv, hs)  # (B, 1, ·) -> (B, heads, hs): T = 1, no transpose
        q, k, v = qkv[:, :nh], qkv[:, nh:nh + nkv], qkv[:, nh + nkv:]
        if self.pos_encoding == "rope":
            cos, sin = (backend.asarray(a, dtype=q.dtype, device=x.device)
                        for a in rope_cos_sin([pos], hs, self.rope_theta))
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)  # (B, h, hs) ⊙ (1, hs), raw arrays
        k_all, v_all = cache.write(layer, k[:, :, None], v[:, :, None])  # (B, nkv, S, hs), the new one included
        if self.window is not None:  # a rolling cache hands back at most window keys; any other, all of them
            k_all, v_all = k_all[:, :, -self.window:], v_all[:, :, -self.window:]
        S, g = k_all.shape[2], nh // nkv
        qg = q.reshape(B, nkv, g, hs) * q.dtype.type(1.0 / np.sqrt(hs))  # the g query heads of each key head
        scores = group_scores(qg, k_all)  # (B, nkv, g, hs), (B, nkv, S, hs) -> (B, nkv, g, S)
        if self.pos_encoding == "alibi":
            bias = alibi_bias(nh, [S - 1], np.arange(S)).reshape(nkv, g, S)  # head h = group·g + i, as in sdpa
            scores += backend.asarray(bias, dtype=scores.dtype, device=x.device)
        P = softmax_forward(scores, axis=-1)  # over the S keys, no mask: the newest query sees them all
        y = (P @ v_all).reshape(B, 1, C)  # (B, nkv, g, S) @ (B, nkv, S, hs) -> (B, 1, nh·hs): heads side by side
        return self.resid_dropout(self.c_proj(Tensor(y)))

    def extra_repr(self) -> str:
        extra = ("" if self.attention == "full" else f", attention={self.attention!r}") + \
            ("" if self.window is None else f", window={self.window}")
        return (f"n_head={self.n_head}, n_kv_head={self.n_kv_head}, head_dim={self.head_dim}, "
                f"pos_encoding={self.pos_encoding!r}{extra}")


def attention_probabilities(q, k, mask=None, is_causal=True) -> np.ndarray:
    """softmax(q kᵀ/√hs + mask) as a host float32 array (B, nh, T, S), computed step by step in float64.

    q (B, nh, T, hs), k (B, nkv, S, hs) (each key head serves nh/nkv query heads); mask None or a
    float (…, T, S) Tensor/array added to the scores; is_causal hides key j > query i (top-left).
    """
    qh = backend.to_numpy(q.data if isinstance(q, Tensor) else q).astype(np.float64)
    kh = backend.to_numpy(k.data if isinstance(k, Tensor) else k).astype(np.float64)
    kh = np.repeat(kh, qh.shape[1] // kh.shape[1], axis=1)  # GQA: (B, nkv, S, hs) -> (B, nh, S, hs)
    scores = qh @ kh.swapaxes(-1, -2) / np.sqrt(qh.shape[-1])  # (B, nh, T, S)
    if mask is not None:
        scores = scores + backend.to_numpy(mask.data if isinstance(mask, Tensor) else mask)
    T, S = scores.shape[-2:]
    if is_causal:
        scores = np.where(np.arange(S)[None, :] > np.arange(T)[:, None], -np.inf, scores)
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)


def record_attention(model, on: bool = True) -> list:
    """Turn recording of attention probabilities on (or off) in every attention module of model.

    Returns the modules in block order; after a forward, each one's ``last_weights`` is
    (B, n_head, T_q, T_k). Works for CausalSelfAttention and lab 4's VariantAttention.
    """
    mods = [m for m in model.modules() if isinstance(m, CausalSelfAttention)]
    if not mods:
        raise ValueError("record_attention: the model has no attention modules")
    for m in mods:
        m.record = on
        m.last_weights = None
    return mods
