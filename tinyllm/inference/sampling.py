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
``TopP(0.9)``, ``MinP(0.05)``, ``Penalties(...)``, in ``processors.py``);
``processors(...)`` builds the list ``filter_logits`` applies, and
``apply(procs, logits, ids)`` runs any list, so a reader can add a knob of their own. Everything works on a (V,) or
(B, V) array of the active backend (NumPy, CuPy, tinyllm's strict device): the
array module comes from the logits (``backend.of``).
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.functional.softmax import log_softmax_forward, softmax_forward
from tinyllm.inference.processors import (  # noqa: F401  (the processors are part of sampling's interface)
    MinP,
    Penalties,
    Temperature,
    TopK,
    TopP,
    apply,
    as_float_logits,
    check_sampling_args,
    processors,
    token_counts,
)

# ---------------------------------------------------------------------- arguments


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


# ---------------------------------------------------------------------- the entry points


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
    return logits if pen.off else pen(as_float_logits(logits), ids)


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
