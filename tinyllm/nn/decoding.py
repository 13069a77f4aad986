"""What a GPT hands to the raw-array Decoder (tinyllm/inference/decode.py): its weights and position tables.

The Decoder repeats, on raw arrays, the eval-mode math of exactly the modules
a GPT is built from (``PLAIN``). So it is made only for a model that holds
nothing else; otherwise ``make_decoder`` returns None and generation decodes
through the modules, the reference path:

    a module of another type       lab 4's VariantAttention, a LoRA or MoE layer, a subclass
    a hook on any module           register_forward_hook & co. (nn/hooks.py): the modules must run
    attention recording on         record_attention(model): the weights must be kept
    attention not causal           the bidirectional ablation: nothing can be cached at all
    dropout while training         the Decoder has no dropout (generate switches to eval first)

The attention kernel (GPTConfig.attention) does not matter: at one query per
row every kernel is the same product. A sliding window (GPTConfig.window) makes
the cache a RollingKVCache, which hands the Decoder only the window's keys.

The position tables are made here, from the functions of nn/positional, for
positions 0 .. max_len-1 (max_len None: context_length; a window's ALiBi table
covers at least the window's distances, and RoPE past the table is computed
per position, ``rope_at``):

    "learned"     wpe.weight[:max_len]                     added to the token vectors
    "sinusoidal"  the model's PE table [:max_len]          added after the √C scaling
    "rope"        cos, sin (max_len, hs)                   q and k rotated at each step
    "alibi"       -m_h · d, d = 0 .. max_len-1 (nh, max_len)   added to the scores by distance

Example:
    >>> dec = make_decoder(model, batch_size=2, max_len=32)   # model.make_decoder(2, 32) calls this
    >>> dec.cache.keys.shape                                  # (n_layer, 2, n_kv_head, 32, head_dim)
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.inference.decode import Decoder
from tinyllm.nn.activation import GELU, GatedActivation, ReLU, SiLU
from tinyllm.nn.attention import CausalSelfAttention
from tinyllm.nn.block import Block
from tinyllm.nn.container import ModuleDict, ModuleList
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.embedding import Embedding
from tinyllm.nn.hooks import has_hooks
from tinyllm.nn.linear import Linear
from tinyllm.nn.mlp import MLP
from tinyllm.nn.norms import LayerNorm, RMSNorm
from tinyllm.nn.positional import alibi_bias, rope_cos_sin

# the module types whose forward the Decoder repeats (the GPT itself is checked by GPT.make_decoder)
PLAIN = frozenset({ModuleDict, ModuleList, Embedding, Dropout, Block, LayerNorm, RMSNorm, CausalSelfAttention,
                   MLP, Linear, GELU, ReLU, SiLU, GatedActivation})


def why_not_decodable(model) -> str:
    """'' when the Decoder reproduces model's eval forward, else the reason it does not (module docstring)."""
    for name, m in model.named_modules():
        if has_hooks(m):
            return f"{name or 'the model'} has hooks registered, which only the modules' calls run"
        if m is model:
            continue
        if type(m) not in PLAIN:
            return f"{name} is a {type(m).__name__}, not one of the modules the Decoder repeats"
        if type(m) is CausalSelfAttention and (m.record or not m.causal):
            return f"{name} records its attention weights or is not causal"
    if model.training and model.config.dropout > 0:
        return "the model is in training mode with dropout"
    return ""


def make_decoder(model, batch_size: int = 1, max_len: int | None = None):
    """A Decoder over a fresh model.make_cache(batch_size, max_len), or None (see why_not_decodable)."""
    if why_not_decodable(model):
        return None
    cache = model.make_cache(batch_size=batch_size, max_len=max_len)
    c = model.config
    n = c.context_length if max_len is None else int(max_len)  # the positions the tables cover
    dtype, device = model.transformer.wte.weight.dtype, model.device
    weights = {name: p.data for name, p in model.named_parameters(remove_duplicate=False)}  # tied: both names
    add = rope = alibi = rope_at = None
    table = n if c.window is None else c.context_length  # a rolling cache may go on to the last position
    if c.pos_encoding == "learned":
        add = model.transformer.wpe.weight.data[:table]  # (max_len, C)
    elif c.pos_encoding == "sinusoidal":
        add = model.pos_table.data[:table]
    elif c.pos_encoding == "rope":
        rope = tuple(backend.asarray(a, dtype=dtype, device=device) for a in rope_cos_sin(n, c.head_dim, c.rope_theta))

        def rope_at(pos):  # (cos, sin) (hs,) at one position past the table
            return tuple(backend.asarray(a[0], dtype=dtype, device=device)
                         for a in rope_cos_sin([pos], c.head_dim, c.rope_theta))
    elif c.pos_encoding == "alibi":
        d = n if c.window is None else max(n, c.window)  # distances 0 .. d-1
        alibi = backend.asarray(alibi_bias(c.n_head, [0], np.arange(d))[:, 0], dtype=dtype, device=device)  # (nh, d)
    return Decoder(model, cache, weights, add=add, rope=rope, alibi=alibi, rope_at=rope_at)
