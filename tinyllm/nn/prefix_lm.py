"""The prefix-LM mask: a prefix read bidirectionally, the rest causally (Raffel et al. 2020, T5 §3.2.1; UniLM).

A causal LM lets query i see key j when j <= i. A prefix LM splits each row at
P: the P prefix tokens (a prompt, a source sentence) see one another whole, and
the tokens after it are generated left to right, seeing the whole prefix and
their own past:

    visible(i, j) = j <= i  or  j < P              i, j positions in the row
                  = j <= max(i, P - 1)

    P = 3, T = 5 (1 = visible):     j: 0 1 2 3 4
                               i = 0:  1 1 1 0 0      the prefix: bidirectional
                               i = 1:  1 1 1 0 0
                               i = 2:  1 1 1 0 0
                               i = 3:  1 1 1 1 0      the target: causal
                               i = 4:  1 1 1 1 1

P = 0 is a causal LM; P = T reads the whole row bidirectionally. So the logits
at position t depend only on tokens 0 .. max(t, P-1), and position P-1 (the
prefix's last) may predict token P: it sees nothing past the prefix. The loss
counts the tokens after the prefix: with targets[t] = the token at t + 1, those
are targets[:, P-1:] (``GPT.forward(idx, targets, prefix_len=P)``).

With a KV cache the prefix is read in the first chunk (the prefill), where the
whole prefix is there to be seen; what comes after is causal, so every later
step is an ordinary decode step. P may differ per row: a (B,) array.

Example: prefix_visible(np.array([3]), T=5) is the table above, shape (1, 1, 5, 5).
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.tensor import Tensor


def check_prefix_len(prefix_len, B: int, T: int) -> np.ndarray:
    """prefix_len (an int, or B ints) as an int64 host array (B,), each in [0, T]; an error that says what is wrong."""
    raw = prefix_len.data if isinstance(prefix_len, Tensor) else prefix_len
    arr = backend.to_numpy(raw) if backend.is_array(raw) else np.asarray(raw)
    if arr.dtype.kind not in "iu" or arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != B):
        raise ValueError(f"prefix_len must be an int or {B} ints (one per row), got {prefix_len!r}")
    arr = np.broadcast_to(arr.astype(np.int64), (B,))
    if ((arr < 0) | (arr > T)).any():
        raise ValueError(f"prefix_len must be in [0, {T}] (the row's length), got {arr.tolist()}")
    return arr


def prefix_visible(prefix_len: np.ndarray, T: int, S: int | None = None) -> np.ndarray:
    """bool (B, 1, T, S): key j visible to query i when j <= i or j < prefix_len[b] (queries at positions 0..T-1)."""
    S = T if S is None else S
    i, j = np.arange(T)[:, None], np.arange(S)[None, :]
    return ((j <= i) | (j < prefix_len[:, None, None]))[:, None]  # (B,T,S) -> (B,1,T,S)


def prefix_lm_mask(prefix_len: np.ndarray, T: int, S: int, bias, dtype, device: str) -> Tensor:
    """The float attn_mask (B, 1 or nh, T, S) of a prefix LM: bias (e.g. ALiBi's, (nh, T, S), or None) where
    visible, -inf elsewhere; in the model's dtype, on its device. Queries at positions 0..T-1 (an empty cache)."""
    visible = prefix_visible(prefix_len, T, S)
    base = 0.0 if bias is None else backend.to_numpy(bias.data if isinstance(bias, Tensor) else bias)
    mask = np.where(visible, base, -np.inf)  # (B, 1, T, S) or, with a (nh, T, S) bias, (B, nh, T, S)
    return Tensor(backend.asarray(mask, dtype=dtype, device=device))
