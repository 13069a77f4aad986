"""Sampling: how a next-token distribution becomes a token (temperature, top-k, top-p, min-p, penalties).

A language model gives logits z (one per token of the vocabulary, V of them);
softmax(z) is its distribution over the next token. Decoding reshapes that
distribution before drawing from it. The knobs, in the order Hugging Face's
``generate`` applies them (``LogitsProcessorList``: penalties, then the warpers
TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper):

    repetition penalty r   z_j <- z_j / r if z_j > 0 else z_j · r,   for every token j already in ids
                           (Keskar et al. 2019, CTRL; Hugging Face's RepetitionPenaltyLogitsProcessor)
    presence / frequency   z_j <- z_j - presence · [c_j > 0] - frequency · c_j,  c_j = count of j in ids
                           (OpenAI's API; vLLM)
    temperature T          z <- z / T             T < 1 sharpens, T > 1 flattens, T = 0 is argmax (greedy)
    top-k                  keep the k largest z   (Fan et al. 2018); a tie with the k-th is kept too
    top-p (nucleus)        keep the smallest set of most likely tokens whose probability sums to >= p
                           (Holtzman et al. 2020)
    min-p                  keep tokens with p_j >= min_p · max_i p_i   (Nguyen et al. 2024)

A removed token's logit becomes -inf (probability 0); at least one token is
always kept. Worked example, z = [1, 3, 2] (softmax [0.09, 0.67, 0.24]):

    filter_logits(z, temperature=2.0)   -> [0.5, 1.5, 1.0]            (softmax [0.19, 0.51, 0.31])
    filter_logits(z, top_k=2)           -> [-inf, 3, 2]
    filter_logits(z, top_p=0.7)         -> [-inf, 3, 2]     0.67 alone falls short of 0.7; with 0.24 it is 0.91
    filter_logits(z, min_p=0.3)         -> [-inf, 3, 2]     0.09 < 0.3 · 0.67 = 0.20 is removed
    filter_logits(z, temperature=0)     -> [-inf, 3, -inf]  only the argmax: greedy decoding

Each knob is also a small processor object (``Temperature(0.7)``, ``TopK(50)``,
``TopP(0.9)``, ``MinP(0.05)``, ``Penalties(...)``); ``processors(...)`` builds
the list ``filter_logits`` applies, and ``apply(procs, logits, ids)`` runs any
list, so a reader can add a knob of their own. Everything works on a (V,) or
(B, V) array of the active backend (NumPy, CuPy, tinyllm's strict device): the
array module comes from the logits (``backend.of``).
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import backend
from tinyllm.functional.softmax import log_softmax_forward, softmax_forward

# ---------------------------------------------------------------------- arguments


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


def make_rng(seed) -> np.random.Generator:
    """A NumPy generator: from an int seed, as given, or (None) seeded from tinyllm's cpu generator.

    Draws happen on the host even when the logits live on a GPU, so one seed
    gives the same tokens on every device.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        seed = int(backend.randint(0, 2**63 - 1, (), device="cpu"))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be None, an integer or a np.random.Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


# ---------------------------------------------------------------------- distributions


def softmax(logits):
    """softmax over the last axis, in the array's own module; -inf -> probability 0.

    The raw-array helper of the fused op (``tinyllm.functional.softmax.softmax_forward``), not a copy of it.
    """
    return softmax_forward(logits, -1)


def entropy(logits):
    """H = -Σ p log p in nats over the last axis (0·log 0 = 0); a uniform distribution over n tokens has log n."""
    xp = backend.of(logits)
    logp = log_softmax_forward(logits, -1)  # (z - m) - log Σ e^(z - m): exact where log(p) would round
    p = xp.exp(logp)
    logp = xp.where(p > 0, logp, 0.0)  # subtle: -inf · 0 would be nan; removed tokens add 0
    return -(p * logp).sum(axis=-1)


# ---------------------------------------------------------------------- processors


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
        cum = xp.cumsum(softmax(srt), axis=-1)
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
        probs = softmax(logits)
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
    out = _as_float_logits(logits)
    for proc in procs:
        out = proc(out, ids)
    return out


# ---------------------------------------------------------------------- the entry points


def _as_float_logits(logits):
    if not backend.is_array(logits):
        logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim not in (1, 2) or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (V,) or (B, V) with V >= 1, got {tuple(logits.shape)}")
    return logits.astype(np.float64)  # a copy, in float64 for the softmaxes that follow


def filter_logits(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  min_p: float | None = None):
    """Temperature, then top-k, then top-p, then min-p; removed tokens at -inf -> float64, same shape.

    filter_logits([[1., 3., 2.]], temperature=2.0, top_k=2) -> [[-inf, 1.5, 1.0]]
    """
    return apply(processors(temperature, top_k, top_p, min_p), logits)


def apply_penalties(logits, ids, repetition_penalty: float = 1.0, presence_penalty: float = 0.0,
                    frequency_penalty: float = 0.0):
    """Repetition, presence and frequency penalties for the tokens in ids (T,) or (B, T) -> float64 logits.

    Returns logits unchanged (no copy) when every penalty is off.
    """
    pen = Penalties(repetition_penalty, presence_penalty, frequency_penalty)
    return logits if pen.off else pen(_as_float_logits(logits), ids)


def sample(logits, rng: np.random.Generator, greedy: bool = False):
    """One token per row of logits (B, V) -> int64 (B,) (a (V,) row -> a 0-d array), on the logits' device.

    greedy: the argmax (the first on ties). Otherwise a draw from softmax(logits)
    by inverting the cumulative distribution with one uniform u per row: the first
    token whose cumulative probability exceeds u (tokens at -inf have no width, so
    they are never drawn). With p = [0.2, 0.5, 0.3] and u = 0.6 -> 1.
    """
    logits = logits if backend.is_array(logits) else np.asarray(logits, dtype=np.float64)
    if logits.ndim not in (1, 2) or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (V,) or (B, V) with V >= 1, got {tuple(logits.shape)}")
    xp = backend.of(logits)
    rows = logits.reshape(-1, logits.shape[-1])  # (V,) -> (1, V)
    top = rows.max(axis=-1)
    if not bool(xp.isfinite(top).all()) or bool(xp.isnan(rows).any()):
        b = int(backend.to_numpy(~xp.isfinite(top) | xp.isnan(rows).any(axis=-1)).argmax())
        raise ValueError(f"cannot sample from row {b}: its logits are all -inf, hold +inf or nan "
                         "(every token was removed, or the model diverged)")
    if greedy:
        out = rows.argmax(axis=-1)
    else:
        p = xp.exp(rows - top[:, None])  # (B, V), unnormalized, the top at 1
        cdf = xp.cumsum(p, axis=-1)
        total = cdf[:, -1:]
        u = backend.asarray(rng.random(rows.shape[0]), dtype=cdf.dtype,
                            device=backend.device_of(cdf))[:, None] * total  # (B, 1) in [0, total)
        # subtle: u·total can round up to total itself; then "first cdf > u" would fall off the end onto a
        # trailing -inf token. Keeping u strictly below total lands it on the last token with width.
        u = xp.minimum(u, xp.nextafter(total, xp.zeros_like(total)))
        out = (cdf <= u).sum(axis=-1)
    out = out.astype(np.int64)
    return out.reshape(logits.shape[:-1])
