"""unmask: text from a masked language model, by filling its [MASK] positions a few at a time (§11).

A masked LM (BERT) is trained to fill in masked positions, all at once, from both
sides. It has no "next token" to generate with; to sample from it, start from
the positions to fill set to [MASK] and unmask them iteratively (Wang & Cho
2019, "BERT has a Mouth"; Ghazvininejad et al. 2019, Mask-Predict; Chang et al.
2022, MaskGIT):

    ids = prompt + [MASK] * n                                   (B, T)
    for s = 0 .. steps-1:
        logits  = model(ids)                                    (B, T, V), every position sees every other
        draw    a token for every masked position (temperature, top-k; [MASK] and the other
                special tokens never drawn), with its probability as the confidence
        commit  the k most confident of them, k = ceil(remaining / (steps - s)); the rest stay [MASK]

With steps = n (the default) one token is committed per step, each time the one
the model is surest of given everything filled so far; fewer steps commit
several at once, which is faster and worse: tokens committed in the same step
are drawn independently of one another (the failure chapter 11 shows).

Example:
    >>> ids = np.array([[h, e, l, MASK, MASK, MASK]])
    >>> unmask(model, ids, mask_id=MASK, temperature=0.0)     # greedy: one position per step
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import backend
from tinyllm.autograd import no_grad
from tinyllm.inference.sampling import filter_logits, make_rng, sample, softmax


def unmask(model, idx, mask_id: int, steps: int | None = None, temperature: float = 1.0, top_k: int | None = None,
           banned=(), seed=None) -> np.ndarray:
    """idx (B, T) with some positions equal to mask_id -> int64 (B, T) with all of them filled (module docstring).

    banned: more ids never drawn (the tokenizer's other special tokens). temperature 0 is greedy.
    """
    ids = np.array(backend.to_numpy(idx.data if hasattr(idx, "data") else idx), dtype=np.int64)
    if ids.ndim != 2:
        raise ValueError(f"unmask: idx must be token ids of shape (B, T), got shape {ids.shape}")
    masked = ids == mask_id
    most = int(masked.sum(axis=1).max()) if ids.size else 0
    steps = most if steps is None else int(steps)
    if most and steps < 1:
        raise ValueError(f"unmask: steps must be >= 1, got {steps}")
    rng = make_rng(seed)
    never = [mask_id, *banned]
    was_training = model.training
    model.eval()
    try:
        total = min(steps, most)  # more steps than masks: one per step
        for s in range(total):
            with no_grad():
                logits = backend.to_numpy(model(ids)[0].data).astype(np.float64)  # (B, T, V)
            logits[..., never] = -np.inf
            rows, cols = np.nonzero(masked)  # every masked position, row-major
            picked = filter_logits(logits[rows, cols], temperature, top_k) if temperature > 0 else logits[rows, cols]
            tokens = np.asarray(backend.to_numpy(sample(picked, rng, greedy=temperature == 0)))
            confidence = softmax(picked)[np.arange(len(rows)), tokens]
            for b in np.unique(rows):
                mine = np.flatnonzero(rows == b)
                k = math.ceil(len(mine) / (total - s))
                best = mine[np.argsort(-confidence[mine], kind="stable")[:k]]  # the k surest positions of row b
                ids[b, cols[best]] = tokens[best]
                masked[b, cols[best]] = False
    finally:
        model.train(was_training)
    return ids
