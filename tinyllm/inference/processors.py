"""Logits processors: each decoding knob as a small callable, ``proc(logits, ids) -> logits``.

    Temperature(T)      z / T (T = 0: only the argmax survives)
    TopK(k)             keep the k largest (ties with the k-th too)
    TopP(p)             keep the smallest most-likely set whose probability reaches p
    MinP(m)             keep tokens with p_j >= m · max p
    Penalties(r, a, f)  repetition (divide/multiply), presence and frequency (subtract) for tokens in ids

``processors(...)`` builds the list ``sampling.filter_logits`` applies (Hugging
Face's order), and ``apply(procs, logits, ids)`` runs any list on a float64
copy, so a reader can add a knob of their own. The math and the worked
example are in ``sampling.py``. Removed tokens become -inf; at least one
token is always kept.
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import backend
from tinyllm.functional.softmax import softmax_forward


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def check_sampling_args(temperature=1.0, top_k=None, top_p=None, min_p=None, repetition_penalty=1.0,
                        presence_penalty=0.0, frequency_penalty=0.0) -> None:
    """Raise ValueError naming the bad knob, its value and the range it must be in; None means 'off'."""
    if not _is_number(temperature) or not 0 <= temperature < math.inf:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or a number in (0, 1] (1 keeps every token), got {top_p!r}")
    if min_p is not None and (not _is_number(min_p) or not 0 <= min_p <= 1):
        raise ValueError(f"min_p must be None or a number in [0, 1] (0 keeps every token), got {min_p!r}")
    if not _is_number(repetition_penalty) or not 0 < repetition_penalty < math.inf:
        raise ValueError(f"repetition_penalty must be a finite number > 0 (1 = off, > 1 discourages repeats), "
                         f"got {repetition_penalty!r}")
    for name, value in (("presence_penalty", presence_penalty), ("frequency_penalty", frequency_penalty)):
        if not _is_number(value) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number (0 = off; OpenAI allows -2..2), got {value!r}")


def as_float_logits(logits):
    """logits (V,) or (B, V) as a float64 copy on their own device, checked."""
    if not backend.is_array(logits):
        logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim not in (1, 2) or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (V,) or (B, V) with V >= 1, got {tuple(logits.shape)}")
    return logits.astype(np.float64)  # a copy, in float64 for the softmaxes that follow


class Temperature:
    """z / T. T = 0 keeps only the argmax (the first one on ties), so sampling after it is greedy decoding."""

    def __init__(self, temperature: float):
        check_sampling_args(temperature=temperature)
        self.temperature = float(temperature)

    def __call__(self, logits, ids=None):
        xp = backend.of(logits)
        top = logits.argmax(axis=-1)[..., None]  # (B, 1)
        one_hot = xp.where(xp.arange(logits.shape[-1]) == top, logits, -xp.inf)
        if self.temperature == 0:
            return one_hot
        with np.errstate(over="ignore"):
            out = logits / self.temperature
        # subtle: a tiny T can overflow z / T to +inf (inf - inf = nan in the softmax); the limit is the argmax
        overflow = xp.isposinf(out).any(axis=-1, keepdims=True)
        return xp.where(overflow, one_hot, out)

    def __repr__(self):
        return f"Temperature({self.temperature})"


class TopK:
    """Keep the k largest logits per row; tokens tied with the k-th are kept too (as Hugging Face)."""

    def __init__(self, k: int):
        check_sampling_args(top_k=k)
        self.k = int(k)

    def __call__(self, logits, ids=None):
        xp = backend.of(logits)
        if self.k >= logits.shape[-1]:
            return logits
        j = logits.shape[-1] - self.k  # the k-th largest sits at sorted position V - k (a positive index: CuPy)
        kth = xp.partition(logits, j, axis=-1)[..., j][..., None]  # (B, 1)
        return xp.where(logits < kth, -xp.inf, logits)

    def __repr__(self):
        return f"TopK({self.k})"


class TopP:
    """Nucleus: keep the most likely tokens until their probability reaches p; p = 1 keeps all.

    Hugging Face's TopPLogitsWarper computed the same way: sort ascending,
    cumulative probability c, remove where c <= 1 - p, keep the largest always.
    p = 0.7 over probabilities [0.09, 0.67, 0.24]: ascending c = [0.09, 0.33, 1.0],
    1 - p = 0.3 removes the first -> keeps 0.67 and 0.24.
    """

    def __init__(self, p: float):
        check_sampling_args(top_p=p)
        self.p = float(p)

    def __call__(self, logits, ids=None):
        xp = backend.of(logits)
        if self.p >= 1.0:  # as Hugging Face, which adds no warper for top_p = 1
            return logits
        srt = xp.sort(logits, axis=-1)  # (B, V) ascending
        cum = xp.cumsum(softmax_forward(srt, -1), axis=-1)
        n_removed = (cum <= 1.0 - self.p).sum(axis=-1, keepdims=True)  # a prefix, since cum only grows
        n_removed = xp.minimum(n_removed, logits.shape[-1] - 1)  # at least one kept (the largest)
        # subtle: Hugging Face removes sorted positions, so of tokens tied at the cut some go and some stay
        # (whichever torch.sort put first); here a token tied with the smallest kept one is kept too,
        # as TopK does: a filter should not depend on token order. Without ties the two agree.
        threshold = xp.take_along_axis(srt, n_removed, axis=-1)  # (B, 1): smallest kept logit
        return xp.where(logits < threshold, -xp.inf, logits)

    def __repr__(self):
        return f"TopP({self.p})"


class MinP:
    """Keep tokens whose probability is at least min_p times the top probability (Hugging Face's MinPLogitsWarper)."""

    def __init__(self, min_p: float):
        check_sampling_args(min_p=min_p)
        self.min_p = float(min_p)

    def __call__(self, logits, ids=None):
        xp = backend.of(logits)
        if self.min_p <= 0.0:
            return logits
        probs = softmax_forward(logits, -1)
        # the top token always passes: p_max >= min_p · p_max since min_p <= 1
        return xp.where(probs < self.min_p * probs.max(axis=-1, keepdims=True), -xp.inf, logits)

    def __repr__(self):
        return f"MinP({self.min_p})"


def token_counts(ids, like):
    """c[b, j] = how many times token j occurs in ids[b] -> (B, V), the shape and device of the logits `like`.

    ids: a list, (T,) or (B, T) integer array, host or device; one row of ids serves every row of `like`.
    token_counts([[2, 0, 2]], np.zeros((1, 4))) -> [[1, 0, 2, 0]]
    """
    xp = backend.of(like)
    batch, vocab_size = like.shape
    if not backend.is_array(ids):
        ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim == 1:
        ids = ids[None]  # (T,) -> (1, T)
    if ids.ndim != 2 or ids.shape[0] not in (1, batch) or ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be integer token ids of shape (T,) or (B={batch}, T), "
                         f"got {ids.dtype} array of shape {tuple(ids.shape)}")
    if backend.device_of(ids) == "cpu":  # checked on the host only (on a GPU it would cost a sync)
        bad = (ids < 0) | (ids >= vocab_size)
        if bad.any():
            b, t = np.unravel_index(int(bad.argmax()), bad.shape)
            raise ValueError(f"ids must be token ids in [0, vocab_size={vocab_size}), got {int(ids[b, t])} "
                             f"at position ({b}, {t})")
    ids = backend.asarray(ids, dtype=np.int64, device=backend.device_of(like))
    if ids.shape[0] != batch:
        ids = xp.broadcast_to(ids, (batch, ids.shape[1]))  # one history for every row
    T = ids.shape[1]
    flat = (ids + xp.arange(batch)[:, None] * vocab_size).reshape(batch * T)  # (B, T) -> (B·T,) row-offset ids
    return xp.bincount(flat, minlength=batch * vocab_size).reshape(batch, vocab_size)


