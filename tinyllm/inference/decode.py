"""Decoder: a GPT's decode step written out on raw arrays, one token per sequence (§6).

With a KV cache a decode step does little arithmetic: one token's vector
through L blocks is ~12·L·C² multiply-adds, plus C·V for the LM head and
2·C·t for attention over the t cached positions. A 2-layer model of width 64
does ~0.2 M of them: microseconds. The module path, ``model(ids, cache=cache)``,
pays for every Linear, norm, activation and residual add as a ``Function``
with a ``Tensor`` around its output, and for every module's ``__call__``:
~40 wrapped ops per token, which cost more than the arithmetic. The Decoder
does the same math straight on the backend's arrays (NumPy, CuPy, the strict
device), for B rows at position t:

    x      = wte[ids] (· √C if "sinusoidal") + P[t]            (B, C)   P: wpe or the sines, else 0
    for each block l:
        h        = norm_1(x)
        q, k, v  = split(h W_attnᵀ + b_attn)                       (B, nh, hs), (B, nkv, hs), (B, nkv, hs)
        q, k     = rope(q, t), rope(k, t)                          "rope" only
        K_l[:, :, t], V_l[:, :, t] = k, v                          into the KVCache
        s        = q_g K_l[:, :, :t+1]ᵀ / √hs  - m_h·(t - j)      (B, nkv, g, t+1), g = nh / nkv; "alibi" only
        x       += concat_heads(softmax(s) V_l[:, :, :t+1]) W_projᵀ + b_proj
        x       += mlp(norm_2(x))      mlp(h) = act(h W_fcᵀ + b_fc) W_mlpᵀ + b_mlp
                                       gated: (act(h W_gateᵀ + b_gate) ⊙ (h W_fcᵀ + b_fc)) W_mlpᵀ + b_mlp
    logits = norm_f(x) W_headᵀ                                      (B, V)

Post-norm blocks (``norm_position = "post"``) read x itself and normalize after
each add: x = norm_1(x + attn(x)), x = norm_2(x + mlp(x)); no norm_f.

With a sliding window (GPTConfig.window = W) the cache is a RollingKVCache:
``cache.write`` hands back only keys and values t - W + 1 .. t, so the same
lines attend over the window (ALiBi's distances counted from the last key),
and t grows past the position tables: RoPE's angles for such a t come from
``rope_at``. Every attention kernel gives the same decode step (one query).

What it leaves out: the graph, the Tensors, module lookups, and the checks a
call through the model makes (ids in range, shapes, positions): ``step``
trusts the ids it is given, the sampled tokens of the generation loop, and
checks only that the cache has room. What it keeps: the KVCache (so the
prompt is read by the modules, ``prefill``, and the steps go on in the same
arrays), the array module of the weights, and the host kernels of
``tinyllm.functional`` where they apply (float32 NumPy: layer/RMS norm, GELU,
SiLU, softmax), the same ones the module path runs.

The module path stays the reference. ``model.make_decoder`` (tinyllm/nn/decoding.py)
builds a Decoder only for a GPT made of its own module types, and
tests/test_kv_cache.py checks every step's logits against a full recompute
for every positional encoding, grouped-query attention and batches.

Example:
    >>> dec = model.make_decoder(batch_size=1, max_len=64)
    >>> logits = dec.prefill(prompt)                   # (1, T0) through the modules -> (1, V) host
    >>> logits = dec.step(logits.argmax(-1))           # one token per row, raw arrays -> (1, V) host
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from tinyllm import backend
from tinyllm.functional import kernels
from tinyllm.functional.activations import activation_kernel
from tinyllm.functional.gated import GATED, gated_kernel
from tinyllm.functional.kernels import ZERO
from tinyllm.functional.norms import layer_norm_forward, rms_norm_forward
from tinyllm.functional.softmax import softmax_forward


class Layer(NamedTuple):
    """One block's arrays: weights (out, in) as stored, biases (out,) or None; the norms' weight and bias."""

    ln_1: tuple
    attn_w: object
    attn_b: object
    proj_w: object
    proj_b: object
    ln_2: tuple
    fc_w: object
    fc_b: object
    mlp_w: object
    mlp_b: object
    gate_w: object = None  # a gated MLP's c_gate (swiglu, geglu), else None
    gate_b: object = None


def linear_reference(x, w, b):
    """x Wᵀ + b on raw arrays: (B, in) @ (in, out) -> (B, out); the weight as stored, (out, in)."""
    y = x @ w.T
    if b is not None:
        y += b
    return y


@kernels.kernel
def _few_rows_linear(x, w, b, out):
    # out[r, i] = Σ_j x[r, j] w[i, j] + b[i]: row i of w is read once, for every row of x
    B, C = x.shape
    for i in range(w.shape[0]):
        bias = b[i] if b.size else ZERO
        for r in range(B):
            s = ZERO
            for j in range(C):
                s += x[r, j] * w[i, j]
            out[r, i] = s + bias


_NO_BIAS = np.zeros(0, np.float32)
FEW_ROWS = 8  # up to this many rows the product streams the weight (memory-bound): the kernel; above, BLAS


def linear(x, w, b):
    """x Wᵀ + b: the kernel above for a few float32 rows on the host, else linear_reference.

    # subtle: with one row, x Wᵀ is a matrix-vector product: every weight is read once and used once,
    # so its speed is the memory's. NumPy hands it to BLAS's gemm/gemv, which reads a (V, C) weight
    # at about half the speed a plain SIMD loop over its rows reaches (benchmarks/bench_kv_cache.py).
    """
    if x.shape[0] > FEW_ROWS or not kernels.usable(x, w, b):
        return linear_reference(x, w, b)
    x, w = kernels.contiguous(x), kernels.contiguous(w)
    b = _NO_BIAS if b is None else b
    out = np.empty((x.shape[0], w.shape[0]), np.float32)
    kernels.split(lambda i, j: _few_rows_linear(x, w[i:j], b[i:j] if b.size else b, out[:, i:j]),
                  w.shape[0], w.size)  # the threads share out the weight's rows
    return out


def activation(name: str, x):
    """GPTConfig.activation on a raw array: the Numba kernel for float32 NumPy, else the definition."""
    if name != "relu" and kernels.usable(x):
        return activation_kernel(name, x)
    xp = backend.of(x)
    if name == "relu":
        return xp.maximum(x, 0)
    if name == "gelu":
        return x * (0.5 + 0.5 * backend.erf(x * (1 / math.sqrt(2))))  # x Φ(x)
    if name == "gelu_tanh":  # ½x(1 + tanh(√(2/π)(x + 0.044715x³)))
        return 0.5 * x * (1 + xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))
    if name == "silu":  # x σ(x), σ(x) = ½(1 + tanh(x/2)): no overflow for very negative x
        return 0.5 * x * (1 + xp.tanh(0.5 * x))
    raise ValueError(f"Decoder: unknown activation {name!r}; expected gelu, gelu_tanh, relu or silu")


def group_scores(q, keys):
    """One new token's scores, grouped-query: q (B, nkv, g, hs), keys (B, nkv, S, hs) -> q keysᵀ (B, nkv, g, S).

    # subtle: with g > 1 query heads per key head, q @ keysᵀ is a g-row product against transposed keys, and
    # BLAS (OpenBLAS) then packs a copy of every cached key first: a step of nkv = nh / 2 was no faster than
    # multi-head at long contexts (benchmarks/bench_gqa.py). keys @ qᵀ reads the keys where they lie.
    """
    if q.shape[2] == 1:  # multi-head: one query per key head, a matrix-vector product either way
        return q @ keys.swapaxes(-1, -2)
    return backend.of(q).ascontiguousarray((keys @ q.swapaxes(-1, -2)).swapaxes(-1, -2))  # (B, nkv, S, g) -> ...


def gated_activation(name: str, g, u):
    """act(g) ⊙ u for a gated MLP ("swiglu": silu, "geglu": gelu): the fused kernel for float32 NumPy, else the
    definition."""
    if kernels.usable(g, u):
        return gated_kernel(name, g, u)
    return activation(GATED[name], g) * u


class Decoder:
    """prefill(ids) through the modules, then step(ids) -> logits, one token per row, on raw arrays.

    Built by ``model.make_decoder(batch_size, max_len)``; see the module docstring. Arguments:

        model      what prefill reads through (``next_token_logits``) and whose ``config`` sets the sizes
        cache      an empty KVCache of the model (``model.make_cache``); the decoder writes into it
        weights    {GPT-2 parameter name: raw array}, ``lm_head.weight`` included even when tied;
                   the arrays themselves, not copies
        add        (max_len, C) vectors added to the token vectors at each position ("learned",
                   "sinusoidal"), or None
        rope       (cos, sin), each (max_len, hs), RoPE's "half" layout (``rope_cos_sin``), or None
        rope_at    pos -> (cos, sin), each (hs,): RoPE at a position past the tables (a rolling cache), or None
        alibi      (n_head, max_len): -m_h · d for distance d = 0, 1, ... (``alibi_bias``), or None
    """

    def __init__(self, model, cache, weights: dict, add=None, rope=None, alibi=None, rope_at=None):
        c = model.config
        self.model, self.cache = model, cache
        self.n_head, self.n_kv_head, self.head_dim, self.d_model = c.n_head, c.kv_heads, c.head_dim, c.d_model
        self.activation, self.eps, self.rms = c.activation, float(c.norm_eps), c.norm == "rmsnorm"
        self.post_norm = c.norm_position == "post"
        self.embed_scale = math.sqrt(c.d_model) if c.pos_encoding == "sinusoidal" else None
        self.add, self.rope, self.alibi, self.rope_at = add, rope, alibi, rope_at
        if alibi is not None:  # head h = group·g + i, as the module path orders them
            self.alibi = alibi.reshape(self.n_kv_head, self.n_head // self.n_kv_head, -1)  # (nkv, g, max_len)
        w = weights.get
        self.wte, self.head = w("transformer.wte.weight"), w("lm_head.weight")
        xp = backend.of(self.wte)
        # the LayerNorm kernel takes a bias; a model without biases gets zeros, made once
        zeros = None if self.rms or c.bias else xp.zeros(c.d_model, dtype=self.wte.dtype)
        self.scale = self.wte.dtype.type(1.0 / math.sqrt(c.head_dim))

        def norm(prefix):
            return (w(prefix + ".weight"), zeros if w(prefix + ".bias") is None else w(prefix + ".bias"))

        self.layers = [Layer(norm(f"transformer.h.{i}.ln_1"),
                             w(f"transformer.h.{i}.attn.c_attn.weight"), w(f"transformer.h.{i}.attn.c_attn.bias"),
                             w(f"transformer.h.{i}.attn.c_proj.weight"), w(f"transformer.h.{i}.attn.c_proj.bias"),
                             norm(f"transformer.h.{i}.ln_2"),
                             w(f"transformer.h.{i}.mlp.c_fc.weight"), w(f"transformer.h.{i}.mlp.c_fc.bias"),
                             w(f"transformer.h.{i}.mlp.c_proj.weight"), w(f"transformer.h.{i}.mlp.c_proj.bias"),
                             w(f"transformer.h.{i}.mlp.c_gate.weight"), w(f"transformer.h.{i}.mlp.c_gate.bias"))
                       for i in range(c.n_layer)]
        self.ln_f = None if self.post_norm else norm("transformer.ln_f")
        self.device = backend.device_of(self.wte)

    # ------------------------------------------------------------------ the pieces
    def norm(self, x, wb):
        """LayerNorm or RMSNorm of the rows of x (B, C): the fused kernel for float32 NumPy, else the definition."""
        w, b = wb
        if kernels.usable(x, w, b):
            return rms_norm_forward(x, w, self.eps)[0] if self.rms else layer_norm_forward(x, w, b, self.eps)[0]
        xp = backend.of(x)
        if self.rms:
            return x * (1 / xp.sqrt((x * x).mean(axis=-1, keepdims=True) + self.eps)) * w
        xc = x - x.mean(axis=-1, keepdims=True)
        y = xc * (1 / xp.sqrt((xc * xc).mean(axis=-1, keepdims=True) + self.eps)) * w
        return y if b is None else y + b

    def mlp(self, L: Layer, h):
        """The block's MLP on rows h (B, C) -> (B, C), gated or not."""
        up = linear(h, L.fc_w, L.fc_b)  # (B, d_ff)
        if L.gate_w is None:
            return linear(activation(self.activation, up), L.mlp_w, L.mlp_b)
        return linear(gated_activation(self.activation, linear(h, L.gate_w, L.gate_b), up), L.mlp_w, L.mlp_b)

    def attend(self, layer: int, qkv, pos: int):
        """Attention of the new token over the cached ones (its own k, v written first): (B, nh+2nkv, hs) -> (B, C)."""
        B = qkv.shape[0]
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        xp = backend.of(qkv)
        qk, v = qkv[:, :nh + nkv], qkv[:, nh + nkv:]  # (B, nh+nkv, hs): q and k rotate together
        if self.rope is not None:
            # (hs,) each; past the tables (a sliding window's rolling cache has no last position) from rope_at
            cos, sin = (self.rope[0][pos], self.rope[1][pos]) if pos < self.rope[0].shape[0] else self.rope_at(pos)
            h = hs // 2
            qk = qk * cos + xp.concatenate([-qk[..., h:], qk[..., :h]], axis=-1) * sin  # x cos + rot(x) sin
        # the cache stores k, v at position pos and hands back the keys the new query sees, its own last:
        # positions 0..pos (KVCache), or the last `window` of them (RollingKVCache)
        keys, values = self.cache.write(layer, qk[:, nh:, None], v[:, :, None])  # (B, nkv, S, hs)
        S = keys.shape[2]
        q = qk[:, :nh].reshape(B, nkv, nh // nkv, hs) * self.scale  # the g query heads of each key head
        scores = group_scores(q, keys)  # (B, nkv, g, hs), (B, nkv, S, hs) -> (B, nkv, g, S)
        if self.alibi is not None:
            scores += self.alibi[:, :, S - 1::-1]  # the j-th key handed back is S-1-j behind: S-1, ..., 1, 0
        p = softmax_forward(scores, -1)  # no mask: the newest query sees every key handed back
        return (p @ values).reshape(B, self.d_model)  # (B, nkv, g, hs) -> (B, nh·hs): heads side by side

    # ------------------------------------------------------------------ the two calls
    def prefill(self, ids):
        """Empty the cache, read ids (B, T) through the model's modules -> host logits (B, V) of the last position."""
        self.cache.reset()
        return self.model.next_token_logits(ids, cache=self.cache)

    def step(self, ids) -> np.ndarray:
        """One token per row, ids (B,) ints on the host, at position cache.length -> host logits (B, V).

        The ids are trusted (the generation loop's own samples); only the cache's room (and, past a
        rolling cache's window, the model's last position) is checked.
        """
        pos, B = self.cache.length, self.cache.batch_size
        self.cache.check_room(1)
        if self.model.max_positions is not None and pos >= self.model.max_positions:
            raise ValueError(f"Decoder.step: position {pos} is past context_length={self.model.max_positions} "
                             f"(its positions come from a table); prefill the last tokens again in a new decoder")
        if np.shape(ids) != (B,):
            raise ValueError(f"Decoder.step: ids must be one token per row, shape ({B},), got {np.shape(ids)}")
        ids = backend.asarray(ids, device=self.device)
        xp = backend.of(self.wte)
        x = xp.take(self.wte, ids, axis=0)  # (B,) -> (B, C), a fresh array
        if self.embed_scale is not None:
            x *= self.embed_scale
        if self.add is not None:
            x += self.add[pos]
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        for i, L in enumerate(self.layers):
            h = x if self.post_norm else self.norm(x, L.ln_1)
            qkv = linear(h, L.attn_w, L.attn_b).reshape(B, nh + 2 * nkv, hs)  # (B, ·) -> heads
            a = linear(self.attend(i, qkv, pos), L.proj_w, L.proj_b)
            if self.post_norm:  # norm(x + f(x)): block.py
                x = self.norm(x + a, L.ln_1)
                x = self.norm(x + self.mlp(L, x), L.ln_2)
            else:
                x += a
                x += self.mlp(L, self.norm(x, L.ln_2))
        h = x if self.ln_f is None else self.norm(x, self.ln_f)
        logits = linear(h, self.head, None)  # (B, C) @ (C, V) -> (B, V)
        self.cache.advance(1)
        return backend.to_numpy(logits)

    def __repr__(self) -> str:
        return f"Decoder({len(self.layers)} layers, {self.cache!r})"
