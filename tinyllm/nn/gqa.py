"""Multi-head to grouped-query attention: a trained model's key and value heads, mean-pooled (§9).

Ainslie et al. 2023 ("GQA: Training Generalized Multi-Query Transformer Models
from Multi-Head Checkpoints", §2.1): to turn a multi-head checkpoint (nh key and
value heads) into grouped-query attention with nkv heads, replace each group of
g = nh / nkv consecutive key heads by their mean, and the same for the value
heads; the query heads stay. Then "uptrain" briefly (the paper: 5% of the
pretraining steps) so the model adapts to the shared heads. Mean-pooling beat
keeping one head of each group or initializing the shared heads at random.

In tinyllm's fused projection (tinyllm/nn/attention.py) the key heads are rows
C .. C + nh·hs of c_attn's weight, head h at rows C + h·hs .. C + (h+1)·hs, and the
value heads follow; so for group j:

    W_k'[j] = (1/g) Σ_{h = j·g}^{(j+1)·g - 1} W_k[h]        (hs, C), the same for b_k, W_v, b_v

Query head h then reads key/value head h // g, the head its group's mean came from.
With RoPE the rotation acts on each key head the same way, so pooling the
projections pools the rotated keys.

Example:
    >>> gqa = mean_pool_kv_heads(mha_model, n_kv_head=2)     # a new GPT; mha_model is left as it was
    >>> gqa.config.n_kv_head, gqa.transformer.h[0].attn.c_attn.weight.shape
    (2, (C + 2·2·hs, C))
"""

from __future__ import annotations

import dataclasses

from tinyllm import backend
from tinyllm.autograd import no_grad


def mean_pool_kv_heads(model, n_kv_head: int):
    """A copy of `model` (a GPT) with n_kv_head key/value heads, each the mean of a group of the model's heads."""
    from tinyllm.nn.gpt import GPT

    c = model.config
    nkv_old, hs, C = c.kv_heads, c.head_dim, c.d_model
    if isinstance(n_kv_head, bool) or not isinstance(n_kv_head, int) or n_kv_head < 1 or nkv_old % n_kv_head:
        raise ValueError(f"mean_pool_kv_heads: n_kv_head must be a positive divisor of the model's {nkv_old} key/value "
                         f"heads (each new head is the mean of a group of old ones), got {n_kv_head!r}")
    g = nkv_old // n_kv_head
    with backend.use_device(model.device):
        new = GPT(dataclasses.replace(c, n_kv_head=n_kv_head))  # (its random initial weights are overwritten)
    new.to(model.transformer.wte.weight.dtype)
    state = model.state_dict()
    with no_grad():
        for name, p in new.named_parameters(remove_duplicate=False):
            old = state[name].data
            if name.endswith("attn.c_attn.weight") or name.endswith("attn.c_attn.bias"):
                old = pool_kv_rows(old, C, nkv_old, hs, g)
            p.data[...] = backend.asarray(old, dtype=p.dtype, device=p.device)
        for name, b in new.named_buffers():
            if name in state:
                b.data[...] = state[name].data
    new.train(model.training)
    return new


def pool_kv_rows(w, C: int, nkv: int, hs: int, g: int):
    """c_attn's rows (or bias) [q (C) | k (nkv·hs) | v (nkv·hs)] -> [q | k pooled (nkv/g·hs) | v pooled]."""
    xp = backend.of(w)
    rest = w.shape[1:]
    q, k, v = w[:C], w[C:C + nkv * hs], w[C + nkv * hs:]
    k = k.reshape(nkv // g, g, hs, *rest).mean(axis=1).reshape(nkv // g * hs, *rest)  # (nkv·hs, ·) -> (nkv/g·hs, ·)
    v = v.reshape(nkv // g, g, hs, *rest).mean(axis=1).reshape(nkv // g * hs, *rest)
    return xp.concatenate([q, k.astype(w.dtype), v.astype(w.dtype)], axis=0)