class Penalties:
    """Repetition (Hugging Face) then presence/frequency (OpenAI) penalties from the tokens in ids.

    z = [2, -1, 0.5], ids = [0, 1, 1], repetition 2 -> [1, -2, 0.5]; then presence 0.5, frequency 0.25
    -> [1 - 0.5 - 0.25, -2 - 0.5 - 0.5, 0.5] = [0.25, -3, 0.5].
    """

    def __init__(self, repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0):
        check_sampling_args(repetition_penalty=repetition_penalty, presence_penalty=presence_penalty,
                            frequency_penalty=frequency_penalty)
        self.repetition, self.presence, self.frequency = (float(repetition_penalty), float(presence_penalty),
                                                          float(frequency_penalty))

    @property
    def off(self) -> bool:
        return self.repetition == 1.0 and self.presence == 0.0 and self.frequency == 0.0

    def __call__(self, logits, ids=None):
        if self.off or ids is None:
            return logits
        xp = backend.of(logits)
        rows = logits.reshape(-1, logits.shape[-1])  # (V,) -> (1, V); (B, V) stays
        counts = token_counts(ids, rows)  # (B, V)
        seen = counts > 0
        out = rows
        if self.repetition != 1.0:
            # subtle: dividing a negative logit would *raise* it; CTRL multiplies those instead
            penalized = xp.where(rows > 0, rows / self.repetition, rows * self.repetition)
            out = xp.where(seen, penalized, rows)
        out = out - self.presence * seen - self.frequency * counts
        return out.reshape(logits.shape)

    def __repr__(self):
        return f"Penalties(repetition={self.repetition}, presence={self.presence}, frequency={self.frequency})"


def processors(temperature=1.0, top_k=None, top_p=None, min_p=None) -> list:
    """The warpers filter_logits applies, in Hugging Face's order; knobs that are off are left out."""
    check_sampling_args(temperature, top_k, top_p, min_p)
    procs = []
    if temperature != 1.0:
        procs.append(Temperature(temperature))
    if temperature == 0:  # greedy: one token is left, nothing below can change that
        return procs
    if top_k is not None:
        procs.append(TopK(top_k))
    if top_p is not None and top_p < 1.0:
        procs.append(TopP(top_p))
    if min_p:
        procs.append(MinP(min_p))
    return procs


def apply(procs, logits, ids=None):
    """Run processors in order on a float64 copy of logits (V,) or (B, V)."""
    out = as_float_logits(logits)
    for proc in procs:
        out = proc(out, ids)
    return out
