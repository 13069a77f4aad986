"""generate: extend token sequences one sampled token at a time, with a KV cache (§5, §6).

    ids = prompt                                     (B, T0)
    repeat max_new_tokens times:
        logits = model's next-token logits for ids   (B, V)   cached: only the new token is read
        logits = apply_penalties(logits, ids, ...)            repetition / presence / frequency
        logits = filter_logits(logits, T, top_k, top_p, min_p)
        ids    = ids + [sample(logits)]                        greedy when temperature = 0

With the cache (the default), the prompt is read once (prefill) and each
step after reads a single token (decode): its query attends over the cached
keys and values. Without it every step re-reads the last context_length
tokens. Both give the same logits (to float rounding) and, greedily, the same
tokens (tests/test_kv_cache.py).

The decode steps run on raw arrays (``model.make_decoder``, tinyllm/inference/decode.py):
the same math as the modules without a Tensor or Function per op, which at one
token cost more than the arithmetic. ``fast_decode=False``, or a model the
Decoder does not cover (make_decoder returns None), decodes through the
modules instead, ``model.next_token_logits(new, cache=cache)``: the reference.
The prompt is always read through the modules.

At the context limit: once the sequence is longer than context_length, a
step must see only the last context_length tokens. The cached keys and
values of layers >= 1 were computed while the dropped tokens were still
visible (and with RoPE or learned positions, at other positions), so none of
them fits the new window. The cached path then re-reads that window each step
(reset + prefill): the same tokens the uncached path sees, so the output
stays identical, at the uncached speed. A model with a longer context, or a
sliding-window attention, avoids it: a model with a window and positions that
need no table (rope, alibi, none; ``model.max_positions`` is None) keeps going
in its rolling cache, one token per step however long the text, and reads
its prompt once. Uncached, it re-reads the last context_length tokens: the
same logits as long as the window's reach through the layers,
n_layer·(window - 1) + 1 tokens, fits in them.

The cache is made for min(context_length, prompt + new tokens) positions. A
model whose attention is not causal (the bidirectional ablation of §2) cannot
keep anything: it is generated without the cache.

A prefix LM (``prefix_len`` P, tinyllm/nn/prefix_lm.py) reads the first P
tokens of the prompt bidirectionally: the prefill sees the whole prefix at
once, and every token after it is causal, so the decode steps are the usual
ones. A slid window keeps what is left of the prefix in it (P minus the tokens
dropped), with or without the cache.
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.inference.sampling import apply_penalties, check_sampling_args, filter_logits, make_rng, sample
from tinyllm.tensor import Tensor


def _check_ids(idx) -> np.ndarray:
    raw = idx.data if isinstance(idx, Tensor) else idx
    ids = backend.to_numpy(raw) if backend.is_array(raw) else np.asarray(raw)  # sampling runs on the host
    if ids.dtype.kind not in "iu" or ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"generate: idx must be integer ids of shape (B, T) with T >= 1, got {ids.dtype} "
                         f"array of shape {ids.shape}")
    return ids.astype(np.int64)


def _check_prefix(prefix_len, ids):
    """prefix_len as a host int64 (B,) array in [0, T] (T: the prompt's length), or None."""
    if prefix_len is None:
        return None
    B, T = ids.shape
    arr = np.asarray(prefix_len)
    if arr.dtype.kind not in "iu" or arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != B):
        raise ValueError(f"generate: prefix_len must be an int or {B} ints (one per row), got {prefix_len!r}")
    arr = np.broadcast_to(arr.astype(np.int64), (B,)).copy()
    if ((arr < 0) | (arr > T)).any():
        raise ValueError(f"generate: prefix_len must be in [0, {T}] (the prompt's length), got {arr.tolist()}")
    return arr


def generate(model, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, min_p: float | None = None, repetition_penalty: float = 1.0,
             presence_penalty: float = 0.0, frequency_penalty: float = 0.0, seed=None,
             use_cache: bool = True, fast_decode: bool = True, prefix_len=None) -> np.ndarray:
    """idx (B, T) -> int64 (B, T + max_new_tokens); see the module docstring (GPT.generate calls this)."""
    ids = _check_ids(idx)
    prefix = _check_prefix(prefix_len, ids)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    check_sampling_args(temperature, top_k, top_p, min_p, repetition_penalty, presence_penalty, frequency_penalty)
    rng = make_rng(seed)
    ctx = model.config.context_length
    causal = all(getattr(m, "causal", True) for m in model.modules())
    was_training = model.training
    model.eval()
    try:
        cache = decoder = None
        if use_cache and causal and max_new_tokens > 0:
            B, n = ids.shape[0], ids.shape[1] + int(max_new_tokens)
            max_len = n if model.max_positions is None else min(ctx, n)  # None: a rolling cache, no end
            decoder = model.make_decoder(batch_size=B, max_len=max_len) if fast_decode else None  # after eval()
            cache = model.make_cache(batch_size=B, max_len=max_len) if decoder is None else decoder.cache
        for _ in range(int(max_new_tokens)):
            # the prefix left in the window: P minus the tokens the window has dropped (None: no prefix)
            in_window = None if prefix is None else np.maximum(prefix - max(ids.shape[1] - ctx, 0), 0)
            if cache is None:
                window = ids[:, -ctx:]  # the whole window, re-read every step
                logits = model.next_token_logits(window) if prefix is None else \
                    model.next_token_logits(window, prefix_len=in_window)
            else:
                if model.max_positions is not None and ids.shape[1] > ctx:  # the window slid: positions moved
                    cache.reset()
                    new = ids[:, -ctx:]
                else:
                    new = ids[:, cache.length:]  # the prompt (prefill), then the last token (decode)
                if decoder is not None and new.shape[1] == 1:
                    logits = decoder.step(new[:, 0])  # raw arrays, into the same cache
                elif cache.length == 0 and in_window is not None:  # the prefill reads the prefix bidirectionally
                    logits = model.next_token_logits(new, cache=cache, prefix_len=in_window)
                else:
                    logits = model.next_token_logits(new, cache=cache)
            # every penalty off: apply_penalties hands the logits back untouched
            logits = apply_penalties(logits, ids, repetition_penalty, presence_penalty, frequency_penalty)
            if temperature > 0:  # greedy needs no filter: every filter keeps the top token
                logits = filter_logits(logits, temperature, top_k, top_p, min_p)
            nxt = backend.to_numpy(sample(logits, rng, greedy=temperature == 0))
            ids = np.concatenate([ids, nxt.reshape(-1, 1).astype(np.int64)], axis=1)  # (B, T) -> (B, T+1)
    finally:
        model.train(was_training)
    return ids
